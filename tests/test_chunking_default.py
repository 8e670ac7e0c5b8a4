"""The default chunking and the property it is the default for: its stems
stay closer to the seamless (one-chunk) output than Spleeter's chunks'.

docs/separation.md ("Why overlap is the default") has the measurement on
real material; this checks the mechanism on a tiny random U-Net.
"""
import inspect

import numpy as np
import pytest

from keras_sep.models import UNetSeparator, WaveformSeparator
from keras_sep.separation import Separator

RATE = 8000
FRAMES, STEP, LENGTH = 32, 32, 128


def snr(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


@pytest.fixture(scope="module")
def network():
    import keras

    keras.utils.set_random_seed(11)
    return UNetSeparator(filters=(4, 8), bins=32, frames=FRAMES, name="tiny_unet")


def test_overlap_is_the_default():
    assert inspect.signature(Separator).parameters["chunking"].default == "overlap"


@pytest.mark.parametrize("seed", [0, 1])
def test_overlap_stems_are_closer_to_the_unchunked_ones_at_the_seams(network, seed):
    model = WaveformSeparator(network, sample_rate=RATE, frame_length=LENGTH, frame_step=STEP)
    assert model.overlap_frames == FRAMES // 8  # the default, as for Spleeter's 512 frames
    samples = 20 * FRAMES * STEP  # about 20 chunks
    rng = np.random.default_rng(seed)
    # Noise shaped by a slowly changing envelope, so that frames differ.
    envelope = np.repeat(rng.uniform(0.1, 1.0, samples // 256 + 1), 256)[:samples, None]
    wave = (rng.uniform(-0.5, 0.5, (samples, 2)) * envelope).astype(np.float32)
    frames = -(-(samples + LENGTH) // STEP)
    whole = WaveformSeparator(network, sample_rate=RATE, frame_length=LENGTH, frame_step=STEP,
                              chunk_frames=-(-frames // 4) * 4, overlap_frames=0)
    reference = {k: np.asarray(v[0]) for k, v in whole(wave[None]).items()}
    # Samples within a quarter chunk of any seam of Spleeter's chunks.
    hop = FRAMES * STEP
    near = np.abs((np.arange(samples) + LENGTH + hop // 2) % hop - hop // 2) < hop // 4
    errors = {}
    for chunking in ("overlap", "spleeter"):
        stems = Separator(model, chunking=chunking, batch_size=4, progress=False).separate(wave, RATE)
        errors[chunking] = [snr(reference[n][near], stems[n][near]) for n in model.instruments]
    print(errors)
    for name, with_overlap, without in zip(model.instruments, errors["overlap"], errors["spleeter"]):
        assert with_overlap > without + 3, (name, errors)
