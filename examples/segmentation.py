"""Semantic segmentation of generated shapes: encoder–decoder up-sampling modes vs U-Net.

Generates small grey images of circles, squares and triangles on noisy,
shaded backgrounds with their pixel masks (4 classes: background and the
three shapes; telling the shapes apart needs context, not just
brightness), then trains the lecture's fully convolutional encoder–decoder
with each decoder up-sampling (SegNet max-unpooling with the pooling
indices, transposed convolutions, nearest, bilinear, bed of nails) and a
U-Net with skip connections, all of similar size, on the same data. Prints
pixel accuracy and mean IoU per model on a held-out set and saves a few
predictions to ``segmentation.png``.

    python examples/segmentation.py               # a few minutes on 2 CPU cores
    python examples/segmentation.py --epochs 5 --train 300 --out /tmp/run
"""
import argparse
import os
import time

CLASSES = ("background", "circle", "square", "triangle")


def make_shapes(n, size, rng):
    """``n`` images ``(size, size, 1)`` in [0, 1] and int masks ``(size, size)``."""
    import numpy as np

    rows, cols = np.mgrid[:size, :size].astype("float32")
    images = np.empty((n, size, size, 1), "float32")
    masks = np.zeros((n, size, size), "int32")
    for i in range(n):
        gradient = rng.uniform(-0.2, 0.2, 2)
        image = 0.25 + gradient[0] * (rows / size - 0.5) + gradient[1] * (cols / size - 0.5)
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(1, 4)
            r, c = rng.uniform(size * 0.15, size * 0.85, 2)
            radius = rng.uniform(size * 0.12, size * 0.25)
            if kind == 1:
                inside = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
            elif kind == 2:
                inside = (abs(rows - r) <= radius * 0.85) & (abs(cols - c) <= radius * 0.85)
            else:  # upright triangle: apex at the top, base at the bottom
                height = (rows - (r - radius)) / (2 * radius)
                inside = (height >= 0) & (height <= 1) & (abs(cols - c) <= height * radius)
            image = np.where(inside, rng.uniform(0.55, 0.9), image)
            masks[i][inside] = kind
        images[i, ..., 0] = image + rng.normal(0, 0.08, (size, size))
    return np.clip(images, 0, 1), masks


def confusion(labels, predicted, num_classes):
    import numpy as np

    index = labels.ravel().astype("int64") * num_classes + predicted.ravel()
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def mean_iou(matrix):
    """Mean over classes of ``TP / (TP + FP + FN)`` from a confusion matrix."""
    import numpy as np

    tp = np.diag(matrix).astype("float64")
    union = matrix.sum(0) + matrix.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return float(np.nanmean(iou)), iou


def build_models(size, filters):
    from keras_sep.models import encoder_decoder, unet

    models = {
        f"encoder-decoder ({mode})": encoder_decoder(
            (size, size, 1), len(CLASSES), filters=filters, upsampling=mode
        )
        for mode in ("unpool", "transpose", "nearest", "bilinear", "bed_of_nails")
    }
    models["U-Net"] = unet((size, size, 1), len(CLASSES), filters=filters, batch_norm=True)
    return models


def plot(images, masks, predictions, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["image", "ground truth", *predictions]
    fig, axes = plt.subplots(len(images), len(columns),
                             figsize=(1.6 * len(columns), 1.6 * len(images)))
    for row, axes_row in enumerate(axes):
        panels = [images[row, ..., 0], masks[row], *(p[row] for p in predictions.values())]
        for col, (ax, panel) in enumerate(zip(axes_row, panels)):
            if col == 0:
                ax.imshow(panel, cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(panel, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col].replace(" (", "\n("), fontsize=7)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--filters", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    start = time.time()
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_shapes(args.train, args.size, rng)
    x_test, y_test = make_shapes(args.test, args.size, rng)
    shares = np.bincount(y_test.ravel(), minlength=len(CLASSES)) / y_test.size
    print(f"{args.train} train / {args.test} test images {args.size}x{args.size}; "
          "test pixels: " + ", ".join(f"{c} {s:.0%}" for c, s in zip(CLASSES, shares)))

    keras.utils.set_random_seed(args.seed)
    rows, predictions = [], {}
    for name, model in build_models(args.size, tuple(args.filters)).items():
        tic = time.time()
        steps = args.epochs * int(np.ceil(args.train / args.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
        model.compile(keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy")
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
        predicted = np.argmax(model.predict(x_test, batch_size=64, verbose=0), axis=-1)
        matrix = confusion(y_test, predicted, len(CLASSES))
        miou, per_class = mean_iou(matrix)
        accuracy = np.trace(matrix) / matrix.sum()
        rows.append((name, model.count_params(), accuracy, miou, per_class, time.time() - tic))
        predictions[name] = predicted[:6]

    print(f"\n{'model':<30} | {'params':>7} | {'pixel acc':>9} | {'mean IoU':>8} | "
          + " | ".join(f"{c[:8]:>8}" for c in CLASSES[1:]) + f" | {'time':>5}")
    print("-" * 100)
    for name, params, accuracy, miou, per_class, seconds in rows:
        print(f"{name:<30} | {params:7d} | {accuracy:9.3f} | {miou:8.3f} | "
              + " | ".join(f"{v:8.3f}" for v in per_class[1:]) + f" | {seconds:4.0f}s")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "segmentation.png")
    plot(x_test[:6], y_test[:6], predictions, path)
    print(f"\npredictions saved to {path}")
    print(f"total {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
