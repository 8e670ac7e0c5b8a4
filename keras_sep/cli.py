"""``keras-sep``: separate, evaluate, train, tune and export from the command line.

TensorFlow is imported inside the commands, so ``keras-sep --help`` answers
at once. :func:`main` configures its own process, as the library never
does: a handler that prints the ``keras_sep`` loggers' messages as
``keras-sep: ...`` lines, TensorFlow's BFC CPU allocator and, unless
``--verbose``, TensorFlow's start-up without its C++ notices
(:mod:`keras_sep.runtime`), and for the commands that separate, TensorFlow's
persistent XLA cache, checked (:mod:`keras_sep._cli_xla`).
"""
import argparse
import logging
import os
import sys

from keras_sep import _cli_cache
from keras_sep import _cli_engine as _engine
from keras_sep import _cli_process as _process
from keras_sep import _cli_xla as _xla
# build_parser and main read these names from this module when called, so a
# caller that replaces cli._separate or another command (tests do) runs its own.
from keras_sep._cli_commands import _evaluate, _export, _timbre_transfer, _train, _tune
from keras_sep._cli_separate import _separate, _separate_beam

DEFAULT_MODEL = "spleeter:2stems"
logger = _process.logger


def _cache(args):
    return _cli_cache.run(args, logger)


def _model_help(default=True):
    from keras_sep import pretrained

    names = ", ".join(sorted(name for name in pretrained.presets() if not name.startswith("asset:")))
    return f"preset ({names}) or .keras file" + (" (default: %(default)s)" if default else "")


def build_parser():
    # The choices come from the modules that check them; none imports TensorFlow.
    from keras_sep import audio
    from keras_sep.separation import CHUNKING_MODES, DEFAULT_PHASE_ITERATIONS, PHASES, PRECISIONS

    parser = argparse.ArgumentParser(
        prog="keras-sep",
        description="Music source separation with Keras (U-Net / Spleeter models).",
    )
    verbose_help = "also show TensorFlow's start-up lines and keras-sep's debug messages"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # Each command takes -v too; SUPPRESS keeps its unset default from
    # overwriting a -v given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    commands = parser.add_subparsers(dest="command", required=True)

    sep = commands.add_parser("separate", parents=[common], help="separate audio files into stems")
    sep.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="audio files (wav, flac, mp3, ogg, m4a, opus, ...) or folders: their audio files, recursively, "
        "with the folder's layout kept under OUTPUT",
    )
    sep.add_argument("-o", "--output", default="separated", help="output folder (default: %(default)s)")
    sep.add_argument("-m", "--model", default=DEFAULT_MODEL, help=_model_help())
    sep.add_argument(
        "--codec", choices=tuple(audio.CODECS), default="wav",
        help="output format: wav (32-bit float), flac (24-bit), or lossy mp3, ogg (Vorbis), m4a (AAC) (default: %(default)s)",
    )
    sep.add_argument(
        "-b", "--bitrate", default=None,
        help="bit rate of lossy outputs, all channels, e.g. 192k: MP3 constant, Vorbis the quality of that "
        "nominal rate, AAC its target (default: the encoder's own)",
    )
    sep.add_argument("--offset", type=float, default=0.0, help="start, in seconds")
    sep.add_argument("--duration", type=float, default=None, help="seconds to separate (default: all)")
    sep.add_argument(
        "--filename-format",
        default="{track}/{instrument}.{codec}",
        help="output names under OUTPUT, with {track} (input name), {foldername} (its folder's name), "
        "{instrument}, {codec} (default: %(default)s)",
    )
    sep.add_argument("--overwrite", action="store_true", help="replace existing output files")
    sep.add_argument("--plot", action="store_true", help="also write TRACK.png: mixture spectrogram, masks, stems")
    sep.add_argument(
        "--chunking", choices=CHUNKING_MODES, default="overlap",
        help="cross-faded overlapping chunks, or Spleeter's own chunks (default: %(default)s)",
    )
    sep.add_argument(
        "--mwf", action="store_true",
        help="multichannel Wiener filtering instead of ratio masks (Spleeter's --mwf): reads and separates "
        "each input twice",
    )
    sep.add_argument(
        "--phase", choices=PHASES, default="mixture",
        help="each stem's phase: the mixture's (the Wiener estimate's with --mwf), or re-estimated from its "
        "magnitude by fast Griffin-Lim started from it (default: %(default)s)",
    )
    sep.add_argument(
        "--phase-iterations", type=int, default=None, metavar="N",
        help=f"Griffin-Lim iterations with --phase griffin_lim (default: {DEFAULT_PHASE_ITERATIONS})",
    )
    sep.add_argument("--batch-size", type=int, default=None,
                     help="chunks per network call (default: the faster of 1 and 4 here, timed once; larger helps on GPU)")
    sep.add_argument(
        "--precision", choices=PRECISIONS, default="float32",
        help="bfloat16: U-Net convolutions in bfloat16, 2-3x faster on CPUs with bfloat16 units (Intel AMX, "
        "AVX512_BF16), slower elsewhere; stems within about 50 dB SNR of float32 (default: %(default)s)",
    )
    sep.add_argument(
        "--engine", choices=_engine.ENGINES, default="auto",
        help="tensorflow; litert: the network in LiteRT (XNNPACK), no TensorFlow import, slower per chunk (a "
        "preset or .keras model is converted once and cached; -m may name a LiteRT export); auto: litert for "
        f"up to {_engine.AUTO_LITERT_SECONDS:.0f} s of audio when a LiteRT export is at hand and the options "
        "allow it (default: %(default)s)",
    )
    sep.set_defaults(func=_separate)

    tr = commands.add_parser(
        "train", parents=[common],
        help="train a separator from a JSON config (default: U-Net on the built-in Bach dataset)",
    )
    tr.add_argument("-c", "--config", help="JSON file with model / data / training sections")
    tr.add_argument(
        "--set", action="append", metavar="SECTION.KEY=VALUE",
        help="override, repeatable, e.g. --set training.epochs=3 --set model.overrides.filters=[8,16]",
    )
    tr.add_argument("-o", "--output", default="trained", help="folder for separator.keras, config.json, backups, logs")
    tr.set_defaults(func=_train)

    ev = commands.add_parser("evaluate", parents=[common], help="BSS Eval v4 (museval) of a model on a stems folder")
    ev.add_argument("root", help="MUSDB-layout folder: ROOT/SUBSET/<track>/<stem>.wav")
    ev.add_argument("-m", "--model", default=DEFAULT_MODEL, help=_model_help())
    ev.add_argument("--subset", default="test")
    ev.add_argument(
        "--target", action="append",
        help="NAME=STEM[+STEM...], repeatable (e.g. accompaniment=drums+bass+other); default: each stem",
    )
    ev.add_argument("--no-oracle", action="store_true", help="skip the IRM/IBM oracle rows")
    ev.add_argument("--json", help="also write per-track results here")
    ev.add_argument("--chunking", choices=CHUNKING_MODES, default="overlap")
    ev.set_defaults(func=_evaluate)

    tune = commands.add_parser(
        "tune", parents=[common],
        help="time this machine's operator forms and batch size now (otherwise a few seconds of it per separation)"
        " and make the LiteRT export that --engine auto runs short inputs with",
    )
    tune.add_argument("-m", "--model", default=DEFAULT_MODEL, help=_model_help())
    tune.add_argument("--precision", choices=PRECISIONS, default="float32")
    tune.add_argument("--refresh", action="store_true",
                      help="forget this machine's earlier timings first (e.g. taken while it was busy)")
    tune.set_defaults(func=_tune)

    exp = commands.add_parser(
        "export", parents=[common], help="export a separator as a TF Serving SavedModel or for LiteRT"
    )
    exp.add_argument("directory", help="version folder, e.g. serving/unet/1 (litert: any folder)")
    exp.add_argument("-m", "--model", default=DEFAULT_MODEL, help=_model_help())
    exp.add_argument("--chunking", choices=CHUNKING_MODES, default="overlap")
    exp.add_argument(
        "--format", choices=("saved_model", "litert"), default="saved_model",
        help="saved_model (TF Serving) or litert: separator.tflite and keras_sep.json, run without TensorFlow "
        "by keras_sep.litert or `separate --engine litert -m DIRECTORY` (default: %(default)s)",
    )
    exp.set_defaults(func=_export)

    sb = commands.add_parser(
        "separate-beam", parents=[common],
        help="separate every file matching a pattern on Apache Beam (local, Dataflow, Flink, Spark); "
        "further options go to Beam, e.g. --project=P --region=R (needs keras-sep[beam])",
    )
    sb.add_argument("pattern", help="file pattern Beam matches, quoted: 'music/**/*.mp3', 'gs://bucket/music/*.flac'")
    sb.add_argument("-o", "--output", required=True,
                    help="output folder or prefix (gs://...); failures go to OUTPUT/failed.tsv")
    sb.add_argument("-m", "--model", default=DEFAULT_MODEL, help=_model_help())
    sb.add_argument("--runner", default="DirectRunner", metavar="RUNNER",
                    help="DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ... (default: %(default)s)")
    sb.add_argument("--codec", choices=tuple(audio.CODECS), default="wav",
                    help="as for separate (default: %(default)s)")
    sb.add_argument("-b", "--bitrate", default=None, help="as for separate")
    sb.add_argument("--filename-format", default="{track}/{instrument}.{codec}",
                    help="as for separate (default: %(default)s)")
    sb.add_argument("--chunking", choices=CHUNKING_MODES, default="overlap",
                    help="as for separate (default: %(default)s)")
    sb.add_argument("--batch-size", type=int, default=None, help="chunks per network call (default: 1; 8-32 on GPUs)")
    sb.add_argument("--overwrite", action="store_true",
                    help="separate tracks again whose stems all exist (default: skip them)")
    sb.set_defaults(func=_separate_beam, pipeline_args=[])

    tt = commands.add_parser(
        "timbre-transfer", parents=[common], help="play a melody with a trained DDSP model's instrument"
    )
    tt.add_argument("input", metavar="INPUT", help="audio file of a monophonic melody (voice, instrument)")
    tt.add_argument("-m", "--model", required=True, help="a DDSPAutoencoder .keras file")
    tt.add_argument("-o", "--output", required=True, help="output audio file (wav, flac, ...)")
    tt.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                    help="shift the melody's f0, e.g. -12 to bring a voice down an octave (default: 0)")
    tt.add_argument("--loudness-shift", type=float, default=0.0, metavar="DB",
                    help="add to the melody's loudness (default: 0)")
    tt.set_defaults(func=_timbre_transfer)

    _cli_cache.add_parser(commands, [common]).set_defaults(func=_cache)
    return parser


_ran = None  # the command function main() last ran (run() reads it)


def main(argv=None):
    global _ran
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    _ran = args.func
    if unknown:  # only separate-beam passes options on (to Beam)
        if not hasattr(args, "pipeline_args"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.pipeline_args = unknown
    # The commands that separate keep their compiled XLA code (training's
    # many graphs would only fill the cache).
    with _process.messages_to_stderr(args.verbose), _xla.command(args.func in (_separate, _tune, _evaluate)):
        # separate runs without TensorFlow when its engine is LiteRT, cache never needs it
        if args.func not in (_separate, _cache):
            _process.start_tensorflow(args.verbose)  # every other command runs TensorFlow
        return args.func(args)


def run():
    """The ``keras-sep`` program: :func:`main`; after ``separate``, an exit
    that skips the interpreter's teardown, which TensorFlow makes take about
    0.5 s of every run that imported it. That command closes and renames
    everything it writes before main() returns and leaves nothing to clean
    up at exit (others may: separate-beam's staged model folder); the log
    and the streams are flushed here."""
    code = main()
    if _ran is not _separate:
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
