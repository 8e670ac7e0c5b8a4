"""ISTFT layer: complex spectrogram back to a waveform, always in float32."""
import keras

from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops

INPUT_FORMATS = ("complex", "real_imag")


@keras.saving.register_keras_serializable(package="keras_sep")
class ISTFT(keras.layers.Layer):
    """Inverse short-time Fourier transform by windowed overlap-add.

    The inverse of :class:`STFT` built with the same arguments; a thin layer
    over :func:`keras_sep.ops.stft.istft`. It has no weights and always
    computes in float32, whatever the global dtype policy.

    With ``normalize=True`` the overlap-add is divided by the sum of the
    squared windows so ``ISTFT(STFT(x)) == x``: everywhere with
    ``center=True``, and away from the first and last ``frame_length -
    frame_step`` samples with ``center=False`` (which tapers the ends, see
    :func:`keras_sep.ops.stft.istft`). ``normalize=False`` is the plain
    windowed overlap-add (what ``tf.signal.inverse_stft`` computes);
    Spleeter uses it and multiplies by
    :func:`keras_sep.ops.stft.overlap_add_scale` (2/3 for Hann at a
    quarter-frame hop) itself.

    Args:
        frame_length: window length in samples.
        frame_step: hop between frames in samples.
        fft_length: FFT size; default ``frame_length``.
        window: ``"hann"``, ``"hamming"``, ``"boxcar"`` or None, as in
            :class:`STFT`.
        center: the spectrogram was computed with ``center=True``; the
            ``frame_length // 2`` padded samples are removed again.
        normalize: divide by the window sum (see above).
        input_format: ``"complex"`` (complex spectrogram) or ``"real_imag"``
            (float, real and imaginary part of each channel side by side as
            :class:`STFT` with ``output_format="real_imag"`` gives them).
        **kwargs: base layer arguments (``name``, ...). The dtype is always
            float32.

    Call arguments:
        inputs: the spectrogram, or a list ``[spectrogram, reference]``
            where ``reference`` is any ``(batch, samples, ...)`` tensor, e.g.
            the input waveform: the output is cut or zero-padded to its
            ``samples``.
        length: optional sample count (int or scalar integer tensor) to cut
            or zero-pad the output to, when no reference is given.

    Input shape:
        ``(batch, frames, fft_length // 2 + 1, channels)`` (twice the
        channels for ``"real_imag"``), plus the optional reference.

    Output shape:
        float32 ``(batch, samples, channels)`` with ``samples`` the
        reference's, or :func:`keras_sep.ops.stft.istft_length` of the frames.

    Example:

    >>> import numpy as np
    >>> from keras_sep.layers import STFT
    >>> waveform = np.random.default_rng(0).normal(size=(2, 600, 2)).astype("float32")
    >>> spec = STFT(frame_length=64, frame_step=16, center=True)(waveform)
    >>> inverse = ISTFT(frame_length=64, frame_step=16, center=True)
    >>> restored = inverse([spec, waveform])
    >>> restored.shape
    TensorShape([2, 600, 2])
    >>> error = float(np.max(np.abs(restored - waveform)))
    >>> print(f"round-trip error {error:.0e} < 1e-6: {error < 1e-6}")
    round-trip error ...e-0... < 1e-6: True

    References:
        - D. Griffin, J. Lim, "Signal estimation from modified short-time
          Fourier transform", IEEE Trans. ASSP, 1984.
    """

    def __init__(
        self,
        frame_length=4096,
        frame_step=1024,
        fft_length=None,
        window="hann",
        center=False,
        normalize=True,
        input_format="complex",
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        stft_ops.validate_stft_args(frame_length, frame_step, fft_length, window)
        if input_format not in INPUT_FORMATS:
            raise ValueError(
                f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}"
            )
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = None if fft_length is None else int(fft_length)
        self.window = window
        self.center = bool(center)
        self.normalize = bool(normalize)
        self.input_format = input_format

    def call(self, inputs, length=None):
        reference = None
        if isinstance(inputs, (list, tuple)):
            inputs, reference = inputs
        if reference is not None:
            length = keras.ops.shape(reference)[1]
        if self.input_format == "real_imag":
            inputs = spectra.from_real_imag(inputs)
        return stft_ops.istft(
            inputs,
            self.frame_length,
            self.frame_step,
            fft_length=self.fft_length,
            window=self.window,
            center=self.center,
            length=length,
            normalize=self.normalize,
        )

    def compute_output_shape(self, input_shape, length=None):
        reference_shape = None
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            input_shape, reference_shape = input_shape
        batch, frames, _, channels = input_shape
        if self.input_format == "real_imag" and channels is not None:
            channels = channels // 2
        if reference_shape is not None:
            samples = reference_shape[1]
        elif isinstance(length, int):
            samples = length
        else:
            samples = stft_ops.istft_length(
                frames, self.frame_length, self.frame_step, self.center
            )
            samples = None if length is not None else samples
        return (batch, samples, channels)

    def compute_output_spec(self, inputs, length=None):
        shapes = (
            [x.shape for x in inputs] if isinstance(inputs, (list, tuple)) else inputs.shape
        )
        return keras.KerasTensor(self.compute_output_shape(shapes, length), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "fft_length": self.fft_length,
                "window": self.window,
                "center": self.center,
                "normalize": self.normalize,
                "input_format": self.input_format,
            }
        )
        return config
