"""What the inference plan knows of a U-Net separator, read from its Keras graph.

:func:`read_unet` walks the functional graph back from each output and
accepts exactly the arrangement the plan can compute: per output, a chain of
:class:`~keras_sep.layers.Conv2DBlock` encoders from the model's input, a
chain of :class:`~keras_sep.layers.Conv2DTransposeBlock` decoders, each
optionally followed by a concatenation ``[encoder convolution, decoder
output]`` that mirrors the encoder, a "same" ``Conv2D`` mask head with a
sigmoid (or linear logits that one softmax across all instruments shares
out, Spleeter's 5-stem head), and the mask times the input. Each block's order (batch norm before
or after the activation), activation, batch norm and bias come from the
layer's own configuration, never from its name. Anything else (another
layer, another wiring, an option the plan does not compute) is refused with
the reason, and the caller runs the Keras model.
"""
import dataclasses

import keras

from keras_sep.layers._block_utils import ORDERS, make_activation
from keras_sep.layers.conv_block import Conv2DBlock
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock
# The softmax-across-instruments layer is private to the separator that
# builds it; the plan recognises it by its class, never by its name.
from keras_sep.models.unet_separator import _InstrumentSoftmax


class Unsupported(Exception):
    """A model the plan does not compute; the message says why."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One (transposed) convolution block as the plan computes it.

    ``step`` is what follows the convolution and its bias: ``(activation,
    negative_slope, order, batch_norm)``; dropout does nothing at inference.
    """

    layer: keras.layers.Layer
    step: tuple

    @property
    def kernel(self):
        return self.layer.conv.kernel

    @property
    def bias(self):
        conv = self.layer.conv
        return conv.bias if conv.use_bias else keras.ops.zeros((self.layer.filters,))

    @property
    def batch_norm(self):
        return self.layer.batch_norm

    @property
    def is_identity(self):
        activation, _, _, batch_norm = self.step
        return activation in ("linear", None) and not batch_norm


@dataclasses.dataclass(frozen=True)
class UNetArchitecture:
    """The U-Nets of a model, one per output, all of the same arrangement.

    Attributes:
        instruments: the output names, in the model's order.
        strides: the down/up-sampling factor of every stage.
        encoders, decoders: ``{instrument: [Block, ...]}``, stage order.
        joins: per decoder stage, whether its output is concatenated after
            the raw convolution of the mirrored encoder stage.
        raw_bottom: whether the first decoder reads the last encoder's raw
            convolution (else its block output).
        masks: ``{instrument: Conv2D}``, the mask heads.
        input_shape: the model input's ``(frames, bins, channels)``.
        mask_activation: ``"sigmoid"`` (each head's own) or ``"softmax"``
            (linear heads whose logits a softmax across all instruments
            turns into masks).
    """

    instruments: tuple
    strides: int
    encoders: dict
    decoders: dict
    joins: tuple
    raw_bottom: bool
    masks: dict
    input_shape: tuple
    mask_activation: str = "sigmoid"

    @property
    def stages(self):
        return len(self.joins)


def _producer(tensor):
    """``(layer, its input tensors, output index)`` of a functional
    model's tensor. Keras has no public walk of the graph; these are the
    attributes its own functional models are made from."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        raise Unsupported(f"{tensor!r} has no Keras history")
    layer = history.operation
    node = layer._inbound_nodes[history.node_index]
    return layer, list(node.input_tensors), history.tensor_index


def _pair(value):
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def _block(layer, kind):
    """The :class:`Block` of an exact ``kind`` block layer, or Unsupported."""
    if type(layer) is not kind:
        raise Unsupported(f"expected a {kind.__name__}, found {type(layer).__name__} {layer.name!r}")
    config = layer.get_config()
    if config["padding"] != "same" or _pair(config["dilation_rate"]) != (1, 1):
        raise Unsupported(f"{layer.name!r}: padding {config['padding']!r}, dilation {config['dilation_rate']!r}")
    if config["order"] not in ORDERS:
        raise Unsupported(f"{layer.name!r}: order {config['order']!r}")
    try:
        make_activation(config["activation"], config["negative_slope"])
    except ValueError as error:
        raise Unsupported(f"{layer.name!r}: {error}") from None
    conv = layer.conv.get_config()
    if conv.get("activation") not in ("linear", None) or conv.get("groups", 1) != 1 or conv["data_format"] != "channels_last":
        raise Unsupported(f"{layer.name!r}: convolution {conv!r}")
    if layer.compute_dtype != "float32":
        raise Unsupported(f"{layer.name!r} computes in {layer.compute_dtype}")
    step = (config["activation"], float(config["negative_slope"]), config["order"], bool(config["batch_norm"]))
    return Block(layer, step)


def _mask_head(layer, activation):
    if type(layer) is not keras.layers.Conv2D:
        raise Unsupported(f"expected the Conv2D mask head, found {type(layer).__name__} {layer.name!r}")
    config = layer.get_config()
    wanted = {"activation": activation, "padding": "same", "strides": (1, 1), "data_format": "channels_last",
              "groups": 1, "use_bias": True}
    got = {key: tuple(config[key]) if key == "strides" else config.get(key) for key in wanted}
    if got != wanted:
        raise Unsupported(f"mask head {layer.name!r}: {got!r}, the plan computes {wanted!r}")
    if layer.compute_dtype != "float32":
        raise Unsupported(f"{layer.name!r} computes in {layer.compute_dtype}")
    return layer


def _one_unet(output, model_input):
    """Encoders, decoders, joins, raw bottom and mask head leading to ``output``."""
    layer, inputs, _ = _producer(output)
    if type(layer) is not keras.layers.Multiply or len(inputs) != 2 or sum(t is model_input for t in inputs) != 1:
        raise Unsupported(f"the output should be a mask times the input, found {type(layer).__name__} {layer.name!r}")
    mask = next(t for t in inputs if t is not model_input)
    head, inputs, index = _producer(mask)
    softmax = None
    if type(head) is _InstrumentSoftmax:
        # Logits of this U-Net are the softmax's input at its output's index.
        softmax = (head, index, len(inputs))
        head, inputs, _ = _producer(inputs[index])
    head = _mask_head(head, "sigmoid" if softmax is None else "linear")
    (x,) = inputs  # a Conv2D has one
    decoders, joins, skips = [], [], []
    while True:
        layer, inputs, index = _producer(x)
        joined = type(layer) is keras.layers.Concatenate
        if joined:
            if layer.axis not in (-1, 3) or len(inputs) != 2:
                raise Unsupported(f"{layer.name!r}: concatenation {layer.get_config()!r}")
            skips.append(inputs[0])
            x = inputs[1]
            layer, inputs, index = _producer(x)
        if type(layer) is Conv2DBlock and not joined:
            break
        decoders.append(_block(layer, Conv2DTransposeBlock))
        joins.append(joined)
        if index != 0:
            raise Unsupported(f"{layer.name!r}: the decoder passes on its raw transposed convolution")
        (x,) = inputs
    if not decoders or joins[0]:
        raise Unsupported("the mask head should read the last decoder block itself")
    raw_bottom = index == 1
    encoders = []
    while True:
        if type(layer) is not Conv2DBlock:
            raise Unsupported(f"expected a Conv2DBlock, found {type(layer).__name__} {layer.name!r}")
        encoders.append(_block(layer, Conv2DBlock))
        (x,) = inputs
        if x is model_input:
            break
        layer, inputs, index = _producer(x)
        if index != 0:
            raise Unsupported(f"{layer.name!r}: the next encoder reads its raw convolution")
    encoders.reverse()
    decoders.reverse()
    joins.reverse()
    if len(encoders) != len(decoders):
        raise Unsupported(f"{len(encoders)} encoder stages but {len(decoders)} decoder stages")
    # Decoder stage s joins the raw convolution of encoder stage
    # stages - 2 - s (the mirror), as the plan's skip list has it.
    stages = len(encoders)
    for stage, skip in zip([s for s, j in enumerate(joins) if j], reversed(skips)):
        layer, _, index = _producer(skip)
        if index != 1 or layer is not encoders[stages - 2 - stage].layer:
            raise Unsupported(f"decoder stage {stage} joins {layer.name!r} output {index}, not the mirrored encoder")
    return encoders, decoders, tuple(joins), raw_bottom, head, softmax


def _check_softmax(softmaxes, count):
    """The mask activation, after checking that either no output or every
    output reads one shared softmax, each at its own index, and that the
    softmax spans exactly these outputs' logits."""
    if all(s is None for s in softmaxes):
        return "sigmoid"
    if any(s is None for s in softmaxes) or len({id(s[0]) for s in softmaxes}) != 1:
        raise Unsupported("some outputs share a softmax across instruments and others do not")
    indices = sorted(s[1] for s in softmaxes)
    if indices != list(range(count)) or softmaxes[0][2] != count:
        raise Unsupported(f"the softmax across instruments spans {softmaxes[0][2]} logits, read at {indices}")
    return "softmax"


def read_unet(model):
    """The :class:`UNetArchitecture` of ``model``; raises Unsupported.

    Example:

    >>> import keras
    >>> from keras_sep.models import UNetSeparator
    >>> unet = read_unet(UNetSeparator(filters=(4, 8), bins=16, frames=16))
    >>> unet.instruments, unet.strides, unet.stages, unet.input_shape
    (('vocals', 'accompaniment'), 2, 2, (None, 16, 2))
    >>> [block.step for block in unet.encoders["vocals"]]  # the bottom is read raw
    [('leaky_relu', 0.2, 'bn_act', True), ('linear', 0.2, 'bn_act', False)]
    >>> read_unet(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    Traceback (most recent call last):
    ...
    keras_sep.inference.architecture.Unsupported: the plan needs a functional model ...
    """
    if not isinstance(model, keras.Model):
        raise Unsupported(f"{type(model).__name__} is not a Keras model")
    if model.compute_dtype != "float32":
        raise Unsupported(f"the model computes in {model.compute_dtype}")
    try:
        outputs, inputs = model.output, model.inputs
    except (AttributeError, ValueError):  # not functional, or not built
        outputs = inputs = None
    if not isinstance(outputs, dict) or not inputs or len(inputs) != 1:
        raise Unsupported("the plan needs a functional model with one input and a dict of outputs")
    (model_input,) = model.inputs
    encoders, decoders, masks, shapes, softmaxes = {}, {}, {}, set(), []
    for name, output in outputs.items():
        encoders[name], decoders[name], joins, raw_bottom, masks[name], softmax = _one_unet(output, model_input)
        softmaxes.append(softmax)
        blocks = encoders[name] + decoders[name]
        shapes.add((
            joins, raw_bottom, tuple(b.step for b in blocks), tuple(tuple(b.kernel.shape) for b in blocks),
            tuple(masks[name].kernel.shape), _pair(masks[name].dilation_rate), frozenset(_pair(b.layer.strides) for b in blocks),
        ))
    if len(shapes) != 1:
        raise Unsupported("the outputs' U-Nets differ in arrangement, steps or kernel shapes")
    mask_activation = _check_softmax(softmaxes, len(outputs))
    (shape,) = shapes
    strides = shape[-1]
    if len(strides) != 1 or len(set(next(iter(strides)))) != 1:
        raise Unsupported(f"the plan needs one stride, equal on both axes, got {sorted(strides)}")
    return UNetArchitecture(
        instruments=tuple(outputs),
        strides=next(iter(strides))[0],
        encoders=encoders,
        decoders=decoders,
        joins=joins,
        raw_bottom=raw_bottom,
        masks=masks,
        input_shape=tuple(model_input.shape[1:]),
        mask_activation=mask_activation,
    )
