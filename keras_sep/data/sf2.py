"""Reading SoundFont 2 files: the samples and the zones of each preset.

Only what sample playback needs is kept: every zone's key and velocity
ranges, its sample, and its generators with the preset level added to the
instrument level, as the SoundFont 2.04 specification prescribes.
Modulators are not read (the renderer applies the default velocity and pan
ones itself).
"""
import struct

import numpy as np

# Generator numbers (SoundFont 2.04, section 8.1.2).
START_OFFSET, END_OFFSET, LOOP_START_OFFSET, LOOP_END_OFFSET = 0, 1, 2, 3
START_COARSE, END_COARSE, LOOP_START_COARSE, LOOP_END_COARSE = 4, 12, 45, 50
PAN = 17
DELAY_VOL, ATTACK_VOL, HOLD_VOL, DECAY_VOL, SUSTAIN_VOL, RELEASE_VOL = 33, 34, 35, 36, 37, 38
INSTRUMENT, KEY_RANGE, VEL_RANGE = 41, 43, 44
ATTENUATION = 48
COARSE_TUNE, FINE_TUNE, SAMPLE_ID, SAMPLE_MODES = 51, 52, 53, 54
SCALE_TUNING, ROOT_KEY = 56, 58

# Instrument-level defaults that are not zero.
DEFAULTS = {DELAY_VOL: -12000, ATTACK_VOL: -12000, HOLD_VOL: -12000, DECAY_VOL: -12000,
            RELEASE_VOL: -12000, SCALE_TUNING: 100, ROOT_KEY: -1}
_RANGES = (KEY_RANGE, VEL_RANGE)
# Generators a preset zone may not add to (SoundFont 2.04, section 8.5).
_INSTRUMENT_ONLY = {START_OFFSET, END_OFFSET, LOOP_START_OFFSET, LOOP_END_OFFSET,
                    START_COARSE, END_COARSE, LOOP_START_COARSE, LOOP_END_COARSE,
                    SAMPLE_MODES, ROOT_KEY, SAMPLE_ID, 46, 47, 57}

_RECORDS = {
    "phdr": ("<20sHHHIII", 38), "pbag": ("<HH", 4), "pgen": ("<Hh", 4),
    "inst": ("<20sH", 22), "ibag": ("<HH", 4), "igen": ("<Hh", 4),
    "shdr": ("<20sIIIIIBbHH", 46),
}


def _chunks(data, offset, end):
    """``(id, start, size)`` of the RIFF sub-chunks in ``data[offset:end]``."""
    while offset + 8 <= end:
        name, size = struct.unpack_from("<4sI", data, offset)
        yield name.decode("latin-1"), offset + 8, size
        offset += 8 + size + (size & 1)


def _zones(bags, gens, first, last):
    """Generator dicts of bags ``first..last-1``; ranges kept as ``(lo, hi)``."""
    zones = []
    for bag in range(first, last):
        generators = {}
        for oper, amount in gens[bags[bag][0] : bags[bag + 1][0]]:
            if oper in _RANGES:
                lo_hi = struct.pack("<h", amount)
                generators[oper] = (lo_hi[0], lo_hi[1])
            else:
                generators[oper] = amount
        zones.append(generators)
    return zones


def _split_global(zones, terminal):
    """A first zone without the ``terminal`` generator is the global zone."""
    if zones and terminal not in zones[0]:
        return zones[0], zones[1:]
    return {}, zones


class SoundFont:
    """A parsed ``.sf2`` file.

    Attributes:
        samples: all sample data, float32 in [-1, 1).
        headers: per sample ``(start, end, loop_start, loop_end, rate, root_key, correction)``.

    Example:

    >>> font = SoundFont(open("TimGM6mb.sf2", "rb").read())
    >>> zones = font.zones(bank=0, program=52, key=60, velocity=100)
    """

    def __init__(self, data):
        if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
            raise ValueError(f"not a SoundFont 2 file: starts with {bytes(data[:12])!r}")
        records = {}
        for name, start, size in _chunks(data, 12, len(data)):
            if name != "LIST":
                continue
            for sub, sub_start, sub_size in _chunks(data, start + 4, start + size):
                if sub == "smpl":
                    raw = np.frombuffer(data, "<i2", sub_size // 2, sub_start)
                    self.samples = raw.astype(np.float32) / 32768.0
                elif sub in _RECORDS:
                    fmt, width = _RECORDS[sub]
                    records[sub] = [struct.unpack_from(fmt, data, sub_start + i * width)
                                    for i in range(sub_size // width)]
        missing = sorted(set(_RECORDS) - set(records))
        if missing or not hasattr(self, "samples"):
            raise ValueError(f"SoundFont lacks the chunks {missing or ['smpl']}")
        self.headers = [h[1:8] for h in records["shdr"]]
        self._instruments = []
        inst = records["inst"]
        for i in range(len(inst) - 1):
            zones = _zones(records["ibag"], records["igen"], inst[i][1], inst[i + 1][1])
            self._instruments.append(_split_global(zones, SAMPLE_ID))
        self._presets = {}
        phdr = records["phdr"]
        for i in range(len(phdr) - 1):
            zones = _zones(records["pbag"], records["pgen"], phdr[i][3], phdr[i + 1][3])
            self._presets[(phdr[i][2], phdr[i][1])] = _split_global(zones, INSTRUMENT)

    def zones(self, bank, program, key, velocity):
        """The sounding zones of one note: ``(sample_index, generators)`` pairs.

        Falls back to bank 0, then to program 0, when the font lacks the preset.
        """
        for candidate in ((bank, program), (0, program), (bank, 0), (0, 0)):
            if candidate in self._presets:
                break
        else:
            raise ValueError(f"SoundFont has no preset bank {bank} program {program}")
        preset_global, preset_zones = self._presets[candidate]
        found = []
        for preset_zone in preset_zones:
            if not _matches(preset_zone, preset_global, key, velocity):
                continue
            inst_global, inst_zones = self._instruments[preset_zone[INSTRUMENT]]
            for zone in inst_zones:
                if not _matches(zone, inst_global, key, velocity):
                    continue
                generators = {**DEFAULTS, **inst_global, **zone}
                added = {**preset_global, **preset_zone}
                for oper, amount in added.items():
                    if oper not in _INSTRUMENT_ONLY and oper not in _RANGES and oper != INSTRUMENT:
                        generators[oper] = generators.get(oper, 0) + amount
                found.append((zone[SAMPLE_ID], generators))
        return found


def _matches(zone, global_zone, key, velocity):
    lo, hi = zone.get(KEY_RANGE, global_zone.get(KEY_RANGE, (0, 127)))
    vlo, vhi = zone.get(VEL_RANGE, global_zone.get(VEL_RANGE, (0, 127)))
    return lo <= key <= hi and vlo <= velocity <= vhi
