"""A built-in stems dataset that needs no download: rendered Bach chorales.

Each chorale from music21's bundled corpus becomes one track: the soprano
sung on a voice patch is the ``vocals`` stem, alto, tenor and bass play
their own instruments, and an optional ``drums`` stem plays a General MIDI
kit pattern. Tempo, transposition, instruments, velocities and panning are
drawn per track from a seed. Tracks are written once in MUSDB18's layout,
so :func:`keras_sep.data.stems_dataset` reads them like any stems folder.
"""
import json
import os

import numpy as np

from keras_sep import audio
from keras_sep.data import chorales
from keras_sep.data.soundfont import SoundFontRenderer
from keras_sep._cache import cache_dir

STEM_OF_VOICE = {"soprano": "vocals", "alto": "alto", "tenor": "tenor", "bass": "bass"}

# General MIDI programs (0-based) each stem draws from.
PROGRAMS = {
    "vocals": (52, 53),  # Choir Aahs, Voice Oohs
    "alto": (40, 41, 48, 19, 0, 68, 71),  # violin, viola, strings, organ, piano, oboe, clarinet
    "tenor": (41, 42, 48, 19, 0, 70),  # viola, cello, strings, organ, piano, bassoon
    "bass": (32, 33, 43, 58),  # acoustic/fingered bass, contrabass, tuba
}

# Groupings of the stems into common separation targets.
TWO_STEMS = {"vocals": ["vocals"], "accompaniment": ["alto", "tenor", "bass", "drums"]}
FOUR_STEMS = {"vocals": ["vocals"], "drums": ["drums"], "bass": ["bass"],
              "other": ["alto", "tenor"]}

_DONE = "done.json"
_TRACK = "track.json"


def default_root(num_tracks, seconds, seed, drums, sample_rate=44100):
    """Cache folder of one configuration, under ``keras_sep``'s cache dir."""
    name = f"n{num_tracks}-s{float(seconds):g}-seed{seed}-{'drums' if drums else 'nodrums'}"
    if int(sample_rate) != 44100:  # 44.1 kHz folders keep their original names
        name += f"-{int(sample_rate)}hz"
    return os.path.join(cache_dir(), "bach_chorales", name)


def _track_plan(rng, drums):
    """The random choices of one track."""
    plan = {
        "bpm": float(rng.uniform(66.0, 100.0)),
        "transpose": int(rng.integers(-4, 5)),
        "programs": {stem: int(rng.choice(options)) for stem, options in PROGRAMS.items()},
        "velocities": {stem: int(rng.integers(70, 106)) for stem in PROGRAMS},
        "pans": {stem: int(rng.integers(24, 105)) for stem in PROGRAMS},
    }
    plan["pans"]["vocals"] = 64
    if drums:
        plan["drum_pattern"] = int(rng.integers(len(chorales.DRUM_PATTERNS)))
        plan["velocities"]["drums"] = int(rng.integers(60, 90))
    return plan


def render_chorale(voices, plan, seconds, renderer):
    """Render one chorale's stems; returns ``({stem: (samples, 2)}, notes)``.

    Args:
        voices: :func:`keras_sep.data.chorales.chorale_notes` output.
        plan: tempo, transposition, programs, velocities, pans (and drum
            pattern) of the track.
        seconds: maximum length; notes starting later are left out.
        renderer: a :class:`SoundFontRenderer`.

    Returns:
        The stems, all the same length (score end plus one second of
        release, capped at ``seconds``), and the notes played per stem as
        ``[start_seconds, end_seconds, midi_key]`` lists.
    """
    beat = 60.0 / plan["bpm"]
    rate = renderer.sample_rate
    end = max(note[1] for notes in voices.values() for note in notes) * beat
    samples = int(round(min(float(seconds), end + 1.0) * rate))
    parts = {STEM_OF_VOICE[voice]: notes for voice, notes in voices.items()}
    if "drum_pattern" in plan:
        parts["drums"] = chorales.drum_notes(
            end / beat, chorales.DRUM_PATTERNS[plan["drum_pattern"]]
        )
    stems, played = {}, {}
    for stem, notes in parts.items():
        drums = stem == "drums"
        shift = 0 if drums else plan["transpose"]
        timed = [
            (start * beat, stop * beat, int(np.clip(key + shift, 21, 108)))
            for start, stop, key in notes
            if start * beat < samples / rate
        ]
        velocity = plan["velocities"][stem]
        stems[stem] = renderer.render(
            [note + (velocity,) for note in timed], program=plan["programs"].get(stem, 0),
            samples=samples, drums=drums, pan=plan["pans"].get(stem, 64),
        )
        played[stem] = [[round(a, 6), round(b, 6), k] for a, b, k in timed]
    return stems, played


def _write_track(folder, stems, record, sample_rate):
    peak = np.abs(sum(stems.values())).max()
    # One gain for every stem keeps the mixture their exact sum.
    gain = np.float32(0.8 / peak) if peak > 0 else np.float32(1.0)
    stems = {name: (wave * gain).astype(np.float32) for name, wave in stems.items()}
    mixture = np.zeros_like(next(iter(stems.values())))
    for name in sorted(stems):
        mixture += stems[name]
        audio.save(os.path.join(folder, f"{name}.wav"), stems[name], sample_rate)
    audio.save(os.path.join(folder, "mixture.wav"), mixture, sample_rate)
    # Written last: its presence marks the track as complete.
    with open(os.path.join(folder, _TRACK), "w") as handle:
        json.dump(record, handle)


def bach_chorales(num_tracks=8, seconds=30.0, seed=0, drums=True, root=None,
                  test_fraction=0.25, sample_rate=44100, progress=True):
    """Render Bach chorales into a MUSDB18-layout stems folder, once.

    Stems are ``vocals`` (soprano), ``alto``, ``tenor``, ``bass`` and, with
    ``drums``, ``drums``; ``mixture.wav`` is their sum. Each track folder
    also holds ``track.json``: the chorale, tempo, transposition,
    instruments and every note played, in seconds. Folders already complete
    are kept, so an interrupted run resumes.

    Args:
        num_tracks: number of chorales.
        seconds: maximum length of a track.
        seed: seed of the chorale choice and of every per-track choice.
        drums: add a drum stem.
        root: output folder; default a folder of ``$KERAS_SEP_CACHE`` (or
            ``~/.cache/keras_sep``) named after the arguments.
        test_fraction: share of the tracks put in ``test`` (at least one
            when there are two tracks or more).
        sample_rate: rate of the files.
        progress: show a tqdm progress bar.

    Returns:
        The root folder, ready for ``stems_dataset(root, "train")``.

    Example:

    >>> root = bach_chorales(num_tracks=8, seconds=20)
    >>> ds = stems_dataset(root, targets=TWO_STEMS, seconds=3.0)
    """
    if num_tracks < 1 or seconds <= 0:
        raise ValueError(f"need num_tracks >= 1 and seconds > 0, got {num_tracks}, {seconds}")
    root = os.fspath(root or default_root(num_tracks, seconds, seed, drums, sample_rate))
    if os.path.exists(os.path.join(root, _DONE)):
        return root
    rng = np.random.default_rng(seed)
    candidates = chorales.chorale_paths()
    order = rng.permutation(len(candidates))
    num_test = 0 if num_tracks < 2 else max(1, int(round(num_tracks * test_fraction)))
    renderer = SoundFontRenderer(sample_rate=sample_rate)

    import tqdm

    bar = tqdm.tqdm(total=num_tracks, desc="rendering chorales", unit="track",
                    disable=not progress)
    made = 0
    for index in order:
        if made == num_tracks:
            break
        path = candidates[index]
        name = os.path.splitext(os.path.basename(path))[0]
        subset = "test" if made < num_test else "train"
        folder = os.path.join(root, subset, f"{made:03d}-{name}")
        if not os.path.exists(os.path.join(folder, _TRACK)):
            voices = chorales.chorale_notes(path)
            if voices is None:
                continue
            plan = _track_plan(np.random.default_rng([seed, made]), drums)
            stems, notes = render_chorale(voices, plan, seconds, renderer)
            record = dict(plan, chorale=os.path.relpath(path, os.path.dirname(
                os.path.dirname(path))), sample_rate=sample_rate, notes=notes)
            _write_track(folder, stems, record, sample_rate)
        made += 1
        bar.update(1)
    bar.close()
    if made < num_tracks:
        raise ValueError(f"music21's corpus has only {made} usable chorales, asked {num_tracks}")
    with open(os.path.join(root, _DONE), "w") as handle:
        json.dump({"num_tracks": num_tracks, "seconds": seconds, "seed": seed,
                   "drums": drums}, handle)
    return root
