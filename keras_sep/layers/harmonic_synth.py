"""HarmonicSynth layer: DDSP's additive synthesiser of integer harmonics."""
import keras

from keras_sep.ops import synthesis


def _frames_to_samples(frames, frame_step):
    return None if frames is None else frames * frame_step


@keras.saving.register_keras_serializable(package="keras_sep")
class HarmonicSynth(keras.layers.Layer):
    """Sinusoids at integer multiples of f0, driven by frame-rate controls.

    The layer splits DDSP's two steps: :meth:`get_controls` turns raw network
    outputs into synthesiser controls (the overall amplitude and the
    harmonic distribution through :func:`~keras_sep.ops.synthesis.exp_sigmoid`,
    harmonics at or above Nyquist removed, the distribution normalised to sum
    to one), and :meth:`get_signal` synthesises audio from controls
    (:func:`~keras_sep.ops.synthesis.harmonic_synthesis`: f0 upsampled
    linearly, amplitudes by overlapping Hann windows, phase summed in
    float64). ``call`` does both. The layer always computes in float32, also
    under a ``mixed_float16`` policy: the phase needs the precision.

    Args:
        sample_rate: audio sample rate in Hz.
        frame_step: audio samples per control frame (64 gives 250 frames per
            second at 16 kHz).
        scale_controls: pass the amplitude and distribution through the
            scaled sigmoid (False: they are used as given, non-negative).
        **kwargs: base layer arguments (``name``, ...); the dtype is float32.

    Call arguments:
        inputs: list ``[f0, amplitude, harmonic_distribution]``: f0 in Hz
            ``(batch, frames, 1)``, the raw overall amplitude ``(batch,
            frames, 1)`` and the raw distribution ``(batch, frames,
            harmonics)``.

    Input shape:
        ``[(batch, frames, 1), (batch, frames, 1), (batch, frames, harmonics)]``.

    Output shape:
        ``(batch, frames * frame_step, 1)``, float32 audio.

    Example:

    >>> import numpy as np
    >>> synth = HarmonicSynth(sample_rate=16000, frame_step=64)
    >>> f0 = np.full((2, 10, 1), 220.0, "float32")
    >>> raw_amplitude = np.zeros((2, 10, 1), "float32")
    >>> raw_distribution = np.zeros((2, 10, 60), "float32")
    >>> audio = synth([f0, raw_amplitude, raw_distribution])
    >>> audio.shape, audio.dtype.name
    (TensorShape([2, 640, 1]), 'float32')
    >>> controls = synth.get_controls(f0, raw_amplitude, raw_distribution)
    >>> controls["amplitudes"].shape  # 220 Hz * 60 < 8 kHz: every harmonic sounds
    TensorShape([2, 10, 60])

    References:
        Engel, Hantrakul, Gu and Roberts, "DDSP: Differentiable Digital
        Signal Processing", ICLR 2020; magenta/ddsp ``synths.Harmonic``.
    """

    def __init__(self, sample_rate=16000, frame_step=64, scale_controls=True, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate!r}")
        if int(frame_step) != frame_step or frame_step <= 0:
            raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
        self.sample_rate = float(sample_rate)
        self.frame_step = int(frame_step)
        self.scale_controls = bool(scale_controls)

    def get_controls(self, f0, amplitude, harmonic_distribution):
        """Raw network outputs to ``{"f0", "amplitudes"}`` (per harmonic,
        ``(batch, frames, harmonics)``)."""
        if self.scale_controls:
            amplitude = synthesis.exp_sigmoid(amplitude)
            harmonic_distribution = synthesis.exp_sigmoid(harmonic_distribution)
        amplitudes = synthesis.harmonic_amplitudes(amplitude, harmonic_distribution, f0, self.sample_rate)
        return {"f0": f0, "amplitudes": amplitudes}

    def get_signal(self, f0, amplitudes):
        """Audio ``(batch, frames * frame_step, 1)`` from f0 and per-harmonic amplitudes."""
        return synthesis.harmonic_synthesis(f0, amplitudes, self.sample_rate, self.frame_step)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError(f"HarmonicSynth takes [f0, amplitude, harmonic_distribution], got {inputs!r}")
        return self.get_signal(**self.get_controls(*inputs))

    def compute_output_shape(self, input_shape):
        f0_shape = input_shape[0]
        return (f0_shape[0], _frames_to_samples(f0_shape[1], self.frame_step), 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate, frame_step=self.frame_step, scale_controls=self.scale_controls
        )
        return config
