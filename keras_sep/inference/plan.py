"""A faster inference plan for U-Net separators on CPU.

The Keras model runs each layer as Keras builds it. For inference the same
function can be computed with cheaper operators; :class:`UNetInference`
reads the model's graph and weights once (:mod:`keras_sep.inference.architecture`:
each block's order, activation and batch norm come from its configuration)
and computes ``model(x, training=False)`` with:

* batch norms as one multiply-add with precomputed scale and shift;
* strided transposed convolutions by output phases
  (:func:`keras_sep.inference.kernels.conv2d_transpose_polyphase`) wherever
  oneDNN's backward-data kernel is slow: one exact sub-kernel per phase for
  wide layers, one merged convolution for narrow ones;
* all instruments' first convolution as one (they read the same input);
* the mask head (a dilated convolution with one input channel, the slowest
  layer of the Keras graph per FLOP) as shifted slices fused by XLA;
* a softmax across instruments (Spleeter's 5-stem head) as one fused
  step after all heads, which then give logits;
* with XLA, the last transposed convolution (one output channel) as a 1×1
  matrix product whose shifted sums
  (:func:`keras_sep.inference.kernels.conv2d_transpose_from_taps`) fuse
  into the mask head.

The forms of each convolution are chosen in :mod:`keras_sep.inference.forms`.
When made, the plan runs once on a small random probe and is compared with
the Keras model: a plan that does not compute the model's function raises
instead of separating wrongly. The Spleeter network runs 1.4–1.5× faster
than the Keras layers on two AVX2 cores.
"""
import logging

import numpy as np
import tensorflow as tf

from keras_sep.inference import autotune, probes
from keras_sep.inference.architecture import Unsupported, read_unet
from keras_sep.inference.forms import (
    choose_forms,
    conv,
    dtype_tag,
    prepare_transpose,
    random_inputs,
    stage_input,
    tap_products,
    transpose,
)
from keras_sep.inference.kernels import conv2d_by_shifts, conv2d_transpose_from_taps, transposed_tap_kernel
from keras_sep.inference.steps import Steps, sliced

logger = logging.getLogger(__name__)

# Largest difference from the Keras model on the probe, relative to the
# largest output: float32 rounding through a deep U-Net stays near 1e-6;
# bfloat16 keeps about 8 significant bits. A wrong form is off by order one.
PROBE_TOLERANCE = {"float32": 1e-4, "bfloat16": 1e-1}


def _batch_norm_affine(layer, dtype):
    if layer is None:
        return None, None
    scale = layer.gamma * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
    shift = layer.beta - layer.moving_mean * scale
    return tf.cast(scale, dtype), tf.cast(shift, dtype)


class UNetInference:
    """``model(x, training=False)`` of a U-Net separator with a faster operator plan.

    The weights are copied when this is made: make a new one after changing
    the model's weights. Inputs and outputs are float32.

    Args:
        model: a built U-Net separator (a :class:`~keras_sep.models.UNetSeparator`
            or any functional model of the same arrangement; see
            :func:`has_inference_plan`).
        jit_compile: fuse the mask heads with XLA. Without it they run as the
            standard convolution (for runtimes without XLA, e.g. TF Serving's
            default build).
        tune_input_shape: ``(batch, frames, bins, channels)`` the plan will
            mostly be called with: the forms of every layer are timed on
            this machine for that shape and the fastest kept (cached per
            machine; ``KERAS_SEP_TUNE=0`` turns timing off). ``None`` uses
            fixed forms. Other shapes still work.
        forms: force forms instead: ``{"encoder": f, "decoder": f}`` with
            one form (from ``forms.ENCODER_FORMS`` / ``forms.DECODER_FORMS``)
            or a list with one per stage; missing keys are chosen as usual.
            A last decoder layer fused into the XLA head keeps its taps.
        compute_dtype: ``"float32"`` (the model's function to float32
            rounding) or ``"bfloat16"``: the U-Nets' convolutions in
            bfloat16, for processors with bfloat16 matrix units (Intel AMX,
            AVX512_BF16), where they run 2–3× faster. The mask head (last
            decoder step, mask convolution, sigmoid, masking) stays float32;
            the result differs from float32 by bfloat16's rounding.
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

    Raises:
        ValueError: the model is not an arrangement the plan computes, or the
            plan differs from the model on the probe input.

    Attributes:
        fuse_steps: whether the element-wise steps are XLA fusions.
        forms: ``{"encoder": [...], "decoder": [...]}``, the form of every
            stage ("head" for the last decoder layer when it joins the XLA
            head).

    Example:

    >>> import numpy as np
    >>> from keras_sep.models import UNetSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> plan = UNetInference(net, jit_compile=False)
    >>> plan.forms
    {'encoder': ['conv', 'conv'], 'decoder': ['merged', 'merged']}
    >>> magnitude = np.random.default_rng(0).uniform(size=(1, 16, 16, 2)).astype("float32")
    >>> fast, keras_out = plan(magnitude), net(magnitude, training=False)
    >>> bool(np.allclose(fast["vocals"], keras_out["vocals"], atol=1e-5))
    True
    """

    def __init__(self, model, jit_compile=True, tune_input_shape=None, forms=None, compute_dtype="float32", fuse_steps=None):
        if compute_dtype not in PROBE_TOLERANCE:
            raise ValueError(f"compute_dtype must be 'float32' or 'bfloat16', got {compute_dtype!r}")
        try:
            arch = read_unet(model)
        except Unsupported as reason:
            raise ValueError(f"no inference plan for {type(model).__name__} {getattr(model, 'name', None)!r}: {reason}") from None
        self.dtype = dtype = tf.as_dtype(compute_dtype)
        self.instruments = arch.instruments
        self.strides = arch.strides
        self.joins = arch.joins
        self.raw_bottom = arch.raw_bottom
        self.mask_activation = arch.mask_activation
        self.jit_compile = bool(jit_compile)
        self.forms = chosen = choose_forms(arch, dtype, self.jit_compile, tune_input_shape, forms or {})
        self.plans = {}
        for name in self.instruments:
            encoders, decoders = [], []
            for block, form in zip(arch.encoders[name], chosen["encoder"]):
                affine = _batch_norm_affine(block.batch_norm, dtype)
                encoders.append((form, tf.cast(block.kernel, dtype), tf.cast(block.bias, dtype), affine, block.step))
            for stage, (block, form) in enumerate(zip(arch.decoders[name], chosen["decoder"])):
                kernel = tf.cast(block.kernel, dtype)
                prepared = transposed_tap_kernel(kernel) if form == "head" else prepare_transpose(form, kernel, self.strides)
                # The last decoder's bias and batch norm act in the float32 head.
                step_dtype = tf.float32 if stage == arch.stages - 1 else dtype
                bias, affine = tf.cast(block.bias, step_dtype), _batch_norm_affine(block.batch_norm, step_dtype)
                decoders.append((form, kernel, prepared, bias, affine, block.step))
            head = arch.masks[name]
            self.plans[name] = (encoders, decoders, (tf.constant(head.kernel), tf.constant(head.bias)))
        # One head function for all instruments (their weights are arguments):
        # XLA compiles it once. read_unet checked that their arrangements agree.
        first_plan = self.plans[self.instruments[0]]
        self.head = self._mask_head(
            first_plan[1][-1][-1],
            tuple(int(v) for v in arch.masks[self.instruments[0]].dilation_rate),
            first_plan[1][-1][1].shape[:2] if chosen["decoder"][-1] == "head" else None,
        )
        self.share_out = self._share_out() if self.mask_activation == "softmax" else None
        # The element-wise steps between convolutions (bias, activation,
        # batch norm, skip concatenation) as one XLA fusion each: one pass
        # over the feature map instead of three or four. In bfloat16 that
        # always pays (12 % of the network: TensorFlow's bfloat16
        # element-wise kernels are slow); in float32 it saved 8-10 % of a
        # separation on two Zen 4 cores but 1-2 % on an AVX-512 Xeon, less
        # than the 0.4 s its dozen compilations add to the first call, so
        # there it is timed with the forms.
        plain, fused = Steps(fused=False), Steps(fused=self.jit_compile)
        if fuse_steps is None:
            fuse_steps = self.jit_compile and (dtype == tf.bfloat16 or self._tune_fusion(tune_input_shape, plain, fused))
        self.fuse_steps = bool(fuse_steps) and self.jit_compile
        self.steps = fused if self.fuse_steps else plain
        # The first convolution of every instrument reads the same input.
        self.first_kernel = tf.concat([self.plans[n][0][0][1] for n in self.instruments], axis=-1)
        self.first_bias = tf.concat([self.plans[n][0][0][2] for n in self.instruments], axis=-1)
        # The check's answer is cached per model, plan and machine (probes).
        probe = probes.key(model, forms=self.forms, dtype=compute_dtype, jit=self.jit_compile, fuse=self.fuse_steps)
        if not probes.passed(probe):
            probes.remember(probe, self._check_probe(model, arch, compute_dtype))

    # --- timing the element-wise steps -------------------------------------

    def _tune_fusion(self, tune_input_shape, plain, fused):
        """Whether the element-wise steps of one U-Net run faster as XLA
        fusions (``fused``) than as TensorFlow ops (``plain``), timed (and
        cached) for the stage shapes of ``tune_input_shape``; False without
        timing."""
        if tune_input_shape is None or not autotune.enabled():
            return False
        encoders, decoders, _ = self.plans[self.instruments[0]]
        stages = len(encoders)
        enc_shapes = [stage_input(tune_input_shape, self.strides, s + 1, int(e[1].shape[3])) for s, e in enumerate(encoders)]
        dec_shapes = [stage_input(tune_input_shape, self.strides, stages - 1 - s, int(d[1].shape[2])) for s, d in enumerate(decoders)]
        joins = [s for s in range(stages - 1) if self.joins[s]]

        def run(steps, tensors):
            outputs = [
                steps.encoder(e[4], t, 0, int(t.shape[-1]), *e[3], stage=s)
                for s, (e, t) in enumerate(zip(encoders, tensors[:stages]))
                if e[3][0] is not None
            ]
            for s, (conv_out, skip) in zip(joins, zip(tensors[stages::2], tensors[stages + 1 :: 2])):
                _, _, _, bias, affine, step = decoders[s]
                outputs.append(steps.join(step, conv_out, bias, *affine, skip, 0, int(skip.shape[-1]), stage=s))
            return outputs

        candidates = {"plain": lambda *t: run(plain, t), "fused": lambda *t: run(fused, t)}

        def inputs():
            shapes = list(enc_shapes)
            for s in joins:
                shapes += [dec_shapes[s], enc_shapes[stages - 2 - s]]
            return tuple(random_inputs(shape, self.dtype)[0] for shape in shapes)

        signature = (f"unet.steps:{'/'.join('x'.join(map(str, shape)) for shape in enc_shapes)}"
                     f":{encoders[0][4][0]}-{decoders[0][5][0]}:skips={int(bool(joins))}{dtype_tag(self.dtype)}")
        return autotune.choose(signature, candidates, inputs, "plain") == "fused"

    # --- the probe ---------------------------------------------------------

    def _check_probe(self, model, arch, compute_dtype):
        """Compare with ``model(probe, training=False)`` on a small random
        input; raise ValueError beyond the tolerance, else return the
        largest relative error."""
        factor = self.strides**arch.stages
        bins = arch.input_shape[1] or 2 * factor
        # Two deepest frames: every phase of every transposed convolution
        # then reads real pixels on both sides.
        shape = (1, 2 * factor, bins, int(self.first_kernel.shape[2]))
        probe = np.random.default_rng(0).uniform(0.0, 1.0, shape).astype(np.float32)
        expected = model(probe, training=False)
        got = self(probe)
        largest = 0.0
        for name in self.instruments:
            error = probes.relative_error(expected[name], got[name])
            if not error <= PROBE_TOLERANCE[compute_dtype]:
                raise ValueError(
                    f"the inference plan differs from the Keras model {model.name!r} on a probe input: output "
                    f"{name!r} is off by {error:.3g} of its magnitude (tolerance {PROBE_TOLERANCE[compute_dtype]:g}, "
                    f"forms {self.forms}); run the Keras layers instead (Separator(fast=False))"
                )
            largest = max(largest, error)
        return largest

    # --- the computation -----------------------------------------------------

    def _mask_head(self, step, dilation, tap_size=None):
        """Last decoder step, the mask convolution, sigmoid and masking: one
        XLA fusion with ``jit_compile``. With a ``tap_size`` (the last
        decoder's kernel size), the head receives the decoder's per-tap
        products and finishes its transposed convolution first."""
        apply = Steps.step_function(step)

        def head(conv_out, conv_bias, scale, shift, magnitude, kernel, bias):
            conv_out = tf.cast(conv_out, tf.float32)
            if tap_size is not None:
                conv_out = conv2d_transpose_from_taps(conv_out, tap_size, self.strides)
            x = apply(conv_out + conv_bias, scale, shift)
            if self.jit_compile:
                y = conv2d_by_shifts(x, kernel, dilation)
            else:
                y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
            if self.mask_activation == "softmax":
                return y + bias  # logits, shared out in _share_out
            return tf.sigmoid(y + bias) * magnitude

        return tf.function(head, jit_compile=True, autograph=False) if self.jit_compile else head

    def _share_out(self):
        """Softmax across instruments of the heads' logits, times the
        magnitude: one XLA fusion with ``jit_compile``."""

        def share(logits, magnitude):
            masks = tf.nn.softmax(tf.stack(logits, axis=-1), axis=-1)
            return [mask * magnitude for mask in tf.unstack(masks, num=len(logits), axis=-1)]

        return tf.function(share, jit_compile=True, autograph=False) if self.jit_compile else share

    def __call__(self, magnitude):
        magnitude = tf.convert_to_tensor(magnitude, tf.float32)
        x = tf.cast(magnitude, self.dtype)
        first = tf.nn.bias_add(conv(self.forms["encoder"][0], x, self.first_kernel, self.strides), self.first_bias)
        width = int(first.shape[-1]) // len(self.instruments)
        if self.fuse_steps:
            # Each instrument's share of the first convolution stays a slice
            # of it: the fused element-wise steps read it in place.
            shares = [(first, i * width, (i + 1) * width) for i in range(len(self.instruments))]
        else:
            shares = [(share, 0, width) for share in tf.split(first, len(self.instruments), axis=-1)]
        outputs = [self._unet(name, magnitude, share) for name, share in zip(self.instruments, shares)]
        if self.share_out is not None:
            outputs = self.share_out(outputs, magnitude)
        return dict(zip(self.instruments, outputs))

    def _unet(self, name, magnitude, first):
        encoders, decoders, (mask_kernel, mask_bias) = self.plans[name]
        steps = self.steps
        raw = [first]  # each encoder's convolution: (tensor, first channel, end channel), unsliced
        x = None
        last = len(encoders) - 1
        for stage, (form, kernel, bias, affine, step) in enumerate(encoders):
            if stage:
                conv_out = tf.nn.bias_add(conv(form, x, kernel, self.strides), bias)
                raw.append((conv_out, 0, int(conv_out.shape[-1])))
            if stage == last and self.raw_bottom:
                break
            # An identity step (no activation, no batch norm) needs no pass.
            x = sliced(*raw[-1]) if Steps.is_identity(step) else steps.encoder(step, *raw[-1], *affine, stage=stage)
        if self.raw_bottom:
            x = sliced(*raw[-1])
        for stage, (form, kernel, prepared, bias, affine, step) in enumerate(decoders):
            if form == "head":
                # Per-tap products, a plain matrix product; the head sums them.
                conv_out = tap_products(x, prepared)
            else:
                conv_out = transpose(form, x, kernel, prepared, self.strides)
            if stage == len(decoders) - 1:
                return self.head(conv_out, bias, *affine, magnitude, mask_kernel, mask_bias)
            if self.joins[stage]:
                x = steps.join(step, conv_out, bias, *affine, *raw[last - 1 - stage], stage=stage)
            else:
                x = steps.decoder(step, conv_out, bias, *affine, stage=stage)


def has_inference_plan(model):
    """Whether :class:`UNetInference` computes ``model`` (a float32 U-Net
    separator of the arrangement it knows); the reason it does not is
    logged at debug level.

    Example:

    >>> import keras
    >>> from keras_sep.models import UNetSeparator
    >>> has_inference_plan(UNetSeparator(filters=(4, 8), bins=16, frames=16))
    True
    >>> has_inference_plan(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    False
    """
    try:
        read_unet(model)
    except Unsupported as reason:
        logger.debug("no inference plan for %s %r: %s", type(model).__name__, getattr(model, "name", None), reason)
        return False
    return True


def inference_plan(model, jit_compile=True, tune_input_shape=None, forms=None, compute_dtype="float32", fuse_steps=None):
    """A :class:`UNetInference` of ``model``, or None where there is none
    (run the Keras model then); arguments as there.

    Example:

    >>> import keras
    >>> from keras_sep.models import UNetSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> type(inference_plan(net, jit_compile=False)).__name__
    'UNetInference'
    >>> print(inference_plan(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])))
    None
    """
    if not has_inference_plan(model):
        return None
    return UNetInference(model, jit_compile=jit_compile, tune_input_shape=tune_input_shape, forms=forms,
                         compute_dtype=compute_dtype, fuse_steps=fuse_steps)
