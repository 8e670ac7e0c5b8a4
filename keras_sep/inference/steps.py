"""The element-wise steps between the plan's convolutions, as each block has them.

A block's step is ``(activation, negative_slope, order, batch_norm)``, read
from its configuration (:mod:`keras_sep.inference.architecture`): the
activation and the batch norm (folded into one multiply-add with
precomputed scale and shift) in the block's order. Dropout does nothing at
inference.
"""
import functools

import tensorflow as tf

from keras_sep.layers._block_utils import make_activation


def sliced(tensor, begin, end):
    """Channels ``begin:end`` of ``tensor`` (the tensor itself when whole);
    ``begin`` and ``end`` are Python ints, static under XLA."""
    return tensor if begin == 0 and end == tensor.shape[-1] else tensor[..., begin:end]


class Steps:
    """The step functions of a plan, one per kind of step, block
    configuration and stage, made once.

    Each stage has its own function: one function traced for six stages'
    shapes (and again for the probe's) would be retraced on every new shape
    and make TensorFlow warn about excessive retracing.

    Args:
        fused: run each step as one XLA fusion (one pass over the feature
            map instead of three or four), else as TensorFlow ops.

    Example:

    A decoder block with ReLU then batch norm (scale 2, shift 1) on a
    convolution output plus a bias of 1:

    >>> import numpy as np
    >>> steps = Steps(fused=False)
    >>> conv = np.array([[-3.0, 0.5]], "float32")
    >>> steps.decoder(("relu", 0.0, "act_bn", True), conv, 1.0, 2.0, 1.0).numpy()
    array([[1., 4.]], dtype=float32)
    >>> Steps.is_identity(("linear", 0.2, "bn_act", False))
    True
    """

    def __init__(self, fused):
        self.fused = bool(fused)
        self._functions = {}

    @staticmethod
    def is_identity(step):
        activation, _, _, batch_norm = step
        return activation in ("linear", None) and not batch_norm

    @staticmethod
    def step_function(step):
        """``apply(x, scale, shift)``: the block's activation and batch norm
        in its order (``scale`` None without batch norm)."""
        activation, negative_slope, order, _ = step
        act = make_activation(activation, negative_slope)

        def apply(x, scale, shift):
            if order == "act_bn":
                x = act(x)
            if scale is not None:
                x = x * scale + shift
            if order == "bn_act":
                x = act(x)
            return x

        return apply

    def _function(self, kind, step, stage):
        key = (kind, step, stage)
        if key not in self._functions:
            apply = self.step_function(step)

            def encoder(conv, begin, end, scale, shift):
                return apply(sliced(conv, begin, end), scale, shift)

            def decoder(conv, bias, scale, shift):
                return apply(conv + bias, scale, shift)

            def join(conv, bias, scale, shift, skip, begin, end):
                return tf.concat([sliced(skip, begin, end), decoder(conv, bias, scale, shift)], axis=-1)

            fn = {"encoder": encoder, "decoder": decoder, "join": join}[kind]
            # TensorFlow counts traces per function code object, so closures
            # of one def share a count; a partial is counted on its own.
            self._functions[key] = tf.function(functools.partial(fn), jit_compile=True, autograph=False) if self.fused else fn
        return self._functions[key]

    def encoder(self, step, conv, begin, end, scale, shift, stage=None):
        """An encoder block's step on channels ``begin:end`` of its
        convolution (bias added)."""
        return self._function("encoder", step, stage)(conv, begin, end, scale, shift)

    def decoder(self, step, conv, bias, scale, shift, stage=None):
        """A decoder block's step on its transposed convolution plus bias."""
        return self._function("decoder", step, stage)(conv, bias, scale, shift)

    def join(self, step, conv, bias, scale, shift, skip, begin, end, stage=None):
        """The skip (channels ``begin:end``) concatenated before a decoder
        block's step."""
        return self._function("join", step, stage)(conv, bias, scale, shift, skip, begin, end)
