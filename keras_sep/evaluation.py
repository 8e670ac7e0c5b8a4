"""Separation quality with museval (BSS Eval v4), NSDR and oracle masks.

Per track, museval gives SDR, SIR, SAR and ISR on one-second frames; as in
SiSEC 2018 a track's score is the median over its frames and a method's
score the median over tracks. NSDR is the SDR gained over using the mixture
itself as the estimate. The oracle rows separate with ideal masks computed
from the true sources with the same STFT as the model: the ideal ratio mask
(IRM, ``|S_i| / Σ|S_j|``) and the ideal binary mask (IBM), upper bounds for
any masking separator.
"""
import json
import os

import numpy as np

from keras_sep import audio
from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops

METRICS = ("SDR", "SIR", "SAR", "ISR")


def oracle_separation(mixture, sources, kind="irm", frame_length=4096, frame_step=1024):
    """Separate ``mixture`` with ideal masks from the true ``sources``.

    The masks act on the mixture's STFT (:func:`keras_sep.ops.stft.stft`,
    periodic Hann, frames centred on multiples of ``frame_step``) and the
    masked spectra are inverted with the window-sum normalisation, so the
    STFT alone adds no error: the IRM estimates sum to the mixture.

    Args:
        mixture: ``(samples, channels)``.
        sources: ``{name: (samples, channels)}`` whose sum is the mixture.
        kind: ``"irm"`` (ratio of magnitudes) or ``"ibm"`` (1 for the
            loudest source in each bin).
        frame_length, frame_step: the STFT's, as the model's.

    Returns:
        ``{name: (samples, channels)}`` float32.
    """
    if kind not in ("irm", "ibm"):
        raise ValueError(f"kind must be 'irm' or 'ibm', got {kind!r}")
    settings = dict(frame_length=frame_length, frame_step=frame_step, center=True)
    mix_spec = np.asarray(stft_ops.stft(np.asarray(mixture, np.float32)[None], **settings))
    stacked = np.stack([np.asarray(s, np.float32) for s in sources.values()])
    magnitudes = np.asarray(spectra.magnitude(stft_ops.stft(stacked, **settings)))
    if kind == "irm":
        masks = magnitudes / (magnitudes.sum(axis=0, keepdims=True) + 1e-10)
    else:
        masks = (magnitudes == magnitudes.max(axis=0, keepdims=True)).astype(np.float32)
    estimates = np.asarray(stft_ops.istft(mix_spec * masks, length=len(mixture), **settings))
    return dict(zip(sources, estimates))


def bss_eval(references, estimates, window=44100, hop=44100):
    """BSS Eval v4 of ``estimates`` against ``references`` (dicts of one key set).

    Returns ``{name: {metric: median over frames}}`` (NaN frames, e.g. silent
    references, are ignored as in museval's aggregation).
    """
    import museval

    names = list(references)
    length = min(min(len(references[n]) for n in names), min(len(estimates[n]) for n in names))
    ref = np.stack([references[n][:length] for n in names])
    est = np.stack([estimates[n][:length] for n in names])
    scores = museval.evaluate(ref, est, win=window, hop=hop)
    table = dict(zip(("SDR", "ISR", "SIR", "SAR"), scores))
    return {
        name: {metric: float(np.nanmedian(table[metric][i])) for metric in METRICS}
        for i, name in enumerate(names)
    }


def folder_tracks(root, subset="test", targets=None, sample_rate=44100):
    """Yield ``(track, mixture, {target: source})`` from a MUSDB-layout folder.

    ``root/subset/<track>/{mixture,<stem>...}.wav``; ``targets`` maps each
    target to the stems summed for it (default: every stem as itself). The
    mixture is the file if present, else the sum of all stems.
    """
    from keras_sep.data.stems import MIXTURE, find_tracks

    folder = os.path.join(root, subset)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder (expected ROOT/{subset}/<track>/<stem>.wav)")
    # Track folders with audio in them; other files and hidden ones are skipped.
    for track, files in find_tracks(root, subset).items():
        path = os.path.join(folder, track)
        stems = {n: p for n, p in files.items() if n != MIXTURE}
        if not stems:
            raise ValueError(f"{path}: no stem files besides the mixture")
        groups = targets or {n: [n] for n in stems}
        for target, members in groups.items():
            missing = [m for m in members if m not in stems]
            if missing:
                raise ValueError(f"{path}: no stem {missing} for target {target!r} (it has {sorted(stems)})")
        loaded = {n: audio.load(p, sample_rate)[0] for n, p in stems.items()}
        mixture = audio.load(files[MIXTURE], sample_rate)[0] if MIXTURE in files else None
        lengths = {n: len(v) for n, v in loaded.items()}
        if mixture is not None:
            lengths[MIXTURE] = len(mixture)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{path}: stems differ in length {lengths}")
        sources = {t: sum(loaded[m] for m in members) for t, members in groups.items()}
        if mixture is None:
            mixture = sum(loaded.values())
        yield track, mixture, sources


def evaluate(separator, tracks, oracles=("irm", "ibm"), window=None, hop=None, progress=True):
    """Evaluate ``separator`` (a :class:`keras_sep.Separator`) on ``tracks``.

    Args:
        tracks: iterable of ``(name, mixture, {target: source})`` at the
            separator's sample rate (see :func:`folder_tracks`).
        oracles: oracle rows to add (``"irm"``, ``"ibm"``), computed with
            the separator's own STFT.
        window, hop: BSS Eval frames in samples; default one second.

    Returns:
        ``{"tracks": {track: {method: {target: metrics}}}, "summary":
        {method: {target: {metric: median over tracks}}}}``; metrics include
        ``NSDR``. The methods are ``"model"``, ``"mixture"`` and the oracles.
    """
    from tqdm.auto import tqdm

    rate = int(separator.sample_rate)
    window, hop = window or rate, hop or rate
    model = getattr(separator, "model", None)
    stft = dict(frame_length=getattr(model, "frame_length", 4096), frame_step=getattr(model, "frame_step", 1024))
    results = {}
    for track, mixture, sources in tqdm(list(tracks), desc="evaluate", disable=not progress):
        estimates = separator.separate(mixture, sample_rate=separator.sample_rate)
        names = [n for n in sources if n in estimates]
        if not names:
            raise ValueError(f"{track}: no target among {sorted(sources)} is an output of the model {sorted(estimates)}")
        # Compare on the stereo layout the model outputs.
        reference = {n: _stereo(sources[n], estimates[n].shape[1]) for n in names}
        mix = _stereo(mixture, estimates[names[0]].shape[1])
        rows = {"mixture": bss_eval(reference, {n: mix for n in names}, window, hop)}
        rows["model"] = bss_eval(reference, {n: estimates[n] for n in names}, window, hop)
        for kind in oracles:
            oracle = oracle_separation(mix, reference, kind, **stft)
            rows[f"oracle_{kind}"] = bss_eval(reference, oracle, window, hop)
        for method, scores in rows.items():
            for n in names:
                scores[n]["NSDR"] = scores[n]["SDR"] - rows["mixture"][n]["SDR"]
        results[track] = rows
    return {"tracks": results, "summary": _summary(results)}


def _stereo(x, channels):
    return np.repeat(x, channels, axis=1) if x.shape[1] == 1 and channels > 1 else x[:, :channels]


def _summary(results):
    summary = {}
    for rows in results.values():
        for method, scores in rows.items():
            for target, metrics in scores.items():
                for metric, value in metrics.items():
                    summary.setdefault(method, {}).setdefault(target, {}).setdefault(metric, []).append(value)
    return {
        method: {t: {m: float(np.nanmedian(v)) for m, v in metrics.items()} for t, metrics in targets.items()}
        for method, targets in summary.items()
    }


def format_table(results, metrics=("NSDR", "SDR", "SIR", "SAR")):
    """A markdown table of the summary: one row per method and target."""
    lines = ["| method | target | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for method, targets in results["summary"].items():
        for target, values in targets.items():
            cells = " | ".join(f"{values[m]:.2f}" for m in metrics)
            lines.append(f"| {method} | {target} | {cells} |")
    return "\n".join(lines)


def save_json(results, path):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    return path
