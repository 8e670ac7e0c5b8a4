"""keras_sep's own training loop for ``MultiWorkerMirroredStrategy``.

Used by :func:`keras_sep.training.fit_separator` where ``model.fit`` cannot
run (Keras 3 under multi-worker strategies, keras-team/keras#20585). Each
step runs ``strategy.run`` over ``strategy.experimental_distribute_dataset``
(or ``distribute_datasets_from_function`` when given a function of the
input context), averages the per-example loss over the global batch, scales
it under ``mixed_float16`` and lets the optimizer all-reduce the gradients;
batch-norm moving statistics are averaged across workers after every
epoch, so all workers end each epoch with identical weights.
Backups are ``tf.train.CheckpointManager`` checkpoints written by the chief
(other workers write to a scratch folder they delete, as TensorFlow's
multi-worker guide requires), restored at start so a killed run resumes at
its last completed epoch.
"""
import logging
import os
import shutil

import keras
import tensorflow as tf

from keras_sep import losses as loss_lib

logger = logging.getLogger(__name__)


def _is_chief(strategy):
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def replica_loss(loss, num_replicas):
    """``loss`` as a function of one replica's ``(y_true, y_pred)``.

    The replica values summed over replicas equal ``loss`` on the global
    batch, with every setting of the instance kept (``Huber(delta=0.3)``, a
    loss's own arguments, its ``reduction`` and ``dtype``). The instance's
    own ``call`` gives the unreduced values: rebuilding it from its class
    would reset its settings, and so would ``from_config`` or ``copy`` for
    Keras losses whose config omits them (``Huber`` drops ``delta``). The
    instance's reduction is then applied here over the global number of
    values, which no replica sees alone.
    """
    loss = loss_lib.get(loss)
    reduction = loss.reduction
    if reduction in (None, "none"):
        raise ValueError(
            "distributed training needs a loss that reduces to a scalar, got "
            f"{type(loss).__name__} with reduction={reduction!r}"
        )

    def value(y_true, y_pred):
        # The conversion that Loss.__call__ makes before its call.
        y_true = keras.ops.convert_to_tensor(y_true, dtype=loss.dtype)
        y_pred = keras.ops.convert_to_tensor(y_pred, dtype=loss.dtype)
        values = loss.call(y_true, y_pred)
        total = tf.reduce_sum(values)
        if reduction == "sum":
            return total
        # "sum_over_batch_size", "mean" and (without sample weights)
        # "mean_with_sample_weight" divide by the number of loss values.
        count = tf.cast(tf.size(values) * num_replicas, total.dtype)
        return tf.math.divide_no_nan(total, count)

    return value


def distributed_fit(
    model,
    strategy,
    train_ds,
    epochs,
    steps_per_epoch,
    learning_rate=1e-4,
    loss="l1",
    output_dir=None,
    patience=10,
    lr_patience=4,
    verbose="auto",
):
    """Train under ``strategy`` with a custom step; returns ``{"loss": [...]}``."""
    if steps_per_epoch is None:
        raise ValueError("steps_per_epoch is required for multi-worker training, got None")
    chief = _is_chief(strategy)
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate)
        if model.dtype_policy.name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        optimizer.build(model.trainable_variables)
    loss_value = replica_loss(loss, strategy.num_replicas_in_sync)
    names = list(model.output_names)

    if callable(train_ds) and not isinstance(train_ds, tf.data.Dataset):
        dist_ds = strategy.distribute_datasets_from_function(train_ds)
    else:
        dist_ds = strategy.experimental_distribute_dataset(train_ds)

    def replica_step(mixture, targets):
        with tf.GradientTape() as tape:
            outputs = model(mixture, training=True)
            value = tf.add_n([loss_value(targets[n], outputs[n]) for n in names])
            scaled = optimizer.scale_loss(value) if hasattr(optimizer, "scale_loss") else value
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return value

    @tf.function
    def train_step(iterator):
        per_replica = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    @tf.function
    def worker_means():
        local = strategy.run(lambda: [tf.identity(v.value) for v in model.non_trainable_variables])
        return [strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for v in local]

    def sync_non_trainable():
        # Batch-norm moving statistics are updated from each worker's own
        # batches; average them so every worker holds the same model.
        if model.non_trainable_variables:
            for variable, mean in zip(model.non_trainable_variables, worker_means()):
                variable.assign(mean)

    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    manager = None
    if output_dir:
        backup = os.path.join(output_dir, "backup")
        write_dir = backup if chief else os.path.join(backup, f".worker_{strategy.cluster_resolver.task_id}")
        manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=1)
        latest = tf.train.latest_checkpoint(backup)
        if latest:
            checkpoint.restore(latest)
    writer = tf.summary.create_file_writer(os.path.join(output_dir, "logs")) if output_dir and chief else None

    history, best, waited, lr_waited = {"loss": []}, float("inf"), 0, 0
    iterator = iter(dist_ds)
    show = verbose in ("auto", 1, True) and chief
    while int(epoch.numpy()) < epochs:
        total = 0.0
        bar = keras.utils.Progbar(steps_per_epoch, verbose=1) if show else None
        for step in range(steps_per_epoch):
            total += float(train_step(iterator))
            if bar:
                bar.update(step + 1, [("loss", total / (step + 1))])
        mean = total / steps_per_epoch
        history["loss"].append(mean)
        sync_non_trainable()
        epoch.assign_add(1)
        if manager:
            manager.save(checkpoint_number=int(epoch.numpy()))
            if not chief:
                shutil.rmtree(write_dir, ignore_errors=True)
        if writer:
            with writer.as_default():
                tf.summary.scalar("loss", mean, step=int(epoch.numpy()))
        if mean < best - 1e-7:
            best, waited, lr_waited = mean, 0, 0
        else:
            waited, lr_waited = waited + 1, lr_waited + 1
            if lr_waited >= lr_patience:
                inner = getattr(optimizer, "inner_optimizer", optimizer)
                inner.learning_rate.assign(inner.learning_rate * 0.5)
                lr_waited = 0
            if waited >= patience:
                if chief:
                    logger.info("early stopping after epoch %d", int(epoch.numpy()))
                break
    if output_dir and chief:
        model.save(os.path.join(output_dir, "final.keras"))
    return history
