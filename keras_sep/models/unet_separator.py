"""The Jansson et al. (2017) / Spleeter U-Net separator on magnitude spectrograms."""
import keras

from keras_sep.layers.conv_block import Conv2DBlock
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock
from keras_sep.models._autoencoder_utils import check_model_kwargs

_ACTIVATIONS = ("leaky_relu", "relu", "elu")
_MASK_ACTIVATIONS = ("sigmoid", "softmax")


@keras.saving.register_keras_serializable(package="keras_sep", name="InstrumentSoftmax")
class _InstrumentSoftmax(keras.layers.Layer):
    """Softmax across instruments of per-instrument mask logits (Spleeter's
    5-stem head): takes and returns a list of equally shaped tensors."""

    def call(self, logits):
        masks = keras.ops.softmax(keras.ops.stack(logits, axis=-1), axis=-1)
        return keras.ops.unstack(masks, num=len(logits), axis=-1)

    def compute_output_shape(self, input_shape):
        return list(input_shape)


@keras.saving.register_keras_serializable(package="keras_sep")
class UNetSeparator(keras.Model):
    """One U-Net per instrument, each estimating a soft mask of the mixture.

    Each U-Net has an encoder of strided 5×5 convolutions (batch norm, leaky
    ReLU 0.2 by default) and a decoder of strided 5×5 transposed convolutions
    (ReLU then batch norm, 50 % dropout on the first three stages), with
    skip connections that concatenate each encoder convolution's raw output to
    the decoder. A dilated 4×4 convolution with a sigmoid gives a mask per
    input channel; the output is ``mask * input``, the instrument's estimated
    magnitude — the quantity Jansson's loss ``||f(X) ⊙ X − Y||₁,₁`` compares
    with the target. Stereo channels are the network's input channels and are
    processed jointly. The layout matches Spleeter's, so its pretrained
    checkpoints load into it (see ``keras_sep.pretrained``).

    With ``mask_activation="softmax"`` (Spleeter's 5-stem model) the heads
    give logits instead, and a softmax across instruments turns them into
    masks that sum to one in every bin before they multiply the input.

    Ratio masks across instruments (``keras_sep.ops.masks.ratio_masks`` with
    ``separation_exponent``) turn the outputs into masks that sum to one.

    Args:
        instruments: names of the outputs, one U-Net each.
        filters: encoder filters per stage; the decoder mirrors them and ends
            with one filter. Frames and bins must be multiples of
            ``strides ** len(filters)``.
        kernel_size: kernel of every (transposed) convolution.
        strides: down/up-sampling factor of every stage.
        encoder_activation: ``"leaky_relu"`` (Jansson, Spleeter 2 stems) or
            ``"elu"`` (Spleeter 4/5 stems).
        decoder_activation: ``"relu"`` or ``"elu"``.
        negative_slope: slope of the leaky ReLU.
        dropout: dropout rate after the first ``dropout_stages`` decoder stages.
        dropout_stages: how many decoder stages get dropout.
        skip_connections: ``False`` gives the paper's encoder–decoder baseline.
        bins: frequency bins the network sees (Spleeter: 1024, up to 11 kHz).
        channels: audio channels (2 for stereo).
        frames: the chunk length T in frames that a separator feeds; the
            model itself accepts any multiple of ``strides ** len(filters)``.
        separation_exponent: exponent of the ratio masks across instruments.
        batch_norm_momentum: momentum of every batch norm.
        batch_norm_epsilon: epsilon of every batch norm.
        mask_activation: ``"sigmoid"`` (one mask per U-Net) or ``"softmax"``
            (a softmax across instruments over the heads' logits).

    Call arguments:
        inputs: mixture magnitude ``(batch, frames, bins, channels)``.
        training: dropout and batch statistics. Pretrained Spleeter models
            must be called with ``training=False`` (their batch-norm
            statistics are the initial 0/1; see ``keras_sep.pretrained``).

    Input shape:
        ``(batch, frames, bins, channels)``, float.

    Output shape:
        dict ``{instrument: (batch, frames, bins, channels)}``: the masked
        magnitudes.

    Example:

    >>> import numpy as np
    >>> model = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> out = model(np.ones((1, 16, 16, 2), "float32"))
    >>> sorted(out), out["vocals"].shape
    (['accompaniment', 'vocals'], TensorShape([1, 16, 16, 2]))

    With a softmax across instruments the masked magnitudes add up to the
    input:

    >>> model = UNetSeparator(("vocals", "piano", "other"), filters=(4, 8), bins=16,
    ...                       frames=16, encoder_activation="elu", mask_activation="softmax")
    >>> out = model(np.ones((1, 16, 16, 2), "float32"))
    >>> bool(np.allclose(sum(out.values()), 1.0, atol=1e-6))
    True

    References:
        Jansson et al., "Singing voice separation with deep U-Net
        convolutional networks", ISMIR 2017. Hennequin et al., "Spleeter: a
        fast and efficient music source separation tool with pre-trained
        models", JOSS 2020.
    """

    def __init__(
        self,
        instruments=("vocals", "accompaniment"),
        filters=(16, 32, 64, 128, 256, 512),
        kernel_size=5,
        strides=2,
        encoder_activation="leaky_relu",
        decoder_activation="relu",
        negative_slope=0.2,
        dropout=0.5,
        dropout_stages=3,
        skip_connections=True,
        bins=1024,
        channels=2,
        frames=512,
        separation_exponent=2.0,
        batch_norm_momentum=0.99,
        batch_norm_epsilon=1e-3,
        mask_activation="sigmoid",
        **kwargs,
    ):
        check_model_kwargs(type(self), kwargs)
        instruments = tuple(instruments)
        filters = tuple(int(f) for f in filters)
        if not instruments or len(set(instruments)) != len(instruments):
            raise ValueError(f"instruments must be distinct names, got {instruments!r}")
        if not filters:
            raise ValueError(f"filters must name at least one stage, got {filters!r}")
        for name, act in (("encoder", encoder_activation), ("decoder", decoder_activation)):
            if act not in _ACTIVATIONS:
                raise ValueError(f"{name}_activation must be one of {_ACTIVATIONS}, got {act!r}")
        if mask_activation not in _MASK_ACTIVATIONS:
            raise ValueError(f"mask_activation must be one of {_MASK_ACTIVATIONS}, got {mask_activation!r}")
        factor = strides ** len(filters)
        for name, size in (("bins", bins), ("frames", frames)):
            if size % factor:
                raise ValueError(f"{name} must be a multiple of {factor}, got {size}")

        # === Input ===
        inputs = keras.Input(shape=(None, bins, channels), name="mix_magnitude")

        # === One U-Net per instrument ===
        heads = {}
        for instrument in instruments:
            prefix = f"{instrument}_"
            block_args = dict(
                kernel_size=kernel_size,
                strides=strides,
                negative_slope=negative_slope,
                bn_momentum=batch_norm_momentum,
                bn_epsilon=batch_norm_epsilon,
            )
            # Encoder. The last stage feeds the decoder its raw convolution,
            # so it has no batch norm or activation of its own.
            skips = []
            x = inputs
            for stage, stage_filters in enumerate(filters):
                last = stage == len(filters) - 1
                x, conv = Conv2DBlock(
                    stage_filters,
                    activation="linear" if last else encoder_activation,
                    batch_norm=not last,
                    return_conv_output=True,
                    name=f"{prefix}encoder_{stage}",
                    **block_args,
                )(x)
                skips.append(conv)
            x = skips.pop()

            # Decoder, mirroring the encoder, ending in one filter.
            decoder_filters = filters[-2::-1] + (1,)
            for stage, stage_filters in enumerate(decoder_filters):
                x = Conv2DTransposeBlock(
                    stage_filters,
                    activation=decoder_activation,
                    order="act_bn",
                    dropout=dropout if stage < dropout_stages else 0.0,
                    name=f"{prefix}decoder_{stage}",
                    **block_args,
                )(x)
                if skip_connections and skips:
                    x = keras.layers.Concatenate(axis=-1, name=f"{prefix}skip_{stage}")(
                        [skips.pop(), x]
                    )
                elif skips:
                    skips.pop()

            # Mask head and masked magnitude.
            mask = keras.layers.Conv2D(
                channels,
                (4, 4),
                dilation_rate=(2, 2),
                padding="same",
                activation="sigmoid" if mask_activation == "sigmoid" else "linear",
                kernel_initializer="he_uniform",
                name=f"{prefix}mask",
            )(x)
            heads[instrument] = mask

        # Masked magnitudes; a softmax head shares each bin out among the instruments.
        masks = list(heads.values())
        if mask_activation == "softmax":
            masks = _InstrumentSoftmax(name="instrument_softmax")(masks)
        outputs = {
            instrument: keras.layers.Multiply(name=instrument)([mask, inputs])
            for instrument, mask in zip(instruments, masks)
        }

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.instruments = instruments
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.encoder_activation = encoder_activation
        self.decoder_activation = decoder_activation
        self.negative_slope = negative_slope
        self.dropout = dropout
        self.dropout_stages = dropout_stages
        self.skip_connections = skip_connections
        self.bins = bins
        self.channels = channels
        self.frames = frames
        self.separation_exponent = separation_exponent
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.mask_activation = mask_activation

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "instruments": list(self.instruments),
            "filters": list(self.filters),
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "encoder_activation": self.encoder_activation,
            "decoder_activation": self.decoder_activation,
            "negative_slope": self.negative_slope,
            "dropout": self.dropout,
            "dropout_stages": self.dropout_stages,
            "skip_connections": self.skip_connections,
            "bins": self.bins,
            "channels": self.channels,
            "frames": self.frames,
            "separation_exponent": self.separation_exponent,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
            "mask_activation": self.mask_activation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def unet_separator(instruments=("vocals", "accompaniment"), **kwargs):
    """Build a :class:`UNetSeparator`; keyword arguments as there.

    Example:

    >>> model = unet_separator(("drums", "bass", "other"), filters=(4, 8), bins=16)
    >>> model.instruments
    ('drums', 'bass', 'other')
    """
    return UNetSeparator(instruments=instruments, **kwargs)
