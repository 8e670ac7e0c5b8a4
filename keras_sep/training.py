"""Training separators: strategy, mixed precision and callbacks around ``fit``.

``fit_separator`` trains any model whose outputs are a dict of per-instrument
estimates (such as :class:`~keras_sep.models.UNetSeparator`) on a dataset of
``(mixture, {instrument: target})`` batches:

- on CPU or one GPU with the default strategy, on several GPUs with
  ``MirroredStrategy``, on TPUs with ``TPUStrategy`` — all through
  ``model.fit`` and Keras callbacks;
- on several machines (``TF_CONFIG`` with more than one worker) through
  keras_sep's own distributed step, ``strategy.run`` over a distributed
  dataset, because ``model.fit`` under ``MultiWorkerMirroredStrategy`` fails
  in Keras 3 ("Attempt to convert a value (PerReplica...) to a Tensor",
  keras-team/keras#20585). That loop has the same losses, mixed-precision
  loss scaling, backup/restore, early stopping, learning-rate reduction and
  TensorBoard scalars.

Mixed precision: ``mixed_float16`` on GPU by default, ``mixed_bfloat16`` on
request; layers follow the policy while STFT, masks and losses stay float32.
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_sep import losses as loss_lib

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def _num_workers():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def select_strategy(strategy="auto"):
    """A ``tf.distribute.Strategy`` by name, or the best one for this machine.

    ``"auto"``: multi-worker when ``TF_CONFIG`` names several workers, TPU
    when one is attached, mirrored over several GPUs, else the default.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "auto":
        if _num_workers() > 1:
            strategy = "multi_worker"
        elif tf.config.list_logical_devices("TPU"):
            strategy = "tpu"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            strategy = "mirrored"
        else:
            strategy = "default"
    if strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()


def set_precision(precision="auto"):
    """Set the global Keras dtype policy; ``"auto"``: mixed_float16 on GPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    keras.config.set_dtype_policy(precision)
    return precision


def _in_scope(model, strategy, precision):
    """The model, (re)built under ``strategy`` and the current policy if needed."""
    if callable(model) and not isinstance(model, keras.Model):
        with strategy.scope():
            return model()
    rebuild = strategy is not tf.distribute.get_strategy() or model.dtype_policy.name != precision
    if not rebuild:
        return model
    with strategy.scope():
        clone = model.__class__.from_config(model.get_config())
        clone.set_weights(model.get_weights())
    # Frozen layers (inference-mode batch norm, a frozen encoder) stay frozen:
    # the config does not carry per-layer trainable flags.
    for original, copy in zip(_all_layers(model), _all_layers(clone)):
        copy.trainable = original.trainable
    return clone


def default_callbacks(output_dir, monitor="val_loss", patience=10, reduce_lr_patience=4, backup_freq="epoch"):
    """Checkpoint (best model), BackupAndRestore, TensorBoard, early stopping, LR reduction."""
    return [
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "best.keras"), monitor=monitor, save_best_only=True),
        keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup"), save_freq=backup_freq),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=reduce_lr_patience),
    ]


def compile_separator(model, learning_rate=1e-4, loss="l1"):
    """Compile with Adam and one loss per output (Jansson's L1 by default)."""
    outputs = model.output_names if hasattr(model, "output_names") else model.instruments
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={name: loss_lib.get(loss) for name in outputs},
    )
    return model


def fit_separator(
    model,
    train_ds,
    val_ds=None,
    epochs=10,
    steps_per_epoch=None,
    validation_steps=None,
    learning_rate=1e-4,
    loss="l1",
    output_dir=None,
    strategy="auto",
    precision="auto",
    callbacks=None,
    patience=10,
    backup_freq="epoch",
    config=None,
    verbose="auto",
):
    """Train ``model`` and return ``(model, history)``.

    Args:
        model: a Keras model with dict outputs, or a function building one
            (needed when a strategy must own the variables from the start).
        train_ds: ``tf.data`` of ``(mixture, {instrument: target})`` batches,
            or (multi-worker) a function ``input_context -> dataset``.
        val_ds: the same for validation, or None.
        epochs, steps_per_epoch, validation_steps: as in ``Model.fit``.
        learning_rate: Adam's learning rate.
        loss: ``"l1"`` (Jansson), ``"mse"``, ``"multi_resolution_stft"`` or a
            Keras loss.
        output_dir: where ``best.keras``, ``final.keras``, ``backup/``,
            ``logs/`` and ``config.json`` go; None keeps nothing on disk.
        strategy: name from ``STRATEGIES`` or a strategy.
        precision: name from ``PRECISIONS``.
        callbacks: extra Keras callbacks (``model.fit`` path).
        patience: early-stopping patience in epochs.
        backup_freq: ``"epoch"`` or a number of steps between backups.
        config: a dict written to ``config.json`` beside the weights (e.g. the
            resolved training configuration).
    """
    precision = set_precision(precision)
    strategy = select_strategy(strategy)
    model = _in_scope(model, strategy, precision)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        resolved = dict(config or {}, precision=precision, strategy=type(strategy).__name__,
                        learning_rate=learning_rate, loss=loss if isinstance(loss, str) else type(loss).__name__,
                        epochs=epochs, steps_per_epoch=steps_per_epoch)
        with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as handle:
            json.dump(resolved, handle, indent=2, default=str)

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        from keras_sep._distributed import distributed_fit

        history = distributed_fit(
            model, strategy, train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
            learning_rate=learning_rate, loss=loss, output_dir=output_dir, patience=patience,
            verbose=verbose,
        )
        return model, history

    train_ds, val_ds = (_targets_of(model, ds) for ds in (train_ds, val_ds))
    with strategy.scope():
        compile_separator(model, learning_rate, loss)
    monitor = "val_loss" if val_ds is not None else "loss"
    all_callbacks = list(callbacks or [])
    if output_dir:
        all_callbacks += default_callbacks(output_dir, monitor, patience, backup_freq=backup_freq)
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps, callbacks=all_callbacks, verbose=verbose, shuffle=False,
    )
    if output_dir:
        model.save(os.path.join(output_dir, "final.keras"))
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _targets_of(model, dataset):
    """A one-output model (an :class:`OpenUnmix`: one network per target)
    fits its own target's magnitude out of ``{instrument: target}`` pairs."""
    if not isinstance(dataset, tf.data.Dataset) or isinstance(model.output, dict):
        return dataset
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)):
        return dataset
    (name,) = model.output_names
    if name not in spec[1]:
        raise ValueError(f"the targets hold {sorted(spec[1])}, not the model's output {name!r}")

    def target_of_the_model(mixture, targets):
        return mixture, targets[name]

    return dataset.map(target_of_the_model, num_parallel_calls=tf.data.AUTOTUNE)


def input_statistics(dataset, max_batches=None):
    """Per-bin mean and standard deviation of mixture magnitudes, as
    Open-Unmix initialises its input normalisation (``OpenUnmix(input_mean=,
    input_scale=)``).

    Like upstream's training script, the channels are averaged (a mono
    downmix of the magnitudes) and every frame counts once; standard
    deviations are floored at 1e-4 of the largest so that silent bins do
    not blow up the scale.

    Args:
        dataset: ``tf.data`` of magnitudes ``(..., frames, bins, channels)``
            or of ``(magnitude, targets)`` pairs (the mixture is used), e.g.
            ``data.to_spectrogram_pairs`` of the training tracks read in
            order without augmentation.
        max_batches: stop after this many elements; None reads them all.

    Returns:
        ``(mean, std)``: float64 arrays of ``bins`` values.

    Example:

    >>> import numpy as np, tensorflow as tf
    >>> x = np.stack([np.full((3, 4, 2), v, "float32") for v in (1.0, 3.0)])
    >>> mean, std = input_statistics(tf.data.Dataset.from_tensor_slices(x))
    >>> mean.tolist(), std.tolist()
    ([2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0])
    """
    count, mean, m2 = 0, None, None
    for index, element in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        magnitude = element[0] if isinstance(element, (tuple, list)) else element
        frames = tf.reduce_mean(tf.cast(magnitude, tf.float64), axis=-1).numpy()
        frames = frames.reshape(-1, frames.shape[-1])
        if not frames.size:
            continue
        # Chan et al.'s pairwise update of the mean and the sum of squared deviations.
        batch_mean = frames.mean(axis=0)
        batch_m2 = ((frames - batch_mean) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = len(frames), batch_mean, batch_m2
            continue
        total = count + len(frames)
        delta = batch_mean - mean
        mean = mean + delta * len(frames) / total
        m2 = m2 + batch_m2 + delta ** 2 * count * len(frames) / total
        count = total
    if mean is None:
        raise ValueError("the dataset holds no frames to compute statistics from")
    std = np.sqrt(m2 / count)
    return mean, np.maximum(std, 1e-4 * std.max())


def inference_mode_batch_norm(model):
    """Freeze every BatchNormalization layer (fine-tuning pretrained Spleeter).

    Keras runs a non-trainable BatchNormalization in inference mode even in
    ``fit``, so its (empty, 0/1) statistics are used as Spleeter used them.
    """
    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.trainable = False
    return len(layers)


def _all_layers(layer, seen=None):
    """Every layer under ``layer``, including sublayers held as attributes."""
    seen = set() if seen is None else seen
    found = []
    children = list(getattr(layer, "layers", [])) + [
        value for value in vars(layer).values() if isinstance(value, keras.layers.Layer)
    ]
    for child in children:
        if id(child) in seen or child is layer:
            continue
        seen.add(id(child))
        found.append(child)
        found.extend(_all_layers(child, seen))
    return found


def freeze_encoder(model):
    """Make every encoder stage of a :class:`UNetSeparator` non-trainable."""
    frozen = [layer for layer in model.layers if "_encoder_" in layer.name]
    for layer in frozen:
        layer.trainable = False
    return len(frozen)
