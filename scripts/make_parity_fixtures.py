"""Make tests/data/spleeter_2stems_excerpt.npz: Spleeter's own outputs on a short excerpt.

The Spleeter parity tests (tests/test_spleeter_parity.py, tests/test_wiener.py)
read only this file, so a bare clone tests itself. It holds, for a one-second
excerpt of Spleeter's example song, everything the tests compare with:

- ``mixture``: float32 ``(samples, 2)`` at 44100 Hz, the excerpt fed to Spleeter;
- ``vocals``, ``accompaniment``: Spleeter's output with default settings;
- ``mwf_vocals``, ``mwf_accompaniment``: the same with ``MWF`` (norbert Wiener filter);
- ``mix_spectrogram``, ``vocals_spectrogram``, ``accompaniment_spectrogram``:
  the network's input and each U-Net's output, ``(1, frames, 1024, 2)``; only
  the first ``frames`` of Spleeter's 512-frame chunk are kept, because every
  later frame is exactly zero in all three (checked here): tests zero-pad them
  back to ``chunk_frames``.

Spleeter is run on the excerpt itself, not sliced from its output on the whole
song: its 512-frame chunks and the U-Net's wide receptive field make the output
on a slice differ from the slice of the output.

Needs the real Spleeter 2.4.2 (TensorFlow 2.12) with its 2-stem checkpoint, as
installed by the project's peer tool, and the decoded example song
(``input_waveform.npy``: Spleeter's own mp3 decode, float32 ``(479832, 2)``).
Rerun with::

    bash ../shared/tools/spleeter_peer/setup.sh /tmp/spleeter_peer
    MODEL_PATH=/tmp/spleeter_peer/pretrained_models \\
        /tmp/spleeter_peer/venv/bin/python scripts/make_parity_fixtures.py \\
        ../shared/data/spleeter_2stems/input_waveform.npy

Options ``--start`` and ``--seconds`` choose the excerpt (default 3.0 and 1.0:
a second where the voice sings over the accompaniment). The result is
deterministic on one machine; a rerun elsewhere may differ by float error only.
"""
import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RATE = 44100
INSTRUMENTS = ("vocals", "accompaniment")
DEFAULT_OUTPUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "spleeter_2stems_excerpt.npz")


def run_spleeter(wave, mwf):
    """Spleeter's graph on ``wave``: the output waveforms and the network's input/outputs."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder
    from spleeter.utils.configuration import load_configuration

    params = load_configuration("spleeter:2stems")
    params["MWF"] = mwf
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, shape=(None, 2), name="waveform")
        builder = EstimatorSpecBuilder({"waveform": placeholder}, params)
        fetches = {
            "outputs": builder.outputs,
            "mix_spectrogram": builder.spectrogram_feature,
            "network": builder.model_outputs,
        }
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            checkpoint = tf.train.latest_checkpoint(os.path.join(os.environ["MODEL_PATH"], "2stems"))
            saver.restore(session, checkpoint)
            return session.run(fetches, {placeholder: wave})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("waveform", help="Spleeter's decode of its example song, float32 (samples, 2) .npy")
    parser.add_argument("--start", type=float, default=3.0, help="excerpt start, seconds")
    parser.add_argument("--seconds", type=float, default=1.0, help="excerpt length, seconds")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    song = np.load(args.waveform).astype(np.float32)
    start = int(round(args.start * RATE))
    wave = np.ascontiguousarray(song[start : start + int(round(args.seconds * RATE))])

    plain = run_spleeter(wave, mwf=False)
    filtered = run_spleeter(wave, mwf=True)

    mix = plain["mix_spectrogram"]
    network = {f"{name}_spectrogram": plain["network"][f"{name}_spectrogram"] for name in INSTRUMENTS}
    if mix.shape[0] != 1:
        raise ValueError(f"the excerpt must fit one Spleeter chunk; got {mix.shape[0]} chunks")
    used = np.flatnonzero(np.abs(mix).sum(axis=(0, 2, 3)) > 0)
    frames = int(used[-1]) + 1
    for name, value in {"mix_spectrogram": mix, **network}.items():
        if np.any(value[:, frames:] != 0):
            raise ValueError(f"{name} is not zero after frame {frames}: cannot crop it")

    arrays = {"mixture": wave, "chunk_frames": np.int64(mix.shape[1])}
    arrays["mix_spectrogram"] = mix[:, :frames]
    for name in INSTRUMENTS:
        arrays[name] = plain["outputs"][name]
        arrays[f"mwf_{name}"] = filtered["outputs"][name]
        arrays[f"{name}_spectrogram"] = network[f"{name}_spectrogram"][:, :frames]
    arrays = {name: np.asarray(value, np.float32) if name != "chunk_frames" else value
              for name, value in arrays.items()}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output}: {wave.shape[0]} samples, {frames} of {mix.shape[1]} frames, "
          f"{os.path.getsize(args.output) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
