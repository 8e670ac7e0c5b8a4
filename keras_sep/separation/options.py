"""What a :class:`~keras_sep.separation.Separator` can be asked for, and the
checks of a request: TensorFlow-free, so the command line builds its choice
lists from here."""
import numbers
import os
import warnings

from keras_sep.separation import pipelines

CHUNKING_MODES = ("overlap", "spleeter")
PRECISIONS = ("float32", "bfloat16")
PHASES = ("mixture", "griffin_lim")
# Griffin-Lim iterations of phase="griffin_lim" when none are given.
DEFAULT_PHASE_ITERATIONS = 16


def check(model, chunking, batch_size, fast, precision, phase, phase_iterations):
    """Raise a one-line ``TypeError`` / ``ValueError`` for a request a
    ``Separator`` cannot serve; return the Griffin–Lim iterations it runs
    (0 for the mixture phase).

    Example:

    >>> from keras_sep.models import UNetSeparator, WaveformSeparator
    >>> model = WaveformSeparator(UNetSeparator(filters=(4, 8), bins=16, frames=16), frame_length=64, frame_step=16)
    >>> check(model, "overlap", None, True, "float32", "griffin_lim", None)
    16
    >>> check(model, "overlap", None, True, "float32", "mixture", None)
    0
    >>> check(model, "chunky", None, True, "float32", "mixture", None)
    Traceback (most recent call last):
    ValueError: chunking must be one of ('overlap', 'spleeter'), got 'chunky'
    >>> check("spleeter:2stems", "overlap", None, True, "float32", "mixture", None)
    Traceback (most recent call last):
    TypeError: Separator takes a WaveformSeparator, got the path or preset name 'spleeter:2stems': use Separator.from_preset('spleeter:2stems')
    """
    from keras_sep.models import OpenUnmixSeparator, WaveformSeparator

    if isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"Separator takes a WaveformSeparator, got the path or preset name {os.fspath(model)!r}: "
            f"use Separator.from_preset({os.fspath(model)!r})"
        )
    if isinstance(model, OpenUnmixSeparator):
        model.check_streaming()
        return _check_open_unmix(chunking, batch_size, precision, phase, phase_iterations)
    if not isinstance(model, WaveformSeparator):
        hint = (
            ", a spectrogram network: wrap it, keras_sep.models.WaveformSeparator(network)"
            if hasattr(model, "instruments") else ""
        )
        raise TypeError(
            f"Separator needs a WaveformSeparator (waveform in, stems out), got {type(model).__name__}{hint}"
        )
    if chunking not in CHUNKING_MODES:
        raise ValueError(f"chunking must be one of {CHUNKING_MODES}, got {chunking!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "float32" and not fast:
        raise ValueError(f"precision={precision!r} runs the inference plan: it needs fast=True")
    if precision != "float32" and not pipelines.has_plan(model.spectrogram_model):
        net = model.spectrogram_model
        raise ValueError(f"precision={precision!r} needs a float32 network with an inference plan "
                         f"(a UNetSeparator), got {type(net).__name__} computing in {net.compute_dtype}")
    if precision == "bfloat16" and pipelines.has_bfloat16_units() is False:
        warnings.warn(
            "precision='bfloat16': this processor has no bfloat16 instructions (AVX512_BF16, AMX, "
            "Arm BF16) and no GPU is visible, so bfloat16 runs slower than float32 here",
            RuntimeWarning,
            stacklevel=3,  # the caller of Separator(...)
        )
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if phase_iterations is not None and phase == "mixture":
        raise ValueError(
            f"phase_iterations={phase_iterations!r} is for phase='griffin_lim'; phase='mixture' runs no iterations"
        )
    if phase_iterations is None:
        phase_iterations = DEFAULT_PHASE_ITERATIONS if phase == "griffin_lim" else 0
    integral = isinstance(phase_iterations, numbers.Integral) and not isinstance(phase_iterations, bool)
    if phase == "griffin_lim" and not (integral and phase_iterations >= 1):
        raise ValueError(f"phase_iterations must be a positive integer, got {phase_iterations!r}")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return int(phase_iterations)


def _check_open_unmix(chunking, batch_size, precision, phase, phase_iterations):
    """The requests an :class:`~keras_sep.models.OpenUnmixSeparator` serves:
    overlapping chunks, float32 Keras layers, the Wiener filter's phase."""
    if chunking != "overlap":
        raise ValueError(f"an Open-Unmix model streams overlapping chunks only (chunking='overlap'), got {chunking!r}")
    if precision != "float32":
        raise ValueError(f"precision={precision!r} needs a network with an inference plan; Open-Unmix runs float32")
    if phase != "mixture" or phase_iterations is not None:
        raise ValueError(f"an Open-Unmix model keeps its Wiener filter's phase (phase='mixture'), got phase={phase!r}")
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    return 0
