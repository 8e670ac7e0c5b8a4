"""A faster inference plan for :class:`UNetSeparator` on CPU.

The Keras model runs each layer as Keras builds it. For inference the same
function can be computed with cheaper operators; :class:`UNetInference`
reads the model's weights once and computes ``model(x, training=False)``
with:

* batch norms as one multiply-add with precomputed scale and shift;
* strided transposed convolutions by output phases
  (:func:`keras_sep.ops.fast_conv.conv2d_transpose_polyphase`) wherever
  oneDNN's backward-data kernel is slow: one exact sub-kernel per phase for
  wide layers, one merged convolution for narrow ones;
* both instruments' first convolution as one (they read the same input);
* the mask head (a dilated convolution with one input channel, the slowest
  layer of the Keras graph per FLOP) as shifted slices fused by XLA;
* with XLA, the last transposed convolution (one output channel) as a 1×1
  matrix product whose shifted sums
  (:func:`keras_sep.ops.fast_conv.conv2d_transpose_from_taps`) fuse into
  the mask head.

Which form of each convolution is fastest depends on the processor: given
the input shape it will be called with, the plan times the candidate forms
of every layer on this machine once (:mod:`keras_sep.ops.autotune`, cached
per machine) and keeps the fastest; without one it uses forms chosen on
two AVX2 cores.

The result equals the Keras model's to float32 rounding (checked in the
tests for every form), and the Spleeter network runs 1.4–1.5× faster than
the Keras layers on two AVX2 cores.
"""
import math

import tensorflow as tf

from keras_sep.layers._block_utils import make_activation
from keras_sep.ops import autotune
from keras_sep.ops.fast_conv import (
    conv2d_by_patches,
    conv2d_by_shifts,
    conv2d_transpose_from_taps,
    conv2d_transpose_polyphase,
    polyphase_kernel,
    transposed_tap_kernel,
)

# Last decoder layers with at most this many output channels run as taps
# fused into the XLA mask head.
_MAX_TAP_CHANNELS = 2
# Patch and tap matrices up to this many elements are worth timing; larger
# ones are memory-bound and always slower than the direct kernels.
_MAX_MATRIX_ELEMENTS = 1 << 21

ENCODER_FORMS = ("conv", "patches")
DECODER_FORMS = ("native", "phases", "merged", "taps")


def _choose_transpose(out_channels):
    """Phase layout per decoder layer when nothing was timed, from timings of
    the Spleeter layers with oneDNN on AVX2: exact per-phase kernels pay off
    for wide outputs, one merged convolution for narrow ones (it multiplies
    the output channels by four), and the standard kernel in between."""
    if out_channels >= 64:
        return "phases"
    if out_channels == 32:
        return "native"
    return "merged"


def _batch_norm_affine(layer, dtype):
    scale = layer.gamma * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
    shift = layer.beta - layer.moving_mean * scale
    return tf.cast(scale, dtype), tf.cast(shift, dtype)


def _prepare_transpose(form, kernel, strides):
    if form in ("phases", "merged"):
        return polyphase_kernel(kernel, strides, form == "merged")
    if form == "taps":
        return transposed_tap_kernel(kernel)
    return None


def _conv(form, x, kernel, strides):
    if form == "patches":
        return conv2d_by_patches(x, kernel, strides)
    return tf.nn.conv2d(x, kernel, strides, "SAME")


def _tap_products(x, tap_kernel):
    """Every input pixel's contribution to each tap: a 1×1 matrix product."""
    shape = tf.shape(x)
    taps = tf.matmul(tf.reshape(x, [-1, tap_kernel.shape[0]]), tap_kernel)
    return tf.reshape(taps, tf.concat([shape[:3], [tap_kernel.shape[1]]], axis=0))


def _transpose(form, x, kernel, prepared, strides):
    if form == "native":
        shape = tf.shape(x)
        size = tf.stack([shape[0], shape[1] * strides, shape[2] * strides, kernel.shape[2]])
        return tf.nn.conv2d_transpose(x, kernel, size, strides, "SAME")
    if form == "taps":
        return conv2d_transpose_from_taps(_tap_products(x, prepared), kernel.shape[:2], strides)
    return conv2d_transpose_polyphase(x, None, strides, prepared=prepared)


class UNetInference:
    """``UNetSeparator(x, training=False)`` with a faster operator plan.

    The weights are copied when this is made: make a new one after changing
    the model's weights. Inputs and outputs are float32.

    Args:
        model: a built :class:`UNetSeparator`.
        jit_compile: fuse the mask heads with XLA. Without it they run as the
            standard convolution (for runtimes without XLA, e.g. TF Serving's
            default build).
        tune_input_shape: ``(batch, frames, bins, channels)`` the plan will
            mostly be called with: the forms of every layer are timed on
            this machine for that shape and the fastest kept (cached per
            machine; ``KERAS_SEP_TUNE=0`` turns timing off). ``None`` uses
            fixed forms. Other shapes still work.
        forms: force forms instead: ``{"encoder": f, "decoder": f}`` with
            one form (from :data:`ENCODER_FORMS` / :data:`DECODER_FORMS`)
            or a list with one per stage; missing keys are chosen as usual.
            A last decoder layer fused into the XLA head keeps its taps.
        compute_dtype: ``"float32"`` (the model's function to float32
            rounding) or ``"bfloat16"``: the U-Nets' convolutions in
            bfloat16, for processors with bfloat16 matrix units (Intel AMX,
            AVX512_BF16), where they run 2–3× faster. The mask head (last
            activation, batch norm, mask convolution, sigmoid, masking)
            stays float32; the result differs from float32 by bfloat16's
            rounding (about 8 significant bits).
        fuse_steps: run the element-wise steps between convolutions (bias,
            activation, batch norm, skip concatenation) as one XLA fusion
            each (needs ``jit_compile``). ``None``: always in bfloat16; in
            float32 when ``tune_input_shape`` is given and timing on this
            machine shows it faster (cached like the forms).

    Call arguments:
        magnitude: ``(batch, frames, bins, channels)`` float32 mixture
            magnitude; frames and bins multiples of ``strides ** stages``.

    Returns:
        dict ``{instrument: (batch, frames, bins, channels)}`` float32, as the
        model.

    Attributes:
        fuse_steps: whether the element-wise steps are XLA fusions.
        forms: ``{"encoder": [...], "decoder": [...]}``, the form of every
            stage ("head" for the last decoder layer when it joins the XLA
            head).
    """

    def __init__(self, model, jit_compile=True, tune_input_shape=None, forms=None, compute_dtype="float32", fuse_steps=None):
        if compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
        self.dtype = dtype = tf.as_dtype(compute_dtype)
        self.instruments = tuple(model.instruments)
        self.strides = int(model.strides)
        self.skip_connections = bool(model.skip_connections)
        self.jit_compile = bool(jit_compile)
        self.encoder_act = make_activation(model.encoder_activation, model.negative_slope)
        self.decoder_act = decoder_act = make_activation(model.decoder_activation, model.negative_slope)
        stages = len(model.filters)
        chosen = self._choose_forms(model, stages, tune_input_shape, forms or {})
        self.forms = chosen
        self.plans = {}
        for name in self.instruments:
            encoders, decoders = [], []
            for stage in range(stages):
                block = model.get_layer(f"{name}_encoder_{stage}")
                affine = _batch_norm_affine(block.batch_norm, dtype) if block.batch_norm is not None else None
                conv = block.conv
                encoders.append((chosen["encoder"][stage], tf.cast(conv.kernel, dtype), tf.cast(conv.bias, dtype), affine))
                block = model.get_layer(f"{name}_decoder_{stage}")
                kernel = tf.cast(block.conv.kernel, dtype)
                form = chosen["decoder"][stage]
                prepared = transposed_tap_kernel(kernel) if form == "head" else _prepare_transpose(form, kernel, self.strides)
                # The last decoder's bias and batch norm act in the float32 head.
                last = stage == stages - 1
                bias = tf.cast(block.conv.bias, tf.float32 if last else dtype)
                decoders.append((form, kernel, prepared, bias, _batch_norm_affine(block.batch_norm, tf.float32 if last else dtype)))
            head = model.get_layer(f"{name}_mask")
            self.plans[name] = (encoders, decoders, (tf.constant(head.kernel), tf.constant(head.bias)))
        # One head function for all instruments (their weights are arguments):
        # XLA compiles it once. The architecture is the same for all of them.
        last_kernel = self.plans[self.instruments[0]][1][-1][1]
        self.head = self._mask_head(
            decoder_act,
            tuple(model.get_layer(f"{self.instruments[0]}_mask").dilation_rate),
            last_kernel.shape[:2] if chosen["decoder"][-1] == "head" else None,
        )
        encoder_act = self.encoder_act

        def encoder_post(conv, begin, end, scale, shift):
            return encoder_act(_sliced(conv, begin, end) * scale + shift)

        def decoder_post(conv, bias, scale, shift):
            return decoder_act(conv + bias) * scale + shift

        def decoder_join(conv, bias, scale, shift, skip, begin, end):
            return tf.concat([_sliced(skip, begin, end), decoder_post(conv, bias, scale, shift)], axis=-1)

        plain = (encoder_post, decoder_post, decoder_join)
        # The element-wise steps between convolutions (bias, activation,
        # batch norm, skip concatenation) as one XLA fusion each: one pass
        # over the feature map instead of three or four. In bfloat16 that
        # always pays (12 % of the network: TensorFlow's bfloat16
        # element-wise kernels are slow); in float32 it saved 8-10 % of a
        # separation on two Zen 4 cores but 1-2 % on an AVX-512 Xeon, less
        # than the 0.4 s its dozen compilations add to the first call, so
        # there it is timed with the forms.
        # Made once: timing them compiles them for the plan too.
        fused = tuple(self._fused(fn) for fn in plain)
        if fuse_steps is None:
            fuse_steps = self.jit_compile and (dtype == tf.bfloat16 or self._tune_fusion(model, tune_input_shape, plain, fused))
        self.fuse_steps = bool(fuse_steps) and self.jit_compile
        self._encoder_post, self._decoder_post, self._decoder_join = fused if self.fuse_steps else plain
        # The first convolution of every instrument reads the same input.
        self.first_kernel = tf.concat([self.plans[n][0][0][1] for n in self.instruments], axis=-1)
        self.first_bias = tf.concat([self.plans[n][0][0][2] for n in self.instruments], axis=-1)

    # --- choosing the forms ----------------------------------------------

    def _choose_forms(self, model, stages, tune_input_shape, forced):
        def per_stage(key, allowed):
            value = forced.get(key)
            if value is None:
                return [None] * stages
            values = [value] * stages if isinstance(value, str) else list(value)
            if len(values) != stages or any(v not in allowed for v in values):
                raise ValueError(f"forms[{key!r}] must be one of {allowed} or a list of {stages} of them, got {value!r}")
            return values

        unknown = set(forced) - {"encoder", "decoder"}
        if unknown:
            raise ValueError(f"forms takes the keys 'encoder' and 'decoder', got {sorted(unknown)}")
        encoder, decoder = per_stage("encoder", ENCODER_FORMS), per_stage("decoder", DECODER_FORMS)
        first = self.instruments[0]
        kernels = {
            "encoder": [model.get_layer(f"{first}_encoder_{i}").conv.kernel for i in range(stages)],
            "decoder": [model.get_layer(f"{first}_decoder_{i}").conv.kernel for i in range(stages)],
        }
        # The first convolution runs once for all instruments.
        kernels["encoder"][0] = tf.concat(
            [model.get_layer(f"{n}_encoder_0").conv.kernel for n in self.instruments], axis=-1
        )
        last = kernels["decoder"][-1]
        if self.jit_compile and self.strides > 1 and int(last.shape[2]) <= _MAX_TAP_CHANNELS:
            decoder[-1] = "head"
        tune = tune_input_shape is not None and autotune.enabled()
        table = {}
        for stage in range(stages):
            shape = self._stage_input(tune_input_shape, stage, int(kernels["encoder"][stage].shape[2])) if tune else None
            if encoder[stage] is None:
                encoder[stage] = self._tune_encoder(kernels["encoder"][stage], shape, table)
            if decoder[stage] is None:
                shape = self._stage_input(tune_input_shape, stages - stage, int(kernels["decoder"][stage].shape[3])) if tune else None
                decoder[stage] = self._tune_decoder(kernels["decoder"][stage], shape, table)
        autotune.save(table)
        return {"encoder": encoder, "decoder": decoder}

    def _stage_input(self, shape, downsamplings, channels):
        batch, frames, bins = (int(v) for v in shape[:3])
        factor = self.strides**downsamplings
        return (batch, math.ceil(frames / factor), math.ceil(bins / factor), channels)

    def _random(self, shape):
        return (tf.cast(tf.random.uniform(shape), self.dtype),)

    def _dtype_tag(self):
        """The cache keys' suffix for the compute dtype (none for float32)."""
        return "" if self.dtype == tf.float32 else f":{self.dtype.name}"

    def _signature(self, kind, shape, kernel):
        return f"unet.{kind}:{'x'.join(map(str, shape))}:k{'x'.join(map(str, kernel.shape))}:s{self.strides}{self._dtype_tag()}"

    def _tune_encoder(self, kernel, shape, table):
        if shape is None:
            return "conv"
        kernel = tf.cast(kernel, self.dtype)
        kh, kw, cin, cout = kernel.shape
        pixels = math.ceil(shape[1] / self.strides) * math.ceil(shape[2] / self.strides) * shape[0]
        candidates = {"conv": lambda x: _conv("conv", x, kernel, self.strides)}
        if pixels * kh * kw * cin <= _MAX_MATRIX_ELEMENTS:
            candidates["patches"] = lambda x: _conv("patches", x, kernel, self.strides)
        signature = self._signature("encoder", shape, kernel)
        return autotune.choose(signature, candidates, lambda: self._random(shape), "conv", table)

    def _tune_decoder(self, kernel, shape, table):
        default = _choose_transpose(int(kernel.shape[2]))
        if shape is None:
            return default
        kernel = tf.cast(kernel, self.dtype)
        kh, kw, cout, cin = kernel.shape
        forms = ["native", "phases", "merged"]
        if shape[0] * shape[1] * shape[2] * kh * kw * cout <= _MAX_MATRIX_ELEMENTS:
            forms.append("taps")
        candidates = {}
        for form in forms:
            prepared = _prepare_transpose(form, kernel, self.strides)
            candidates[form] = lambda x, f=form, p=prepared: _transpose(f, x, kernel, p, self.strides)
        signature = self._signature("decoder", shape, kernel)
        return autotune.choose(signature, candidates, lambda: self._random(shape), default, table)

    def _tune_fusion(self, model, tune_input_shape, plain, fused):
        """Whether the element-wise steps of one U-Net run faster as XLA
        fusions (``fused``) than as TensorFlow ops (``plain``), timed (and
        cached) for the stage shapes of ``tune_input_shape``; False without
        timing."""
        if tune_input_shape is None or not autotune.enabled():
            return False
        encoders, decoders, _ = self.plans[self.instruments[0]]
        stages = len(encoders)
        enc_shapes = [self._stage_input(tune_input_shape, s + 1, int(e[1].shape[3])) for s, e in enumerate(encoders)]
        dec_shapes = [self._stage_input(tune_input_shape, stages - 1 - s, int(d[1].shape[2])) for s, d in enumerate(decoders)]
        joins = [s for s in range(stages - 1) if self.skip_connections]

        def run(post, join, tensors):
            outputs = [post(t, 0, int(t.shape[-1]), *encoders[s][3]) for s, t in enumerate(tensors[:stages]) if encoders[s][3]]
            for s, (conv, skip) in zip(joins, zip(tensors[stages::2], tensors[stages + 1 :: 2])):
                _, _, _, bias, (scale, shift) = decoders[s]
                outputs.append(join(conv, bias, scale, shift, skip, 0, int(skip.shape[-1])))
            return outputs

        candidates = {
            "plain": lambda *t: run(plain[0], plain[2], t),
            "fused": lambda *t: run(fused[0], fused[2], t),
        }

        def inputs():
            shapes = list(enc_shapes)
            for s in joins:
                shapes += [dec_shapes[s], enc_shapes[stages - 2 - s]]
            return tuple(self._random(shape)[0] for shape in shapes)

        signature = (f"unet.steps:{'/'.join('x'.join(map(str, shape)) for shape in enc_shapes)}"
                     f":{model.encoder_activation}-{model.decoder_activation}:skips={int(bool(joins))}{self._dtype_tag()}")
        return autotune.choose(signature, candidates, inputs, "plain") == "fused"

    # --- the computation -------------------------------------------------

    def _fused(self, fn):
        return tf.function(fn, jit_compile=True, autograph=False) if self.jit_compile else fn

    def _mask_head(self, act, dilation, tap_size=None):
        """Last decoder activation and batch norm, the mask convolution,
        sigmoid and masking: one XLA fusion with ``jit_compile``. With a
        ``tap_size`` (the last decoder's kernel size), the head receives the
        decoder's per-tap products and finishes its transposed convolution
        first."""

        def head(conv, conv_bias, scale, shift, magnitude, kernel, bias):
            conv = tf.cast(conv, tf.float32)
            if tap_size is not None:
                conv = conv2d_transpose_from_taps(conv, tap_size, self.strides)
            x = act(conv + conv_bias) * scale + shift
            if self.jit_compile:
                y = conv2d_by_shifts(x, kernel, dilation)
            else:
                y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
            return tf.sigmoid(y + bias) * magnitude

        return self._fused(head)

    def __call__(self, magnitude):
        magnitude = tf.convert_to_tensor(magnitude, tf.float32)
        x = tf.cast(magnitude, self.dtype)
        first = tf.nn.bias_add(_conv(self.forms["encoder"][0], x, self.first_kernel, self.strides), self.first_bias)
        width = int(first.shape[-1]) // len(self.instruments)
        if self.fuse_steps:
            # Each instrument's share of the first convolution stays a slice
            # of it: the fused element-wise steps read it in place.
            shares = [(first, i * width, (i + 1) * width) for i in range(len(self.instruments))]
        else:
            shares = [(share, 0, width) for share in tf.split(first, len(self.instruments), axis=-1)]
        return {name: self._unet(name, magnitude, share) for name, share in zip(self.instruments, shares)}

    def _unet(self, name, magnitude, first):
        encoders, decoders, (mask_kernel, mask_bias) = self.plans[name]
        skips = [first]  # (tensor, first channel, end channel), unsliced
        x = None
        for stage, (form, kernel, bias, affine) in enumerate(encoders):
            if stage:
                conv = tf.nn.bias_add(_conv(form, x, kernel, self.strides), bias)
                skips.append((conv, 0, int(conv.shape[-1])))
            if affine is not None:
                x = self._encoder_post(*skips[-1], *affine)
        x = _sliced(*skips.pop())
        for stage, (form, kernel, prepared, bias, (scale, shift)) in enumerate(decoders):
            if form == "head":
                # Per-tap products, a plain matrix product; the head sums them.
                conv = _tap_products(x, prepared)
            else:
                conv = _transpose(form, x, kernel, prepared, self.strides)
            if stage == len(decoders) - 1:
                return self.head(conv, bias, scale, shift, magnitude, mask_kernel, mask_bias)
            skip = skips.pop() if skips else None
            if skip is not None and self.skip_connections:
                x = self._decoder_join(conv, bias, scale, shift, *skip)
            else:
                x = self._decoder_post(conv, bias, scale, shift)


def has_inference_plan(net):
    """Whether ``net`` offers :meth:`UNetSeparator.inference_function`
    (float32 networks only)."""
    return hasattr(net, "inference_function") and net.compute_dtype == "float32"


def _sliced(tensor, begin, end):
    """Channels ``begin:end`` of ``tensor`` (the tensor itself when whole);
    ``begin`` and ``end`` are Python ints, static under XLA."""
    return tensor if begin == 0 and end == tensor.shape[-1] else tensor[..., begin:end]
