"""U-Net against its no-skip baseline, as in Jansson et al. (2017)'s results table.

    python benchmarks/jansson_table.py                  # about 10-15 minutes on 2 CPU cores
    python benchmarks/jansson_table.py --steps 2000 --tracks 40 --seconds 30 \\
        --filters 16 32 64 128 256 512 --sample-rate 44100 --frame-length 4096 \\
        --frame-step 1024 --bins 1024 --frames 512 --batch-size 16   # Spleeter's size

Two spectrogram separators are trained from scratch on the built-in rendered
Bach chorales (``keras_sep.data.bach_chorales``, targets ``vocals`` against
``accompaniment``): ``unet_separator`` and the same network with
``skip_connections=False``, the paper's encoder-decoder baseline. Both get
the same seed, the same examples in the same order (remixed across tracks
with random gains and channel swaps), the same optimiser and the same number
of steps, with Jansson's L1 loss on masked magnitudes.

By default the networks are smaller than Spleeter's so the comparison fits a
CPU budget, close to Jansson's own signal settings (8192 Hz, frame 1024):
11.025 kHz audio, STFT frame 512 and hop 128, 256 bins (the whole band up to
5.5 kHz), chunks of 128 frames (1.5 s), filters 8 to 256, batch 8 and 600
steps. Every size is an argument.

Each model separates the whole test tracks through a
:class:`keras_sep.Separator`; BSS Eval v4 scores (one-second frames, median
over frames, then over tracks) give NSDR, SIR and SAR per stem. The oracle row
masks the mixture with the ideal ratio mask computed with the models' own
STFT, an upper bound for these masking separators. The markdown table is
printed; the scores go to ``--output``/results.json and the two trained
waveform models beside it (``unet.keras``, ``baseline_no_skips.keras``).
"""
import argparse
import json
import os
import time

STEMS = ("vocals", "accompaniment")
METRICS = ("NSDR", "SIR", "SAR")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=12,
                        help="chorales to render; a quarter are test tracks")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each chorale")
    parser.add_argument("--sample-rate", type=int, default=11025)
    parser.add_argument("--frame-length", type=int, default=512)
    parser.add_argument("--frame-step", type=int, default=128)
    parser.add_argument("--bins", type=int, default=256)
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--filters", type=int, nargs="+", default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=600, help="training steps per model")
    parser.add_argument("--epochs", type=int, default=1, help="the steps are split into this many epochs")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-tracks", type=int, default=0, help="test tracks scored (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("out", "jansson_table"))
    return parser.parse_args(argv)


def build_separator(args, skip_connections):
    """The waveform model around a freshly initialised spectrogram U-Net."""
    import keras

    from keras_sep.models import WaveformSeparator, unet_separator

    keras.utils.set_random_seed(args.seed)
    net = unet_separator(
        STEMS, filters=args.filters, bins=args.bins, frames=args.frames,
        skip_connections=skip_connections,
        name="unet" if skip_connections else "baseline_no_skips",
    )
    return WaveformSeparator(
        net, sample_rate=args.sample_rate, frame_length=args.frame_length,
        frame_step=args.frame_step, overlap_frames=args.frames // 4,
    )


def training_pairs(root, targets, separator, args):
    """The same augmented batches for every model (stateless randomness, one seed)."""
    from keras_sep import data

    settings = data.spectrogram_settings(separator)
    examples = data.stems_dataset(
        root, "train", targets=targets, samples=settings["samples"], remix=True,
        gain=(0.25, 1.25), channel_swap=True, sample_rate=args.sample_rate, seed=args.seed,
        progress=False,
    )
    batches = data.batch(examples, args.batch_size, shuffle_buffer=64, seed=args.seed)
    return data.to_spectrogram_pairs(batches, separator)


def train_and_score(name, skip_connections, root, targets, tracks, args):
    from keras_sep import evaluation, training
    from keras_sep.separation import Separator

    separator = build_separator(args, skip_connections)
    net = separator.spectrogram_model
    params = sum(int(w.numpy().size) for w in net.trainable_weights)
    print(f"{name}: {params:,} trainable parameters, training {args.steps} steps", flush=True)
    stamp = time.time()
    net, history = training.fit_separator(
        net, training_pairs(root, targets, separator, args), epochs=args.epochs,
        steps_per_epoch=max(1, args.steps // args.epochs), learning_rate=args.learning_rate,
        loss="l1", strategy="default", precision="float32", verbose=2,
    )
    train_s = time.time() - stamp
    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, f"{net.name}.keras")
    separator.with_spectrogram_model(net).save(path)
    stamp = time.time()
    rate = args.sample_rate
    results = evaluation.evaluate(
        Separator(separator.with_spectrogram_model(net), progress=False), tracks, oracles=(),
        window=rate, hop=rate, progress=False,
    )
    eval_s = time.time() - stamp
    print(f"{name}: trained in {train_s:.0f} s (final L1 {history['loss'][-1]:.4f}), "
          f"scored in {eval_s:.0f} s", flush=True)
    return {"parameters": params, "train_s": train_s, "eval_s": eval_s, "history": history,
            "model": path, "results": results}


def oracle_scores(tracks, mixture_sdr, args):
    """IRM oracle with the models' STFT: ``{"tracks": ..., "summary": {stem: metrics}}``."""
    import numpy as np

    from keras_sep import evaluation

    per_track = {}
    for name, mixture, sources in tracks:
        estimates = evaluation.oracle_separation(
            mixture, sources, "irm", args.frame_length, args.frame_step
        )
        scores = evaluation.bss_eval(sources, estimates, args.sample_rate, args.sample_rate)
        for stem in scores:
            scores[stem]["NSDR"] = scores[stem]["SDR"] - mixture_sdr[name][stem]
        per_track[name] = scores
    summary = {
        stem: {m: float(np.nanmedian([per_track[t][stem][m] for t in per_track]))
               for m in ("SDR",) + METRICS}
        for stem in STEMS
    }
    return {"tracks": per_track, "summary": summary}


def table(rows):
    """Markdown, one row per method: NSDR / SIR / SAR of each stem."""
    head = " | ".join(f"{stem} {metric}" for stem in STEMS for metric in METRICS)
    lines = [f"| method | {head} |", "|---|" + "---:|" * (len(STEMS) * len(METRICS))]
    for method, summary in rows.items():
        cells = " | ".join(f"{summary[stem][metric]:.2f}" for stem in STEMS for metric in METRICS)
        lines.append(f"| {method} | {cells} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()

    from keras_sep import data, evaluation
    from keras_sep.data import bach

    targets = dict(bach.TWO_STEMS)
    root = data.bach_chorales(num_tracks=args.tracks, seconds=args.seconds, seed=args.seed)
    tracks = list(evaluation.folder_tracks(root, "test", targets, args.sample_rate))
    if args.eval_tracks:
        tracks = tracks[: args.eval_tracks]
    print(f"data: {root}; {len(tracks)} test tracks, {args.sample_rate} Hz, STFT "
          f"{args.frame_length}/{args.frame_step}, {args.bins} bins × {args.frames} frames, "
          f"filters {args.filters}, batch {args.batch_size}, {args.steps} steps, "
          f"learning rate {args.learning_rate:g}", flush=True)

    runs = {
        "U-Net": train_and_score("U-Net", True, root, targets, tracks, args),
        "baseline (no skips)": train_and_score("baseline", False, root, targets, tracks, args),
    }
    mixture_sdr = {
        track: {stem: rows["mixture"][stem]["SDR"] for stem in STEMS}
        for track, rows in runs["U-Net"]["results"]["tracks"].items()
    }
    oracle = oracle_scores(tracks, mixture_sdr, args)

    rows = {name: run["results"]["summary"]["model"] for name, run in runs.items()}
    rows["oracle IRM"] = oracle["summary"]
    print(f"\nmedian over {len(tracks)} test tracks (BSS Eval v4, dB):\n")
    print(table(rows))
    print()
    unet, base = rows["U-Net"], rows["baseline (no skips)"]
    for stem in STEMS:
        gain = unet[stem]["NSDR"] - base[stem]["NSDR"]
        share = [rows[m][stem]["NSDR"] / oracle["summary"][stem]["NSDR"] for m in ("U-Net", "baseline (no skips)")]
        print(f"{stem}: U-Net − baseline NSDR {gain:+.2f} dB; share of the oracle's NSDR: "
              f"U-Net {share[0]:.0%}, baseline {share[1]:.0%}")

    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, "results.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"config": vars(args), "data": os.path.abspath(root), "targets": targets,
                   "table": rows, "runs": runs, "oracle_irm": oracle,
                   "total_s": time.time() - start}, handle, indent=2)
    print(f"\ntotal {time.time() - start:.0f} s; results → {path}")


if __name__ == "__main__":
    main()
