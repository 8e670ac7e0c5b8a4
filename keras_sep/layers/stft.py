"""STFT layer: waveform to complex spectrogram, always in float32."""
import keras

from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops

OUTPUT_FORMATS = ("complex", "magnitude", "real_imag")


@keras.saving.register_keras_serializable(package="keras_sep")
class STFT(keras.layers.Layer):
    """Short-time Fourier transform of every channel of a waveform.

    A thin layer over :func:`keras_sep.ops.stft.stft`. It has no weights and
    always computes in float32, whatever the global dtype policy: under
    ``mixed_float16`` the transform stays float32 (half-precision FFTs are
    too coarse for audio) and only the layers after it run in float16.

    Args:
        frame_length: window length in samples.
        frame_step: hop between frames in samples.
        fft_length: FFT size, ``>= frame_length``; default ``frame_length``.
            The spectrogram has ``fft_length // 2 + 1`` bins.
        window: ``"hann"`` (periodic), ``"hamming"`` (periodic),
            ``"boxcar"`` or None (rectangular).
        center: pad ``frame_length // 2`` samples on both sides first so
            frame ``t`` is centred on sample ``t * frame_step`` (as librosa).
        pad_mode: padding of ``center``: ``"constant"`` (zeros),
            ``"reflect"`` or ``"symmetric"``.
        pad_end: zero-pad the end so the last samples get a frame.
        output_format: ``"complex"`` (complex64 spectrogram), ``"magnitude"``
            (float32 ``|X|``) or ``"real_imag"`` (float32, the real and the
            imaginary part of each input channel as two channels:
            ``[re_0, im_0, re_1, im_1, ...]``) for consumers that take no
            complex tensors.
        **kwargs: base layer arguments (``name``, ...). The dtype is always
            float32.

    Call arguments:
        waveform: ``(batch, samples, channels)`` real tensor.

    Input shape:
        ``(batch, samples, channels)``; batch and samples may be None.

    Output shape:
        ``(batch, frames, fft_length // 2 + 1, channels)`` (twice the
        channels for ``"real_imag"``), with ``frames`` given by
        :func:`keras_sep.ops.stft.num_frames`.

    Example:

    >>> import numpy as np
    >>> layer = STFT(frame_length=512, frame_step=128, center=True)
    >>> spec = layer(np.zeros((2, 16000, 2), "float32"))
    >>> spec.shape, spec.dtype.name
    (TensorShape([2, 126, 257, 2]), 'complex64')

    References:
        - J. B. Allen, L. R. Rabiner, "A unified approach to short-time
          Fourier analysis and synthesis", Proc. IEEE, 1977.
        - R. Hennequin et al., "Spleeter: a fast and efficient music source
          separation tool with pre-trained models", JOSS, 2020.
    """

    def __init__(
        self,
        frame_length=4096,
        frame_step=1024,
        fft_length=None,
        window="hann",
        center=False,
        pad_mode="constant",
        pad_end=False,
        output_format="complex",
        **kwargs,
    ):
        # The transform is float32 by design, under any global policy.
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        stft_ops.validate_stft_args(frame_length, frame_step, fft_length, window)
        if pad_mode not in stft_ops.PAD_MODES:
            raise ValueError(f"pad_mode must be one of {stft_ops.PAD_MODES}, got {pad_mode!r}")
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}"
            )
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = None if fft_length is None else int(fft_length)
        self.window = window
        self.center = bool(center)
        self.pad_mode = pad_mode
        self.pad_end = bool(pad_end)
        self.output_format = output_format

    @property
    def bins(self):
        return (self.fft_length or self.frame_length) // 2 + 1

    def call(self, waveform):
        spectrogram = stft_ops.stft(
            waveform,
            self.frame_length,
            self.frame_step,
            fft_length=self.fft_length,
            window=self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            pad_end=self.pad_end,
        )
        if self.output_format == "magnitude":
            return spectra.magnitude(spectrogram)
        if self.output_format == "real_imag":
            return spectra.to_real_imag(spectrogram)
        return spectrogram

    def compute_output_shape(self, input_shape):
        batch, samples, channels = input_shape
        frames = stft_ops.num_frames(
            samples, self.frame_length, self.frame_step, self.center, self.pad_end
        )
        if self.output_format == "real_imag" and channels is not None:
            channels = 2 * channels
        return (batch, frames, self.bins, channels)

    def compute_output_spec(self, waveform):
        dtype = "complex64" if self.output_format == "complex" else "float32"
        return keras.KerasTensor(self.compute_output_shape(waveform.shape), dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "fft_length": self.fft_length,
                "window": self.window,
                "center": self.center,
                "pad_mode": self.pad_mode,
                "pad_end": self.pad_end,
                "output_format": self.output_format,
            }
        )
        return config
