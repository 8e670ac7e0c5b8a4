"""What every ``keras-sep`` command shares: its one-line error report and
the loading of its separator, so that each command fails the same way.
"""
from keras_sep import _cli_process as _process

logger = _process.logger


def _fail(error, subject=None):
    """Report ``error`` as the one line the CLI promises."""
    from keras_sep.audio import one_line

    logger.error("%s%s", f"{subject}: " if subject else "", one_line(error))


def _load_separator(model, **kwargs):
    """The command's Separator, or None after a one-line error: an unknown
    preset, a missing file, a folder, a file that is no .keras archive or
    no separator stops every command the same way (exit 2)."""
    from keras_sep.separation import Separator

    try:
        return Separator.from_preset(model, **kwargs)
    except Exception as error:  # whatever a user's model file makes Keras raise, on one line
        logger.debug("loading model %s failed", model, exc_info=True)
        # Name the model once: most messages already start with it or quote it.
        named = str(error).startswith(f"{model}:") or repr(model) in str(error)
        _fail(error, None if named else model)
        return None
