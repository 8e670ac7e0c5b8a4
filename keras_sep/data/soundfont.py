"""Offline rendering of note lists with a General MIDI SoundFont.

The synthesiser is TinySoundFont (the ``tinysoundfont`` wheel; install it
with ``pip install --no-deps tinysoundfont``: its declared pyaudio
dependency is only imported for live playback, never for rendering into a
buffer). The default SoundFont is the small General MIDI bank that the
``pretty_midi`` wheel bundles (``TimGM6mb.sf2``), so nothing is downloaded.
"""
import functools
import os

import numpy as np

DRUM_CHANNEL = 9
DRUM_BANK = 128
PAN_CONTROLLER = 10


def default_soundfont():
    """Path of the General MIDI SoundFont bundled with ``pretty_midi``."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretty_midi ships no SoundFont at {path!r}")
    return path


@functools.lru_cache(maxsize=4)
def _soundfont_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


class SoundFontRenderer:
    """Render one instrument's notes to a stereo float32 buffer.

    Every call starts a fresh synthesiser, so no voice or controller state
    leaks from one stem into the next.

    Args:
        soundfont: ``.sf2`` path; default :func:`default_soundfont`.
        sample_rate: output rate in Hz.

    Example:

    >>> renderer = SoundFontRenderer()
    >>> wave = renderer.render([(0.0, 0.5, 60, 100)], program=52, samples=44100)
    >>> wave.shape
    (44100, 2)
    """

    def __init__(self, soundfont=None, sample_rate=44100):
        self.soundfont = os.fspath(soundfont or default_soundfont())
        self.sample_rate = int(sample_rate)

    def render(self, notes, program=0, samples=None, drums=False, pan=64):
        """Render ``notes`` on one General MIDI program.

        Args:
            notes: ``(start_seconds, end_seconds, midi_key, velocity)`` tuples.
            program: General MIDI program, 0-based (52 is "Choir Aahs");
                ignored for drums, which use the standard kit.
            samples: output length; default the last note's end plus one
                second of release.
            drums: play on the percussion channel (keys are drum sounds).
            pan: stereo position, 0 (left) to 127 (right).

        Returns:
            float32 ``(samples, 2)``.
        """
        import tinysoundfont

        notes = sorted(notes)
        if samples is None:
            last = max((end for _, end, _, _ in notes), default=0.0)
            samples = int(round((last + 1.0) * self.sample_rate))
        synth = tinysoundfont.Synth(samplerate=self.sample_rate)
        sfid = synth.sfload(_soundfont_bytes(self.soundfont))
        channel = DRUM_CHANNEL if drums else 0
        synth.program_select(channel, sfid, DRUM_BANK if drums else 0,
                             0 if drums else int(program), is_drums=drums)
        synth.control_change(channel, PAN_CONTROLLER, int(np.clip(pan, 0, 127)))

        # Note-offs sort before note-ons at the same sample, so a repeated
        # key is released and struck again rather than cut.
        events = []
        for start, end, key, velocity in notes:
            events.append((int(round(start * self.sample_rate)), 1, int(key), int(velocity)))
            events.append((int(round(end * self.sample_rate)), 0, int(key), 0))
        events.sort()

        output = np.zeros((int(samples), 2), np.float32)
        position = 0
        for time, is_on, key, velocity in events:
            time = min(time, len(output))
            self._generate(synth, output[position:time])
            position = max(position, time)
            if position >= len(output):
                break
            if is_on:
                synth.noteon(channel, key, velocity)
            else:
                synth.noteoff(channel, key)
        self._generate(synth, output[position:])
        return output

    @staticmethod
    def _generate(synth, block):
        """Fill a C-contiguous ``(n, 2)`` float32 slice in place."""
        if len(block):
            synth.generate_simple(len(block), buffer=memoryview(block).cast("B"))
