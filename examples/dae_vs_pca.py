"""Deep autoencoder vs PCA on the 8x8 digits, after Hinton & Salakhutdinov (2006).

On scikit-learn's handwritten digits (pixels scaled to [0, 1], a fixed
1347/450 train/test split) and for each code size, this trains

- the paper's model and recipe: a tied 64-256-128-64-code autoencoder of
  logistic units with a linear code, pretrained layer by layer as RBMs
  (``model.pretrain``, contrastive divergence) and fine-tuned end to end;
- the same architecture with ELU units, trained end to end from scratch;
- PCA with the same code size;

prints the test reconstruction MSE of each and its ratio to PCA's, and
plots the 2-D codes of all three coloured by digit (``dae_vs_pca.png``),
the small-scale version of the paper's figure 3. PCA at 30 of 64
dimensions is nearly lossless, so the comparison that matters is at 2 and 10.

    python examples/dae_vs_pca.py                 # about 4 minutes on 2 CPU cores
    python examples/dae_vs_pca.py --codes 2 --epochs 50 --elu-epochs 50 --out /tmp/run
"""
import argparse
import os
import time


def load_digits_split(seed=0, test_size=450):
    """Digits scaled to [0, 1], shuffled with ``seed``: (train, test, y_train, y_test)."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype("float32") / 16.0
    order = np.random.default_rng(seed).permutation(len(x))
    test, train = order[:test_size], order[test_size:]
    return x[train], x[test], digits.target[train], digits.target[test]


def train_autoencoder(train, code_dim, args, activation, pretrain):
    """Adam with cosine decay on the MSE, after RBM pretraining if asked."""
    import keras
    import numpy as np

    from keras_sep.models import deep_autoencoder

    keras.utils.set_random_seed(args.seed)
    model = deep_autoencoder(
        train.shape[1],
        hidden=tuple(args.hidden),
        code_dim=code_dim,
        tied=not args.untied,
        activation=activation,
    )
    if pretrain:
        model.pretrain(train, epochs=args.pretrain_epochs, seed=args.seed, verbose=0)
        epochs, batch_size, rate = args.epochs, args.batch_size, args.learning_rate
    else:
        epochs, batch_size, rate = args.elu_epochs, args.elu_batch_size, args.elu_learning_rate
    steps = epochs * int(np.ceil(len(train) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(rate, steps)
    model.compile(keras.optimizers.Adam(schedule), loss="mse")
    model.fit(train, train, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def plot_codes(codes, labels, path):
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(codes), figsize=(5 * len(codes), 4.5))
    for ax, (title, points) in zip(axes, codes.items()):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=8)
        # Zoom on the bulk: a few outlying codes would squeeze the clusters.
        for axis, set_lim in ((0, ax.set_xlim), (1, ax.set_ylim)):
            low, high = np.percentile(points[:, axis], [1, 99])
            margin = 0.1 * (high - low)
            set_lim(low - margin, high + margin)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128, 64])
    parser.add_argument("--untied", action="store_true", help="untied decoder weights")
    parser.add_argument("--pretrain-epochs", type=int, default=50, help="RBM epochs per layer")
    parser.add_argument("--epochs", type=int, default=800, help="fine-tuning epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--elu-epochs", type=int, default=200)
    parser.add_argument("--elu-batch-size", type=int, default=64)
    parser.add_argument("--elu-learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args(argv)

    import numpy as np

    from keras_sep.models import PCA

    start = time.time()
    train, test, _, y_test = load_digits_split(args.seed)
    print(f"digits: {len(train)} train / {len(test)} test, 64 pixels in [0, 1]")
    rows, codes_2d = [], {}
    for code_dim in args.codes:
        tic = time.time()
        pca = PCA(code_dim).fit(train)
        pca_mse = float(np.mean((pca.reconstruct(test) - test) ** 2))
        rbm = train_autoencoder(train, code_dim, args, "sigmoid", pretrain=True)
        rbm_mse = float(np.mean((rbm.reconstruct(test) - test) ** 2))
        elu = train_autoencoder(train, code_dim, args, "elu", pretrain=False)
        elu_mse = float(np.mean((elu.reconstruct(test) - test) ** 2))
        kept = float(pca.explained_variance_ratio_.sum())
        rows.append((code_dim, rbm_mse, elu_mse, pca_mse, kept, time.time() - tic))
        if code_dim == 2:
            codes_2d = {"logistic, RBM-pretrained (2-D code)": rbm.encode(test),
                        "ELU, end to end (2-D code)": elu.encode(test),
                        "PCA (2 components)": pca.encode(test)}

    arch = "-".join(str(n) for n in [64, *args.hidden]) + "-code"
    print(f"\ndeep autoencoder {arch} ({'untied' if args.untied else 'tied'}) vs PCA, "
          "test MSE per pixel")
    print(f"{'code':>4} | {'RBM+fine-tune':>13} | {'ELU':>8} | {'PCA':>8} | "
          f"{'RBM/PCA':>7} | {'ELU/PCA':>7} | {'PCA var kept':>12} | {'time':>5}")
    print("-" * 87)
    for code_dim, rbm_mse, elu_mse, pca_mse, kept, seconds in rows:
        print(f"{code_dim:>4} | {rbm_mse:13.5f} | {elu_mse:8.5f} | {pca_mse:8.5f} | "
              f"{rbm_mse / pca_mse:7.3f} | {elu_mse / pca_mse:7.3f} | {kept:12.1%} | "
              f"{seconds:4.0f}s")
    if codes_2d:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "dae_vs_pca.png")
        plot_codes(codes_2d, y_test, path)
        print(f"\n2-D codes plotted to {path}")
    print(f"total {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
