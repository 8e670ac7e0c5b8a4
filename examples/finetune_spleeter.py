"""Fine-tune Spleeter's pretrained 2-stem model on a stems folder; SDR before and after.

    python examples/finetune_spleeter.py                 # built-in Bach chorales, a few minutes on 2 CPU cores
    python examples/finetune_spleeter.py --freeze-encoder --steps 60
    python examples/finetune_spleeter.py --root musdb18hq --tracks 0 --epochs 20 \\
        --steps 200 --frames 512 --batch-size 4 --eval-seconds 60 --eval-tracks 50

Deezer's weights are loaded (``keras_sep.pretrained.load_model``). Their
batch norms hold the untrained 0/1 statistics, so every batch-norm layer is
made non-trainable, which keeps it in inference mode inside ``fit`` too
(``keras_sep.training.inference_mode_batch_norm``); ``--freeze-encoder`` also
freezes the encoder stages. The spectrogram U-Nets are then trained with
Jansson's L1 loss on random chunks of the training tracks (remixed across
tracks, random gains and channel swaps unless ``--no-augment``).

Without ``--root`` the data are the built-in rendered Bach chorales
(``keras_sep.data.bach_chorales``) grouped as ``vocals`` (the soprano, sung
on a choir patch) against ``accompaniment`` (alto, tenor, bass, drums). With
``--root`` any MUSDB-layout folder ``ROOT/{train,test}/<track>/<stem>.wav``
works: a ``vocals`` stem is the target and every other stem (or an
``accompaniment`` stem if there is one) the accompaniment, unless
``--targets`` gives a JSON grouping.

Before and after training, the whole waveform model separates the first
``--eval-seconds`` of up to ``--eval-tracks`` test tracks through a
:class:`keras_sep.Separator`, scored with BSS Eval v4
(``keras_sep.evaluation.evaluate``); the table gives the medians over tracks
and the ideal-ratio-mask oracle. Written to ``--output``:
``finetuned.keras`` (waveform in, stems out), ``config.json`` (the resolved
configuration) and ``results.json`` (every score).
"""
import argparse
import json
import os
import time

METRICS = ("SDR", "NSDR", "SIR", "SAR")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", help="MUSDB-layout stems folder (default: built-in Bach chorales)")
    parser.add_argument("--targets", help='JSON grouping, e.g. \'{"vocals": ["vocals"], '
                        '"accompaniment": ["drums", "bass", "other"]}\'')
    parser.add_argument("--tracks", type=int, default=12,
                        help="built-in chorales to render (a quarter are test tracks)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="length of each built-in chorale")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--frames", type=int, default=256,
                        help="training chunk in STFT frames (multiple of 64; Spleeter: 512)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--freeze-encoder", action="store_true",
                        help="train the decoders and mask heads only")
    parser.add_argument("--no-augment", action="store_true",
                        help="no remixing across tracks, random gains or channel swaps")
    parser.add_argument("--eval-tracks", type=int, default=3, help="test tracks scored")
    parser.add_argument("--eval-seconds", type=float, default=15.0,
                        help="seconds scored from the start of each test track")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("out", "finetune_spleeter"))
    return parser.parse_args(argv)


def resolve_data(args):
    """``(root, targets)``: the stems folder and the vocals/accompaniment grouping."""
    from keras_sep import data
    from keras_sep.data import bach
    from keras_sep.data.stems import common_stems

    if args.targets:
        targets = json.loads(args.targets)
    if not args.root:
        root = data.bach_chorales(num_tracks=args.tracks, seconds=args.seconds, seed=args.seed)
        return root, (targets if args.targets else dict(bach.TWO_STEMS))
    if args.targets:
        return args.root, targets
    tracks = data.find_tracks(args.root, "train")
    stems = common_stems(tracks)
    if "vocals" not in stems:
        raise SystemExit(f"{args.root}: no 'vocals' stem (stems: {list(stems)}); give --targets")
    if "accompaniment" in stems:
        return args.root, {"vocals": ["vocals"], "accompaniment": ["accompaniment"]}
    return args.root, {"vocals": ["vocals"], "accompaniment": [s for s in stems if s != "vocals"]}


def training_pairs(root, targets, model, args):
    """Batches of ``(mixture magnitude, {instrument: magnitude})`` for the U-Nets."""
    from keras_sep import data

    settings = data.spectrogram_settings(model, frames=args.frames)
    augment = not args.no_augment
    examples = data.stems_dataset(
        root, "train", targets=targets, samples=settings["samples"], remix=augment,
        gain=(0.25, 1.25) if augment else None, channel_swap=augment, seed=args.seed,
        progress=False,
    )
    batches = data.batch(examples, args.batch_size, shuffle_buffer=64, seed=args.seed)
    return data.to_spectrogram_pairs(batches, model, frames=args.frames), settings


def test_tracks(root, targets, args, sample_rate):
    """The first ``--eval-seconds`` of the first ``--eval-tracks`` test tracks, in memory."""
    from keras_sep import evaluation

    length = int(round(args.eval_seconds * sample_rate))
    tracks = []
    for name, mixture, sources in evaluation.folder_tracks(root, "test", targets, sample_rate):
        if len(tracks) == args.eval_tracks:
            break
        tracks.append((name, mixture[:length], {t: s[:length] for t, s in sources.items()}))
    if not tracks:
        raise SystemExit(f"{root}: no test tracks to score")
    return tracks


def score(model, tracks, oracles):
    from keras_sep import evaluation
    from keras_sep.separation import Separator

    separator = Separator(model, progress=False)
    rate = model.sample_rate
    return evaluation.evaluate(separator, tracks, oracles=oracles, window=rate, hop=rate,
                               progress=False)


def comparison_table(before, after, targets):
    """Markdown: per target and metric, pretrained → fine-tuned, and the IRM oracle."""
    lines = ["| target | metric | pretrained | fine-tuned | change | oracle IRM |",
             "|---|---|---:|---:|---:|---:|"]
    for target in targets:
        for metric in METRICS:
            old = before["summary"]["model"][target][metric]
            new = after["summary"]["model"][target][metric]
            oracle = before["summary"]["oracle_irm"][target][metric]
            lines.append(f"| {target} | {metric} | {old:.2f} | {new:.2f} | {new - old:+.2f} "
                         f"| {oracle:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()

    import keras

    from keras_sep import pretrained, training

    keras.utils.set_random_seed(args.seed)
    model = pretrained.load_model("spleeter:2stems")
    net = model.spectrogram_model
    frozen_bn = training.inference_mode_batch_norm(net)
    frozen_encoder = training.freeze_encoder(net) if args.freeze_encoder else 0
    root, targets = resolve_data(args)
    if set(targets) != set(model.instruments):
        raise SystemExit(f"targets {sorted(targets)} must be the model's {list(model.instruments)}")
    tracks = test_tracks(root, targets, args, model.sample_rate)
    print(f"data: {root} ({len(tracks)} test tracks × {args.eval_seconds:g} s scored)")
    print(f"targets: {json.dumps(targets)}")
    print(f"batch norms in inference mode: {frozen_bn}; frozen encoder stages: {frozen_encoder}; "
          f"trainable weights: {sum(int(w.numpy().size) for w in net.trainable_weights):,}")

    stamp = time.time()
    before = score(model, tracks, oracles=("irm",))
    eval_before_s = time.time() - stamp

    train_ds, settings = training_pairs(root, targets, model, args)
    print(f"training {args.epochs} × {args.steps} steps of {args.batch_size} chunks × "
          f"{args.frames} frames ({settings['samples'] / model.sample_rate:.1f} s), "
          f"learning rate {args.learning_rate:g}")
    stamp = time.time()
    net, history = training.fit_separator(
        net, train_ds, epochs=args.epochs, steps_per_epoch=args.steps,
        learning_rate=args.learning_rate, loss="l1", strategy="default", precision="float32",
        verbose=2,
    )
    train_s = time.time() - stamp
    tuned = model.with_spectrogram_model(net)

    stamp = time.time()
    after = score(tuned, tracks, oracles=())
    eval_after_s = time.time() - stamp

    os.makedirs(args.output, exist_ok=True)
    model_path = os.path.join(args.output, "finetuned.keras")
    tuned.save(model_path)
    config = {
        "base": "spleeter:2stems",
        "args": vars(args),
        "data": {"root": os.path.abspath(root), "targets": targets,
                 "test_tracks": [name for name, _, _ in tracks]},
        "spectrogram": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "batch_norm_inference_mode": True,
        "precision": "float32",
        "model": tuned.get_config(),
    }
    config_path = os.path.join(args.output, "config.json")
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2, default=str)
    results = {"before": before, "after": after, "history": history,
               "seconds": {"eval_before": eval_before_s, "train": train_s,
                           "eval_after": eval_after_s, "total": time.time() - start}}
    results_path = os.path.join(args.output, "results.json")
    with open(results_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)

    print("\nL1 loss per epoch: " + ", ".join(f"{v:.4f}" for v in history.get("loss", [])))
    print(f"median over {len(tracks)} test tracks (BSS Eval v4, dB):\n")
    print(comparison_table(before, after, targets))
    print(f"\ntime: evaluation {eval_before_s:.0f} s + training {train_s:.0f} s "
          f"+ evaluation {eval_after_s:.0f} s; total {time.time() - start:.0f} s")
    print(f"fine-tuned model → {model_path}")
    print(f"config → {config_path}")
    print(f"scores → {results_path}")


if __name__ == "__main__":
    main()
