"""Bach chorales from music21's bundled corpus as timed note lists.

Times are in quarter notes from the start of the score; the builder in
:mod:`keras_sep.data.bach` turns them into seconds at a tempo of its choice.
"""
import os

VOICES = ("soprano", "alto", "tenor", "bass")

# Drum patterns over one 4/4 bar, as (quarter-note offset, GM drum key):
# 36 kick, 38 snare, 42 closed hi-hat, 46 open hi-hat, 51 ride.
DRUM_PATTERNS = (
    [(0, 36), (2, 36), (1, 38), (3, 38)] + [(q / 2, 42) for q in range(8)],
    [(0, 36), (1.5, 36), (2, 36), (1, 38), (3, 38)] + [(q, 42) for q in range(4)]
    + [(3.5, 46)],
    [(0, 36), (2.5, 36), (1, 38), (3, 38)] + [(q, 51) for q in range(4)],
)


def chorale_paths():
    """Corpus paths of Bach's works bundled with music21, sorted by name."""
    from music21 import corpus

    paths = [os.fspath(p) for p in corpus.getComposer("bach")]
    return sorted(p for p in paths if p.endswith((".mxl", ".xml", ".musicxml", ".krn")))


def _voice_of(part_name):
    name = (part_name or "").lower()
    return next((voice for voice in VOICES if voice in name), None)


def chorale_notes(path):
    """``{voice: [(start, end, midi), ...]}`` in quarter notes, or None.

    Args:
        path: a corpus file (see :func:`chorale_paths`).

    Returns:
        The four voices soprano, alto, tenor and bass with tied notes merged
        and rests left out; None when the score does not have exactly one
        part of each voice (instrumental parts are ignored).
    """
    from music21 import corpus

    score = corpus.parse(path)
    parts = {}
    for part in score.parts:
        voice = _voice_of(part.partName)
        if voice is not None:
            if voice in parts:
                return None
            parts[voice] = part
    if set(parts) != set(VOICES):
        return None
    voices = {}
    for voice, part in parts.items():
        notes = []
        for note in part.stripTies().flatten().notes:
            start = float(note.offset)
            length = float(note.duration.quarterLength)
            if length <= 0:  # grace notes
                continue
            notes.extend((start, start + length, pitch.midi) for pitch in note.pitches)
        if not notes:
            return None
        voices[voice] = sorted(notes)
    return voices


def drum_notes(quarters, pattern):
    """Hits ``(start, end, key)`` of a one-bar ``pattern`` repeated over ``quarters``."""
    hits = []
    for bar in range(0, int(quarters) + 4, 4):
        for offset, key in pattern:
            start = bar + offset
            if start < quarters:
                hits.append((start, start + 0.25, key))
    return sorted(hits)
