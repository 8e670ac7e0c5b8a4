"""Spleeter's TF1 checkpoints → keras_sep :class:`UNetSeparator` weights.

Spleeter's graph names its variables by creation order, not by role;
:func:`load_spleeter_checkpoint` maps those names onto the U-Net's layers
(reading the checkpoint with TensorFlow's reader, no Spleeter needed).
"""
from keras_sep.checkpoints import PretrainedError


def _indexed(prefix, index):
    return prefix if index == 0 else f"{prefix}_{index}"


def load_spleeter_checkpoint(model, checkpoint_prefix):
    """Copy a Spleeter TF1 checkpoint into a :class:`UNetSeparator`.

    Spleeter's graph names layers by creation order; for instrument ``i``
    (in the model's order) and stage ``k``: encoder ``conv2d_{7i+k}`` with
    ``batch_normalization_{12i+k}``, decoder ``conv2d_transpose_{6i+k}``
    with ``batch_normalization_{12i+6+k}``, mask head ``conv2d_{7i+6}``.
    The batch-norm statistics in the checkpoint are the initial 0 and 1;
    they are loaded as they are, so the model reproduces Spleeter only in
    inference mode (``training=False``). The 4- and 5-stem models are
    named the same way, instruments in Spleeter's order.

    Raises:
        PretrainedError: a variable the model needs is missing or has
            another shape (the checkpoint is not this model's).
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(checkpoint_prefix)
    stored = reader.get_variable_to_shape_map()
    stages = len(model.filters)
    needed = [
        key
        for i in range(len(model.instruments))
        for key in ([_indexed("conv2d", (stages + 1) * i + k) + "/kernel" for k in range(stages + 1)]
                    + [_indexed("conv2d_transpose", stages * i + k) + "/kernel" for k in range(stages)])
    ]
    missing = [key for key in needed if key not in stored]
    if missing:
        raise PretrainedError(
            f"{checkpoint_prefix}: not a checkpoint of this {len(model.instruments)}-instrument model; "
            f"{len(missing)} variables missing, e.g. {missing[:3]}"
        )

    def assign(variable, key):
        if key not in stored:
            raise PretrainedError(f"{checkpoint_prefix}: variable {key!r} missing")
        value = reader.get_tensor(key)
        if tuple(variable.shape) != value.shape:
            raise PretrainedError(f"{key}: checkpoint shape {value.shape} != model {variable.shape}")
        variable.assign(value)

    def assign_bn(layer, key):
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            assign(getattr(layer, attr), f"{key}/{attr}")

    for i, instrument in enumerate(model.instruments):
        for k in range(stages):
            block = model.get_layer(f"{instrument}_encoder_{k}")
            conv = _indexed("conv2d", (stages + 1) * i + k)
            assign(block.conv.kernel, conv + "/kernel")
            assign(block.conv.bias, conv + "/bias")
            if block.batch_norm is not None:
                assign_bn(block.batch_norm, _indexed("batch_normalization", 2 * stages * i + k))
            block = model.get_layer(f"{instrument}_decoder_{k}")
            deconv = _indexed("conv2d_transpose", stages * i + k)
            assign(block.conv.kernel, deconv + "/kernel")
            assign(block.conv.bias, deconv + "/bias")
            assign_bn(block.batch_norm, _indexed("batch_normalization", 2 * stages * i + stages + k))
        head = model.get_layer(f"{instrument}_mask")
        conv = _indexed("conv2d", (stages + 1) * i + stages)
        assign(head.kernel, conv + "/kernel")
        assign(head.bias, conv + "/bias")
    return model
