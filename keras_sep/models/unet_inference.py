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

The result equals the Keras model's to float32 rounding (checked in the
tests), and the Spleeter network runs 1.4–1.5× faster on two AVX2 cores.
"""
import tensorflow as tf

from keras_sep.layers._block_utils import make_activation
from keras_sep.ops.fast_conv import (
    conv2d_by_shifts,
    conv2d_transpose_from_taps,
    conv2d_transpose_polyphase,
    polyphase_kernel,
    transposed_tap_kernel,
)

# Last decoder layers with at most this many output channels run as taps
# fused into the XLA mask head.
_MAX_TAP_CHANNELS = 2


def _choose_transpose(out_channels):
    """Phase layout per decoder layer, from timings of the Spleeter layers
    with oneDNN on AVX2: exact per-phase kernels pay off for wide outputs,
    one merged convolution for narrow ones (it multiplies the output
    channels by four), and the standard kernel in between."""
    if out_channels >= 64:
        return "phases"
    if out_channels == 32:
        return "native"
    return "merged"


def _batch_norm_affine(layer):
    scale = layer.gamma * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
    return tf.constant(scale), tf.constant(layer.beta - layer.moving_mean * scale)


class UNetInference:
    """``UNetSeparator(x, training=False)`` with a faster operator plan.

    The weights are copied when this is made: make a new one after changing
    the model's weights. Float32 only.

    Args:
        model: a built :class:`UNetSeparator`.
        jit_compile: fuse the mask heads with XLA. Without it they run as the
            standard convolution (for runtimes without XLA, e.g. TF Serving's
            default build).

    Call arguments:
        magnitude: ``(batch, frames, bins, channels)`` float32 mixture
            magnitude; frames and bins multiples of ``strides ** stages``.

    Returns:
        dict ``{instrument: (batch, frames, bins, channels)}`` float32, as the
        model.
    """

    def __init__(self, model, jit_compile=True):
        self.instruments = tuple(model.instruments)
        self.strides = int(model.strides)
        self.skip_connections = bool(model.skip_connections)
        self.jit_compile = bool(jit_compile)
        self.encoder_act = make_activation(model.encoder_activation, model.negative_slope)
        self.decoder_act = decoder_act = make_activation(model.decoder_activation, model.negative_slope)
        self.plans = {}
        for name in self.instruments:
            encoders, decoders = [], []
            for stage in range(len(model.filters)):
                block = model.get_layer(f"{name}_encoder_{stage}")
                affine = _batch_norm_affine(block.batch_norm) if block.batch_norm is not None else None
                encoders.append((tf.constant(block.conv.kernel), tf.constant(block.conv.bias), affine))
                block = model.get_layer(f"{name}_decoder_{stage}")
                kernel = tf.constant(block.conv.kernel)
                mode = _choose_transpose(int(kernel.shape[2]))
                if stage == len(model.filters) - 1 and self._taps_head(kernel):
                    mode, prepared = "taps", transposed_tap_kernel(kernel)
                else:
                    prepared = None if mode == "native" else polyphase_kernel(kernel, self.strides, mode == "merged")
                decoders.append((mode, kernel, prepared, tf.constant(block.conv.bias), _batch_norm_affine(block.batch_norm)))
            head = model.get_layer(f"{name}_mask")
            self.plans[name] = (encoders, decoders, (tf.constant(head.kernel), tf.constant(head.bias)))
        # One head function for all instruments (their weights are arguments):
        # XLA compiles it once. The architecture is the same for all of them.
        last_mode, last_kernel = self.plans[self.instruments[0]][1][-1][:2]
        self.head = self._mask_head(
            decoder_act,
            tuple(model.get_layer(f"{self.instruments[0]}_mask").dilation_rate),
            last_kernel.shape[:2] if last_mode == "taps" else None,
        )
        # The first convolution of every instrument reads the same input.
        self.first_kernel = tf.concat([self.plans[n][0][0][0] for n in self.instruments], axis=-1)
        self.first_bias = tf.concat([self.plans[n][0][0][1] for n in self.instruments], axis=-1)

    def _taps_head(self, kernel):
        return self.jit_compile and self.strides > 1 and int(kernel.shape[2]) <= _MAX_TAP_CHANNELS

    def _mask_head(self, act, dilation, tap_size=None):
        """Last decoder activation and batch norm, the mask convolution,
        sigmoid and masking: one XLA fusion with ``jit_compile``. With a
        ``tap_size`` (the last decoder's kernel size), the head receives the
        decoder's per-tap products and finishes its transposed convolution
        first."""

        def head(conv, conv_bias, scale, shift, magnitude, kernel, bias):
            if tap_size is not None:
                conv = conv2d_transpose_from_taps(conv, tap_size, self.strides)
            x = act(conv + conv_bias) * scale + shift
            if self.jit_compile:
                y = conv2d_by_shifts(x, kernel, dilation)
            else:
                y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
            return tf.sigmoid(y + bias) * magnitude

        return tf.function(head, jit_compile=True, autograph=False) if self.jit_compile else head

    def __call__(self, magnitude):
        magnitude = tf.convert_to_tensor(magnitude, tf.float32)
        first = tf.nn.bias_add(tf.nn.conv2d(magnitude, self.first_kernel, self.strides, "SAME"), self.first_bias)
        firsts = tf.split(first, len(self.instruments), axis=-1)
        return {name: self._unet(name, magnitude, conv) for name, conv in zip(self.instruments, firsts)}

    def _unet(self, name, magnitude, conv):
        encoders, decoders, (mask_kernel, mask_bias) = self.plans[name]
        skips = []
        for stage, (kernel, bias, affine) in enumerate(encoders):
            if stage:
                conv = tf.nn.bias_add(tf.nn.conv2d(x, kernel, self.strides, "SAME"), bias)
            skips.append(conv)
            if affine is not None:
                x = self.encoder_act(conv * affine[0] + affine[1])
        x = skips.pop()
        for stage, (mode, kernel, prepared, bias, (scale, shift)) in enumerate(decoders):
            if mode == "taps":
                # Per-tap products, a plain matrix product; the head sums them.
                shape = tf.shape(x)
                taps = tf.matmul(tf.reshape(x, [-1, prepared.shape[0]]), prepared)
                conv = tf.reshape(taps, tf.concat([shape[:3], [prepared.shape[1]]], axis=0))
            elif mode == "native":
                shape = tf.shape(x)
                size = tf.stack([shape[0], shape[1] * self.strides, shape[2] * self.strides, kernel.shape[2]])
                conv = tf.nn.conv2d_transpose(x, kernel, size, self.strides, "SAME")
            else:
                conv = conv2d_transpose_polyphase(x, None, self.strides, prepared=prepared)
            if stage == len(decoders) - 1:
                return self.head(conv, bias, scale, shift, magnitude, mask_kernel, mask_bias)
            x = self.decoder_act(tf.nn.bias_add(conv, bias)) * scale + shift
            if skips:
                skip = skips.pop()
                if self.skip_connections:
                    x = tf.concat([skip, x], axis=-1)
