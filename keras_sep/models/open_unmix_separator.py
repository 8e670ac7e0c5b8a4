"""Waveform in, stems out with Open-Unmix networks and Wiener filtering."""
import keras
import tensorflow as tf

from keras_sep.ops import stft as stft_ops
from keras_sep.ops import wiener_em

# openunmix.filtering.wiener's regularisation.
EPSILON = 1e-10


@keras.saving.register_keras_serializable(package="keras_sep")
class OpenUnmixSeparator(keras.Model):
    """Separates waveforms with one :class:`OpenUnmix` network per target.

    The signal path is ``openunmix.Separator``'s (openunmix 1.3.0): a
    centred STFT (reflect padding, periodic Hann, ``torch.stft(center=True)``),
    the mixture magnitude into every target's network, multichannel Wiener
    filtering of the estimates (:func:`keras_sep.ops.wiener_em.windowed_wiener`)
    over windows of ``wiener_win_len`` frames, and an inverse STFT
    normalised by the window sum and cut to the input length
    (``torch.istft``). Calling the model separates whole inputs; the
    networks' BLSTMs see the whole input, as upstream.

    For streaming (:class:`keras_sep.Separator`), :meth:`separate_segments`
    separates chunks of ``chunk_frames`` frames that share
    ``overlap_frames`` frames with their neighbours, cross-faded linearly,
    with the geometry of :class:`WaveformSeparator` (``frame_length``
    zeros before the input, frames not centred): the BLSTM sees one chunk.

    Args:
        target_models: ``{target: OpenUnmix}`` or a list of
            :class:`OpenUnmix` (named by their ``target``), all with the
            same ``nb_bins`` and ``nb_channels``.
        niter: EM iterations of the Wiener filter; 0 keeps the initial
            estimates (each network's magnitude with the mixture's phase,
            or ratio masks with ``softmask=True``).
        softmask: initial estimates from ratio masks instead of the
            magnitudes with the mixture's phase.
        residual: add a source ``"residual"``, the mixture less the
            targets, before the EM iterations.
        wiener_win_len: frames per independently filtered window; None for
            the whole input (memory grows with it).
        sample_rate: the rate the networks work at, in Hz.
        n_fft, n_hop: STFT frame length and hop; ``n_fft // 2 + 1`` must be
            the networks' ``nb_bins``.
        chunk_frames, overlap_frames: the streaming chunks (see above);
            to stream, their difference must be a multiple of
            ``wiener_win_len`` (:meth:`check_streaming`), so that each chunk
            is filtered in the song's windows; an overlap of
            ``wiener_win_len`` plus the ``(n_fft / 2) / n_hop`` frames of
            the lead (302) also ends each chunk on a window's end. The
            default (2102 and 302: 49 s chunks sharing 7 s at 44.1 kHz) is
            chosen in docs/separation.md.

    Call arguments:
        waveform: ``(batch, samples, channels)`` float, more than
            ``n_fft // 2`` samples (the reflect padding needs them).

    Output shape:
        dict ``{target: (batch, samples, channels)}`` float32.

    Example:

    >>> import numpy as np
    >>> from keras_sep.models import OpenUnmix
    >>> nets = [OpenUnmix(nb_bins=33, hidden_size=8, target=name) for name in ("vocals", "drums")]
    >>> model = OpenUnmixSeparator(nets, n_fft=64, n_hop=16, sample_rate=8000)
    >>> stems = model(np.random.default_rng(0).normal(size=(1, 500, 2)).astype("float32"))
    >>> sorted(stems), stems["drums"].shape
    (['drums', 'vocals'], TensorShape([1, 500, 2]))

    References:
        Stöter, Uhlich, Liutkus and Mitsufuji, "Open-Unmix - A Reference
        Implementation for Music Source Separation", JOSS 2019.
    """

    def __init__(
        self,
        target_models,
        niter=1,
        softmask=False,
        residual=False,
        wiener_win_len=300,
        sample_rate=44100,
        n_fft=4096,
        n_hop=1024,
        chunk_frames=2102,
        overlap_frames=302,
        **kwargs,
    ):
        # The waveform must not be cast to a float16 compute dtype.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if isinstance(target_models, dict):
            names, models = list(target_models), list(target_models.values())
        else:
            models = list(target_models)
            names = [model.target for model in models]
        if not models or len(set(names)) != len(names):
            raise ValueError(f"target_models needs at least one model per distinct target, got {names!r}")
        if int(niter) != niter or niter < 0:
            raise ValueError(f"niter must be a non-negative integer, got {niter!r}")
        if wiener_win_len is not None and (int(wiener_win_len) != wiener_win_len or wiener_win_len < 1):
            raise ValueError(f"wiener_win_len must be a positive integer or None, got {wiener_win_len!r}")
        if len(models) + bool(residual) == 1 and niter > 0:
            raise ValueError(f"EM iterations need two sources: add residual=True or use niter=0, got niter={niter!r}")
        bins = {int(model.nb_bins) for model in models}
        channels = {int(model.nb_channels) for model in models}
        if bins != {n_fft // 2 + 1} or len(channels) != 1:
            raise ValueError(
                f"every network needs nb_bins = n_fft // 2 + 1 = {n_fft // 2 + 1} and the same "
                f"nb_channels, got nb_bins {sorted(bins)} and nb_channels {sorted(channels)}"
            )
        if not 0 <= int(overlap_frames) < int(chunk_frames) // 2:
            raise ValueError(
                f"overlap_frames must be in [0, chunk_frames / 2 = {int(chunk_frames) // 2}), got {overlap_frames!r}"
            )
        self.target_models = models
        self.targets = tuple(names)
        self.instruments = self.targets + (("residual",) if residual else ())
        self.niter = int(niter)
        self.softmask = bool(softmask)
        self.residual = bool(residual)
        self.wiener_win_len = None if wiener_win_len is None else int(wiener_win_len)
        self.sample_rate = int(sample_rate)
        self.n_fft = self.frame_length = int(n_fft)
        self.n_hop = self.frame_step = int(n_hop)
        self.channels = channels.pop()
        self.chunk_frames = int(chunk_frames)
        self.overlap_frames = int(overlap_frames)
        self.output_scale = stft_ops.overlap_add_scale(self.n_fft, self.n_hop, "hann")
        self.built = True

    # --- the upstream path: whole inputs ---------------------------------

    def call(self, waveform, training=False):
        waveform = tf.cast(waveform, tf.float32)
        spectrum = stft_ops.stft(waveform, self.n_fft, self.n_hop, center=True, pad_mode="reflect")
        sources = self._filter(spectrum, training)
        waves = self._inverse(sources, lambda s: stft_ops.istft(
            s, self.n_fft, self.n_hop, center=True, length=tf.shape(waveform)[1]))
        return dict(zip(self.instruments, waves))

    def _filter(self, spectrum, training, start=0):
        """Mixture spectrum ``(batch, frames, bins, channels)`` → source
        spectra ``(batch, frames, bins, channels, sources)``; the first
        frame ``start`` frames into its Wiener window."""
        magnitude = tf.abs(spectrum)
        estimates = [tf.cast(net(magnitude, training=training), tf.float32) for net in self.target_models]
        return wiener_em.windowed_wiener(
            tf.stack(estimates, axis=-1), spectrum, self.wiener_win_len, start, iterations=self.niter,
            softmask=self.softmask, residual=self.residual, epsilon=EPSILON,
        )

    def _inverse(self, sources, istft):
        """Every source through one inverse STFT; a list of waveforms."""
        stacked = tf.transpose(sources, [4, 0, 1, 2, 3])
        shape = tf.shape(stacked)
        joined = tf.reshape(stacked, tf.concat([[-1], shape[2:]], 0))
        waves = istft(tf.ensure_shape(joined, [None, None, None, self.channels]))
        return tf.unstack(tf.reshape(waves, tf.concat([shape[:2], tf.shape(waves)[1:]], 0)), len(self.instruments))

    # --- streaming: chunk layout as WaveformSeparator's ------------------

    @property
    def segment_length(self):
        """Samples a chunk of ``chunk_frames`` frames spans."""
        return (self.chunk_frames - 1) * self.n_hop + self.n_fft

    def chunk_hop(self, overlap_frames=None):
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        return self.chunk_frames - overlap

    def num_chunks(self, num_samples, overlap_frames=None):
        """Chunks needed for ``num_samples`` input samples (Python int)."""
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        frames = -(-(num_samples + self.n_fft) // self.n_hop)
        return max(1, -(-(frames - overlap) // self.chunk_hop(overlap)))

    def chunk_weights(self, indices, num_chunks, overlap_frames=None):
        """Cross-fade weights ``(len(indices), chunk_frames)``: linear over
        shared frames, summing to 1 in every frame."""
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        indices = tf.convert_to_tensor(indices, tf.int32)[:, None]
        if overlap == 0:
            return tf.ones(tf.stack([tf.shape(indices)[0], self.chunk_frames]), tf.float32)
        ramp = (tf.range(overlap, dtype=tf.float32) + 0.5) / overlap
        middle = tf.ones(tf.stack([tf.shape(indices)[0], self.chunk_frames - 2 * overlap]))
        head = tf.where(indices > 0, ramp[None, :], 1.0)
        tail = tf.where(indices < num_chunks - 1, 1.0 - ramp[None, :], 1.0)
        return tf.concat([head, middle, tail], axis=1)

    def check_streaming(self):
        """Raise a ``ValueError`` unless chunks start a whole number of
        Wiener windows apart (else each would be filtered in other windows
        than the song's)."""
        hop_frames = self.chunk_frames - self.overlap_frames
        if self.wiener_win_len is not None and hop_frames % self.wiener_win_len:
            raise ValueError(
                f"chunk_frames - overlap_frames must be a multiple of wiener_win_len={self.wiener_win_len} to stream, "
                f"so that every chunk is filtered in the song's Wiener windows, got "
                f"{self.chunk_frames} - {self.overlap_frames} = {hop_frames}"
            )

    def _window_start(self):
        """Where a chunk's first frame is in its Wiener window. Chunk
        frame ``k`` is the song's centred frame ``k - lead`` (the ``n_fft``
        zeros before the input hold ``lead`` hops more than the centring
        half frame), and chunks start a whole number of windows apart."""
        if self.wiener_win_len is None or (self.n_fft // 2) % self.n_hop:
            return 0
        return -(self.n_fft // 2 // self.n_hop) % self.wiener_win_len

    def separate_segments(self, segments, weights=None, training=False):
        """Separate chunks given as waveform segments.

        Args:
            segments: ``(chunks, segment_length, channels)`` float32, the
                stretch of (zero-prefixed) waveform each chunk's frames span.
            weights: ``(chunks, chunk_frames)`` cross-fade weights, or None.

        Returns:
            dict ``{instrument: (chunks, segment_length, channels)}`` to be
            overlap-added at a hop of ``chunk_hop() * frame_step`` samples.
        """
        spectrum = stft_ops.stft(tf.cast(segments, tf.float32), self.n_fft, self.n_hop)
        sources = self._filter(spectrum, training, start=self._window_start())
        # Overlap-add without window-sum normalisation, then the constant
        # (exact where four frames overlap: everywhere but the zero lead).
        factor = self.output_scale if weights is None else tf.cast(weights, tf.float32) * self.output_scale
        factor = tf.complex(factor, tf.zeros_like(factor))
        factor = factor if weights is None else factor[:, :, None, None, None]
        waves = self._inverse(sources * factor, lambda s: stft_ops.istft(s, self.n_fft, self.n_hop, normalize=False))
        return dict(zip(self.instruments, waves))

    def separate_waveform(self, waveform, overlap_frames=None, network=None, training=False):
        """The chunks of :meth:`separate_segments` over whole waveforms,
        cross-faded: what :class:`keras_sep.Separator` streams, as one
        graph (an exported SavedModel serves this). ``network`` must be
        None (Open-Unmix has no inference plan)."""
        if network is not None:
            raise ValueError(f"Open-Unmix runs its Keras layers; network must be None, got {network!r}")
        overlap = self.overlap_frames if overlap_frames is None else int(overlap_frames)
        waveform = tf.cast(waveform, tf.float32)
        shape = tf.shape(waveform)
        batch, samples = shape[0], shape[1]
        frames = (samples + self.n_fft + self.n_hop - 1) // self.n_hop
        hop_frames = self.chunk_hop(overlap)
        count = tf.maximum(1, (frames - overlap + hop_frames - 1) // hop_frames)
        hop = hop_frames * self.n_hop
        after = (count - 1) * hop + self.segment_length - self.n_fft - samples
        padded = tf.pad(waveform, tf.stack([[0, 0], [self.n_fft, after], [0, 0]]))
        segments = tf.reshape(tf.signal.frame(padded, self.segment_length, hop, axis=1),
                              [-1, 1, self.segment_length, self.channels])
        weights = tf.reshape(tf.tile(self.chunk_weights(tf.range(count), count, overlap), tf.stack([batch, 1])),
                             [-1, 1, self.chunk_frames])
        spec = tf.TensorSpec((1, self.segment_length, self.channels), tf.float32)
        # One chunk at a time: memory grows with the input only through the waveforms.
        stems = tf.map_fn(lambda args: self.separate_segments(args[0], args[1], training=training),
                          (segments, weights), fn_output_signature={n: spec for n in self.instruments},
                          parallel_iterations=1)
        outputs = {}
        for name, chunks in stems.items():
            chunks = tf.reshape(chunks, tf.stack([batch, count, self.segment_length, self.channels]))
            joined = tf.transpose(tf.signal.overlap_and_add(tf.transpose(chunks, [0, 3, 1, 2]), hop), [0, 2, 1])
            outputs[name] = joined[:, self.n_fft : self.n_fft + samples]
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "target_models": {
                    name: keras.saving.serialize_keras_object(net) for name, net in zip(self.targets, self.target_models)
                },
                "niter": self.niter,
                "softmask": self.softmask,
                "residual": self.residual,
                "wiener_win_len": self.wiener_win_len,
                "sample_rate": self.sample_rate,
                "n_fft": self.n_fft,
                "n_hop": self.n_hop,
                "chunk_frames": self.chunk_frames,
                "overlap_frames": self.overlap_frames,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["target_models"] = {
            name: keras.saving.deserialize_keras_object(net) for name, net in config["target_models"].items()
        }
        return cls(**config)
