"""Train a small Open-Unmix on the built-in 4-stem Bach chorales; SDR per stem.

    python examples/open_unmix_chorales.py                  # a few minutes on 2 CPU cores
    python examples/open_unmix_chorales.py --hidden-size 128 --epochs 8 --steps 40

The data are the built-in rendered Bach chorales
(``keras_sep.data.bach_chorales``) grouped into Open-Unmix's four targets:
``vocals`` (the soprano on a choir patch), ``drums``, ``bass`` and
``other`` (alto and tenor). One :class:`keras_sep.models.OpenUnmix` per
target is trained with Open-Unmix's MSE on magnitudes, its input
normalisation started at the training tracks' statistics
(``keras_sep.recipes.train_open_unmix``, the code behind ``keras-sep train``
with a ``umxhq`` preset). Only ``hidden_size`` is small; the STFT (4096/1024
at 44.1 kHz), the 16 kHz bandwidth and the 3-layer BLSTM are umxhq's.

The four networks then separate the test tracks through
:class:`keras_sep.models.OpenUnmixSeparator` (one EM iteration of the
multichannel Wiener filter, as upstream) behind a :class:`keras_sep.Separator`,
scored with BSS Eval v4 (``keras_sep.evaluation.evaluate``) against two
references: the mixture itself as every stem's estimate (the floor) and the
ideal-ratio-mask oracle (an upper bound for masking separators). Written to
``--output``: ``<target>.keras``, ``results.json``, ``table.md`` and
``masks.png`` (mixture spectrogram, then per stem the effective mask
``|stem| / |mixture|`` and the stem's spectrogram, for the first test track).
"""
import argparse
import json
import os
import time

TARGETS = ("vocals", "drums", "bass", "other")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=8,
                        help="built-in chorales to render (a quarter are test tracks)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each chorale")
    parser.add_argument("--hidden-size", type=int, default=32,
                        help="Open-Unmix's hidden size (umxhq: 512)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=25, help="training steps per epoch")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=64,
                        help="training chunk in STFT frames (upstream: 255, 6 s)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--niter", type=int, default=1, help="EM iterations of the Wiener filter")
    parser.add_argument("--eval-tracks", type=int, default=2, help="test tracks scored")
    parser.add_argument("--eval-seconds", type=float, default=15.0,
                        help="seconds scored from the start of each test track")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("out", "open_unmix_chorales"))
    return parser.parse_args(argv)


def training_config(args):
    """The ``keras-sep train`` configuration of the run (a umxhq preset with
    a small hidden size and short chunks)."""
    from keras_sep import recipes

    return recipes.resolve({
        "model": {"preset": "umxhq", "overrides": {
            "hidden_size": args.hidden_size, "signal": {"frames": args.frames}}},
        "data": {"source": "bach", "tracks": args.tracks, "seconds": args.seconds,
                 "batch_size": args.batch_size, "seed": args.seed},
        "training": {"epochs": args.epochs, "steps_per_epoch": args.steps, "validation_steps": 2,
                     "learning_rate": args.learning_rate, "loss": "mse", "precision": "float32",
                     "strategy": "default", "patience": max(args.epochs, 1)},
    })


def test_tracks(args, sample_rate):
    """The first ``--eval-seconds`` of the first ``--eval-tracks`` test tracks."""
    from keras_sep import data, evaluation
    from keras_sep.data import bach

    root = data.bach_chorales(num_tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                              progress=False)
    length = int(round(args.eval_seconds * sample_rate))
    tracks = []
    for name, mixture, sources in evaluation.folder_tracks(root, "test", bach.FOUR_STEMS, sample_rate):
        if len(tracks) == args.eval_tracks:
            break
        tracks.append((name, mixture[:length], {t: s[:length] for t, s in sources.items()}))
    if not tracks:
        raise SystemExit(f"{root}: no test tracks to score")
    return tracks


def separator_of(nets, niter=1):
    """``keras_sep.Separator`` over the trained networks with upstream's Wiener settings."""
    from keras_sep.models import OpenUnmixSeparator
    from keras_sep.separation import Separator

    model = OpenUnmixSeparator({t: nets[t] for t in TARGETS if t in nets}, niter=niter)
    return Separator(model, progress=False)


def sdr_table(results):
    """Markdown: per target the median SDR of the mixture, the model and the IRM oracle."""
    summary = results["summary"]
    lines = ["| target | mixture as estimate | Open-Unmix (trained here) | oracle IRM |",
             "|---|---:|---:|---:|"]
    for target in summary["model"]:
        cells = [summary[m][target]["SDR"] for m in ("mixture", "model", "oracle_irm")]
        lines.append(f"| {target} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    return "\n".join(lines)


def plot_masks(separator, track, path):
    """PNG of the first test track: mixture, then each stem's mask and spectrogram."""
    from keras_sep import plotting

    _, mixture, _ = track
    stems = separator.separate(mixture, sample_rate=separator.sample_rate)
    return plotting.plot_separation(mixture, stems, separator.sample_rate, path)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()

    import keras

    from keras_sep import evaluation, recipes

    keras.utils.set_random_seed(args.seed)
    config = training_config(args)
    os.makedirs(args.output, exist_ok=True)
    print(f"training {len(TARGETS)} networks (hidden size {args.hidden_size}): {args.epochs} × "
          f"{args.steps} steps of {args.batch_size} chunks × {args.frames} frames")
    stamp = time.time()
    nets, histories = recipes.train_open_unmix(config, args.output)
    train_s = time.time() - stamp

    separator = separator_of(nets, args.niter)
    tracks = test_tracks(args, separator.sample_rate)
    stamp = time.time()
    rate = separator.sample_rate
    results = evaluation.evaluate(separator, tracks, oracles=("irm",), window=rate, hop=rate,
                                  progress=False)
    eval_s = time.time() - stamp
    figure = plot_masks(separator, tracks[0], os.path.join(args.output, "masks.png"))

    table = sdr_table(results)
    with open(os.path.join(args.output, "table.md"), "w", encoding="utf-8") as handle:
        handle.write(table + "\n")
    results.update(histories=histories, args=vars(args),
                   seconds={"train": train_s, "evaluate": eval_s, "total": time.time() - start})
    evaluation.save_json(results, os.path.join(args.output, "results.json"))

    for target, history in histories.items():
        print(f"{target}: MSE per epoch " + ", ".join(f"{v:.4g}" for v in history.get("loss", [])))
    print(f"\nmedian SDR (dB, BSS Eval v4) over {len(tracks)} test tracks × {args.eval_seconds:g} s:\n")
    print(table)
    print(f"\ntime: training {train_s:.0f} s + evaluation {eval_s:.0f} s; "
          f"total {time.time() - start:.0f} s")
    print(f"masks → {figure}")
    print(f"networks, table.md, results.json → {args.output}")
    return results


if __name__ == "__main__":
    main()
