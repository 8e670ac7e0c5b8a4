"""Open-Unmix (Stöter et al. 2019): a BLSTM mask estimator for one target."""
import keras
import numpy as np

from keras_sep.models._autoencoder_utils import check_model_kwargs

# PyTorch's BatchNorm1d defaults, so that converted weights behave the same
# and training follows upstream: running = 0.9 * running + 0.1 * batch.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_LSTM_DROPOUT = 0.4
_LAYER_NAMES = {"mix_magnitude", "input_norm", "flatten_bins", "fc1", "bn1", "tanh", "skip", "fc2", "bn2",
                "relu", "fc3", "bn3", "unflatten_bins"}


def bandwidth_to_max_bin(rate, n_fft, bandwidth):
    """Number of STFT bins whose centre frequency is at most ``bandwidth`` Hz.

    >>> bandwidth_to_max_bin(44100, 4096, 16000)
    1487
    """
    if rate <= 0 or n_fft < 2:
        raise ValueError(f"need rate > 0 and n_fft >= 2, got rate={rate!r}, n_fft={n_fft!r}")
    freqs = np.linspace(0.0, float(rate) / 2.0, n_fft // 2 + 1)
    return int(np.count_nonzero(freqs <= bandwidth))


@keras.saving.register_keras_serializable(package="keras_sep", name="OpenUnmixInputNorm")
class _InputNorm(keras.layers.Layer):
    """Crops ``(batch, frames, bins, channels)`` to ``max_bin`` bins and
    applies a learnable per-bin ``(x + shift) * scale`` (shared by channels)."""

    def __init__(self, max_bin, **kwargs):
        super().__init__(**kwargs)
        self.max_bin = int(max_bin)

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(self.max_bin,), initializer="zeros", name="shift")
        self.scale = self.add_weight(shape=(self.max_bin,), initializer="ones", name="scale")

    def call(self, x):
        x = x[:, :, : self.max_bin, :]
        shift = keras.ops.cast(self.shift, x.dtype)[:, None]
        scale = keras.ops.cast(self.scale, x.dtype)[:, None]
        return (x + shift) * scale

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2]) + (self.max_bin,) + tuple(input_shape[3:])

    def get_config(self):
        return {**super().get_config(), "max_bin": self.max_bin}


@keras.saving.register_keras_serializable(package="keras_sep", name="OpenUnmixOutputMask")
class _OutputMask(keras.layers.Layer):
    """``relu(x * scale + mean) * mixture`` with a learnable per-bin output
    scale and mean (shared by channels); ``x`` and ``mixture`` are
    ``(batch, frames, bins, channels)``."""

    def build(self, input_shape):
        bins = input_shape[0][2]
        self.scale = self.add_weight(shape=(bins,), initializer="ones", name="scale")
        self.mean = self.add_weight(shape=(bins,), initializer="ones", name="mean")

    def call(self, inputs):
        x, mixture = inputs
        mask = keras.ops.relu(x * self.scale[:, None] + self.mean[:, None])
        return mask * keras.ops.cast(mixture, mask.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])


@keras.saving.register_keras_serializable(package="keras_sep")
class OpenUnmix(keras.Model):
    """Open-Unmix: estimates one target's magnitude spectrogram from the mixture's.

    Each frame's magnitudes, cropped to ``max_bin`` bins and normalised per
    bin (a learnable shift and scale, initialised from the training set's
    mean and standard deviation), are encoded by a dense layer without bias,
    batch norm and ``tanh`` to ``hidden_size`` features; a stack of
    ``nb_layers`` LSTMs (bidirectional with ``hidden_size // 2`` units per
    direction, or unidirectional with ``hidden_size`` for causal use; 40 %
    dropout between layers) runs over the frames; its output, concatenated
    with its input, is decoded by dense → batch norm → ReLU → dense → batch
    norm back to ``nb_bins * nb_channels`` values, scaled and shifted per bin,
    rectified and multiplied with the mixture magnitude. Channels are
    processed jointly. Layer for layer this is upstream's ``openunmix``
    1.3.0 ``OpenUnmix``, so its PyTorch weights load into it (see
    ``keras_sep.checkpoints``). The mask and the product with the mixture
    are computed in float32 under a mixed-precision policy.

    Args:
        nb_bins: frequency bins of the input and output (``n_fft // 2 + 1``).
        nb_channels: audio channels (2 for stereo).
        hidden_size: width of the dense layers and of the LSTM output.
        nb_layers: stacked LSTM layers.
        max_bin: bins the network sees (``bandwidth_to_max_bin``); ``None``
            for all of them. Bins above it still get a mask, from the decoder.
        unidirectional: causal LSTMs instead of bidirectional ones.
        input_mean: per-bin mean of the training magnitudes, at least
            ``max_bin`` values (the input shift starts at ``-input_mean``);
            ``None`` for zeros.
        input_scale: per-bin standard deviation of the training magnitudes
            (the input scale starts at ``1 / input_scale``); ``None`` for ones.
        target: name of the source this model estimates (``"vocals"``, ...).

    Call arguments:
        inputs: mixture magnitude ``(batch, frames, nb_bins, nb_channels)``.
        training: dropout and batch statistics.

    Input shape:
        ``(batch, frames, nb_bins, nb_channels)``, float.

    Output shape:
        ``(batch, frames, nb_bins, nb_channels)``: the target's estimated
        magnitude, float32.

    Example:

    >>> import numpy as np
    >>> model = OpenUnmix(nb_bins=33, hidden_size=8, max_bin=20, target="bass")
    >>> model(np.ones((2, 5, 33, 2), "float32")).shape
    TensorShape([2, 5, 33, 2])

    References:
        Stöter, Uhlich, Liutkus and Mitsufuji, "Open-Unmix - A Reference
        Implementation for Music Source Separation", JOSS 2019.
    """

    def __init__(
        self,
        nb_bins=2049,
        nb_channels=2,
        hidden_size=512,
        nb_layers=3,
        max_bin=None,
        unidirectional=False,
        input_mean=None,
        input_scale=None,
        target="vocals",
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        nb_bins, nb_channels, hidden_size, nb_layers = (
            int(nb_bins), int(nb_channels), int(hidden_size), int(nb_layers))
        for name, value in (("nb_bins", nb_bins), ("nb_channels", nb_channels),
                            ("hidden_size", hidden_size), ("nb_layers", nb_layers)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        if not unidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional model needs an even hidden_size, got {hidden_size!r}")
        # The output layer carries the target's name (the output's name in fit).
        if (not isinstance(target, str) or not target or "/" in target or target in _LAYER_NAMES
                or target.startswith(("lstm_", "blstm_"))):
            raise ValueError(f"target must be a source name other than the layers' {sorted(_LAYER_NAMES)} "
                             f"and lstm_*, got {target!r}")
        max_bin = nb_bins if max_bin is None else int(max_bin)
        if not 1 <= max_bin <= nb_bins:
            raise ValueError(f"max_bin must be in [1, nb_bins={nb_bins}], got {max_bin!r}")
        shift, scale = _input_statistics(input_mean, input_scale, max_bin)

        # === Input ===
        inputs = keras.Input(shape=(None, nb_bins, nb_channels), name="mix_magnitude")

        # === Encoder: normalised frames → hidden_size features ===
        norm = _InputNorm(max_bin, name="input_norm")
        x = norm(inputs)
        x = keras.layers.Reshape((-1, max_bin * nb_channels), name="flatten_bins")(x)
        x = keras.layers.Dense(hidden_size, use_bias=False, name="fc1")(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name="bn1")(x)
        encoded = keras.layers.Activation("tanh", name="tanh")(x)

        # === Recurrent stack over frames ===
        x = encoded
        units = hidden_size if unidirectional else hidden_size // 2
        templates = []
        for index in range(nb_layers):
            if index:
                x = keras.layers.Dropout(_LSTM_DROPOUT, name=f"lstm_dropout_{index}")(x)
            lstm = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{index}")
            if not unidirectional:
                templates.append(lstm)
                lstm = keras.layers.Bidirectional(lstm, merge_mode="concat", name=f"blstm_{index}")
            x = lstm(x)
        x = keras.layers.Concatenate(name="skip")([encoded, x])

        # === Decoder: features → a mask for every bin and channel ===
        x = keras.layers.Dense(hidden_size, use_bias=False, name="fc2")(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name="bn2")(x)
        x = keras.layers.Activation("relu", name="relu")(x)
        x = keras.layers.Dense(nb_bins * nb_channels, use_bias=False, name="fc3")(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name="bn3")(x)
        x = keras.layers.Reshape((-1, nb_bins, nb_channels), name="unflatten_bins")(x)
        outputs = _OutputMask(name=target, dtype="float32")([x, inputs])

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        # Bidirectional copies its template LSTM through Keras serialisation,
        # which, while a .keras file loads, matches objects by id(). A freed
        # template's id reused by a later one (the next layer, or the next
        # target's network in the same file) made Keras hand back the earlier
        # copy: a forward layer as backward layer, about one load in ten with
        # four networks. Kept alive (untracked: they hold no weights) as long
        # as the model, no two templates share an id.
        object.__setattr__(self, "_lstm_templates", tuple(templates))
        norm.shift.assign(shift)
        norm.scale.assign(scale)

        # === Config ===
        self.nb_bins = nb_bins
        self.nb_channels = nb_channels
        self.hidden_size = hidden_size
        self.nb_layers = nb_layers
        self.max_bin = max_bin
        self.unidirectional = bool(unidirectional)
        self.input_mean = None if input_mean is None else [float(v) for v in np.ravel(input_mean)]
        self.input_scale = None if input_scale is None else [float(v) for v in np.ravel(input_scale)]
        self.target = target

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "nb_bins": self.nb_bins,
            "nb_channels": self.nb_channels,
            "hidden_size": self.hidden_size,
            "nb_layers": self.nb_layers,
            "max_bin": self.max_bin,
            "unidirectional": self.unidirectional,
            "input_mean": self.input_mean,
            "input_scale": self.input_scale,
            "target": self.target,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _input_statistics(mean, std, max_bin):
    """Initial ``(shift, scale)`` of the input normalisation from the
    training set's per-bin mean and standard deviation (upstream's)."""
    shift = np.zeros(max_bin, "float32")
    scale = np.ones(max_bin, "float32")
    for name, values in (("input_mean", mean), ("input_scale", std)):
        if values is None:
            continue
        values = np.asarray(values, "float64").ravel()
        if values.size < max_bin or not np.all(np.isfinite(values)):
            raise ValueError(f"{name} needs at least max_bin={max_bin} finite values, got shape {values.shape}")
        if name == "input_mean":
            shift = (-values[:max_bin]).astype("float32")
        else:
            if np.any(values[:max_bin] <= 0):
                raise ValueError(f"input_scale must be positive, got min {values[:max_bin].min()!r}")
            scale = (1.0 / values[:max_bin]).astype("float32")
    return shift, scale


def open_unmix(target="vocals", **kwargs):
    """Build an :class:`OpenUnmix` for ``target``; keyword arguments as there.

    Example:

    >>> model = open_unmix("drums", nb_bins=33, hidden_size=8)
    >>> model.target, model.max_bin
    ('drums', 33)
    """
    return OpenUnmix(target=target, **kwargs)
