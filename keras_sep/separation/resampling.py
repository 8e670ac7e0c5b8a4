"""Input blocks to the model's rate and channels, and stems back to the input's.

soxr streams resample block by block, so that a song is never whole in
memory; resampling there and back rounds twice (a few samples, all of them
for a 1-sample input), so the stems are held to the input's exact length.
"""
import os
import warnings

import numpy as np

from keras_sep import audio


class Reiterable:
    """Blocks that can be read more than once: each iteration calls ``make``."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


BLOCK = 1 << 18  # samples per block read from an array or a file


def input_blocks(waveform, sample_rate, offset=0.0, duration=None):
    """``(name, rate, blocks, length)`` of an array ``(samples, channels)``
    (1-D is mono) at ``sample_rate``, or of an audio file at its own rate
    (``offset``/``duration`` in seconds): re-iterable blocks of at most
    :data:`BLOCK` samples, and the number of samples (a file's stated one).

    Raises:
        keras_sep.audio.AudioError: an unreadable file, a bad array, or one
            that looks like ``(channels, samples)``.

    Example:

    >>> import numpy as np
    >>> name, rate, blocks, length = input_blocks(np.zeros((5, 2), "float32"), 44100)
    >>> name, rate, length, [b.shape for b in blocks]
    ('<array>', 44100, 5, [(5, 2)])
    """
    if isinstance(waveform, (str, os.PathLike)):
        name = os.fspath(waveform)
        reader = audio.AudioReader(name, offset=offset, duration=duration)
        return name, reader.sample_rate, Reiterable(lambda: reader.blocks(BLOCK)), reader.frames
    name = "<array>"
    array = audio.check_waveform(waveform, name)
    if array.shape[1] > max(2, array.shape[0]):
        # (2, 441000) is a stereo clip the wrong way round, not
        # two samples of 441000 channels.
        raise audio.AudioError(
            f"{name}: shape {array.shape} looks like (channels, samples); pass (samples, channels), e.g. waveform.T"
        )
    blocks = Reiterable(lambda: (array[i : i + BLOCK] for i in range(0, len(array), BLOCK)))
    return name, int(sample_rate), blocks, len(array)


def fit_channels(block, channels):
    """Mono → duplicated; more channels than the model's → the first ones.

    Example:

    >>> import numpy as np
    >>> fit_channels(np.array([[0.5], [1.0]], "float32"), 2)
    array([[0.5, 0.5],
           [1. , 1. ]], dtype=float32)
    >>> fit_channels(np.zeros((2, 6), "float32"), 2).shape  # 5.1 → front left, right
    (2, 2)
    """
    if block.shape[1] == channels:
        return block
    if block.shape[1] == 1:
        return np.repeat(block, channels, axis=1)
    if block.shape[1] > channels:
        return np.ascontiguousarray(block[:, :channels])
    raise audio.AudioError(f"cannot map {block.shape[1]} channels to {channels}")


def progress_bar(progress, total, rate, name, passes=1):
    """The bar :func:`model_blocks` and :func:`through` advance by the input
    samples they read, or None: ``progress`` True or False, or None for
    inputs ``total`` (samples at ``rate``) longer than a minute; ``passes``
    over the input (two for the Wiener filter's statistics, then separation)."""
    show = progress if progress is not None else (total or 0) > 60 * rate
    if not show:
        return None
    from tqdm.auto import tqdm

    total = None if total is None else total * passes
    return tqdm(total=total, unit="sample", unit_scale=True, desc=os.path.basename(name), leave=False)


def model_blocks(blocks, rate, model_rate, channels, name="<array>", bar=None, warn=True, counter=None):
    """The input at the model's rate and channels, as ``(block, last)``
    pairs; the last pair holds what the resampler still had (or None).

    Args:
        blocks: iterable of ``(n, channels)`` arrays at ``rate``; empty
            blocks and None are skipped.
        name: the input's name in messages.
        bar: a progress bar updated with the input samples read.
        warn: warn (once) when the input has more channels than the model.
        counter: a :class:`ToInputRate` whose ``received`` counts the
            input's samples.

    Raises:
        AudioError: no samples at all, or a block that is not audio.

    Example:

    Mono blocks at 22.05 kHz become stereo blocks at 44.1 kHz; the
    resampler holds some samples back until the last pair:

    >>> import numpy as np
    >>> blocks = [np.zeros((1000, 1), "float32"), np.zeros((1001, 1), "float32")]
    >>> pairs = list(model_blocks(blocks, 22050, 44100, channels=2))
    >>> [(block.shape, last) for block, last in pairs]
    [((1660, 2), False), ((1660, 2), False), ((682, 2), True)]
    >>> sum(len(block) for block, _ in pairs)
    4002
    """
    import soxr

    to_model = soxr.ResampleStream(rate, model_rate, channels, dtype="float32", quality="HQ") if rate != model_rate else None
    seen = 0
    for block in blocks:
        if block is None or np.shape(block)[:1] == (0,):
            continue  # a reader may hand over nothing now and then
        block = audio.check_waveform(block, name)
        if counter is not None:
            counter.received += len(block)
        if warn and seen == 0 and block.shape[1] > channels:
            warnings.warn(
                f"{name}: {block.shape[1]} channels; separating the first {channels} (as Spleeter and "
                "Open-Unmix do): downmix it first to keep what only the others carry (a 5.1 centre)",
                UserWarning,
                stacklevel=3,
            )
        block = fit_channels(block, channels)
        seen += len(block)
        if bar is not None:
            bar.update(len(block))
        if to_model is not None:
            block = to_model.resample_chunk(block)
        yield block, False
    if seen == 0:
        why = "" if name == "<array>" else " (an empty file, or an offset at or past its end)"
        raise audio.AudioError(f"{name}: no audio samples{why}")
    tail = to_model.resample_chunk(np.zeros((0, channels), np.float32), last=True) if to_model else None
    yield tail, True


def through(engine, blocks, rate, model_rate, instruments, channels, name="<array>", bar=None, warn=True):
    """Push ``blocks`` (at ``rate``) through ``engine`` (a ChunkStream, at
    ``model_rate``) and yield its finished output ``{instrument: (m,
    channels)}`` back at ``rate``, in order; the last item is yielded even
    when empty."""
    back = ToInputRate(model_rate, rate, instruments, channels) if rate != model_rate else None
    for block, last in model_blocks(blocks, rate, model_rate, channels, name, bar, warn=warn, counter=back):
        out = engine.push(block, final=last)
        if back is not None:
            out = back.take(out, last)
        if last or any(len(v) for v in out.values()):
            yield out


class ToInputRate:
    """Stems from the model's rate back to the input's, held to the input's
    length: never more output than input samples seen so far (the excess
    waits), and at the end exactly as many (cut, or completed with zeros
    where resampling came up short).

    Args:
        model_rate, rate: the model's and the input's sample rates.
        instruments: the stems' names.
        channels: the stems' channels.

    Example:

    Input at 22.05 kHz to the model's 44.1 kHz and (as if the model
    returned its input) back: the stems have the input's 2001 samples
    exactly:

    >>> import numpy as np
    >>> back = ToInputRate(44100, 22050, ("vocals",), channels=2)
    >>> blocks = [np.zeros((1000, 2), "float32"), np.zeros((1001, 2), "float32")]
    >>> pairs = list(model_blocks(blocks, 22050, 44100, 2, counter=back))
    >>> stems = [back.take({"vocals": block}, last) for block, last in pairs]
    >>> back.received, [len(stem["vocals"]) for stem in stems]
    (2001, [0, 830, 1171])
    """

    def __init__(self, model_rate, rate, instruments, channels):
        import soxr

        self.resamplers = {
            n: soxr.ResampleStream(model_rate, rate, channels, dtype="float32", quality="HQ") for n in instruments
        }
        self.received = 0  # input samples, counted by model_blocks
        self.emitted = 0
        self.channels = channels
        self.pending = {n: np.zeros((0, channels), np.float32) for n in instruments}

    def take(self, out, last):
        """Resample ``{instrument: block}`` (``last``: the end of the stream);
        return what the input's length allows so far."""
        out = {n: self.resamplers[n].resample_chunk(v, last=last) for n, v in out.items()}
        joined = {n: np.concatenate([self.pending[n], v]) if len(self.pending[n]) else v for n, v in out.items()}
        allowed = self.received - self.emitted
        count = len(next(iter(joined.values())))
        if last and count < allowed:
            joined = {n: np.concatenate([v, np.zeros((allowed - count, self.channels), np.float32)]) for n, v in joined.items()}
        ready = {n: v[:allowed] for n, v in joined.items()}
        self.pending = {n: v[allowed:] for n, v in joined.items()}
        self.emitted += len(next(iter(ready.values())))
        return ready
