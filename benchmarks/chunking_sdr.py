"""What the separator's chunking modes cost and give, on long tracks.

    python benchmarks/chunking_sdr.py [--tracks 6] [--seconds 120] [--museval-tracks 3] [--root DIR]

Spleeter's 2-stems model (``spleeter:2stems``, ratio masks, no ``--mwf``)
separates long tracks with known stems in each chunking mode of
:class:`keras_sep.separation.Separator`:

* ``overlap``: 512-frame chunks overlapping by 64 cross-faded frames;
* ``spleeter``: Spleeter's own non-overlapping 512-frame chunks;
* ``unchunked``: the whole track as one chunk (the U-Net is fully
  convolutional; the chunk is the track's frames rounded up to a multiple
  of 64), the reference without seams.

The tracks (``--seconds`` long, a seam every 11.9 s):

* accompaniment: Bach chorales rendered by keras_sep's SoundFont renderer
  (:func:`keras_sep.data.bach_chorales`: alto, tenor, bass on sampled
  instruments plus a drum kit; the soprano is left out), several chorales
  one after the other, each in its own key, tempo and instruments;
* vocals: real singing, phrases of 2–6 s cut from the vocal stem of
  Spleeter's example song (Spleeter's own separation of it, so it is a
  little easier for this model than a studio stem), each played faster or
  slower by up to ±3 semitones (pitch and tempo together), at its own gain,
  with pauses between phrases; the vocal level is drawn per track.

Printed per mode: BSS Eval v4 (museval, 1 s windows, median over windows
then over tracks, as in SiSEC) SDR/SIR/SAR per stem against the true
stems; the same SDR over only the 1 s windows that hold a seam of that
mode; the seam error as the SNR of each chunked mode's stems against the
unchunked ones (whole track, and the 1 s around each seam; higher is
closer); and the network work (chunks of 512 frames) and wall time of
the chunked separation relative to ``spleeter``.
"""
import argparse
import datetime
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE_VOCALS = os.path.join(HERE, "..", "..", "shared", "data", "spleeter_2stems", "vocals.npy")
RATE = 44100
ACCOMPANIMENT = ("alto", "tenor", "bass", "drums")
MODES = ("overlap", "spleeter", "unchunked")

sys.path.insert(0, HERE)
from griffin_lim import machine  # noqa: E402  (the benchmark beside this one)


def chorale_accompaniments(root):
    """Every rendered chorale's accompaniment (alto+tenor+bass+drums), stereo."""
    import soundfile

    tracks = []
    for subset in ("test", "train"):
        folder = os.path.join(root, subset)
        for name in sorted(os.listdir(folder)):
            stems = [soundfile.read(os.path.join(folder, name, f"{s}.wav"), dtype="float32")[0] for s in ACCOMPANIMENT]
            tracks.append(sum(stems))
    return tracks


def vocal_line(rng, samples):
    """Phrases of the example's sung vocal, varied, with pauses: ``(samples, 2)``."""
    import soxr

    source = np.load(EXAMPLE_VOCALS).astype(np.float32)
    line = np.zeros((samples, 2), np.float32)
    at = int(rng.uniform(0.0, 2.0) * RATE)
    fade = np.linspace(0.0, 1.0, int(0.02 * RATE), dtype=np.float32)[:, None]
    while at < samples:
        length = int(rng.uniform(2.0, 6.0) * RATE)
        start = int(rng.integers(0, len(source) - length))
        phrase = source[start : start + length]
        ratio = 2.0 ** (rng.integers(-3, 4) / 12.0)  # up or down by whole semitones
        phrase = soxr.resample(phrase, RATE * ratio, RATE).astype(np.float32)
        phrase[: len(fade)] *= fade
        phrase[-len(fade) :] *= fade[::-1]
        phrase *= np.float32(10 ** (rng.uniform(-4.0, 2.0) / 20))
        end = min(samples, at + len(phrase))
        line[at:end] += phrase[: end - at]
        at = end + int(rng.uniform(0.3, 3.0) * RATE)
    return line


def build_tracks(count, seconds, seed, root):
    """``[(mixture, {"vocals": ..., "accompaniment": ...})]``, each ``seconds`` long."""
    accompaniments = chorale_accompaniments(root)
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(accompaniments)))
    samples = int(seconds * RATE)
    tracks = []
    for _ in range(count):
        parts, total = [], 0
        while total < samples:
            if not order:
                order = list(rng.permutation(len(accompaniments)))
            part = accompaniments[order.pop()]
            parts.append(part)
            total += len(part)
        accompaniment = np.concatenate(parts)[:samples]
        vocals = vocal_line(rng, samples)
        # Vocals (while sung) from 6 dB under to 3 dB over the accompaniment.
        sung = np.abs(vocals).max(axis=1) > 1e-4
        level = np.sqrt(np.mean(accompaniment**2) / max(np.mean(vocals[sung] ** 2), 1e-12))
        vocals *= np.float32(level * 10 ** (rng.uniform(-6.0, 3.0) / 20))
        gain = np.float32(0.9 / np.abs(vocals + accompaniment).max())
        stems = {"vocals": vocals * gain, "accompaniment": accompaniment * gain}
        tracks.append((stems["vocals"] + stems["accompaniment"], stems))
    return tracks


def unchunked_model(model, samples):
    """The same network and STFT with one chunk spanning ``samples``."""
    from keras_sep.models import WaveformSeparator

    frames = -(-(samples + model.frame_length) // model.frame_step)
    return WaveformSeparator(
        model.spectrogram_model, sample_rate=model.sample_rate, frame_length=model.frame_length,
        frame_step=model.frame_step, chunk_frames=-(-frames // 64) * 64, overlap_frames=0,
        mask_extension=model.mask_extension, separation_exponent=model.separation_exponent,
    )


def seam_centres(model, samples, mode):
    """Sample positions of the centres of the seams of ``mode``."""
    overlap = model.overlap_frames if mode == "overlap" else 0
    hop = model.chunk_hop(overlap)
    chunks = model.num_chunks(samples, overlap)
    # Chunk k starts at frame k * hop of the STFT of the input with
    # frame_length zeros in front; its seam with chunk k-1 is centred on
    # the middle of their shared frames (the boundary without overlap).
    centres = [(k * hop + overlap / 2) * model.frame_step - model.frame_length for k in range(1, chunks)]
    return [int(c) for c in centres if 0 <= c < samples]


def snr(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-20))


def framewise(references, estimates):
    """museval's framewise ``{metric: (stems, windows)}`` of 1 s windows."""
    import museval

    names = list(references)
    scores = museval.evaluate(np.stack([references[n] for n in names]), np.stack([estimates[n] for n in names]),
                              win=RATE, hop=RATE)
    return dict(zip(("SDR", "ISR", "SIR", "SAR"), scores))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--museval-tracks", type=int, default=3,
                        help="tracks scored with museval (slow: about a second per 1 s window on 2 cores)")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--chorales", type=int, default=24, help="chorales rendered for the accompaniments")
    parser.add_argument("--root", default=None, help="folder of the rendered chorales (default: keras_sep's cache)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_sep import data, pretrained
    from keras_sep.separation import Separator

    root = data.bach_chorales(num_tracks=args.chorales, seconds=90, seed=args.seed, root=args.root, progress=False)
    tracks = build_tracks(args.tracks, args.seconds, args.seed, root)
    model = pretrained.load_model("spleeter:2stems")
    names = list(model.instruments)
    separators = {m: Separator(model, chunking=m, batch_size=1, progress=False) for m in MODES[:2]}
    for separator in separators.values():
        separator.separate(tracks[0][0][:RATE])  # plan and compile outside the timing
    rows = {m: {"scores": [], "at_seams": [], "snr": [], "snr_seams": [], "seconds": 0.0, "chunks": 0} for m in MODES}
    for index, (mixture, references) in enumerate(tracks):
        print(f"track {index}: {len(mixture) / RATE:.0f} s, {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
        outputs = {}
        for mode, separator in separators.items():
            start = time.perf_counter()
            outputs[mode] = separator.separate(mixture)
            rows[mode]["seconds"] += time.perf_counter() - start
            rows[mode]["chunks"] += model.num_chunks(len(mixture), separator.overlap_frames)
        whole = unchunked_model(model, len(mixture))
        start = time.perf_counter()
        out = whole(mixture[None])
        rows["unchunked"]["seconds"] += time.perf_counter() - start
        outputs["unchunked"] = {n: out[n].numpy()[0] for n in names}
        for mode in MODES:
            scored = index < args.museval_tracks
            if scored:
                scores = framewise(references, outputs[mode])
                rows[mode]["scores"].append({k: np.nanmedian(v, axis=1) for k, v in scores.items()})
            if mode == "unchunked":
                continue
            centres = seam_centres(model, len(mixture), mode)
            if scored:
                windows = sorted({c // RATE for c in centres if c // RATE < scores["SDR"].shape[1]})
                rows[mode]["at_seams"].append(np.nanmedian(scores["SDR"][:, windows], axis=1))
            plain = outputs["unchunked"]
            rows[mode]["snr"].append([snr(plain[n], outputs[mode][n]) for n in names])
            near = np.concatenate([np.arange(max(0, c - RATE // 2), min(len(mixture), c + RATE // 2)) for c in centres])
            rows[mode]["snr_seams"].append([snr(plain[n][near], outputs[mode][n][near]) for n in names])

    command = "python benchmarks/chunking_sdr.py " + " ".join(sys.argv[1:])
    print(f"`{command.strip()}` on {machine()}, {datetime.date.today().isoformat()}; {len(tracks)} tracks of "
          f"{args.seconds:g} s ({model.num_chunks(int(args.seconds * RATE), 0) - 1} seams each in `spleeter` "
          f"chunking), spleeter:2stems, no MWF; dB; museval on the first "
          f"{min(args.museval_tracks, len(tracks))} tracks, "
          f"median over 1 s windows then over tracks; SNR vs unchunked: median over all tracks")
    header = " | ".join(f"{n} {k}" for n in names for k in ("SDR", "SIR", "SAR"))
    print(f"\n| mode | {header} | SDR at seams ({' / '.join(names)}) | SNR vs unchunked ({' / '.join(names)}) "
          f"| same, 1 s around seams | network work | wall time |")
    print("|---|" + "---:|" * (3 * len(names) + 5))
    base = rows["spleeter"]
    for mode in MODES:
        row = rows[mode]
        cells = [f"{np.median([t[k][i] for t in row['scores']]):.2f}"
                 for i in range(len(names)) for k in ("SDR", "SIR", "SAR")]
        if mode == "unchunked":
            cells += ["–", "–", "–", "(1 chunk a track)", f"{row['seconds'] / base['seconds']:.2f}"]
        else:
            cells += [" / ".join(f"{v:.2f}" for v in np.median(row[key], axis=0))
                      for key in ("at_seams", "snr", "snr_seams")]
            cells += [f"{row['chunks'] / base['chunks']:.3f} ({row['chunks']} chunks)",
                      f"{row['seconds'] / base['seconds']:.2f} ({row['seconds']:.0f} s)"]
        print(f"| `{mode}` | " + " | ".join(cells) + " |")
    print("\nPer track, SDR vocals / accompaniment:")
    for i in range(min(args.museval_tracks, len(tracks))):
        print(f"track {i}: " + "; ".join(
            f"{m} " + " / ".join(f"{v:.2f}" for v in rows[m]["scores"][i]["SDR"]) for m in MODES))


if __name__ == "__main__":
    main()
