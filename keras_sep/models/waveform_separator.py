"""Waveform in, stems out: STFT → spectrogram separator → masks → ISTFT."""
import keras
import tensorflow as tf

from keras_sep.ops import masks as mask_ops
from keras_sep.ops import stft as stft_ops
from keras_sep.ops import wiener as wiener_ops
from keras_sep.ops.crossfade import crossfade_weights
from keras_sep.ops.griffin_lim import reconstruct_phase

# The momentum of the fast Griffin-Lim that separate_segments' phase_iterations run.
PHASE_MOMENTUM = 0.99


@keras.saving.register_keras_serializable(package="keras_sep")
class WaveformSeparator(keras.Model):
    """Wraps a spectrogram separator (e.g. :class:`UNetSeparator`) for waveforms.

    The signal path is Spleeter's: ``frame_length`` zeros are prepended, the
    STFT uses a periodic Hann window with ``pad_end``, the network sees the
    magnitude of the bins below its cutoff (``spectrogram_model.bins``),
    ratio masks are formed across instruments and extended above the cutoff,
    applied to the complex mixture (so the mixture phase is kept), inverted
    by overlap-add and cut back to the input length.

    The spectrogram is processed in chunks of ``chunk_frames`` frames.
    Consecutive chunks overlap by ``overlap_frames`` frames and their masked
    spectrograms are cross-faded linearly over the overlap, so no seam is
    heard; ``overlap_frames=0`` gives Spleeter's own non-overlapping chunks
    and reproduces its output. Because each chunk only needs its own stretch
    of waveform, :class:`keras_sep.Separator` streams long files through
    :meth:`separate_segments` chunk by chunk in bounded memory; calling the
    model directly processes the whole input at once (all chunks as one
    batch), which is what an exported SavedModel does.

    Args:
        spectrogram_model: a model mapping ``(batch, frames, bins, channels)``
            magnitudes to a dict ``{instrument: magnitude estimate}``, with
            attributes ``instruments``, ``bins``, ``channels``, ``frames``
            and ``separation_exponent``.
        sample_rate: the rate the model works at, in Hz.
        frame_length: STFT frame (and FFT) length in samples.
        frame_step: STFT hop in samples.
        chunk_frames: frames per chunk; default ``spectrogram_model.frames``.
        overlap_frames: frames shared by consecutive chunks (cross-faded);
            default an eighth of ``chunk_frames`` (64 of Spleeter's 512,
            1.5 s at 44.1 kHz).
        mask_extension: ``"zeros"`` or ``"average"`` above the cutoff.
        separation_exponent: exponent of the ratio masks; default the
            spectrogram model's.

    Call arguments:
        waveform: ``(batch, samples, channels)`` float32 at ``sample_rate``.

    Output shape:
        dict ``{instrument: (batch, samples, channels)}`` float32.

    Example:

    The ratio masks sum to one in every bin (``"average"`` extends them
    above the network's 16 bins) and keep the mixture's phase, so even an
    untrained model's stems add up to the mixture:

    >>> import numpy as np
    >>> from keras_sep.models import UNetSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> model = WaveformSeparator(net, frame_length=64, frame_step=16,
    ...                           overlap_frames=4, mask_extension="average")
    >>> mixture = np.random.default_rng(0).normal(size=(1, 1000, 2)).astype("float32")
    >>> stems = model(mixture)
    >>> stems["vocals"].shape
    TensorShape([1, 1000, 2])
    >>> error = float(np.max(np.abs(stems["vocals"] + stems["accompaniment"] - mixture)))
    >>> print(f"error {error:.0e} < 1e-5: {error < 1e-5}")
    error ...e-0... < 1e-5: True
    """

    def __init__(
        self,
        spectrogram_model,
        sample_rate=44100,
        frame_length=4096,
        frame_step=1024,
        chunk_frames=None,
        overlap_frames=None,
        mask_extension="zeros",
        separation_exponent=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.spectrogram_model = spectrogram_model
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.chunk_frames = int(chunk_frames or spectrogram_model.frames)
        # A fixed 64 frames would refuse every network of 64 frames or fewer.
        self.overlap_frames = self.chunk_frames // 8 if overlap_frames is None else int(overlap_frames)
        if mask_extension not in mask_ops.MASK_EXTENSIONS:
            raise ValueError(
                f"mask_extension must be one of {mask_ops.MASK_EXTENSIONS}, got {mask_extension!r}"
            )
        self.mask_extension = mask_extension
        if separation_exponent is None:
            separation_exponent = spectrogram_model.separation_exponent
        self.separation_exponent = float(separation_exponent)
        if not 0 <= self.overlap_frames < self.chunk_frames:
            raise ValueError(
                f"overlap_frames must be in [0, chunk_frames={self.chunk_frames}), "
                f"got {overlap_frames}"
            )
        if spectrogram_model.bins > frame_length // 2 + 1:
            raise ValueError(
                f"the spectrogram model needs {spectrogram_model.bins} bins but "
                f"frame_length={frame_length} gives {frame_length // 2 + 1}"
            )
        self.instruments = tuple(spectrogram_model.instruments)
        self.channels = spectrogram_model.channels
        # Overlap-add without window-sum normalisation, then this constant:
        # exact wherever the squared windows sum to a constant (Hann at 75 %).
        self.output_scale = stft_ops.overlap_add_scale(self.frame_length, self.frame_step, "hann")
        # All weights live in the (already built) spectrogram model.
        self.built = True

    # --- chunk layout -----------------------------------------------------

    @property
    def segment_length(self):
        """Samples a chunk of ``chunk_frames`` frames spans."""
        return (self.chunk_frames - 1) * self.frame_step + self.frame_length

    def chunk_hop(self, overlap_frames=None):
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        return self.chunk_frames - overlap

    def num_chunks(self, num_samples, overlap_frames=None):
        """Chunks needed for ``num_samples`` input samples (Python or tensor)."""
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        hop = self.chunk_hop(overlap)
        # Frames of the STFT with `frame_length` zeros prepended and pad_end.
        frames = -(-(num_samples + self.frame_length) // self.frame_step)
        return tf.maximum(1, -(-(frames - overlap) // hop)) if tf.is_tensor(
            num_samples
        ) else max(1, -(-(frames - overlap) // hop))

    def chunk_weights(self, indices, num_chunks, overlap_frames=None):
        """Cross-fade weights ``(len(indices), chunk_frames)`` of some chunks.

        Over the frames two chunks share, the earlier one fades out linearly
        while the later one fades in, so the weights of every frame sum to 1;
        the first chunk does not fade in and the last does not fade out.
        """
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        return crossfade_weights(indices, num_chunks, self.chunk_frames, overlap)

    # --- per-chunk separation ----------------------------------------------

    def separate_segments(
        self, segments, weights=None, training=False, network=None, jit_compile=False, wiener=None, phase_iterations=0
    ):
        """Separate chunks given as waveform segments.

        Args:
            segments: ``(chunks, segment_length, channels)`` float32, the
                stretch of (zero-prefixed) waveform each chunk's frames span.
            weights: ``(chunks, chunk_frames)`` cross-fade weights, or None.
            training: passed to the spectrogram model.
            network: a function to use instead of the spectrogram model
                (e.g. ``keras_sep.inference.inference_plan(model)``), same inputs and outputs.
            jit_compile: compile the STFT, and the masking with the inverse
                STFT, with XLA (faster on CPU and GPU; leave off for
                runtimes without XLA).
            wiener: ``(R, scale)`` from :meth:`wiener_statistics` over the
                whole song and :func:`keras_sep.ops.wiener.spatial_covariances`:
                multichannel Wiener filtering below the cutoff instead of
                the ratio masks (Spleeter's ``--mwf``); above it the masks'
                extension as usual.
            phase_iterations: Griffin–Lim iterations (fast, momentum
                0.99) that re-estimate each source's phase from its
                magnitude, starting from its phase (the mixture's, or the
                Wiener estimate's), chunk by chunk before the cross-fade;
                0 keeps that phase.

        Returns:
            dict ``{instrument: (chunks, segment_length, channels)}`` to be
            overlap-added at a hop of ``chunk_hop() * frame_step`` samples.
        """
        # Under XLA the framing, window, FFT, cropping and magnitude run as
        # one program: 17 instead of 26 ms a chunk on two Zen 3 vCPUs (on
        # Zen 4 cores the same as without).
        analyze = tf.function(self._analyze, jit_compile=True, autograph=False) if jit_compile else self._analyze
        spectrum, magnitude = analyze(segments)
        estimates = self._estimates(magnitude, training, network)
        weights = None if weights is None else tf.cast(weights, tf.float32)
        if wiener is None:
            synthesize, extra = self._synthesize, ()
        else:
            synthesize = self._synthesize_wiener
            extra = (tf.cast(wiener[0], tf.complex64), tf.cast(wiener[1], tf.float32))
        if phase_iterations:
            synthesize = self._rephased(synthesize, int(phase_iterations))
        if jit_compile:
            synthesize = tf.function(synthesize, jit_compile=True, autograph=False)
        return dict(zip(self.instruments, synthesize(spectrum, estimates, weights, *extra)))

    def wiener_statistics(self, segments, weights=None, training=False, network=None, jit_compile=False):
        """The first pass of multichannel Wiener filtering: what these chunks
        add to the spatial covariances (:func:`keras_sep.ops.wiener.statistics`).

        Args: as :meth:`separate_segments`; ``weights`` weigh each frame
            (the cross-fade weights count a shared frame once).

        Returns:
            ``(covariance, power, peak)``: ``(instruments, bins, channels,
            channels)`` complex64 and ``(instruments, bins)`` float32 sums
            over the chunks' frames, for the network's bins, and the largest
            mixture magnitude over all bins.
        """
        analyze = self._analyze_with_peak
        if jit_compile:
            analyze = tf.function(analyze, jit_compile=True, autograph=False)
        spectrum, magnitude, peak = analyze(segments)
        estimates = self._estimates(magnitude, training, network)
        weights = None if weights is None else tf.cast(weights, tf.float32)
        gather = tf.function(self._wiener_sums, jit_compile=True, autograph=False) if jit_compile else self._wiener_sums
        covariance, power = gather(spectrum, estimates, weights)
        return covariance, power, peak

    def _estimates(self, magnitude, training, network):
        if network is None:
            estimates = self.spectrogram_model(magnitude, training=training)
        else:
            estimates = network(magnitude)
        return [estimates[name] for name in self.instruments]

    def _analyze_with_peak(self, segments):
        spectrum, magnitude, full = self._analyze(segments, full=True)
        return spectrum, magnitude, tf.reduce_max(tf.abs(full))

    def _source_estimates(self, estimates):
        """Magnitude estimates ``(instruments, chunks, channels, frames, bins)``."""
        return tf.stack([tf.transpose(tf.cast(e, tf.float32), [0, 3, 1, 2]) for e in estimates])

    def _wiener_sums(self, spectrum, estimates, weights):
        bins = self.spectrogram_model.bins
        covariance, power, _ = wiener_ops.statistics(self._source_estimates(estimates), spectrum[..., :bins], weights)
        return covariance, power

    def _rephased(self, synthesize, iterations):
        """``synthesize`` with the sources' phases re-estimated by
        ``iterations`` Griffin–Lim steps before the cross-fade weights."""
        return lambda *args: synthesize(*args, rephase=lambda sources: self._griffin_lim(sources, iterations))

    def _griffin_lim(self, sources, iterations):
        """Source spectra ``(chunks, channels, frames, bins ≤ total)`` of one
        chunk batch each → the same magnitudes with the phases after
        ``iterations`` Griffin–Lim steps from their own, over all bins."""
        total_bins = self.frame_length // 2 + 1
        joined = tf.concat(sources, axis=0)
        missing = total_bins - joined.shape[-1]
        if missing:
            joined = tf.pad(joined, [[0, 0], [0, 0], [0, 0], [0, missing]])
        # The segment is exactly the frames' span, so no centring.
        rephased = reconstruct_phase(
            tf.abs(joined), iterations, PHASE_MOMENTUM, joined, self.frame_length, self.frame_step,
            center=False, data_format="channels_first",
        )
        return tf.split(rephased, len(sources), axis=0)

    def _synthesize_wiener(self, spectrum, estimates, weights, spatial, scale, rephase=None):
        """Multichannel Wiener filtering below the cutoff (the masks'
        extension above it) → one inverse STFT for all instruments."""
        bins = self.spectrogram_model.bins
        total_bins = self.frame_length // 2 + 1
        filtered = wiener_ops.filter_spectra(self._source_estimates(estimates), spectrum[..., :bins], spatial, scale)
        factor = self._output_factor(weights)
        factor = tf.complex(factor, tf.zeros_like(factor))
        sources = []
        high = None
        if self.mask_extension != "zeros" and total_bins > bins:
            masks = mask_ops.ratio_masks(estimates, self.separation_exponent)
            high = [
                tf.transpose(mask_ops.extend_mask(mask, total_bins, self.mask_extension)[:, :, bins:, :], [0, 3, 1, 2])
                for mask in masks
            ]
        for j in range(len(estimates)):
            source = filtered[j]
            if high is not None:
                part = spectrum[..., bins:] * tf.complex(high[j], tf.zeros_like(high[j]))
                source = tf.concat([source, part], axis=-1)
            sources.append(source)
        if rephase is not None:
            sources = rephase(sources)
        return self._inverse_stft([source * factor for source in sources])

    def _analyze(self, segments, full=False):
        """The STFT of each segment, ``(chunks, channels, frames, bins)``
        complex (only the bins below the cutoff with the "zeros" extension),
        and the network's input magnitude ``(chunks, frames, net_bins,
        channels)``. Channels stay in front until the magnitude is taken so
        that the complex spectrum is never transposed."""
        signals = tf.transpose(tf.cast(segments, tf.float32), [0, 2, 1])
        spectrum = whole = stft_ops.stft(
            signals, self.frame_length, self.frame_step, window="hann", data_format="channels_first"
        )
        bins = self.spectrogram_model.bins
        if self.mask_extension == "zeros":
            spectrum = spectrum[..., :bins]
        magnitude = tf.transpose(tf.abs(spectrum[..., :bins]), [0, 2, 3, 1])
        if full:  # also the spectrum over all bins
            return spectrum, magnitude, whole
        return spectrum, magnitude

    def _synthesize(self, spectrum, estimates, weights, rephase=None):
        """Ratio masks → masked mixture spectra → one inverse STFT for all
        instruments; a list of waveforms. The cross-fade weights
        and the overlap-add constant are folded into the (real) masks,
        unless ``rephase`` (a function of the list of masked spectra)
        changes the phases first: then they scale its result."""
        masks = mask_ops.ratio_masks(estimates, self.separation_exponent)
        total_bins = self.frame_length // 2 + 1
        scale = self._output_factor(weights)
        masked = []
        for mask in masks:
            if self.mask_extension != "zeros":
                mask = mask_ops.extend_mask(mask, total_bins, self.mask_extension)
            mask = tf.transpose(mask, [0, 3, 1, 2])
            if rephase is None:
                mask = mask * scale
            masked.append(spectrum * tf.cast(mask, tf.complex64))
        if rephase is not None:
            factor = tf.complex(scale, tf.zeros_like(scale))
            masked = [source * factor for source in rephase(masked)]
        return self._inverse_stft(masked)

    def _output_factor(self, weights):
        """The overlap-add constant times each frame's cross-fade weight:
        ``(chunks, 1, frames, 1)``, or a scalar without weights."""
        scale = tf.constant(self.output_scale, tf.float32)
        return scale if weights is None else weights[:, None, :, None] * scale

    def _inverse_stft(self, spectra):
        """Source spectra ``(chunks, channels, frames, bins ≤ total)`` → a
        list of waveforms ``(chunks, segment_length, channels)``, one
        inverse STFT for all (bins missing at the top are zeros)."""
        waves = stft_ops.istft(
            tf.concat(spectra, axis=0), self.frame_length, self.frame_step, window="hann",
            normalize=False, data_format="channels_first",
        )
        return tf.split(tf.transpose(waves, [0, 2, 1]), len(spectra), axis=0)

    # --- whole signal -------------------------------------------------------

    def call(self, waveform, training=False, overlap_frames=None):
        """Separate whole waveforms; ``overlap_frames`` overrides the model's
        (0 gives Spleeter's chunks). Chunks run one at a time, so memory
        grows with the length only through the waveforms themselves."""
        return self.separate_waveform(waveform, overlap_frames, training=training)

    def separate_waveform(self, waveform, overlap_frames=None, network=None, training=False):
        """What :meth:`call` computes, with ``network`` (a function of the
        spectrogram model's inputs and outputs, e.g. its
        ``keras_sep.inference.inference_plan(model, jit_compile=False)``) in place of the
        spectrogram model when given."""
        overlap = self.overlap_frames if overlap_frames is None else int(overlap_frames)
        waveform = tf.cast(waveform, tf.float32)
        shape = tf.shape(waveform)
        batch, num_samples, channels = shape[0], shape[1], shape[2]
        n_chunks = self.num_chunks(num_samples, overlap)
        hop = self.chunk_hop(overlap) * self.frame_step
        total = (n_chunks - 1) * hop + self.segment_length
        after = total - self.frame_length - num_samples
        padded = tf.pad(waveform, tf.stack([[0, 0], [self.frame_length, after], [0, 0]]))
        segments = tf.signal.frame(padded, self.segment_length, hop, axis=1)
        segments = tf.reshape(segments, tf.stack([-1, 1, self.segment_length, channels]))
        weights = self.chunk_weights(tf.range(n_chunks), n_chunks, overlap)
        weights = tf.reshape(tf.tile(weights, tf.stack([batch, 1])), [-1, 1, self.chunk_frames])
        spec = tf.TensorSpec((1, self.segment_length, None), tf.float32)
        stems = tf.map_fn(
            lambda args: self.separate_segments(args[0], args[1], training=training, network=network),
            (segments, weights),
            fn_output_signature={name: spec for name in self.instruments},
            parallel_iterations=1,
        )
        outputs = {}
        for name, chunks in stems.items():
            chunks = tf.reshape(chunks, tf.stack([batch, n_chunks, self.segment_length, channels]))
            joined = tf.signal.overlap_and_add(tf.transpose(chunks, [0, 3, 1, 2]), hop)
            joined = tf.transpose(joined, [0, 2, 1])
            outputs[name] = joined[:, self.frame_length : self.frame_length + num_samples, :]
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "spectrogram_model": keras.saving.serialize_keras_object(self.spectrogram_model),
                "sample_rate": self.sample_rate,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "chunk_frames": self.chunk_frames,
                "overlap_frames": self.overlap_frames,
                "mask_extension": self.mask_extension,
                "separation_exponent": self.separation_exponent,
            }
        )
        return config

    def with_spectrogram_model(self, spectrogram_model):
        """A new wrapper with the same signal settings around another network
        (e.g. one trained under a distribution strategy)."""
        config = self.get_config()
        for key in ("spectrogram_model", "trainable", "dtype"):
            config.pop(key, None)
        return self.__class__(spectrogram_model, **config)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["spectrogram_model"] = keras.saving.deserialize_keras_object(
            config["spectrogram_model"]
        )
        return cls(**config)
