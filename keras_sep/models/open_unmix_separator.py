"""Waveform in, stems out with Open-Unmix networks and Wiener filtering."""
import keras
import numpy as np
import tensorflow as tf

from keras_sep.ops import stft as stft_ops
from keras_sep.ops import wiener_em
from keras_sep.ops.crossfade import crossfade_weights

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
    separates chunks of ``chunk_frames`` of the song's own centred frames
    (the song's ends reflected, as above) that share ``overlap_frames``
    frames with their neighbours, cross-faded linearly; the last chunk (the
    only one, for a short input) holds just the frames left. The BLSTM
    sees one chunk, so an input of one chunk is separated as by the call.

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
            is filtered in the song's windows. The
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
            s, self.n_fft, self.n_hop, center=True, length=tf.shape(waveform)[1], data_format="channels_first"))
        return dict(zip(self.instruments, waves))

    def _filter(self, spectrum, training, start=0, network=None):
        """Mixture spectrum ``(batch, frames, bins, channels)`` → source
        spectra ``(batch, frames, bins, channels, sources)``; the first
        frame ``start`` frames into its Wiener window. ``network``: None
        (the Keras networks) or a callable of the magnitude that gives their
        stacked estimates, ``(batch, frames, bins, channels, targets)``
        (:class:`keras_sep.inference.open_unmix.OpenUnmixInference`), whose
        ``jit_compile`` the Wiener filter follows."""
        magnitude = tf.abs(spectrum)
        if network is None:
            estimates = tf.stack(
                [tf.cast(net(magnitude, training=training), tf.float32) for net in self.target_models], axis=-1)
        else:
            estimates = network(magnitude)
        # The plan's XLA setting (off in exports: not every TF Serving has XLA).
        return wiener_em.windowed_wiener(
            estimates, spectrum, self.wiener_win_len, start, iterations=self.niter, softmask=self.softmask,
            residual=self.residual, epsilon=EPSILON, jit_compile=getattr(network, "jit_compile", False),
        )

    def _inverse(self, sources, istft):
        """Every source through one inverse STFT (``istft`` of a
        channels-first spectrum, the layout ``tf.signal`` works in, so that
        the sources are transposed once); a list of waveforms."""
        stacked = tf.transpose(sources, [4, 0, 3, 1, 2])  # (sources, batch, channels, frames, bins)
        shape = tf.shape(stacked)
        joined = tf.reshape(stacked, tf.concat([[-1], shape[2:]], 0))
        waves = istft(tf.ensure_shape(joined, [None, self.channels, None, None]))
        waves = tf.transpose(waves, [0, 2, 1])  # (sources * batch, samples, channels)
        return tf.unstack(tf.reshape(waves, tf.concat([shape[:2], tf.shape(waves)[1:]], 0)), len(self.instruments))

    # --- streaming: centred chunks of the song's frames ------------------

    centred = True  # ChunkStream: reflect the song's ends, shrink the last chunk

    @property
    def stream_lead(self):
        """Samples before the input in the streamed time line: half a frame,
        so that chunk frame ``k`` of chunk 0 is the song's centred frame ``k``."""
        return self.n_fft // 2

    @property
    def segment_length(self):
        """Samples a chunk of ``chunk_frames`` frames spans."""
        return (self.chunk_frames - 1) * self.n_hop + self.n_fft

    def chunk_hop(self, overlap_frames=None):
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        return self.chunk_frames - overlap

    def num_frames(self, num_samples):
        """The song's centred frames, as ``torch.stft(center=True)``'s."""
        return 1 + num_samples // self.n_hop

    def num_chunks(self, num_samples, overlap_frames=None):
        """Chunks needed for ``num_samples`` input samples (Python int): the
        last one holds the song's last frame."""
        excess = self.num_frames(num_samples) - self.chunk_frames
        return 1 + max(0, -(-excess // self.chunk_hop(overlap_frames)))

    def chunk_weights(self, indices, num_chunks, overlap_frames=None):
        """Cross-fade weights ``(len(indices), chunk_frames)``: linear over
        shared frames, summing to 1 in every frame (a shorter last chunk
        takes the first columns of its row)."""
        overlap = self.overlap_frames if overlap_frames is None else overlap_frames
        return crossfade_weights(indices, num_chunks, self.chunk_frames, overlap)

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
        """Where a chunk's first frame is in its Wiener window: chunks start
        on song frames a whole number of windows apart, so at 0."""
        return 0

    def edge_gain(self, begin, count, total=None):
        """Gains ``(count,)`` for output samples ``begin ...`` of a song of
        ``total`` samples (None: not known yet, longer than these) that turn
        the chunks' constant overlap-add normalisation into the song's window
        sum (``torch.istft``'s), which is smaller within a frame of either
        end; None where all of them are 1."""
        positions = np.arange(begin, begin + count)
        near = positions < self.n_fft
        if total is not None:
            near |= positions >= total - 2 * self.n_fft
        if not near.any():
            return None
        frames = np.inf if total is None else self.num_frames(total)
        squared = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)) ** 2
        shifted = positions + self.n_fft // 2
        envelope = np.zeros(count)
        for k in range(-(-self.n_fft // self.n_hop)):
            frame = shifted // self.n_hop - k
            offset = shifted - frame * self.n_hop
            valid = (frame >= 0) & (frame < frames) & (offset < self.n_fft)
            envelope += np.where(valid, squared[np.minimum(offset, self.n_fft - 1)], 0.0)
        gain = np.where(near & (envelope > 1e-11), 1.0 / (self.output_scale * np.maximum(envelope, 1e-11)), 1.0)
        return gain.astype(np.float32)

    def separate_segments(self, segments, weights=None, training=False, network=None):
        """Separate chunks given as stretches of the song's centred signal.

        Args:
            segments: ``(chunks, samples, channels)`` float32: the samples
                ``(frames - 1) * n_hop + n_fft`` that a chunk's frames span,
                the song's ends reflected (:class:`ChunkStream` cuts them).
            weights: ``(chunks, frames)`` cross-fade weights, or None.
            network: None (the Keras networks) or their inference plan
                (see ``_filter``).

        Returns:
            dict ``{instrument: (chunks, samples, channels)}`` to be
            overlap-added at a hop of ``chunk_hop() * n_hop`` samples and
            multiplied by :meth:`edge_gain`.
        """
        spectrum = stft_ops.stft(tf.cast(segments, tf.float32), self.n_fft, self.n_hop)
        sources = self._filter(spectrum, training, start=self._window_start(), network=network)
        # Overlap-add without window-sum normalisation, then the constant
        # (the song's window sum but within a frame of its ends: edge_gain).
        factor = self.output_scale if weights is None else tf.cast(weights, tf.float32) * self.output_scale
        factor = tf.complex(factor, tf.zeros_like(factor))
        factor = factor if weights is None else factor[:, :, None, None, None]
        waves = self._inverse(sources * factor, lambda s: stft_ops.istft(
            s, self.n_fft, self.n_hop, normalize=False, data_format="channels_first"))
        return dict(zip(self.instruments, waves))

    def separate_waveform(self, waveform, overlap_frames=None, network=None, training=False):
        """The chunks of :meth:`separate_segments` over whole waveforms,
        cross-faded: what :class:`keras_sep.Separator` streams, as one
        graph (an exported SavedModel serves this). ``network``: None (the
        Keras networks) or their inference plan (see ``_filter``)."""
        overlap = self.overlap_frames if overlap_frames is None else int(overlap_frames)
        waveform = tf.cast(waveform, tf.float32)
        shape = tf.shape(waveform)
        batch, samples = shape[0], shape[1]
        half = self.n_fft // 2
        frames = samples // self.n_hop + 1
        hop_frames = self.chunk_hop(overlap)
        count = 1 + tf.maximum(0, (frames - self.chunk_frames + hop_frames - 1) // hop_frames)
        hop = hop_frames * self.n_hop
        # Reflect padding as np.pad's (repeated for inputs of n_fft // 2
        # samples or fewer, which ChunkStream also takes): periodic indices.
        period = tf.maximum(2 * (samples - 1), 1)
        folded = tf.range(-half, samples + half) % period
        padded = tf.gather(waveform, tf.where(folded < samples, folded, period - folded), axis=1)
        span = (frames - 1) * self.n_hop + self.n_fft  # what the song's frames cover
        weights = self.chunk_weights(tf.range(count), count, overlap)
        # Whole chunks one at a time (memory grows with the input only
        # through the waveforms), then the last one at its own length.
        full = padded[:, : (count - 2) * hop + self.segment_length]
        segments = tf.reshape(tf.signal.frame(full, self.segment_length, hop, axis=1),
                              [-1, 1, self.segment_length, self.channels])[: batch * (count - 1)]
        head = tf.reshape(tf.tile(weights[None, :-1], tf.stack([batch, 1, 1])), [-1, 1, self.chunk_frames])
        spec = tf.TensorSpec((1, self.segment_length, self.channels), tf.float32)
        stems = tf.map_fn(lambda args: self.separate_segments(args[0], args[1], training=training, network=network),
                          (segments, head), fn_output_signature={n: spec for n in self.instruments},
                          parallel_iterations=1)
        start = (count - 1) * hop
        last_weights = tf.tile(weights[-1:, : frames - (count - 1) * hop_frames], tf.stack([batch, 1]))
        last = self.separate_segments(padded[:, start:span], last_weights, training=training, network=network)
        envelope = tf.signal.overlap_and_add(
            tf.tile(tf.square(tf.signal.hann_window(self.n_fft, periodic=True))[None], tf.stack([frames, 1])),
            self.n_hop)[half : half + samples]
        gain = (1.0 / (self.output_scale * envelope))[None, :, None]
        outputs = {}
        for name, chunks in stems.items():
            chunks = tf.reshape(chunks, tf.stack([batch, count - 1, self.segment_length, self.channels]))
            joined = tf.transpose(tf.signal.overlap_and_add(tf.transpose(chunks, [0, 3, 1, 2]), hop), [0, 2, 1])
            joined = joined[:, :span]
            joined = tf.pad(joined, tf.stack([[0, 0], [0, span - tf.shape(joined)[1]], [0, 0]]))
            joined += tf.pad(last[name], tf.stack([[0, 0], [start, 0], [0, 0]]))
            outputs[name] = joined[:, half : half + samples] * gain
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
