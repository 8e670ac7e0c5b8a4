"""The compiled per-batch chunk computations, and the batch size timing.

This is the one module of :mod:`keras_sep.separation` that knows the
inference plans (:func:`~keras_sep.inference.inference_plan`) and the
machine tuning (``autotune``): everything above it asks here.
"""
from collections.abc import Mapping

import numpy as np

# Chunks per network call that ``batch_size=None`` chooses from, by timing.
BATCH_CANDIDATES = (1, 4)
# U-Nets per network call beyond which more chunks per call cost memory
# and save next to no time: each chunk in flight held about 50 MB per
# instrument in a 4-stem Spleeter separation, and 4 chunks per call took
# 2 % less CPU time than 2 (two AVX-512 cores; 2 chunks 7 % less than 1).
MAX_UNETS_PER_CALL = 8


def batch_candidates(instruments):
    """The chunks per call that :meth:`Pipelines.tuned_batch_size` times
    for a model of ``instruments`` outputs: :data:`BATCH_CANDIDATES`, none
    above :data:`MAX_UNETS_PER_CALL` U-Nets per call.

    Example:

    >>> batch_candidates(2), batch_candidates(4), batch_candidates(5)
    ((1, 4), (1, 2), (1,))
    """
    most = max(1, MAX_UNETS_PER_CALL // int(instruments))
    return tuple(sorted({min(batch, most) for batch in BATCH_CANDIDATES}))


def has_plan(net):
    """Whether the spectrogram network ``net`` has a fast inference plan."""
    from keras_sep.inference import has_inference_plan

    return has_inference_plan(net)


def has_bfloat16_units():
    """True, False, or None (unknown): whether this machine computes bfloat16 natively."""
    from keras_sep.inference import autotune

    return autotune.has_bfloat16_units()


def tuning_without_budget():
    """A context in which the machine tuning times every layer not cached yet,
    however long that takes (a first separation stops after a few seconds)."""
    from keras_sep.inference import autotune

    return autotune.unlimited()


class Pipelines(Mapping):
    """The chunk computations of one model, made once per batch size.

    As a mapping: ``{batch: pipeline}`` of the plain pipelines made so far.

    Args:
        model: the :class:`~keras_sep.models.WaveformSeparator`.
        fast: run the network's inference plan where it has one, and XLA.
        precision: the plan's compute dtype, ``"float32"`` or ``"bfloat16"``.
        phase_iterations: Griffin–Lim iterations on each stem's spectrum
            (0: the mixture's, or the Wiener estimate's, phase as it is).

    Example:

    The compiled computation for two chunks, with the network's inference
    plan, gives what the model's own per-chunk separation gives:

    >>> import numpy as np
    >>> from keras_sep.models import UNetSeparator, WaveformSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> model = WaveformSeparator(net, frame_length=64, frame_step=16, overlap_frames=4)
    >>> pipelines = Pipelines(model)
    >>> rng = np.random.default_rng(0)
    >>> segments = rng.normal(size=(2, model.segment_length, 2)).astype("float32")
    >>> weights = np.ones((2, model.chunk_frames), "float32")
    >>> stems = pipelines.pipeline(2)(segments, weights)
    >>> stems["vocals"].shape, list(pipelines), pipelines.forms(2) is not None
    ((2, 304, 2), [2], True)
    >>> reference = model.separate_segments(segments, weights)["vocals"]
    >>> bool(np.allclose(stems["vocals"], reference, atol=1e-5))
    True
    """

    def __init__(self, model, fast=True, precision="float32", phase_iterations=0):
        self.model = model
        self.fast = bool(fast)
        self.precision = precision
        self.phase_iterations = int(phase_iterations)
        self._compiled = {}
        self._functions = {}
        self._wiener = {}
        self._networks = {}

    def __getitem__(self, batch):
        return self._compiled[batch]

    def __iter__(self):
        return iter(self._compiled)

    def __len__(self):
        return len(self._compiled)

    def _signature(self):
        model = self.model
        if getattr(model, "centred", False):  # the last chunk is as long as what is left
            return [_tensor_spec((None, None, model.channels)), _tensor_spec((None, None))]
        return [
            _tensor_spec((None, model.segment_length, model.channels)),
            _tensor_spec((None, model.chunk_frames)),
        ]

    def pipeline(self, batch):
        """The compiled chunk computation for calls of ``batch`` chunks:
        ``(segments, weights) -> {instrument: array}``."""
        if batch not in self._compiled:
            compiled = self.function(batch)
            self._compiled[batch] = lambda s, w: {name: value.numpy() for name, value in compiled(s, w).items()}
        return self._compiled[batch]

    def function(self, batch):
        """The ``tf.function`` behind :meth:`pipeline` for ``batch`` chunks
        (tensors in and out), e.g. to save it with its weights:
        :func:`keras_sep.export.export_plan`."""
        if batch not in self._functions:
            import tensorflow as tf

            model, network, jit, phase = self.model, self.network(batch), self.fast, self.phase_iterations
            open_unmix = not hasattr(model, "spectrogram_model")
            if open_unmix:  # the target networks (plan or Keras layers), Wiener filter built in
                separate = lambda s, w: model.separate_segments(s, w, training=False, network=network)  # noqa: E731
            else:
                separate = lambda s, w: model.separate_segments(  # noqa: E731
                    s, w, training=False, network=network, jit_compile=jit, phase_iterations=phase
                )
            self._functions[batch] = tf.function(
                separate,
                input_signature=self._signature(),
                # The inference plan is plain TensorFlow: converting it with
                # AutoGraph would only add a second to the first call.
                autograph=network is None or open_unmix,
            )
        return self._functions[batch]

    def module(self, batch):
        """A ``tf.Module`` whose ``separate`` is :meth:`function` ``(batch)``,
        tracking what it reads (the Keras model's variables when no
        inference plan runs; the plan's weights are the function's own
        constants): what ``tf.saved_model.save`` needs to keep it whole."""
        import tensorflow as tf

        module = tf.Module()
        module.separate = self.function(batch)
        if self.network(batch) is None:
            module.model = self.model
        return module

    def wiener(self, batch):
        """The two compiled passes of multichannel Wiener filtering for calls
        of ``batch`` chunks: ``(segments, weights) -> [covariance, power,
        peak]`` and ``(segments, weights, R, scale) -> {instrument: array}``."""
        if batch not in self._wiener:
            import tensorflow as tf

            model, network, jit, phase = self.model, self.network(batch), self.fast, self.phase_iterations
            net = model.spectrogram_model
            inputs = self._signature()
            spatial = tf.TensorSpec((len(model.instruments), net.bins, model.channels, model.channels), tf.complex64)
            statistics = tf.function(
                lambda s, w: model.wiener_statistics(s, w, training=False, network=network, jit_compile=jit),
                input_signature=inputs,
                autograph=network is None,
            )
            filtered = tf.function(
                lambda s, w, r, k: model.separate_segments(
                    s, w, training=False, network=network, jit_compile=jit, wiener=(r, k), phase_iterations=phase
                ),
                input_signature=inputs + [spatial, tf.TensorSpec((), tf.float32)],
                autograph=network is None,
            )
            self._wiener[batch] = (
                lambda s, w: [value.numpy() for value in statistics(s, w)],
                lambda s, w, r, k: {name: value.numpy() for name, value in filtered(s, w, r, k).items()},
            )
        return self._wiener[batch]

    def network(self, batch):
        """The inference plan for calls of ``batch`` chunks (made once), or
        None: the Keras layers run."""
        if not hasattr(self.model, "spectrogram_model"):  # Open-Unmix: one plan for any batch
            if self.fast and "open_unmix" not in self._networks:
                import tensorflow as tf

                from keras_sep.inference.open_unmix import OpenUnmixInference

                # On a GPU, Keras runs the LSTMs with cuDNN's fused kernels;
                # the plan's step-by-step loops are for CPUs.
                gpu = bool(tf.config.list_logical_devices("GPU"))
                self._networks["open_unmix"] = None if gpu else OpenUnmixInference(self.model.target_models)
            return self._networks.get("open_unmix")
        if self.fast and batch not in self._networks:
            from keras_sep.inference import inference_plan

            net = self.model.spectrogram_model
            # Time the layers' operator forms for the chunks this separator
            # feeds (once per machine, then cached); None: no plan, which
            # is remembered too.
            shape = (batch, self.model.chunk_frames, net.bins, net.channels)
            self._networks[batch] = inference_plan(net, tune_input_shape=shape, compute_dtype=self.precision)
        return self._networks.get(batch)

    def forms(self, batch):
        """The operator forms the plan for ``batch`` chunks chose, or None (no plan)."""
        return getattr(self._networks.get(batch), "forms", None)

    def tuned_batch_size(self):
        """The fastest of :func:`batch_candidates` chunks per call on this
        machine (timed once, then cached); 1 without a plan or with timing off."""
        from keras_sep.inference import autotune

        model = self.model
        net = getattr(model, "spectrogram_model", None)
        if net is None:  # Open-Unmix: one chunk (49 s) per call, plan or Keras layers
            return 1
        batches = batch_candidates(len(model.instruments))
        if len(batches) == 1 or not (self.fast and has_plan(net) and autotune.enabled()):
            return 1
        count = max(batches)
        # Every candidate separates the same chunks, in count / b calls; its
        # plan is made only if the timing runs (not when the choice is cached).
        candidates = {
            str(b): (lambda s, w, b=b: [self.pipeline(b)(s[i : i + b], w[i : i + b]) for i in range(0, count, b)])
            for b in batches
        }

        def inputs():
            rng = np.random.default_rng(0)
            segments = rng.uniform(-0.5, 0.5, (count, model.segment_length, model.channels)).astype(np.float32)
            return segments, np.ones((count, model.chunk_frames), np.float32)

        # The network's shape and weights' layout decide the timing, not the weights.
        signature = (
            f"separator.batch:{type(net).__name__}:{len(model.instruments)}x{model.chunk_frames}x{net.bins}x{net.channels}"
            f":filters={'-'.join(map(str, net.filters))}:frame={model.frame_length}/{model.frame_step}:{self.precision}"
        )
        sizes = " and ".join(map(str, batches))
        note = f"timing {sizes} chunks per network call on this machine (once, cached in {autotune.table_path()})"
        kept = set(self._compiled) | set(self._networks)  # made before the timing (a file's one chunk per call)
        choice = int(autotune.choose(signature, candidates, inputs, "1", rounds=3, compiled=True, note=note))
        # The plans only the timing made for the other candidates are no
        # longer needed; those made before it stay in use.
        kept.add(choice)
        self._compiled = {b: p for b, p in self._compiled.items() if b in kept}
        self._functions = {b: f for b, f in self._functions.items() if b in kept}
        self._networks = {b: n for b, n in self._networks.items() if b in kept}
        return choice


def _tensor_spec(shape):
    import tensorflow as tf

    return tf.TensorSpec(shape, tf.float32)
