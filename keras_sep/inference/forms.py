"""The operator forms of the plan's convolutions, and choosing one per layer.

Every form of a layer computes the same convolution (see
:mod:`keras_sep.inference.kernels`); which is fastest depends on the
processor. Given the input shape the plan will be called with, each
layer's candidates are timed on this machine once
(:mod:`keras_sep.inference.autotune`, cached per machine); without one,
fixed forms chosen on two AVX2 cores are used.
"""
import math

import tensorflow as tf

from keras_sep.inference import autotune
from keras_sep.inference.kernels import (
    conv2d_by_patches,
    conv2d_transpose_from_taps,
    conv2d_transpose_polyphase,
    polyphase_kernel,
    transposed_tap_kernel,
)

ENCODER_FORMS = ("conv", "patches")
DECODER_FORMS = ("native", "phases", "merged", "taps")

# Last decoder layers with at most this many output channels run as taps
# fused into the XLA mask head.
MAX_TAP_CHANNELS = 2
# Patch and tap matrices up to this many elements are worth timing; larger
# ones are memory-bound and always slower than the direct kernels.
_MAX_MATRIX_ELEMENTS = 1 << 21


def choose_transpose(out_channels):
    """Phase layout per decoder layer when nothing was timed, from timings of
    the Spleeter layers with oneDNN on AVX2: exact per-phase kernels pay off
    for wide outputs, one merged convolution for narrow ones (it multiplies
    the output channels by four), and the standard kernel in between."""
    if out_channels >= 64:
        return "phases"
    if out_channels == 32:
        return "native"
    return "merged"


def prepare_transpose(form, kernel, strides):
    """The kernel rearranged once for ``form`` (None for the native one)."""
    if form in ("phases", "merged"):
        return polyphase_kernel(kernel, strides, form == "merged")
    if form == "taps":
        return transposed_tap_kernel(kernel)
    return None


def conv(form, x, kernel, strides):
    """A strided "same" convolution in ``form``."""
    if form == "patches":
        return conv2d_by_patches(x, kernel, strides)
    return tf.nn.conv2d(x, kernel, strides, "SAME")


def tap_products(x, tap_kernel):
    """Every input pixel's contribution to each tap: a 1×1 matrix product."""
    shape = tf.shape(x)
    taps = tf.matmul(tf.reshape(x, [-1, tap_kernel.shape[0]]), tap_kernel)
    return tf.reshape(taps, tf.concat([shape[:3], [tap_kernel.shape[1]]], axis=0))


def transpose(form, x, kernel, prepared, strides):
    """A strided "same" transposed convolution in ``form``.

    Example:

    Every form computes the same convolution:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1, 4, 4, 3)).astype("float32")
    >>> kernel = rng.normal(size=(5, 5, 2, 3)).astype("float32")
    >>> outputs = [transpose(form, x, kernel, prepare_transpose(form, kernel, 2), 2)
    ...            for form in DECODER_FORMS]
    >>> outputs[0].shape
    TensorShape([1, 8, 8, 2])
    >>> all(np.allclose(y, outputs[0], atol=1e-5) for y in outputs)
    True
    """
    if form == "native":
        shape = tf.shape(x)
        size = tf.stack([shape[0], shape[1] * strides, shape[2] * strides, kernel.shape[2]])
        return tf.nn.conv2d_transpose(x, kernel, size, strides, "SAME")
    if form == "taps":
        return conv2d_transpose_from_taps(tap_products(x, prepared), kernel.shape[:2], strides)
    return conv2d_transpose_polyphase(x, None, strides, prepared=prepared)


def stage_input(shape, strides, downsamplings, channels):
    """The shape a stage sees when the network is called on ``shape``."""
    batch, frames, bins = (int(v) for v in shape[:3])
    factor = strides**downsamplings
    return (batch, math.ceil(frames / factor), math.ceil(bins / factor), channels)


def dtype_tag(dtype):
    """The cache keys' suffix for the compute dtype (none for float32)."""
    return "" if dtype == tf.float32 else f":{dtype.name}"


def random_inputs(shape, dtype):
    return (tf.cast(tf.random.uniform(shape), dtype),)


class _Chooser:
    """Times (or looks up) the forms of one plan's layers."""

    def __init__(self, strides, dtype, table):
        self.strides, self.dtype, self.table = strides, dtype, table

    def signature(self, kind, shape, kernel):
        return f"unet.{kind}:{'x'.join(map(str, shape))}:k{'x'.join(map(str, kernel.shape))}:s{self.strides}{dtype_tag(self.dtype)}"

    def encoder(self, kernel, shape):
        if shape is None:
            return "conv"
        kernel = tf.cast(kernel, self.dtype)
        kh, kw, cin, cout = kernel.shape
        pixels = math.ceil(shape[1] / self.strides) * math.ceil(shape[2] / self.strides) * shape[0]
        candidates = {"conv": lambda x: conv("conv", x, kernel, self.strides)}
        if pixels * kh * kw * cin <= _MAX_MATRIX_ELEMENTS:
            candidates["patches"] = lambda x: conv("patches", x, kernel, self.strides)
        signature = self.signature("encoder", shape, kernel)
        return autotune.choose(signature, candidates, lambda: random_inputs(shape, self.dtype), "conv", self.table)

    def decoder(self, kernel, shape):
        default = choose_transpose(int(kernel.shape[2]))
        if shape is None:
            return default
        kernel = tf.cast(kernel, self.dtype)
        kh, kw, cout, cin = kernel.shape
        forms = ["native", "phases", "merged"]
        if shape[0] * shape[1] * shape[2] * kh * kw * cout <= _MAX_MATRIX_ELEMENTS:
            forms.append("taps")
        candidates = {}
        for form in forms:
            prepared = prepare_transpose(form, kernel, self.strides)
            candidates[form] = lambda x, f=form, p=prepared: transpose(f, x, kernel, p, self.strides)
        signature = self.signature("decoder", shape, kernel)
        return autotune.choose(signature, candidates, lambda: random_inputs(shape, self.dtype), default, self.table)


def _per_stage(forced, key, allowed, stages):
    value = forced.get(key)
    if value is None:
        return [None] * stages
    values = [value] * stages if isinstance(value, str) else list(value)
    if len(values) != stages or any(v not in allowed for v in values):
        raise ValueError(f"forms[{key!r}] must be one of {allowed} or a list of {stages} of them, got {value!r}")
    return values


def choose_forms(architecture, dtype, jit_compile, tune_input_shape, forced):
    """``{"encoder": [...], "decoder": [...]}``: the forced forms, the
    timed ones where ``tune_input_shape`` is given (and timing is on), else
    the fixed ones; ``"head"`` for a last decoder fused into the XLA head.

    Example:

    >>> import tensorflow as tf
    >>> from keras_sep.inference.architecture import read_unet
    >>> from keras_sep.models import UNetSeparator
    >>> unet = read_unet(UNetSeparator(filters=(4, 8), bins=16, frames=16))
    >>> choose_forms(unet, tf.float32, jit_compile=True, tune_input_shape=None, forced={})
    {'encoder': ['conv', 'conv'], 'decoder': ['merged', 'head']}
    >>> choose_forms(unet, tf.float32, False, None, forced={"decoder": "native"})
    {'encoder': ['conv', 'conv'], 'decoder': ['native', 'native']}
    """
    unknown = set(forced) - {"encoder", "decoder"}
    if unknown:
        raise ValueError(f"forms takes the keys 'encoder' and 'decoder', got {sorted(unknown)}")
    stages, strides = architecture.stages, architecture.strides
    encoder = _per_stage(forced, "encoder", ENCODER_FORMS, stages)
    decoder = _per_stage(forced, "decoder", DECODER_FORMS, stages)
    first = architecture.instruments[0]
    kernels = {
        "encoder": [block.kernel for block in architecture.encoders[first]],
        "decoder": [block.kernel for block in architecture.decoders[first]],
    }
    # The first convolution runs once for all instruments.
    kernels["encoder"][0] = tf.concat([architecture.encoders[n][0].kernel for n in architecture.instruments], axis=-1)
    if jit_compile and strides > 1 and int(kernels["decoder"][-1].shape[2]) <= MAX_TAP_CHANNELS:
        decoder[-1] = "head"
    tune = tune_input_shape is not None and autotune.enabled()
    chooser = _Chooser(strides, dtype, {})
    layers = []  # (part, stage, kernel, input shape or None)
    for stage in range(stages):
        if encoder[stage] is None:
            kernel = kernels["encoder"][stage]
            shape = stage_input(tune_input_shape, strides, stage, int(kernel.shape[2])) if tune else None
            layers.append((encoder, stage, kernel, shape, chooser.encoder))
        if decoder[stage] is None:
            kernel = kernels["decoder"][stage]
            shape = stage_input(tune_input_shape, strides, stages - stage, int(kernel.shape[3])) if tune else None
            layers.append((decoder, stage, kernel, shape, chooser.decoder))
    # Smallest feature maps first: they are the quickest to time, and on
    # the Spleeter U-Nets they hold most of the gain (the deepest encoders
    # as patches, the deepest decoder as taps), so a first run that stops
    # timing after a few seconds (autotune's budget) has timed those.
    layers.sort(key=lambda layer: math.prod(layer[3]) if layer[3] else 0)
    for forms, stage, kernel, shape, choose in layers:
        forms[stage] = choose(kernel, shape)
    autotune.save(chooser.table)
    return {"encoder": encoder, "decoder": decoder}
