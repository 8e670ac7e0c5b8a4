"""Training run in a subprocess, for the resume and multi-worker tests.

    python train_worker.py OUT_DIR WEIGHTS.npz [--crash-at-epoch E] [--strategy NAME]

Trains a tiny UNetSeparator (no dropout, so runs are repeatable) on a
fixed synthetic dataset and saves the final weights. With --crash-at-epoch
the process dies (os._exit) in the middle of that epoch, the first time.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_sep.models import UNetSeparator  # noqa: E402
from keras_sep.training import fit_separator, select_strategy  # noqa: E402

BATCH, STEPS = 4, 3


def examples(seed=0, count=BATCH * STEPS):
    rng = np.random.default_rng(seed)
    mixture = rng.uniform(0, 1, (count, 16, 16, 2)).astype(np.float32)
    return mixture, {"vocals": 0.7 * mixture, "accompaniment": 0.3 * mixture}


def build():
    keras.utils.set_random_seed(3)
    return UNetSeparator(filters=(4, 8), bins=16, frames=16, dropout=0.0, name="tiny")


class Crash(keras.callbacks.Callback):
    def __init__(self, epoch, flag):
        super().__init__()
        self.epoch, self.flag, self.current = epoch, flag, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 1 and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("weights")
    parser.add_argument("--crash-at-epoch", type=int)
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs anything.
    strategy = select_strategy(args.strategy)

    mixture, targets = examples()
    callbacks = []
    if args.crash_at_epoch is not None:
        callbacks.append(Crash(args.crash_at_epoch, os.path.join(args.out_dir, "crashed")))
    if args.strategy == "multi_worker":
        def shard(context):
            # Each worker reads its own half of the examples.
            ds = tf.data.Dataset.from_tensor_slices((mixture, targets))
            ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
            return ds.batch(context.get_per_replica_batch_size(BATCH)).repeat()
        dataset = shard
    else:
        dataset = tf.data.Dataset.from_tensor_slices((mixture, targets)).batch(BATCH)
    model, history = fit_separator(
        build, dataset, epochs=args.epochs, steps_per_epoch=STEPS, learning_rate=1e-2,
        output_dir=args.out_dir, strategy=strategy, precision="float32",
        callbacks=callbacks, verbose=0,
    )
    np.savez(args.weights, *[np.asarray(w) for w in model.weights], loss=np.asarray(history["loss"]))
    print("done", history["loss"], file=sys.stderr)


if __name__ == "__main__":
    main()
