"""Make tests/data/spleeter_{4,5}stems_random.npz: real Spleeter's 4- and 5-stem
graphs with seeded random weights, and what they separate.

Deezer's 4- and 5-stem checkpoints cannot be fetched here, so parity is shown
on Spleeter's own graphs (``spleeter:4stems``: ELU U-Nets; ``spleeter:5stems``:
ELU U-Nets whose logit masks share each bin by a softmax across instruments)
with random weights that both sides can make: every variable gets values from
``tests/spleeter_random_checkpoint.py`` (NumPy, seeded). Each fixture holds:

- ``mixture``: float32 ``(samples, 2)`` at 44100 Hz, half a second of chords
  and noise (seeded);
- ``{instrument}``: Spleeter's stems with default settings;
- ``mwf_{instrument}`` (4 stems only): the same with ``MWF`` (norbert);
- ``variables``: JSON ``{name: shape}`` of the model's variables, ``seed``,
  and ``fingerprint`` (proves the tests regenerate the same values).

``--checkpoint-dir DIR`` also saves the random checkpoints as
``DIR/4stems/model*`` and ``DIR/5stems/model*`` (Spleeter's layout: give
``MODEL_PATH=DIR`` to Spleeter, ``local_dir=DIR`` to keras_sep), for the
benchmark. Run with the peer's Python (Spleeter 2.4.2, TF 2.12)::

    /tmp/spleeter_peer/venv/bin/python scripts/make_spleeter45_fixtures.py
"""
import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from spleeter_random_checkpoint import fingerprint, random_variables  # noqa: E402

RATE = 44100
SEEDS = {"4stems": 4, "5stems": 5}
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")


def mixture(seconds, seed=45):
    """Three held chord tones per channel and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * RATE))) / RATE
    tones = [sum(0.1 * np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(80, 4000, 3), rng.uniform(0, 6, 3)))
             for _ in range(2)]
    wave = np.stack(tones, axis=1) + 0.02 * rng.standard_normal((len(t), 2))
    return wave.astype(np.float32)


def run_spleeter(config, wave, mwf, checkpoint_dir=None):
    """Spleeter's graph for ``config`` with the seeded random weights on ``wave``."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder
    from spleeter.utils.configuration import load_configuration

    params = load_configuration(f"spleeter:{config}")
    params["MWF"] = mwf
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, shape=(None, 2), name="waveform")
        builder = EstimatorSpecBuilder({"waveform": placeholder}, params)
        outputs = builder.outputs
        variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
        shapes = {name: list(v.shape.as_list()) for name, v in variables.items()}
        values = random_variables(shapes, SEEDS[config])
        with tf.compat.v1.Session(graph=graph) as session:
            for name, variable in variables.items():
                variable.load(values[name], session)
            if checkpoint_dir:
                folder = os.path.join(checkpoint_dir, config)
                os.makedirs(folder, exist_ok=True)
                tf.compat.v1.train.Saver().save(session, os.path.join(folder, "model"), write_meta_graph=False)
                open(os.path.join(folder, ".probe"), "w").close()  # Spleeter: do not download
            stems = session.run(outputs, {placeholder: wave})
    return stems, shapes, params["instrument_list"], fingerprint(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--output-dir", default=DATA)
    parser.add_argument("--checkpoint-dir", help="also save the random checkpoints here")
    args = parser.parse_args()
    wave = mixture(args.seconds)
    for config in ("4stems", "5stems"):
        stems, shapes, instruments, print_ = run_spleeter(config, wave, False, args.checkpoint_dir)
        arrays = {"mixture": wave, **{name: stems[name] for name in instruments}}
        if config == "4stems":  # the N-source Wiener filter against Spleeter's --mwf
            filtered, *_ = run_spleeter(config, wave, True)
            arrays.update({f"mwf_{name}": filtered[name] for name in instruments})
        arrays = {name: np.asarray(value, np.float32) for name, value in arrays.items()}
        arrays.update(variables=np.array(json.dumps(shapes, sort_keys=True)), seed=np.int64(SEEDS[config]),
                      fingerprint=np.float64(print_), instruments=np.array(json.dumps(instruments)))
        path = os.path.join(args.output_dir, f"spleeter_{config}_random.npz")
        np.savez_compressed(path, **arrays)
        print(f"wrote {path}: {len(shapes)} variables, {os.path.getsize(path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
