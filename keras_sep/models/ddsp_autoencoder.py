"""DDSP autoencoder: f0 and loudness drive a harmonic synthesiser, filtered
noise and a reverb through a recurrent decoder (timbre transfer)."""
import math

import keras
import tensorflow as tf

from keras_sep.layers.filtered_noise import FilteredNoise
from keras_sep.layers.harmonic_synth import HarmonicSynth
from keras_sep.layers.mfcc import MFCC
from keras_sep.layers.reverb import Reverb
from keras_sep.models._autoencoder_utils import check_model_kwargs

LOUDNESS_RANGE_DB = 80.0  # ops.loudness.loudness_db's default floor


@keras.saving.register_keras_serializable(package="keras_sep")
class _ScaleControls(keras.layers.Layer):
    """f0 in Hz and loudness in dB to the decoder's inputs, about ``[0, 1]``:
    ``midi(f0) / 127`` (0 where f0 <= 0) and ``loudness / 80 + 1``, as DDSP
    feeds its decoder. Input and output ``(batch, frames, 1)`` each."""

    def call(self, inputs):
        f0, loudness = (tf.cast(x, self.compute_dtype) for x in inputs)
        safe = tf.maximum(f0, 1e-5)
        midi = 12.0 * (tf.math.log(safe / 440.0) / math.log(2.0)) + 69.0
        f0_scaled = tf.where(f0 > 0.0, midi, tf.zeros_like(midi)) / 127.0
        return f0_scaled, loudness / LOUDNESS_RANGE_DB + 1.0

    def compute_output_shape(self, input_shape):
        return tuple(tuple(shape) for shape in input_shape)


def _mlp(x, units, layers, name):
    """DDSP's fc stack: (Dense, LayerNorm, leaky ReLU) ``layers`` times."""
    for index in range(layers):
        x = keras.layers.Dense(units, name=f"{name}_dense_{index}")(x)
        x = keras.layers.LayerNormalization(name=f"{name}_norm_{index}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_act_{index}")(x)
    return x


@keras.saving.register_keras_serializable(package="keras_sep")
class DDSPAutoencoder(keras.Model):
    """DDSP's solo-instrument autoencoder (Engel et al., ICLR 2020).

    The "encoder" is fixed signal processing done before the model (f0 with
    :func:`keras_sep.data.track_pitch`, loudness with
    :func:`keras_sep.ops.loudness.loudness_db`) plus, with ``z_units``, a
    learned latent: MFCCs of the audio through a GRU and a dense layer, one
    ``z`` per frame. The decoder is DDSP's ``RnnFcDecoder``: one MLP per
    input (scaled f0, scaled loudness, ``z``), their outputs concatenated
    into a GRU, the GRU's output concatenated with the MLPs' outputs into
    an output MLP, and a dense layer to ``1 + harmonics + noise_bands`` raw
    controls. :class:`~keras_sep.layers.HarmonicSynth` (overall amplitude
    and harmonic distribution at f0) and
    :class:`~keras_sep.layers.FilteredNoise` (noise magnitudes) synthesise
    the two parts, which are summed and go through a learned
    :class:`~keras_sep.layers.Reverb`. Batch size and length are dynamic.

    Layers are named ``scale_controls``, ``f0_mlp_*``, ``loudness_mlp_*``,
    ``z_*``, ``decoder_gru``, ``out_mlp_*``, ``controls``, ``harmonic``,
    ``noise``, ``add``, ``reverb``.

    Args:
        sample_rate: audio rate in Hz (16 kHz in DDSP).
        frame_step: audio samples per control frame (64: 250 frames per
            second at 16 kHz).
        harmonics: sinusoids of the harmonic synthesiser.
        noise_bands: magnitudes per frame of the noise filter.
        hidden_units: units of every MLP layer.
        mlp_layers: layers per MLP.
        gru_units: units of the decoder's GRU.
        reverb_length: taps of the impulse response (48000: 3 s); 0 leaves
            the reverb out.
        z_units: size of the latent from MFCCs; None (the default, DDSP's
            solo-violin model) leaves it out and the audio input with it.
        z_gru_units: units of the latent encoder's GRU.
        mfccs, mfcc_fft_size, mel_bins: the encoder's MFCC settings (see
            :class:`~keras_sep.layers.MFCC`).
        noise_seed: None draws fresh noise at every call; an integer the
            same noise every time (reproducible rendering).
        **kwargs: ``keras.Model`` arguments (``name``, ...).

    Call arguments:
        inputs: dict with ``"f0_hz"`` and ``"loudness_db"``, each ``(batch,
            frames, 1)`` float32, and with ``z_units`` also ``"audio"``,
            ``(batch, frames * frame_step, 1)``.

    Output shape:
        ``(batch, frames * frame_step, 1)``: mono audio, channels-last.

    Example:

    >>> import numpy as np
    >>> model = DDSPAutoencoder(hidden_units=16, gru_units=16, reverb_length=100)
    >>> controls = {"f0_hz": np.full((2, 25, 1), 440.0, "float32"),
    ...             "loudness_db": np.full((2, 25, 1), -20.0, "float32")}
    >>> model(controls).shape
    TensorShape([2, 1600, 1])

    References:
        Engel, Hantrakul, Gu and Roberts, "DDSP: Differentiable Digital
        Signal Processing", ICLR 2020; magenta/ddsp ``decoders.RnnFcDecoder``.
    """

    def __init__(
        self,
        sample_rate=16000,
        frame_step=64,
        harmonics=60,
        noise_bands=65,
        hidden_units=512,
        mlp_layers=3,
        gru_units=512,
        reverb_length=48000,
        z_units=None,
        z_gru_units=512,
        mfccs=30,
        mfcc_fft_size=1024,
        mel_bins=128,
        noise_seed=None,
        **kwargs,
    ):
        for arg, value in (("harmonics", harmonics), ("noise_bands", noise_bands), ("hidden_units", hidden_units),
                           ("mlp_layers", mlp_layers), ("gru_units", gru_units), ("z_gru_units", z_gru_units)):
            if int(value) != value or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if noise_bands < 2:
            raise ValueError(f"noise_bands must be at least 2, got {noise_bands!r}")
        if int(reverb_length) != reverb_length or reverb_length < 0:
            raise ValueError(f"reverb_length must be an integer >= 0, got {reverb_length!r}")
        if z_units is not None and (int(z_units) != z_units or z_units < 1):
            raise ValueError(f"z_units must be a positive integer or None, got {z_units!r}")

        # === Inputs: frame-rate controls (and audio for the latent) ===
        f0 = keras.Input(shape=(None, 1), name="f0_hz")
        loudness = keras.Input(shape=(None, 1), name="loudness_db")
        inputs = {"f0_hz": f0, "loudness_db": loudness}
        f0_scaled, loudness_scaled = _ScaleControls(name="scale_controls")([f0, loudness])
        stacks = [
            _mlp(f0_scaled, hidden_units, mlp_layers, "f0_mlp"),
            _mlp(loudness_scaled, hidden_units, mlp_layers, "loudness_mlp"),
        ]

        # === Optional latent: MFCCs -> GRU -> dense, one z per frame ===
        if z_units is not None:
            audio = keras.Input(shape=(None, 1), name="audio")
            inputs["audio"] = audio
            mfcc = MFCC(sample_rate, frame_step, mfccs, mfcc_fft_size, mel_bins, name="z_mfcc")(audio)
            mfcc = keras.layers.LayerNormalization(name="z_norm")(mfcc)
            z = keras.layers.GRU(z_gru_units, return_sequences=True, name="z_gru")(mfcc)
            z = keras.layers.Dense(z_units, name="z_dense")(z)
            stacks.append(_mlp(z, hidden_units, mlp_layers, "z_mlp"))

        # === Decoder: GRU over the MLPs, output MLP, raw controls ===
        x = keras.layers.Concatenate(name="gru_inputs")(stacks)
        x = keras.layers.GRU(gru_units, return_sequences=True, name="decoder_gru")(x)
        x = keras.layers.Concatenate(name="out_inputs")(stacks + [x])
        x = _mlp(x, hidden_units, mlp_layers, "out_mlp")
        controls = keras.layers.Dense(1 + harmonics + noise_bands, name="controls")(x)

        # === Synthesis: harmonics + filtered noise, then reverb ===
        amplitude = controls[..., :1]
        distribution = controls[..., 1 : 1 + harmonics]
        magnitudes = controls[..., 1 + harmonics :]
        harmonic = HarmonicSynth(sample_rate, frame_step, name="harmonic")([f0, amplitude, distribution])
        noise = FilteredNoise(frame_step, seed=noise_seed, name="noise")(magnitudes)
        outputs = keras.layers.Add(name="add", dtype="float32")([harmonic, noise])
        if reverb_length:
            outputs = Reverb(reverb_length, name="reverb")(outputs)
        check_model_kwargs(type(self), kwargs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.sample_rate = int(sample_rate)
        self.frame_step = int(frame_step)
        self.harmonics = int(harmonics)
        self.noise_bands = int(noise_bands)
        self.hidden_units = int(hidden_units)
        self.mlp_layers = int(mlp_layers)
        self.gru_units = int(gru_units)
        self.reverb_length = int(reverb_length)
        self.z_units = None if z_units is None else int(z_units)
        self.z_gru_units = int(z_gru_units)
        self.mfccs = int(mfccs)
        self.mfcc_fft_size = int(mfcc_fft_size)
        self.mel_bins = int(mel_bins)
        self.noise_seed = noise_seed

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "sample_rate": self.sample_rate,
            "frame_step": self.frame_step,
            "harmonics": self.harmonics,
            "noise_bands": self.noise_bands,
            "hidden_units": self.hidden_units,
            "mlp_layers": self.mlp_layers,
            "gru_units": self.gru_units,
            "reverb_length": self.reverb_length,
            "z_units": self.z_units,
            "z_gru_units": self.z_gru_units,
            "mfccs": self.mfccs,
            "mfcc_fft_size": self.mfcc_fft_size,
            "mel_bins": self.mel_bins,
            "noise_seed": self.noise_seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def ddsp_autoencoder(sample_rate=16000, frame_step=64, harmonics=60, noise_bands=65, **kwargs):
    """Build a :class:`DDSPAutoencoder`; further keyword arguments as there.

    Example:

    >>> model = ddsp_autoencoder(hidden_units=8, gru_units=8, reverb_length=0)
    >>> [tuple(x.shape) for x in model.inputs], model.output_shape
    ([(None, None, 1), (None, None, 1)], (None, None, 1))
    """
    return DDSPAutoencoder(sample_rate, frame_step, harmonics, noise_bands, **kwargs)
