"""Where keras_sep keeps downloads and generated data (no TensorFlow import)."""
import os


def cache_dir():
    """``$KERAS_SEP_CACHE``, else ``$XDG_CACHE_HOME/keras_sep`` or ``~/.cache/keras_sep``."""
    root = os.environ.get("KERAS_SEP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "keras_sep"
    )
    os.makedirs(root, exist_ok=True)
    return root
