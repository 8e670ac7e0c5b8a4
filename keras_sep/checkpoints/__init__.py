"""Checkpoints of other frameworks read into keras_sep models, without those frameworks.

:class:`PretrainedError` lives here, below :mod:`keras_sep.pretrained`
(which fetches the files these modules read and re-exports it), so that a
reader can raise it without importing the module that imports the readers.
"""


class PretrainedError(RuntimeError):
    """Weights that could not be fetched or failed verification."""
