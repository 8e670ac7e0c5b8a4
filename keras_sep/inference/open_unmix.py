"""Open-Unmix's target networks as one computation, for separating.

Keras runs each :class:`~keras_sep.models.OpenUnmix` network's three
bidirectional LSTMs as six recurrences of their own, every step a
``(1, units) x (units, 4 units)`` product that reads a megabyte of weights
for half a megaflop. On a CPU such a step is bound by how fast the weights
come from the caches, and the loop's own overhead is paid once per
recurrence and step: 24 recurrences for four targets. This plan runs the
same function with the targets' and directions' recurrences of a layer side
by side in one loop (a batched product per step, compiled with XLA), and
every product over all frames (the dense layers, the LSTMs' input
projections) as one large matrix product. Inference only: batch
normalisation with its moving statistics, no dropout.

Made from the Keras networks' configuration and weights, and checked
against them on a probe input when made (the answer cached as the U-Net
plans', :mod:`keras_sep.inference.probes`).
"""
import numpy as np
import tensorflow as tf

from keras_sep.inference import probes

# The largest error relative to the output's magnitude that the probe check
# accepts: float32 arithmetic in another order.
PROBE_TOLERANCE = 1e-4


class OpenUnmixInference:
    """The stacked estimates of several :class:`~keras_sep.models.OpenUnmix`
    networks from one mixture magnitude.

    Args:
        target_models: :class:`~keras_sep.models.OpenUnmix` networks with the
            same ``nb_bins``, ``nb_channels``, ``hidden_size``, ``nb_layers``,
            ``max_bin`` and direction(s); their weights are read once, here.
        jit_compile: compile the recurrences with XLA (faster on CPU; an
            exported SavedModel leaves it off, so that any TensorFlow
            runtime can serve it).
        check: run the probe check (see the module).

    Call arguments:
        magnitude: ``(batch, frames, nb_bins, nb_channels)`` float32 mixture
            magnitude.

    Returns:
        ``(batch, frames, nb_bins, nb_channels, targets)`` float32: each
        network's ``model(magnitude, training=False)``, in the order given.

    Example:

    >>> import numpy as np
    >>> from keras_sep.models import OpenUnmix
    >>> nets = [OpenUnmix(nb_bins=9, hidden_size=4, target=t) for t in ("vocals", "bass")]
    >>> plan = OpenUnmixInference(nets, jit_compile=False)
    >>> x = np.random.default_rng(0).uniform(size=(1, 6, 9, 2)).astype("float32")
    >>> got = plan(x).numpy()
    >>> got.shape, bool(np.allclose(got[..., 1], nets[1](x), atol=1e-5))
    ((1, 6, 9, 2, 2), True)
    """

    def __init__(self, target_models, jit_compile=True, check=True):
        models = list(target_models)
        shapes = {_shape(model) for model in models}
        if not models or len(shapes) != 1:
            raise ValueError(f"need networks of one shape (nb_bins, nb_channels, hidden_size, nb_layers, "
                             f"max_bin, unidirectional), got {sorted(shapes)}")
        self.bins, self.channels, self.hidden, self.layers, self.max_bin, unidirectional = shapes.pop()
        self.directions = 1 if unidirectional else 2
        self.targets = len(models)
        self.jit_compile = bool(jit_compile)
        # === The dense layers, batch normalisation folded in ===
        first = [_first_dense(model) for model in models]
        self.fc1 = tf.constant(np.concatenate([w for w, _ in first], axis=1))  # shared input: one product
        self.fc1_bias = tf.constant(np.concatenate([b for _, b in first]))
        second = [_dense_bn(model, "fc2", "bn2") for model in models]
        self.fc2, self.fc2_bias = (tf.constant(np.stack(v)) for v in zip(*second))
        third = [_last_dense(model) for model in models]
        self.fc3, self.fc3_bias = (tf.constant(np.stack(v)) for v in zip(*third))
        # === The recurrences: (targets * directions, ...) per layer ===
        self.lstm = []
        for index in range(self.layers):
            cells = [cell for model in models for cell in _lstm_cells(model, index, unidirectional)]
            kernel, recurrent, bias = (np.stack(v) for v in zip(*cells))
            self.lstm.append((tf.constant(kernel), tf.constant(recurrent), tf.constant(bias)))
        self.spans = _spans(self.targets * self.directions)
        self._recur = tf.function(_recurrence, jit_compile=True, autograph=False) if self.jit_compile else _recurrence
        if check:
            holder = _Holder(models)
            key = probes.key(holder, plan="open_unmix", jit=self.jit_compile, code=("open_unmix",))
            if not probes.passed(key):
                probes.remember(key, self._check_probe(models))

    def __call__(self, magnitude):
        magnitude = tf.convert_to_tensor(magnitude, tf.float32)
        shape = tf.shape(magnitude)
        batch, frames = shape[0], shape[1]
        g, h = self.targets, self.hidden
        # Frames as rows: (batch * frames, max_bin * channels), bins major.
        rows = tf.reshape(magnitude[:, :, : self.max_bin], [-1, self.max_bin * self.channels])
        encoded = tf.tanh(tf.matmul(rows, self.fc1) + self.fc1_bias)
        encoded = tf.transpose(tf.reshape(encoded, [batch, frames, g, h]), [2, 0, 1, 3])  # (g, b, t, h)
        x = encoded
        for kernel, recurrent, bias in self.lstm:
            x = self._lstm_layer(x, kernel, recurrent, bias)
        x = tf.concat([encoded, x], axis=-1)
        x = tf.nn.relu(tf.matmul(tf.reshape(x, [g, -1, 2 * h]), self.fc2) + self.fc2_bias[:, None])
        x = tf.matmul(x, self.fc3) + self.fc3_bias[:, None]  # (g, b * t, bins * channels)
        masks = tf.nn.relu(tf.reshape(x, [g, batch, frames, self.bins, self.channels]))
        return tf.transpose(masks, [1, 2, 3, 4, 0]) * magnitude[..., None]

    def _lstm_layer(self, x, kernel, recurrent, bias):
        """``x`` (targets, batch, frames, features) → the layer's output
        (targets, batch, frames, directions * units)."""
        g, d = self.targets, self.directions
        shape = tf.shape(x)
        batch, frames = shape[1], shape[2]
        units = recurrent.shape[1]
        # Every group's input projection over all frames: one product per group.
        x = tf.repeat(x, d, axis=0) if d > 1 else x
        gates = tf.matmul(tf.reshape(x, [g * d, -1, x.shape[-1]]), kernel) + bias[:, None]
        gates = tf.reshape(gates, [g * d, batch, frames, 4 * units])
        if d > 1:  # backward groups read their frames last to first
            gates = _flip_backward(gates, g)
        gates = tf.transpose(gates, [2, 0, 1, 3])  # (t, g*d, b, 4 units)
        outputs = tf.concat([self._recur(gates[:, a:b], recurrent[a:b]) for a, b in self.spans], axis=1)
        outputs = tf.transpose(outputs, [1, 2, 0, 3])
        if d > 1:
            outputs = _flip_backward(outputs, g)
        outputs = tf.reshape(outputs, [g, d, batch, frames, units])
        return tf.concat(tf.unstack(outputs, d, axis=1), axis=-1)

    def _check_probe(self, models):
        """Compare with every network's ``model(probe, training=False)``;
        raise ValueError beyond :data:`PROBE_TOLERANCE`, else return the
        largest relative error."""
        probe = np.random.default_rng(0).uniform(0.0, 1.0, (1, 6, self.bins, self.channels)).astype(np.float32)
        got = self(probe).numpy()
        largest = 0.0
        for index, model in enumerate(models):
            error = probes.relative_error(model(probe, training=False), got[..., index])
            if not error <= PROBE_TOLERANCE:
                raise ValueError(
                    f"the Open-Unmix inference plan differs from the Keras network {model.name!r} on a probe "
                    f"input by {error:.3g} of its magnitude (tolerance {PROBE_TOLERANCE:g}); run the Keras "
                    f"layers instead (Separator(fast=False))"
                )
            largest = max(largest, error)
        return largest


def _recurrence(gates, recurrent):
    """LSTM steps of every group side by side (Keras' gate order i, f, c, o).

    Args:
        gates: ``(frames, groups, batch, 4 units)``: each frame's input
            projection plus bias.
        recurrent: ``(groups, units, 4 units)``.

    Returns:
        ``(frames, groups, batch, units)``: the hidden states.
    """
    frames = tf.shape(gates)[0]
    state = tf.zeros(tf.concat([tf.shape(gates)[1:3], tf.shape(recurrent)[1:2]], 0), gates.dtype)

    def step(i, h, c, out):
        z = gates[i] + tf.matmul(h, recurrent)
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_c)
        h = tf.sigmoid(z_o) * tf.tanh(c)
        return i + 1, h, c, out.write(i, h)

    out = tf.TensorArray(gates.dtype, size=frames, element_shape=state.shape)
    _, _, _, out = tf.while_loop(lambda i, *_: i < frames, step, (0, state, state, out))
    return out.stack()


def _spans(groups):
    """Independent loops of two groups each (three for an odd count): run
    side by side, they use both cores of a small machine, where one loop of
    all the groups runs on one. XLA's product of a single group is several
    times slower than a batch of two, so no loop holds just one (a lone
    group, one unidirectional network, is the exception)."""
    bounds = list(range(0, groups - 1, 2)) + [groups] if groups > 1 else [0, 1]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:]))


def _flip_backward(x, targets):
    """Reverse the frames (axis 2) of the odd groups of ``(targets * 2, batch, frames, ...)``."""
    pairs = tf.reshape(x, tf.concat([[targets, 2], tf.shape(x)[1:]], 0))
    forward, backward = tf.unstack(pairs, 2, axis=1)
    return tf.reshape(tf.stack([forward, tf.reverse(backward, [2])], axis=1), tf.shape(x))


class _Holder:
    """What :func:`probes.key` hashes for a set of networks: their
    configurations and weights."""

    def __init__(self, models):
        self.models = models
        self.weights = [w for model in models for w in model.weights]

    def get_config(self):
        return [model.get_config() for model in self.models]


def _shape(model):
    return (int(model.nb_bins), int(model.nb_channels), int(model.hidden_size), int(model.nb_layers),
            int(model.max_bin), bool(model.unidirectional))


def _bn_affine(layer):
    """Inference batch normalisation as ``x * scale + offset`` (float64)."""
    gamma, beta, mean, variance = (np.asarray(w.numpy(), np.float64) for w in
                                   (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance))
    scale = gamma / np.sqrt(variance + layer.epsilon)
    return scale, beta - mean * scale


def _dense_bn(model, dense, norm):
    """A bias-free dense layer followed by batch normalisation, folded:
    ``(kernel, bias)`` float32."""
    kernel = np.asarray(model.get_layer(dense).kernel.numpy(), np.float64)
    scale, offset = _bn_affine(model.get_layer(norm))
    return (kernel * scale).astype(np.float32), offset.astype(np.float32)


def _first_dense(model):
    """fc1 and bn1 with the input normalisation ``(x + shift) * scale``
    (per bin, shared by channels) folded in."""
    kernel, bias = _dense_bn(model, "fc1", "bn1")
    norm = model.get_layer("input_norm")
    shift = np.repeat(np.asarray(norm.shift.numpy(), np.float64), model.nb_channels)
    scale = np.repeat(np.asarray(norm.scale.numpy(), np.float64), model.nb_channels)
    folded = kernel.astype(np.float64) * scale[:, None]
    return folded.astype(np.float32), (bias + (shift @ folded)).astype(np.float32)


def _last_dense(model):
    """fc3 and bn3 with the output mask's per-bin ``x * scale + mean`` folded in."""
    kernel, bias = _dense_bn(model, "fc3", "bn3")
    mask = model.get_layer(model.target)
    scale = np.repeat(np.asarray(mask.scale.numpy(), np.float64), model.nb_channels)
    mean = np.repeat(np.asarray(mask.mean.numpy(), np.float64), model.nb_channels)
    return (kernel * scale).astype(np.float32), (bias * scale + mean).astype(np.float32)


def _lstm_cells(model, index, unidirectional):
    """``[(kernel, recurrent_kernel, bias)]`` of layer ``index``'s
    direction(s), forward first."""
    if unidirectional:
        layers = [model.get_layer(f"lstm_{index}")]
    else:
        wrapper = model.get_layer(f"blstm_{index}")
        layers = [wrapper.forward_layer, wrapper.backward_layer]
    cells = []
    for layer in layers:
        cell = layer.cell
        bias = cell.bias.numpy() if cell.use_bias else np.zeros(cell.recurrent_kernel.shape[1], np.float32)
        cells.append((cell.kernel.numpy(), cell.recurrent_kernel.numpy(), bias))
    return cells
