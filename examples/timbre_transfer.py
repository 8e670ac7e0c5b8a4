"""DDSP timbre transfer: train on a few minutes of one instrument, then play
melodies it has not heard with that instrument's timbre.

By default the training instrument is a violin playing the soprano and alto
lines of Bach chorales, rendered offline with the built-in SoundFont
renderer (``--data FOLDER`` trains on your own recordings of one instrument
instead). Two held-out chorales measure the reconstruction; an unheard
chorale melody on a flute and, when available offline, the sung vocals of
Spleeter's example (separated with ``spleeter:2stems`` from the local
cache) are transferred to the violin.

Writes WAVs, ``model.keras``, ``results.json`` and ``timbre_transfer.png``
into ``--output``, and prints: the multi-scale spectral loss on held-out
audio against the untrained model and a sine at f0 with the loudness
envelope; the median absolute f0 error of each output against its input in
cents (CREPE on both); training speed and synthesis speed.

    python examples/timbre_transfer.py                    # about 7 CPU minutes
    python examples/timbre_transfer.py --data my_flute/ --steps 2000
"""
import argparse
import json
import logging
import os
import time

import numpy as np

PROGRAMS = {"violin": 40, "flute": 73}
SAMPLE_RATE, FRAME_STEP = 16000, 64


def render_chorale_lines(folder, program, seconds, seed, voices=("soprano", "alto"), skip=0):
    """Render chorale lines (one monophonic voice per file) on one General MIDI
    program until ``seconds`` of audio; returns ``(paths, chorales used)``."""
    from keras_sep import audio
    from keras_sep.data import SoundFontRenderer, chorales

    os.makedirs(folder, exist_ok=True)
    renderer = SoundFontRenderer(sample_rate=SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    candidates = chorales.chorale_paths()
    paths, used, total = [], 0, 0.0
    for index in rng.permutation(len(candidates))[skip:]:
        if total >= seconds:
            break
        notes = chorales.chorale_notes(candidates[index])
        used += 1
        if notes is None:
            continue
        beat = 60.0 / rng.uniform(70, 100)
        for voice in voices:
            timed = [(a * beat, b * beat, key, int(rng.integers(60, 120))) for a, b, key in notes[voice]]
            samples = int((timed[-1][1] + 0.5) * SAMPLE_RATE)
            wave = renderer.render(timed, program=program, samples=samples).mean(axis=1)
            wave *= 0.8 / max(np.abs(wave).max(), 1e-6)
            name = os.path.splitext(os.path.basename(candidates[index]))[0]
            path = os.path.join(folder, f"{name}-{voice}.wav")
            audio.save(path, wave, SAMPLE_RATE)
            paths.append(path)
            total += samples / SAMPLE_RATE
    return paths, used


def sung_voice(seconds):
    """Spleeter's example vocals (mono, 16 kHz) from the local cache, or None."""
    from keras_sep import audio, pretrained
    from keras_sep.separation import Separator

    try:
        path = pretrained.fetch_asset("audio_example.mp3")
        vocals = Separator.from_preset("spleeter:2stems").separate(path, duration=seconds)["vocals"]
    except Exception as error:  # offline without the files: say so and go on
        print(f"no sung voice available offline ({error}); transferring the flute melody only")
        return None
    return audio.resample(vocals, 44100, SAMPLE_RATE).mean(axis=1)


def sine_baseline(features):
    """A sine at f0 whose amplitude gives the loudness envelope: a unit sine
    at f Hz reads 19.8 dB + A(f) with ``loudness_db``'s settings."""
    from keras_sep.ops import loudness, synthesis

    f0 = features["f0_hz"][..., None]
    level = features["loudness_db"][..., None] - 19.8 - loudness.a_weighting_db(f0).numpy()
    amplitude = np.where(features["loudness_db"][..., None] > -79.0, 10.0 ** (level / 20.0), 0.0)
    return synthesis.harmonic_synthesis(f0, amplitude.astype("float32"), SAMPLE_RATE, FRAME_STEP).numpy()


def controls(features, semitones=0.0, loudness_shift=0.0):
    return {"f0_hz": (features["f0_hz"] * 2.0 ** (semitones / 12.0))[..., None].astype("float32"),
            "loudness_db": (features["loudness_db"] + loudness_shift)[..., None].astype("float32")}


def cents_error(reference, output, mask):
    """Median absolute difference in cents over ``mask``."""
    valid = mask & (reference > 0) & (output > 0)
    return float(np.median(np.abs(1200.0 * np.log2(output[valid] / reference[valid]))))


def voiced(features, threshold=0.5):
    return (features["f0_confidence"] > threshold) & (features["loudness_db"] > features["loudness_db"].max() - 40)


def transfer(model, features, stats):
    """Whole-octave pitch shift and a loudness offset that bring the input to
    the training data's mean (as DDSP's notebook adjusts), then synthesis."""
    mask = voiced(features)
    midi = 12 * np.log2(features["f0_hz"][mask] / 440.0) + 69
    semitones = 12.0 * np.round((stats["midi"] - midi.mean()) / 12.0)
    shift = stats["loudness"] - features["loudness_db"][mask].mean()
    inputs = {k: v[None] for k, v in controls(features, semitones, shift).items()}
    return model.predict(inputs, verbose=0)[0, :, 0], semitones, shift


def plot(path, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 4, figsize=(20, 3.2 * len(rows)), squeeze=False)
    for axis_row, (name, x, y, fin, fout, lin, lout) in zip(axes, rows):
        for ax, wave, title in ((axis_row[0], x, f"{name}: input"), (axis_row[1], y, f"{name}: output")):
            ax.specgram(wave, NFFT=1024, Fs=SAMPLE_RATE, noverlap=768, cmap="magma", vmin=-120)
            ax.set_ylim(0, 5000), ax.set_title(title), ax.set_ylabel("Hz")
        t = np.arange(len(fin)) * FRAME_STEP / SAMPLE_RATE
        axis_row[2].plot(t, fin, label="input f0 (shifted)"), axis_row[2].plot(t, fout, label="output f0", alpha=0.7)
        axis_row[2].set_yscale("log"), axis_row[2].set_title("f0 (CREPE), Hz"), axis_row[2].legend()
        axis_row[3].plot(t, lin, label="input (adjusted)"), axis_row[3].plot(t, lout, label="output", alpha=0.7)
        axis_row[3].set_title("loudness, dB"), axis_row[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder of recordings of one instrument (default: render violin chorales)")
    parser.add_argument("--instrument", choices=sorted(PROGRAMS), default="violin")
    parser.add_argument("--minutes", type=float, default=6.0, help="rendered training audio")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="training example length (DDSP: 4; shorter is faster on CPU)")
    parser.add_argument("--units", type=int, default=128, help="MLP and GRU units (DDSP: 512)")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--output", default="timbre_transfer_out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import keras

    from keras_sep import audio
    from keras_sep.data import audio_features, batch, ddsp_dataset, to_model_inputs, track_pitch
    from keras_sep.data.ddsp_features import cached_features, cut_examples
    from keras_sep.losses import MultiScaleSpectralLoss
    from keras_sep.models import ddsp_autoencoder

    out = args.output
    os.makedirs(out, exist_ok=True)
    cache = os.path.join(out, "features")
    keras.utils.set_random_seed(args.seed)

    # === Data: training recordings, held-out recordings, melodies to transfer ===
    if args.data:
        from keras_sep.data.ddsp_features import find_recordings

        files = find_recordings(args.data)
        train_files, heldout_files = (files[:-1], files[-1:]) if len(files) > 1 else (files, files)
    else:
        program = PROGRAMS[args.instrument]
        train_files, used = render_chorale_lines(os.path.join(out, "train"), program, args.minutes * 60, args.seed)
        heldout_files, used2 = render_chorale_lines(os.path.join(out, "heldout"), program, 60, args.seed,
                                                    voices=("soprano",), skip=used)
        melody, _ = render_chorale_lines(os.path.join(out, "melody"), PROGRAMS["flute"], 20, args.seed,
                                         voices=("soprano",), skip=used + used2)
    train = ddsp_dataset(None, SAMPLE_RATE, FRAME_STEP, args.seconds, files=train_files, cache=cache)
    count = int(train.cardinality())
    print(f"training audio: {len(train_files)} files, {count} examples of {args.seconds:g} s")
    train = batch(train.map(to_model_inputs), args.batch_size, shuffle_buffer=count, seed=args.seed)

    # === Model: trained from its initial weights, which are kept as a baseline ===
    model = ddsp_autoencoder(SAMPLE_RATE, FRAME_STEP, hidden_units=args.units, gru_units=args.units,
                             reverb_length=SAMPLE_RATE)
    untrained = model.__class__.from_config(model.get_config())
    untrained.set_weights(model.get_weights())
    loss = MultiScaleSpectralLoss()
    optimizer = keras.optimizers.Adam(args.learning_rate, global_clipnorm=3.0)
    model.compile(optimizer, loss)
    model.fit(train, steps_per_epoch=1, epochs=1, verbose=0)  # builds the graph: not timed
    start = time.perf_counter()
    epochs = 10
    model.fit(train, steps_per_epoch=max(1, (args.steps - 1) // epochs), epochs=epochs, verbose=2)
    steps_per_second = epochs * max(1, (args.steps - 1) // epochs) / (time.perf_counter() - start)
    model.save(os.path.join(out, "model.keras"))

    # === Held-out audio of the training instrument: loss against the baselines ===
    features = [cached_features(p, SAMPLE_RATE, FRAME_STEP, cache=cache) for p in heldout_files]
    held = {k: np.concatenate([cut_examples(f, 4 * SAMPLE_RATE // FRAME_STEP, 4 * SAMPLE_RATE // FRAME_STEP,
                                            FRAME_STEP)[k] for f in features]) for k in features[0]}
    inputs = controls(held)
    target = held["audio"][..., None]
    model.predict(inputs, batch_size=8, verbose=0)
    start = time.perf_counter()
    recon = model.predict(inputs, batch_size=8, verbose=0)
    realtime = target.size / SAMPLE_RATE / (time.perf_counter() - start)
    scores = {
        "trained model": float(loss(target, recon)),
        "untrained model": float(loss(target, untrained.predict(inputs, batch_size=8, verbose=0))),
        "sine at f0 with the loudness envelope": float(loss(target, sine_baseline(held))),
    }
    audio.save(os.path.join(out, "heldout_target.wav"), target[0], SAMPLE_RATE)
    audio.save(os.path.join(out, "heldout_reconstruction.wav"), recon[0], SAMPLE_RATE)
    recon_f0, _ = track_pitch(recon[0, :, 0], SAMPLE_RATE, FRAME_STEP)
    one = {k: v[0] for k, v in held.items()}
    cents = {"held-out reconstruction": cents_error(one["f0_hz"], recon_f0, voiced(one))}

    # === Transfer: the flute melody and the sung voice to the instrument ===
    mask = np.concatenate([voiced(f) for f in features])
    f0_all, ld_all = (np.concatenate([f[k] for f in features]) for k in ("f0_hz", "loudness_db"))
    stats = {"midi": float(np.mean(12 * np.log2(f0_all[mask] / 440.0) + 69)), "loudness": float(ld_all[mask].mean())}
    sources = {} if args.data else {"flute melody": audio.load(melody[0], SAMPLE_RATE)[0].mean(axis=1)}
    voice = sung_voice(20.0)
    if voice is not None:
        sources["sung voice"] = voice
    rows = [("held-out", target[0, :, 0], recon[0, :, 0], one["f0_hz"], recon_f0, one["loudness_db"],
             _loudness(recon[0, :, 0]))]
    for name, wave in sources.items():
        feats = audio_features(wave, SAMPLE_RATE, FRAME_STEP)
        output, semitones, shift = transfer(model, feats, stats)
        out_f0, _ = track_pitch(output, SAMPLE_RATE, FRAME_STEP)
        shifted = feats["f0_hz"] * 2.0 ** (semitones / 12.0)
        cents[name] = cents_error(shifted, out_f0, voiced(feats))
        slug = name.replace(" ", "_")
        audio.save(os.path.join(out, f"{slug}_input.wav"), feats["audio"], SAMPLE_RATE)
        audio.save(os.path.join(out, f"{slug}_output.wav"), output, SAMPLE_RATE)
        rows.append((f"{name} ({semitones:+.0f} st)", feats["audio"], output, shifted, out_f0,
                     feats["loudness_db"] + shift, _loudness(output)))
    plot(os.path.join(out, "timbre_transfer.png"), rows)

    # === Report ===
    print("\nmulti-scale spectral loss on held-out audio (lower is better)")
    for name, value in scores.items():
        print(f"  {name:40s} {value:8.3f}")
    print("\nmedian absolute f0 error of the output against its input (goal <= 20 cents)")
    for name, value in cents.items():
        print(f"  {name:40s} {value:8.1f} cents")
    print(f"\ntraining: {steps_per_second:.3f} steps/s (batch {args.batch_size} x {args.seconds:g} s)")
    print(f"synthesis: {realtime:.1f} x real time (batch 8 x 4 s)")
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump({"loss": scores, "cents": cents, "steps_per_second": steps_per_second,
                   "synthesis_realtime": realtime, "args": vars(args)}, handle, indent=2)
    return 0


def _loudness(wave):
    from keras_sep.ops.loudness import loudness_db

    return loudness_db(wave[None, :, None].astype("float32"), SAMPLE_RATE, FRAME_STEP).numpy()[0, :, 0]


if __name__ == "__main__":
    raise SystemExit(main())
