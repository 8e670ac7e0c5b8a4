"""The error vocabulary of keras_sep: :class:`AudioError` and one-line messages.

Every module that reports a failure to a person imports these, so they
depend on nothing else in the package.
"""


class AudioError(ValueError):
    """A file or array that cannot be used as audio; the message names it."""


def one_line(error):
    """An exception's message on one line (its type's name when empty).

    Libraries such as libsndfile and FFmpeg put line breaks and runs of
    spaces in their messages; a message quoted inside ours must not break
    the one line a log or a terminal shows.

    Example:

    >>> one_line(OSError("Error opening 'x.wav':\\n  Format not recognised."))
    "Error opening 'x.wav': Format not recognised."
    >>> one_line(KeyError())
    'KeyError'
    """
    return " ".join(str(error).split()) or type(error).__name__
