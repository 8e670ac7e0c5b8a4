"""Is the input pipeline fast enough to feed the U-Net? Examples/s produced vs consumed.

    python benchmarks/input_pipeline.py                 # Spleeter-size U-Net, about 2 minutes on 2 CPU cores
    python benchmarks/input_pipeline.py --small         # the small U-Net of benchmarks/jansson_table.py
    python benchmarks/input_pipeline.py --batch-size 4 --steps 10 --batches 40

Produced: the training pipeline on the built-in rendered Bach chorales
(decoded once and cached in memory), timed on its own after a warm-up, in
two stages so a slow one can be found:

- ``waveforms``: ``stems_dataset`` (random chunks, remixed across tracks)
  with random gains and channel swaps, grouped as vocals/accompaniment,
  then ``batch`` (shuffle, repeat, batch, prefetch);
- ``+ spectrograms``: the same followed by ``to_spectrogram_pairs``
  (STFT magnitudes of the mixture and of both targets), what ``fit`` sees.

Consumed: one training step of the U-Net separator (Adam, Jansson's L1) on
a batch of those exact shapes, with ``train_on_batch`` on a batch held in
memory, so no input work is included. Last, ``fit`` is run on the pipeline
itself: on a machine with few cores the pipeline and the step share them,
and that row is what training really gets.

The pipeline is not the bottleneck when it produces at least ``--target``
(3) times the examples a step consumes.
"""
import argparse
import os
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true",
                        help="22.05 kHz, STFT 1024/256, 512 bins × 128 frames, filters 8…256")
    parser.add_argument("--filters", type=int, nargs="+", help="override the U-Net's filters")
    parser.add_argument("--batch-size", type=int, help="default 2 (Spleeter size) or 8 (--small)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--batches", type=int, default=20, help="timed pipeline batches")
    parser.add_argument("--tracks", type=int, default=12, help="built-in chorales to render")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each chorale")
    parser.add_argument("--cache", default="memory", help="'memory' or a folder for .npy copies")
    parser.add_argument("--target", type=float, default=3.0,
                        help="pipeline/step ratio needed to call the pipeline fast enough")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def build_separator(args):
    """The Spleeter 2-stem waveform model (untrained: only shapes matter) or a small one."""
    from keras_sep import pretrained
    from keras_sep.models import UNetSeparator, WaveformSeparator

    preset = pretrained.get_preset("spleeter:2stems")
    model, signal = dict(preset["model"]), dict(preset["signal"])
    if args.small:
        model.update(filters=[8, 16, 32, 64, 128, 256], bins=512, frames=128)
        signal.update(sample_rate=22050, frame_length=1024, frame_step=256)
    if args.filters:
        model["filters"] = args.filters
    return WaveformSeparator(UNetSeparator(**model), **signal)


def pipelines(root, separator, args):
    """``(waveform batches, spectrogram-pair batches)`` of the training pipeline."""
    from keras_sep import data
    from keras_sep.data import bach

    settings = data.spectrogram_settings(separator)
    examples = data.stems_dataset(
        root, "train", targets=bach.TWO_STEMS, samples=settings["samples"], remix=True,
        gain=(0.25, 1.25), channel_swap=True, sample_rate=separator.sample_rate,
        cache=args.cache, seed=args.seed, progress=False,
    )
    waveforms = data.batch(examples, args.batch_size, shuffle_buffer=64, seed=args.seed)
    return waveforms, data.to_spectrogram_pairs(waveforms, separator)


def examples_per_second(dataset, batches, batch_size, warmup=3):
    """Rate of a fresh iterator after ``warmup`` batches (tracing, shuffle buffer fill)."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def step_rate(net, batch, steps, batch_size):
    """Examples/s of ``train_on_batch`` on one batch held in memory."""
    x, y = batch
    net.train_on_batch(x, y)  # traces and builds the optimiser
    start = time.perf_counter()
    for _ in range(steps):
        net.train_on_batch(x, y)
    return steps * batch_size / (time.perf_counter() - start)


def fit_rate(net, dataset, steps, batch_size):
    """Examples/s of ``fit`` fed by the pipeline (both share the cores)."""
    net.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    net.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv=None):
    args = parse_args(argv)
    args.batch_size = args.batch_size or (8 if args.small else 2)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()

    import keras

    from keras_sep import data, training

    keras.utils.set_random_seed(args.seed)
    root = data.bach_chorales(num_tracks=args.tracks, seconds=args.seconds, seed=args.seed)
    separator = build_separator(args)
    net = separator.spectrogram_model
    training.compile_separator(net, 1e-4, "l1")
    stamp = time.time()
    waveforms, pairs = pipelines(root, separator, args)
    decode_s = time.time() - stamp
    x, y = next(iter(pairs))
    print(f"data: {root} (decoded and cached in {decode_s:.1f} s)")
    print(f"model: filters {list(net.filters)}, input {tuple(x.shape)} "
          f"({separator.segment_length / separator.sample_rate:.1f} s of audio per example), "
          f"batch {args.batch_size}; {os.cpu_count()} CPU cores", flush=True)

    wave_rate = examples_per_second(waveforms, args.batches, args.batch_size)
    pair_rate = examples_per_second(pairs, args.batches, args.batch_size)
    train_rate = step_rate(net, (x, y), args.steps, args.batch_size)
    fed_rate = fit_rate(net, pairs, args.steps, args.batch_size)

    rows = [
        ("pipeline: waveforms (chunks, augmentation, batch)", wave_rate),
        ("pipeline: + spectrograms (what fit sees)", pair_rate),
        ("training step: train_on_batch, batch in memory", train_rate),
        ("training: fit fed by the pipeline", fed_rate),
    ]
    print("\n| stage | examples/s | ms/example | × step rate |")
    print("|---|---:|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {1000 / rate:.0f} | {rate / train_rate:.2f} |")
    ratio = pair_rate / train_rate
    verdict = "not the bottleneck" if ratio >= args.target else "THE BOTTLENECK"
    print(f"\npipeline / step = {ratio:.1f}× (need ≥ {args.target:g}×): the pipeline is {verdict}; "
          f"fit on the pipeline runs at {fed_rate / train_rate:.0%} of the bare step rate")
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
