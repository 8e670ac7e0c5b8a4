"""``keras-sep separate`` and ``separate-beam``: the checks of their options,
the input files a folder stands for, and the outputs written per input.
"""
import math
import os

from keras_sep import _cli_engine as _engine
from keras_sep import _cli_plans as _plans
from keras_sep import _cli_process as _process
from keras_sep._cli_common import _fail, _load_separator, logger


def _separate(args):
    from keras_sep import audio

    if args.bitrate is not None:
        # Checked once here; the range a codec takes at a file's sample rate
        # is checked per file.
        try:
            audio.parse_bitrate(args.bitrate)
        except ValueError as error:
            _fail(error)
            return 2
        if args.codec not in audio.LOSSY_CODECS:
            _fail(f"--bitrate is for the lossy codecs ({', '.join(audio.LOSSY_CODECS)}); {args.codec} is lossless")
            return 2
    if not (math.isfinite(args.offset) and args.offset >= 0):
        _fail(f"--offset must be >= 0 seconds, got {args.offset:g}")
        return 2
    if args.duration == math.inf:
        args.duration = None  # all of it
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        _fail(f"--duration must be > 0 seconds, got {args.duration:g}")
        return 2
    if args.phase_iterations is not None:
        if args.phase != "griffin_lim":
            _fail(f"--phase-iterations is for --phase griffin_lim; --phase {args.phase} runs no iterations")
            return 2
        if args.phase_iterations < 1:
            _fail(f"--phase-iterations must be >= 1, got {args.phase_iterations}")
            return 2
    inputs = list(_input_files(args.inputs, args.output))
    try:
        # TensorFlow starts sooner from a saved plan: auto weighs that (litert never runs it).
        saved = _plans.cached_folder(args) if args.engine != "litert" else None
        engine = _engine.choose(args, [path for path, output in inputs if output is not None], saved is not None)
    except ValueError as error:
        _fail(error)
        return 2

    def load():
        _process.start_tensorflow(args.verbose)
        return _load_separator(
            args.model, chunking=args.chunking, batch_size=args.batch_size, precision=args.precision, mwf=args.mwf,
            phase=args.phase, phase_iterations=args.phase_iterations,
        )

    # A saved plan of this model and these options, checked while TensorFlow imports.
    found = _plans.Lookup(saved) if engine == "tensorflow" and saved is not None else None
    try:
        if engine == "litert":
            separator = _engine.litert_separator(args, load)
        else:
            separator = (_plans.load(found, args) if found is not None else None) or load()
    except (OSError, ValueError) as error:  # an unreadable export, a network LiteRT cannot convert
        _fail(error)
        return 2
    if separator is None:
        return 2
    try:  # a bad --filename-format stops the command before any input
        separator.output_paths("track.wav", args.output, args.codec, args.filename_format)
    except ValueError as error:
        _fail(error, "--filename-format")
        return 2
    failed = 0
    written = {}  # output path -> the input it was written for in this run
    for path, output in inputs:
        if output is None:  # a folder without audio files
            failed += 1
            _fail(f"{path}: no audio files in this folder")
            continue
        try:
            outputs = list(separator.output_paths(path, output, args.codec, args.filename_format).values())
            png = _plot_path(path, outputs) if args.plot else None
            # Two inputs of one run with the same name (a/01.mp3, b/01.mp3,
            # or song.mp3 and song.flac) must not overwrite each other's stems.
            clash = next((t for t in outputs + [png] if t is not None and os.path.abspath(t) in written), None)
            if clash is not None:
                raise FileExistsError(
                    f"{path}: output {clash} was written for {written[os.path.abspath(clash)]} in this run; "
                    "name outputs apart with {foldername} in --filename-format"
                )
            targets = separator.separate_to_file(
                path,
                output,
                codec=args.codec,
                filename_format=args.filename_format,
                offset=args.offset,
                duration=args.duration,
                overwrite=args.overwrite,
                bitrate=args.bitrate,
            )
            written.update((os.path.abspath(t), path) for t in targets.values())
            if args.plot:
                _process.start_tensorflow(args.verbose)  # the plot's spectra (a no-op once started)
                from keras_sep import plotting

                written[os.path.abspath(png)] = path
                plotting.plot_files(path, targets, png, offset=args.offset, duration=args.duration)
                targets = dict(targets, plot=png)
        except (audio.AudioError, FileExistsError, OSError, ValueError) as error:
            failed += 1
            _fail(error)
            continue
        print(f"{path}:")
        for name, target in targets.items():
            print(f"  {name}: {target}")
    if engine == "tensorflow" and failed < len(inputs) and hasattr(separator, "chunk_module"):
        # The Keras model ran: what it traced starts the next run.
        options = _plans.served_options(args)
        if options is not None:
            _plans.store(args.model, separator, options)
    return 1 if failed else 0


def _input_files(inputs, output):
    """``(path, output folder)`` of each input: a file as it is, a folder as
    the audio files under it (recursively), each with the output folder
    that keeps its place in the folder's layout (music/a/b.wav → OUTPUT/a,
    where the filename format puts b/vocals.wav). A folder without audio
    gives ``(folder, None)``; its other files are skipped with a line each."""
    from keras_sep import audio

    for path in inputs:
        if not os.path.isdir(path):
            yield path, output
            continue
        found, others = audio.audio_files(path)
        for other in others:
            logger.info("%s: skipped, not an audio file", os.path.join(path, other))
        if not found:
            yield path, None
        for relative in found:
            folder = os.path.dirname(relative)
            yield os.path.join(path, relative), os.path.join(output, folder) if folder else output


def _separate_beam(args):
    try:
        from keras_sep import beam
    except ImportError as error:  # the optional extra is missing
        _fail(f"separate-beam needs Apache Beam: pip install 'keras-sep[beam]' ({error})")
        return 2
    try:
        counts = beam.separate_files(
            args.pattern, args.output, args.model, runner=args.runner, pipeline_args=args.pipeline_args,
            codec=args.codec, bitrate=args.bitrate, filename_format=args.filename_format, chunking=args.chunking,
            batch_size=args.batch_size, overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:
        _fail(error)
        return 2
    print(f"separated {counts['separated']}, skipped {counts['skipped']} (stems existed), failed {counts['failed']}")
    if counts["failed"]:
        print(f"failures: {beam.failed_path(args.output)}")
    return 1 if counts["failed"] else 0


def _plot_path(path, outputs):
    """Where ``--plot`` writes TRACK.png: beside the track's folder when the
    stems have one of the track's name (the default format: OUT/TRACK.png),
    else in the stems' common folder."""
    track = os.path.splitext(os.path.basename(path))[0]
    # The outputs all start with OUTPUT, so their folders share its form.
    folder = os.path.commonpath([os.path.dirname(os.path.normpath(t)) for t in outputs])
    if os.path.basename(folder) == track:
        folder = os.path.dirname(folder)
    return os.path.join(folder, f"{track}.png")
