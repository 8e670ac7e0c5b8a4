"""Ronneberger et al.'s U-Net for image segmentation, with skip connections."""
import keras

from keras_sep.layers.conv_block import Conv2DBlock
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock
from keras_sep.layers.upsampling import Upsampling2D
from keras_sep.models._autoencoder_utils import check_model_kwargs, check_units

PADDINGS = ("same", "valid")
UPSAMPLING = ("transpose", "nearest", "bilinear")


def unet_sizes(size, depth, kernel_size=3, padding="valid"):
    """Spatial sizes through a U-Net: ``(encoder sizes before pooling, output size)``.

    With ``"valid"`` padding each pair of convolutions loses
    ``2 * (kernel_size - 1)`` pixels, so only some input sizes work (every
    size that is pooled must be even): 572 gives the paper's 388 output.
    Raises ``ValueError`` naming the size that fails.

    >>> unet_sizes(572, 5)
    ([568, 280, 136, 64, 28], 388)
    """
    loss = 2 * (kernel_size - 1) if padding == "valid" else 0
    skips, current = [], int(size)
    for level in range(depth):
        current -= loss
        if current < 1 or (level < depth - 1 and current % 2):
            raise ValueError(
                f"input size {size} does not fit a depth-{depth} U-Net with "
                f"{padding!r} padding: level {level} has size {current}"
            )
        skips.append(current)
        if level < depth - 1:
            current //= 2
    for _ in range(depth - 1):
        current = 2 * current - loss
        if current < 1:
            raise ValueError(f"input size {size} leaves no output with {padding!r} padding")
    return skips, current


@keras.saving.register_keras_serializable(package="keras_sep")
class UNet(keras.Model):
    """U-Net: contracting path, expanding path, skip connections between them.

    Each level of the contracting path is two 3×3 convolutions with ReLU
    (:class:`~keras_sep.layers.Conv2DBlock`) and a 2×2 max pooling; the
    number of channels goes through ``filters`` (the paper's 64 … 1024).
    Each level of the expanding path up-samples by 2 (a 2×2 up-convolution
    halving the channels, or a fixed nearest/bilinear up-sampling followed
    by a 2×2 convolution), concatenates the feature map of the same level
    of the contracting path (the skip connection, joining local detail with
    global context), and applies two 3×3 convolutions. A 1×1 convolution
    with a softmax gives per-pixel class probabilities.

    With ``padding="valid"`` (the paper) every convolution shrinks the map,
    the skip tensors are centre-cropped to the up-sampled size, and the
    output is smaller than the input (572 → 388 for five levels; see
    :func:`unet_sizes`); the input size must then be static. With
    ``"same"`` the output has the input size.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: number of classes, ``>= 2``.
        filters: channels per level, top level first.
        padding: ``"same"`` or ``"valid"``.
        kernel_size: kernel of the 3×3 convolutions.
        upsampling: ``"transpose"`` (learned up-convolution), ``"nearest"``
            or ``"bilinear"``.
        batch_norm: batch-normalise the convolutions (not in the paper).
        dropout: dropout rate at the end of the contracting path (the paper
            uses 0.5); 0 for none.
        **kwargs: ``keras.Model`` arguments (``name``, ...).

    Call arguments:
        inputs: images ``(batch, height, width, channels)``.
        training: dropout and batch statistics.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, out_height, out_width, num_classes)`` probabilities; the
        input size for ``"same"``, :func:`unet_sizes` for ``"valid"``.

    Example:

    >>> import numpy as np
    >>> model = UNet((572, 572, 1), 2, filters=(2, 2, 2, 2, 2), padding="valid")
    >>> model.output_shape
    (None, 388, 388, 2)

    References:
        - O. Ronneberger, P. Fischer, T. Brox, "U-Net: convolutional networks
          for biomedical image segmentation", MICCAI 2015.
    """

    def __init__(
        self,
        input_shape,
        num_classes,
        filters=(64, 128, 256, 512, 1024),
        padding="same",
        kernel_size=3,
        upsampling="transpose",
        batch_norm=False,
        dropout=0.0,
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
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        depth = len(filters)
        for size in input_shape[:2]:
            if size is None:
                if padding == "valid":
                    raise ValueError(
                        f"'valid' padding needs a static height and width, got {input_shape!r}"
                    )
                continue
            if padding == "valid":
                unet_sizes(size, depth, kernel_size, padding)
            elif size % 2 ** (depth - 1):
                raise ValueError(
                    f"height and width must be multiples of {2 ** (depth - 1)}, "
                    f"got {input_shape!r}"
                )
        num_classes = int(num_classes)
        conv_args = dict(
            kernel_size=kernel_size, strides=1, padding=padding, activation="relu",
            batch_norm=batch_norm,
        )

        # === Contracting path ===
        inputs = keras.Input(shape=input_shape, name="inputs")
        x = inputs
        skips = []
        for level, level_filters in enumerate(filters):
            for conv in range(2):
                x = Conv2DBlock(level_filters, name=f"down_{level}_{conv}", **conv_args)(x)
            if level < depth - 1:
                skips.append(x)
                x = keras.layers.MaxPooling2D(2, name=f"pool_{level}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="bottleneck_dropout")(x)

        # === Expanding path, deepest level first ===
        for level in reversed(range(depth - 1)):
            level_filters = filters[level]
            if upsampling == "transpose":
                x = Conv2DTransposeBlock(
                    level_filters, kernel_size=2, strides=2, activation="relu",
                    batch_norm=batch_norm, order="bn_act", name=f"upconv_{level}",
                )(x)
            else:
                x = Upsampling2D(2, mode=upsampling, name=f"upsample_{level}")(x)
                x = Conv2DBlock(
                    level_filters, kernel_size=2, strides=1, padding="same",
                    activation="relu", batch_norm=batch_norm, name=f"upconv_{level}",
                )(x)
            skip = skips[level]
            if padding == "valid":
                skip = keras.layers.Cropping2D(
                    _centre_crop(skip.shape[1:3], x.shape[1:3]), name=f"crop_{level}"
                )(skip)
            x = keras.layers.Concatenate(axis=-1, name=f"skip_{level}")([skip, x])
            for conv in range(2):
                x = Conv2DBlock(level_filters, name=f"up_{level}_{conv}", **conv_args)(x)

        # === Per-pixel classifier ===
        outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax", name="classifier")(x)
        check_model_kwargs(type(self), kwargs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.image_shape = input_shape
        self.num_classes = num_classes
        self.filters = filters
        self.padding = padding
        self.kernel_size = kernel_size
        self.upsampling = upsampling
        self.batch_norm = bool(batch_norm)
        self.dropout = float(dropout)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "filters": list(self.filters),
            "padding": self.padding,
            "kernel_size": self.kernel_size,
            "upsampling": self.upsampling,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _centre_crop(skip_size, target_size):
    """``Cropping2D`` amounts taking the centre ``target_size`` of ``skip_size``."""
    crops = []
    for have, want in zip(skip_size, target_size):
        extra = have - want
        crops.append((extra // 2, extra - extra // 2))
    return tuple(crops)


def unet(input_shape, num_classes, filters=(64, 128, 256, 512, 1024), padding="same", **kwargs):
    """Build a :class:`UNet`; further keyword arguments as there.

    Example:

    >>> unet((32, 32, 1), 2, filters=(4, 8, 16)).output_shape
    (None, 32, 32, 2)
    """
    return UNet(input_shape, num_classes, filters=filters, padding=padding, **kwargs)
