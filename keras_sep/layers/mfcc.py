"""MFCC layer: mel-frequency cepstral coefficients on DDSP's frame grid."""
import keras
import tensorflow as tf

from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops


@keras.saving.register_keras_serializable(package="keras_sep")
class MFCC(keras.layers.Layer):
    """MFCCs of mono audio, one frame per ``frame_step`` samples.

    Centred Hann-windowed STFT of ``fft_size`` points, magnitude, ``mel_bins``
    mel bands from ``fmin`` to Nyquist, ``log(mel + 1e-6)``, DCT-II
    (``tf.signal.mfccs_from_log_mel_spectrograms``), the first ``mfccs``
    coefficients: DDSP's ``compute_mfcc``, on the frame grid of the
    synthesisers and of the loudness (frame ``t`` centred on sample ``t *
    frame_step``, ``samples // frame_step`` frames). Always float32.

    Args:
        sample_rate: audio rate in Hz.
        frame_step: samples between frames.
        mfccs: coefficients kept.
        fft_size: STFT window and FFT size.
        mel_bins: mel bands.
        fmin: lowest mel band edge in Hz.
        **kwargs: base layer arguments.

    Input shape:
        ``(batch, samples, 1)``.

    Output shape:
        ``(batch, samples // frame_step, mfccs)``.

    Example:

    >>> import numpy as np
    >>> MFCC(16000, 64, mfccs=30)(np.zeros((2, 6400, 1), "float32")).shape
    TensorShape([2, 100, 30])
    """

    def __init__(self, sample_rate=16000, frame_step=64, mfccs=30, fft_size=1024, mel_bins=128, fmin=20.0,
                 **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        for arg, value in (("frame_step", frame_step), ("mfccs", mfccs), ("fft_size", fft_size),
                           ("mel_bins", mel_bins)):
            if int(value) != value or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if mfccs > mel_bins:
            raise ValueError(f"mfccs must be at most mel_bins={mel_bins}, got {mfccs!r}")
        if not 0 <= fmin < sample_rate / 2:
            raise ValueError(f"fmin must be in [0, sample_rate / 2), got {fmin!r}")
        self.sample_rate = int(sample_rate)
        self.frame_step = int(frame_step)
        self.mfccs = int(mfccs)
        self.fft_size = int(fft_size)
        self.mel_bins = int(mel_bins)
        self.fmin = float(fmin)

    def call(self, audio):
        audio = tf.cast(audio, tf.float32)
        spectrum = stft_ops.stft(audio, self.fft_size, self.frame_step, center=True)
        magnitude = tf.reduce_mean(spectra.magnitude(spectrum), axis=-1)  # (batch, frames, bins)
        mel = tf.signal.linear_to_mel_weight_matrix(
            self.mel_bins, self.fft_size // 2 + 1, self.sample_rate, self.fmin, self.sample_rate / 2.0
        )
        log_mel = tf.math.log(tf.tensordot(magnitude, mel, 1) + 1e-6)
        coefficients = tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : self.mfccs]
        frames = tf.shape(audio)[1] // self.frame_step
        return coefficients[:, :frames]

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        return (input_shape[0], None if samples is None else samples // self.frame_step, self.mfccs)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, frame_step=self.frame_step, mfccs=self.mfccs,
                      fft_size=self.fft_size, mel_bins=self.mel_bins, fmin=self.fmin)
        return config
