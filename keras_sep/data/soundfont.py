"""Offline rendering of note lists with a General MIDI SoundFont, in NumPy.

The default SoundFont is the small General MIDI bank that the ``pretty_midi``
wheel bundles (``TimGM6mb.sf2``), so nothing is downloaded and nothing
beyond the package's own dependencies is needed. Each note plays its
zones' samples, looped where the font says, pitched by linear-interpolation
resampling, shaped by the volume envelope (delay, attack, hold, decay,
sustain, release), attenuated by the zone, by the velocity (the default
``(velocity/127)²`` curve) and panned with equal power. Filters, LFOs,
the modulation envelope, reverb and chorus are left out: the timbres are
plainer than a full synthesiser's, the pitches and timing exact.
"""
import functools
import os

import numpy as np

from keras_sep.data import sf2

DRUM_BANK = 128
SILENT_DB = -100.0  # where a released voice stops


def default_soundfont():
    """Path of the General MIDI SoundFont bundled with ``pretty_midi``."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise FileNotFoundError(f"pretty_midi ships no SoundFont at {path!r}")
    return path


@functools.lru_cache(maxsize=4)
def _load(path):
    with open(path, "rb") as handle:
        return sf2.SoundFont(handle.read())


def _seconds(timecents):
    return 2.0 ** (timecents / 1200.0)


def _envelope_db(generators, held, total, rate):
    """Volume envelope in dB (0 = full) of a note held ``held`` of ``total`` samples."""
    n = np.arange(total, dtype=np.float64) / rate
    delay = _seconds(generators[sf2.DELAY_VOL])
    attack = _seconds(generators[sf2.ATTACK_VOL])
    hold = _seconds(generators[sf2.HOLD_VOL])
    decay = _seconds(generators[sf2.DECAY_VOL])
    sustain = -min(max(generators.get(sf2.SUSTAIN_VOL, 0), 0), 1440) / 10.0
    t = n - delay
    # Attack rises linearly in amplitude; decay falls linearly in dB, at the
    # rate that would take it from 0 to -100 dB in the decay time.
    with np.errstate(divide="ignore"):
        rising = 20 * np.log10(np.clip(t / attack, 1e-5, 1.0))
    falling = np.maximum(-(t - attack - hold) * (-SILENT_DB / decay), sustain)
    level = np.where(t < 0, SILENT_DB, np.where(t < attack, rising,
                     np.where(t < attack + hold, 0.0, falling)))
    if held < total:
        release = _seconds(generators[sf2.RELEASE_VOL])
        after = (np.arange(total - held) / rate) * (SILENT_DB / release)
        level[held:] = np.maximum(level[held - 1] if held else SILENT_DB, SILENT_DB) + after
    return np.maximum(level, SILENT_DB)


def _release_samples(generators, rate):
    """How long a released voice takes to fall to silence, in samples."""
    return int(np.ceil(_seconds(generators[sf2.RELEASE_VOL]) * rate)) + 1


def _pan_gains(generators, pan):
    position = generators.get(sf2.PAN, 0) / 1000.0 + (pan - 64) / 127.0
    angle = (np.clip(position, -0.5, 0.5) + 0.5) * np.pi / 2
    return np.array([np.cos(angle), np.sin(angle)])


class SoundFontRenderer:
    """Render one instrument's notes to a stereo float32 buffer.

    Each note is rendered on its own and added in, so a render depends only
    on its arguments: no voice or controller state leaks between calls.

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
        notes = sorted(notes)
        rate = self.sample_rate
        if samples is None:
            last = max((end for _, end, _, _ in notes), default=0.0)
            samples = int(round((last + 1.0) * rate))
        font = _load(self.soundfont)
        bank, program = (DRUM_BANK, 0) if drums else (0, int(program))
        output = np.zeros((int(samples), 2), np.float64)
        for start, end, key, velocity in notes:
            first = int(round(start * rate))
            held = max(int(round(end * rate)) - first, 1)
            if first >= len(output) or velocity <= 0:
                continue
            for sample, generators in font.zones(bank, program, int(key), int(velocity)):
                voice = self._voice(font, sample, generators, int(key), held,
                                    len(output) - first)
                gain = 10 ** ((-generators.get(sf2.ATTENUATION, 0) / 10.0
                               + 40 * np.log10(velocity / 127.0)) / 20)
                stereo = voice[:, None] * (gain * _pan_gains(generators, int(np.clip(pan, 0, 127))))
                output[first : first + len(stereo)] += stereo
        return output.astype(np.float32)

    def _voice(self, font, sample, generators, key, held, room):
        """One zone of one note, mono, at most ``room`` samples long."""
        g = generators.get
        begin, end, loop_start, loop_end, rate, root, correction = font.headers[sample]
        begin += g(sf2.START_OFFSET, 0) + 32768 * g(sf2.START_COARSE, 0)
        end += g(sf2.END_OFFSET, 0) + 32768 * g(sf2.END_COARSE, 0)
        loop_start += g(sf2.LOOP_START_OFFSET, 0) + 32768 * g(sf2.LOOP_START_COARSE, 0)
        loop_end += g(sf2.LOOP_END_OFFSET, 0) + 32768 * g(sf2.LOOP_END_COARSE, 0)
        if g(sf2.ROOT_KEY, -1) >= 0:
            root = g(sf2.ROOT_KEY)
        cents = ((key - root) * g(sf2.SCALE_TUNING, 100) + 100 * g(sf2.COARSE_TUNE, 0)
                 + g(sf2.FINE_TUNE, 0) + correction)
        step = 2.0 ** (cents / 1200.0) * rate / self.sample_rate
        total = min(held + _release_samples(generators, self.sample_rate), room)
        position = begin + step * np.arange(total, dtype=np.float64)
        looped = g(sf2.SAMPLE_MODES, 0) & 1 and begin <= loop_start < loop_end - 1 <= end
        if looped:
            beyond = position >= loop_end
            position[beyond] = loop_start + np.mod(position[beyond] - loop_start, loop_end - loop_start)
        else:
            total = min(total, int(np.searchsorted(position, end - 1)))
            position = position[:total]
        index = position.astype(np.int64)
        fraction = position - index
        data = font.samples
        wave = data[index] * (1 - fraction) + data[np.minimum(index + 1, len(data) - 1)] * fraction
        level = _envelope_db(generators, min(held, total), total, self.sample_rate)
        return wave * 10 ** (level / 20)
