"""How much streamed (chunked) Open-Unmix separation differs from the
whole-song separation, per chunk length.

Two set-ups:

- default: the random-weight Open-Unmix networks of tests/data (hidden
  size 8, real 4096/1024 STFT at 44.1 kHz) on a synthetic song of
  ``--seconds`` seconds; reports the SNR of the streamed stems against the
  whole-song ones (higher = closer).

      python benchmarks/open_unmix_chunking.py --seconds 120

- ``--model FOLDER --chorales N``: trained networks (``FOLDER/<target>.keras``
  as ``examples/open_unmix_chorales.py`` and ``keras-sep train`` write them)
  on songs of ``--seconds`` seconds (a comma list) made by concatenating
  built-in Bach chorales the model never saw: the test tracks of
  ``bach_chorales(N, --chorale-seconds, seed 0)`` (the set the example
  trains on with ``--tracks N``), then ``--extra`` chorales past the first
  N. Each stem gets the SiSEC SDR (BSS Eval v4 images, median over 1 s
  frames) of the whole-song separation, of the mixture as its estimate
  (the floor) and of every streamed separation, and the SNR of each
  streamed stem against the whole-song one.

      python examples/open_unmix_chorales.py --tracks 28 --seconds 90 \\
          --hidden-size 64 --epochs 3 --steps 40 --batch-size 8 --frames 255 \\
          --learning-rate 3e-3 --output out/umx_chorales
      python benchmarks/open_unmix_chunking.py --model out/umx_chorales \\
          --chorales 28 --seconds 300,180 \\
          --chunks 2102/302,902/302,1502/302,2702/302,602/2,902/2

BSS Eval v4's SDR (museval, time-invariant distortion filters) is the
per-frame energy ratio of the reference to ``estimate - reference``: the
projections it computes only split that error into spatial, interference
and artefact parts. :func:`sisec_sdr` computes it directly (museval takes
about 2.5 s per second of 4-stem audio on 2 cores); ``--check-museval S``
compares both on the first S seconds. The whole-song reference runs the
networks eagerly over the whole song (about 2 s per second of audio on 2
busy cores); the streamed separations are much faster.
"""
import argparse
import glob
import json
import os
import time

import numpy as np

RATE = 44100
TARGETS = ("vocals", "drums", "bass", "other")
DATA = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "openunmix", "zip")


def song(seconds, seed=0):
    """Notes of changing pitch and loudness over coloured noise, panned."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wave = np.zeros((n, 2))
    for voice in range(4):
        pitch = 110 * 2 ** (rng.integers(0, 24, size=int(seconds * 2) + 1) / 12)
        freq = np.repeat(pitch, RATE // 2)[:n]
        env = np.abs(np.sin(np.pi * t * (1 + voice))) ** 2
        tone = np.sin(2 * np.pi * np.cumsum(freq) / RATE) * env * 0.2
        wave += tone[:, None] * rng.uniform(0.3, 1.0, 2)
    noise = np.convolve(rng.standard_normal(n), np.hanning(32), mode="same")[:, None] * 0.01
    return (wave + noise).astype(np.float32)


def snr_db(reference, estimate):
    reference = np.asarray(reference, np.float64)
    with np.errstate(divide="ignore"):  # identical stems: inf dB
        return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2.0))


def sisec_sdr(references, estimates, window=RATE, hop=RATE):
    """``{target: median over frames of BSS Eval v4 SDR}``, as
    ``museval.evaluate(..., win=window, hop=hop)`` and ``np.nanmedian``.

    A frame where any reference or any estimate is silent is NaN (museval's
    rule); the estimates are cut or zero-padded to the references' length.
    """
    names = list(references)
    ref = np.stack([np.asarray(references[n], np.float64) for n in names])
    est = np.zeros_like(ref)
    for i, n in enumerate(names):
        cut = min(len(estimates[n]), ref.shape[1])
        est[i, :cut] = estimates[n][:cut]
    length = ref.shape[1]
    count = 1 if window >= length else (length - window + hop) // hop
    frames = np.full((len(names), count), np.nan)
    for t in range(count):
        win = slice(t * hop, min(t * hop + window, length))
        r, e = ref[:, win], est[:, win]
        if np.any(np.all(r.sum(axis=2) == 0, axis=1)) or np.any(np.all(e.sum(axis=2) == 0, axis=1)):
            continue
        signal = np.sum(r ** 2, axis=(1, 2))
        error = np.sum((e - r) ** 2, axis=(1, 2))
        with np.errstate(divide="ignore"):
            frames[:, t] = np.where(error == 0, np.inf, 10 * np.log10(signal / np.where(error == 0, 1, error)))
    return {n: float(np.nanmedian(frames[i])) for i, n in enumerate(names)}


def museval_sdr(references, estimates):
    """The same medians through museval itself (slow)."""
    import museval

    names = list(references)
    scores = museval.evaluate(np.stack([references[n] for n in names]),
                              np.stack([estimates[n] for n in names]), win=RATE, hop=RATE)
    return {n: float(np.nanmedian(scores[0][i])) for i, n in enumerate(names)}


def held_out_tracks(train_tracks, chorale_seconds, extra):
    """``[(name, {target: (samples, 2)})]``: the test tracks of the set
    ``examples/open_unmix_chorales.py --tracks train_tracks`` trains on,
    then ``extra`` chorales that come after that set."""
    from keras_sep import data, evaluation
    from keras_sep.data import bach

    tracks = []
    root = data.bach_chorales(num_tracks=train_tracks, seconds=chorale_seconds, seed=0, progress=False)
    for name, _, sources in evaluation.folder_tracks(root, "test", bach.FOUR_STEMS, RATE):
        tracks.append((name, sources))
    if extra:
        # The same seed draws the same chorales in the same order, so a
        # larger set starts with the training set and then holds new ones.
        bigger = data.bach_chorales(num_tracks=train_tracks + extra, seconds=chorale_seconds, seed=0,
                                    progress=False)
        for subset in ("test", "train"):
            for name, _, sources in evaluation.folder_tracks(bigger, subset, bach.FOUR_STEMS, RATE):
                if int(name.split("-")[0]) >= train_tracks:
                    tracks.append((name, sources))
    return tracks


def chorale_songs(tracks, lengths):
    """Songs of ``lengths`` seconds, each the next held-out tracks end to
    end (cycling when they run out); ``[(names, mixture, {target: stem})]``."""
    songs, position = [], 0
    for seconds in lengths:
        need, names, parts = int(round(seconds * RATE)), [], []
        while sum(len(p["vocals"]) for p in parts) < need:
            name, sources = tracks[position % len(tracks)]
            names.append(name)
            parts.append(sources)
            position += 1
        stems = {t: np.concatenate([p[t] for p in parts])[:need].astype(np.float32) for t in TARGETS}
        songs.append((names, sum(stems[t] for t in TARGETS).astype(np.float32), stems))
    return songs


def load_networks(path):
    """``{target: OpenUnmix}`` from ``path/<target>.keras``, or the
    random-weight test networks when ``path`` is None."""
    if path is None:
        from keras_sep.checkpoints.open_unmix import open_unmix_from_pth

        return {t: open_unmix_from_pth(glob.glob(os.path.join(DATA, f"{t}-*.pth"))[0]) for t in TARGETS}
    import keras

    import keras_sep.models  # noqa: F401  (registers the layers)

    return {t: keras.saving.load_model(os.path.join(path, f"{t}.keras"), compile=False) for t in TARGETS
            if os.path.exists(os.path.join(path, f"{t}.keras"))}


def whole_song(model, wave, windows=10):
    """``model(wave[None])`` as numpy stems, in less memory: the networks
    see the whole song (their BLSTMs too), the Wiener filter, which fits
    every ``wiener_win_len`` frames on their own, runs ``windows`` of them
    at a time. (The call itself needs several GB for a few minutes.)"""
    import tensorflow as tf

    from keras_sep.models import open_unmix_separator
    from keras_sep.ops import stft as stft_ops
    from keras_sep.ops import wiener_em

    spectrum = stft_ops.stft(tf.constant(wave[None], tf.float32), model.n_fft, model.n_hop, center=True,
                             pad_mode="reflect")
    magnitude = tf.abs(spectrum)
    estimates = tf.stack([tf.cast(net(magnitude, training=False), tf.float32) for net in model.target_models], -1)
    step = model.wiener_win_len * windows
    sources = tf.concat([
        wiener_em.windowed_wiener(estimates[:, s : s + step], spectrum[:, s : s + step], model.wiener_win_len, 0,
                                  iterations=model.niter, softmask=model.softmask, residual=model.residual,
                                  epsilon=open_unmix_separator.EPSILON)
        for s in range(0, int(spectrum.shape[1]), step)], axis=1)
    del estimates, magnitude
    return {name: np.asarray(stft_ops.istft(sources[..., i], model.n_fft, model.n_hop, center=True,
                                            length=len(wave))[0])
            for i, name in enumerate(model.instruments)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="120", help="song length(s), comma-separated")
    parser.add_argument("--chunks", default="902/302,1502/302,2102/302",
                        help="chunk_frames/overlap_frames choices, comma-separated")
    parser.add_argument("--model", help="folder of <target>.keras networks (default: random test weights)")
    parser.add_argument("--chorales", type=int, metavar="N",
                        help="songs of held-out built-in chorales (the model trained on --tracks N)")
    parser.add_argument("--chorale-seconds", type=float, default=90.0, help="the training set's --seconds")
    parser.add_argument("--extra", type=int, default=12, help="chorales past the training set to add")
    parser.add_argument("--niter", type=int, default=1)
    parser.add_argument("--check-museval", type=float, default=0.0, metavar="S",
                        help="also score the first S seconds with museval and print both")
    parser.add_argument("--json", help="write every number here")
    args = parser.parse_args()

    from keras_sep.models import OpenUnmixSeparator
    from keras_sep.separation import Separator

    nets = load_networks(args.model)
    lengths = [float(s) for s in args.seconds.split(",")]
    if args.chorales:
        songs = chorale_songs(held_out_tracks(args.chorales, args.chorale_seconds, args.extra), lengths)
    else:
        songs = [([f"synthetic seed {i}"], song(s, seed=i), None) for i, s in enumerate(lengths)]
    results = []
    for names, wave, stems in songs:
        seconds = len(wave) / RATE
        model = OpenUnmixSeparator(nets, niter=args.niter)
        if not results:  # the memory-light whole-song path is the call's
            cut = wave[: 20 * RATE]
            call, light = model(cut[None]), whole_song(model, cut, windows=1)
            print("whole-song path against the call on 20 s, SNR (dB): " + ", ".join(
                f"{t} {snr_db(np.asarray(call[t][0]), light[t]):.1f}" for t in nets), flush=True)
        stamp = time.time()
        whole = whole_song(model, wave)
        record = {"seconds": seconds, "tracks": names, "whole_s": time.time() - stamp, "chunks": {}}
        print(f"\n{seconds:g} s song ({', '.join(names)}); whole song in "
              f"{record['whole_s']:.0f} s", flush=True)
        if stems is not None:
            record["sdr_whole"] = sisec_sdr(stems, whole)
            record["sdr_mixture"] = sisec_sdr(stems, {t: wave for t in nets})
            print("SDR (dB, median over 1 s frames) | " + " | ".join(nets))
            for label, key in (("mixture as estimate", "sdr_mixture"), ("whole song", "sdr_whole")):
                print(f"{label} | " + " | ".join(f"{record[key][t]:.2f}" for t in nets))
            if args.check_museval:
                cut = int(args.check_museval * RATE)
                part = {t: stems[t][:cut] for t in nets}
                print(f"first {args.check_museval:g} s, ours vs museval: " + " | ".join(
                    f"{t} {a:.4f} / {b:.4f}" for (t, a), b in zip(
                        sisec_sdr(part, {t: whole[t][:cut] for t in nets}).items(),
                        museval_sdr(part, {t: whole[t][:cut] for t in nets}).values())), flush=True)
            print("chunk / overlap (frames) | " + " | ".join(
                f"{t}: SDR, Δ vs whole, SNR vs whole" for t in nets), flush=True)
        else:
            print("chunk / overlap (frames) | SNR (dB) vs whole: " + " | ".join(nets)
                  + "  (in brackets: without the first and last second)", flush=True)
        for spec in args.chunks.split(","):
            chunk, overlap = map(int, spec.split("/"))
            model = OpenUnmixSeparator(nets, niter=args.niter, chunk_frames=chunk, overlap_frames=overlap)
            stamp = time.time()
            streamed = Separator(model, batch_size=1, progress=False).separate(wave, sample_rate=RATE)
            entry = {"separate_s": time.time() - stamp,
                     "snr_vs_whole": {t: snr_db(whole[t], streamed[t]) for t in nets}}
            inner = slice(RATE, len(wave) - RATE)
            entry["snr_vs_whole_inner"] = {t: snr_db(whole[t][inner], streamed[t][inner]) for t in nets}
            if stems is not None:
                entry["sdr"] = sisec_sdr(stems, streamed)
                entry["sdr_delta"] = {t: entry["sdr"][t] - record["sdr_whole"][t] for t in nets}
                print(f"{chunk} / {overlap} | " + " | ".join(
                    f"{entry['sdr'][t]:.3f}, {entry['sdr_delta'][t]:+.4f}, {entry['snr_vs_whole'][t]:.1f}"
                    for t in nets), flush=True)
            else:
                print(f"{chunk} / {overlap} | " + " | ".join(
                    f"{entry['snr_vs_whole'][t]:.1f} ({entry['snr_vs_whole_inner'][t]:.1f})" for t in nets),
                    flush=True)
            record["chunks"][spec] = entry
        results.append(record)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"args": vars(args), "songs": results}, handle, indent=1)


if __name__ == "__main__":
    main()
