"""``keras-sep train``, ``export``, ``tune``, ``evaluate`` and
``timbre-transfer``: each command loads what it needs, runs it and prints
where its results went.
"""
import math
import os

from keras_sep import _cli_engine as _engine
from keras_sep import _cli_plans as _plans
from keras_sep._cli_common import _fail, _load_separator


def _train(args):
    from keras_sep import recipes

    try:
        config = recipes.resolve(args.config, args.set or ())
    except (OSError, ValueError) as error:
        _fail(error)
        return 2
    try:
        separator, history = recipes.train(config, args.output)
    except recipes.ConfigError as error:
        _fail(error)
        return 2
    except OSError as error:  # the output folder, a data file
        _fail(error)
        return 1
    # An Open-Unmix preset trains one network per target.
    runs = history if isinstance(separator, dict) else {"": history}
    if isinstance(separator, dict):
        for target in separator:
            print(f"trained {target}: {os.path.join(args.output, target + '.keras')}")
    else:
        print(f"trained separator: {os.path.join(args.output, 'separator.keras')}")
    print(f"resolved config:   {os.path.join(args.output, 'config.json')}")
    for target, run in runs.items():
        print(f"{target + ' ' if target else ''}final loss: {run['loss'][-1]:.5f}"
              + (f", val_loss: {run['val_loss'][-1]:.5f}" if "val_loss" in run else ""))
    return 0


def _export(args):
    import tensorflow as tf

    from keras_sep import export

    separator = _load_separator(args.model, chunking=args.chunking)
    if separator is None:
        return 2
    write = export.export_litert if args.format == "litert" else export.export_saved_model
    try:
        path = write(separator, args.directory)
    except (OSError, ValueError, tf.errors.OpError) as error:  # OpError: TensorFlow's own file system
        _fail(error)
        return 1
    print(f"{'LiteRT export' if args.format == 'litert' else 'SavedModel'} written to {path}")
    return 0


def _tune(args):
    from keras_sep.inference import autotune

    if not autotune.enabled():
        _fail("timing is off (KERAS_SEP_TUNE=0): nothing to tune")
        return 2
    if args.refresh and autotune.clear():
        print(f"removed this machine's timings: {autotune.table_path()}")
    separator = _load_separator(args.model, precision=args.precision)
    if separator is None:
        return 2
    plan = separator.tune()
    print(f"timings: {autotune.table_path()}")
    print(f"chunks per call: {plan['batch_size']}")
    if plan["forms"] is None:
        print("no inference plan for this model: the Keras layers run as they are")
    else:
        for part, forms in plan["forms"].items():
            print(f"{part} forms: {' '.join(forms)}")
    # What a later `separate` with this precision and the default phase starts from.
    saved = _plans.store(args.model, separator, (args.precision, "mixture", 0))
    if saved is not None:
        print(f"saved plan: {saved}")
    if args.precision == "float32":  # what --engine auto runs short inputs with
        export = _engine.prepare_export(args.model, separator)
        if export is not None:
            print(f"LiteRT export: {export}")
    return 0


def _parse_targets(items):
    """``["vocals=vocals", "accompaniment=drums+bass+other"]`` → grouping dict."""
    if not items:
        return None
    targets = {}
    for item in items:
        name, _, members = item.partition("=")
        if not name or not members:
            raise ValueError(f"--target must look like NAME=STEM[+STEM...], got {item!r}")
        targets[name] = members.split("+")
    return targets


def _evaluate(args):
    from keras_sep import audio, evaluation

    try:
        targets = _parse_targets(args.target)
    except ValueError as error:
        _fail(error)
        return 2
    separator = _load_separator(args.model, chunking=args.chunking)
    if separator is None:
        return 2
    try:
        tracks = evaluation.folder_tracks(args.root, args.subset, targets, separator.sample_rate)
        results = evaluation.evaluate(separator, tracks, oracles=() if args.no_oracle else ("irm", "ibm"))
    except (audio.AudioError, OSError, ValueError) as error:
        _fail(error)
        return 1
    print(evaluation.format_table(results))
    if args.json:
        evaluation.save_json(results, args.json)
        print(f"per-track results: {args.json}")
    return 0


def _timbre_transfer(args):
    import keras

    from keras_sep import audio
    from keras_sep.data import audio_features
    from keras_sep.models import DDSPAutoencoder

    if not (math.isfinite(args.pitch_shift) and math.isfinite(args.loudness_shift)):
        _fail(f"--pitch-shift and --loudness-shift must be finite, got {args.pitch_shift:g}, {args.loudness_shift:g}")
        return 2
    try:
        model = keras.models.load_model(args.model)
        if not isinstance(model, DDSPAutoencoder):
            raise ValueError(f"not a DDSPAutoencoder but a {type(model).__name__}")
    except Exception as error:  # whatever a user's model file makes Keras raise, on one line
        _fail(error, args.model)
        return 2
    try:
        waveform, _ = audio.load(args.input, sample_rate=model.sample_rate)
        if len(waveform) < model.frame_step:
            raise ValueError(f"shorter than one frame ({model.frame_step} samples at {model.sample_rate} Hz)")
        features = audio_features(waveform, model.sample_rate, model.frame_step)
        inputs = {"f0_hz": features["f0_hz"] * 2.0 ** (args.pitch_shift / 12.0),
                  "loudness_db": features["loudness_db"] + args.loudness_shift}
        if model.z_units is not None:
            inputs["audio"] = features["audio"]
        output = model.predict({k: v[None, :, None].astype("float32") for k, v in inputs.items()}, verbose=0)
        audio.save(args.output, output[0], model.sample_rate)  # written whole or not at all
    except (audio.AudioError, OSError, ValueError) as error:
        _fail(error, args.input)
        return 1
    print(f"wrote {args.output}")
    return 0
