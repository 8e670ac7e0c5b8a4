"""Fully convolutional encoder–decoder for semantic segmentation (SegNet / DeconvNet)."""
import keras

from keras_sep.layers.conv_block import Conv2DBlock
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock
from keras_sep.layers.max_pooling_argmax import MaxPoolingWithArgmax2D
from keras_sep.layers.max_unpooling import MaxUnpooling2D
from keras_sep.layers.upsampling import Upsampling2D
from keras_sep.models._autoencoder_utils import check_model_kwargs, check_units

UPSAMPLING = ("unpool", "transpose", "nearest", "bilinear", "bed_of_nails")


@keras.saving.register_keras_serializable(package="keras_sep")
class EncoderDecoder(keras.Model):
    """Conv + pooling down, up-sampling + conv up, per-pixel softmax over classes.

    The fully convolutional encoder–decoder of the lecture. Each encoder
    stage ``i`` is ``convs_per_stage`` 3×3 :class:`~keras_sep.layers.
    Conv2DBlock` layers with ``filters[i]`` channels and a 2×2 max pooling;
    the decoder mirrors it, each stage doubling height and width and then
    convolving. The up-sampling of the decoder is chosen by ``upsampling``:

    - ``"unpool"`` (SegNet): the encoder pools with
      :class:`~keras_sep.layers.MaxPoolingWithArgmax2D` and each decoder
      stage puts its values back where the maxima were with
      :class:`~keras_sep.layers.MaxUnpooling2D`, zeros elsewhere; the
      decoder's last convolution of a stage outputs the channel count of
      the next pooling indices;
    - ``"transpose"`` (DeconvNet-style learned up-sampling): a stride-2
      3×3 :class:`~keras_sep.layers.Conv2DTransposeBlock`;
    - ``"nearest"``, ``"bilinear"``, ``"bed_of_nails"``: the fixed rules of
      :class:`~keras_sep.layers.Upsampling2D`.

    A 1×1 convolution with a softmax over the last axis gives the class
    probabilities of every pixel. There are no skip connections (that is
    :class:`UNet`). Layers are named ``encoder_{stage}_{conv}``,
    ``pool_{stage}``, ``unpool_{stage}`` / ``upsample_{stage}``,
    ``decoder_{stage}_{conv}`` and ``classifier``; decoder stage 0 is the
    deepest.

    Args:
        input_shape: ``(height, width, channels)``; height and width (None
            allowed) must be multiples of ``2 ** len(filters)``, or with
            ``"unpool"`` any size of at least ``2 ** len(filters)`` (7 × 9
            comes back as 7 × 9).
        num_classes: number of classes, ``>= 2``.
        filters: channels of the encoder stages; the decoder mirrors them.
        upsampling: ``"unpool"``, ``"transpose"``, ``"nearest"``,
            ``"bilinear"`` or ``"bed_of_nails"``.
        convs_per_stage: convolutions per encoder and decoder stage.
        kernel_size: kernel of the convolutions.
        activation: activation of the blocks (see ``Conv2DBlock``).
        batch_norm: whether the blocks batch-normalise (SegNet does).
        **kwargs: ``keras.Model`` arguments (``name``, ...).

    Call arguments:
        inputs: images ``(batch, height, width, channels)``.
        training: batch statistics of batch norm.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, height, width, num_classes)``: class probabilities summing
        to one over the last axis.

    Example:

    >>> import numpy as np
    >>> model = EncoderDecoder((32, 32, 3), 4, filters=(8, 16), upsampling="unpool")
    >>> model(np.zeros((2, 32, 32, 3), "float32")).shape
    TensorShape([2, 32, 32, 4])

    References:
        - H. Noh, S. Hong, B. Han, "Learning deconvolution network for
          semantic segmentation", ICCV 2015.
        - V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: a deep
          convolutional encoder-decoder architecture for image
          segmentation", IEEE TPAMI, 2017.
        - J. Long, E. Shelhamer, T. Darrell, "Fully convolutional networks
          for semantic segmentation", CVPR 2015.
    """

    def __init__(
        self,
        input_shape,
        num_classes,
        filters=(32, 64, 128),
        upsampling="unpool",
        convs_per_stage=2,
        kernel_size=3,
        activation="relu",
        batch_norm=True,
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        filters = check_units("filters", filters, allow_empty=False)
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape must be (height, width, channels), got {input_shape!r}"
            )
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        if int(convs_per_stage) < 1:
            raise ValueError(f"convs_per_stage must be >= 1, got {convs_per_stage!r}")
        factor = 2 ** len(filters)
        for size in input_shape[:2]:
            # Unpooling takes its size from the tensor that was pooled, so
            # any size that survives the poolings comes back whole; the
            # other decoders double sizes and need multiples.
            if size is None:
                continue
            if upsampling == "unpool" and size < factor:
                raise ValueError(
                    f"height and width must be at least {factor}, got {input_shape!r}"
                )
            if upsampling != "unpool" and size % factor:
                raise ValueError(
                    f"height and width must be multiples of {factor} with "
                    f"upsampling={upsampling!r}, got {input_shape!r}"
                )
        num_classes, convs_per_stage = int(num_classes), int(convs_per_stage)
        block_args = dict(
            kernel_size=kernel_size, strides=1, activation=activation, batch_norm=batch_norm
        )

        # === Encoder: convolutions, then pooling (keeping the argmax) ===
        inputs = keras.Input(shape=input_shape, name="inputs")
        x = inputs
        switches = []  # per stage: (argmax, tensor that was pooled)
        for stage, stage_filters in enumerate(filters):
            for conv in range(convs_per_stage):
                x = Conv2DBlock(stage_filters, name=f"encoder_{stage}_{conv}", **block_args)(x)
            if upsampling == "unpool":
                pooled, argmax = MaxPoolingWithArgmax2D(2, name=f"pool_{stage}")(x)
                switches.append((argmax, x))
                x = pooled
            else:
                x = keras.layers.MaxPooling2D(2, name=f"pool_{stage}")(x)

        # === Decoder: up-sampling, then convolutions, deepest stage first ===
        for stage, encoder_stage in enumerate(reversed(range(len(filters)))):
            stage_filters = filters[encoder_stage]
            if upsampling == "unpool":
                argmax, reference = switches[encoder_stage]
                x = MaxUnpooling2D(2, name=f"unpool_{stage}")([x, argmax, reference])
            elif upsampling == "transpose":
                x = Conv2DTransposeBlock(
                    stage_filters, kernel_size=kernel_size, strides=2, order="bn_act",
                    activation=activation, batch_norm=batch_norm, name=f"upsample_{stage}",
                )(x)
            else:
                x = Upsampling2D(2, mode=upsampling, name=f"upsample_{stage}")(x)
            # The last convolution of a stage matches the next stage's channels
            # (needed by unpooling, whose values and indices must agree).
            out_filters = filters[max(encoder_stage - 1, 0)]
            for conv in range(convs_per_stage):
                last = conv == convs_per_stage - 1
                x = Conv2DBlock(
                    out_filters if last else stage_filters,
                    name=f"decoder_{stage}_{conv}",
                    **block_args,
                )(x)

        # === Per-pixel classifier ===
        outputs = keras.layers.Conv2D(
            num_classes, 1, activation="softmax", name="classifier"
        )(x)
        check_model_kwargs(type(self), kwargs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.image_shape = input_shape
        self.num_classes = num_classes
        self.filters = filters
        self.upsampling = upsampling
        self.convs_per_stage = convs_per_stage
        self.kernel_size = kernel_size
        self.activation = activation
        self.batch_norm = bool(batch_norm)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "filters": list(self.filters),
            "upsampling": self.upsampling,
            "convs_per_stage": self.convs_per_stage,
            "kernel_size": self.kernel_size,
            "activation": self.activation,
            "batch_norm": self.batch_norm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def encoder_decoder(input_shape, num_classes, filters=(32, 64, 128), upsampling="unpool", **kwargs):
    """Build an :class:`EncoderDecoder`; further keyword arguments as there.

    Example:

    >>> encoder_decoder((16, 16, 1), 3, filters=(4, 8), upsampling="bilinear").output_shape
    (None, 16, 16, 3)
    """
    return EncoderDecoder(
        input_shape, num_classes, filters=filters, upsampling=upsampling, **kwargs
    )
