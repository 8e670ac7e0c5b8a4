"""Denoising autoencoder: corruption inside the model, clean targets outside."""
import keras

from keras_sep.models._autoencoder_utils import CodecMixin, check_model_kwargs


@keras.saving.register_keras_serializable(package="keras_sep")
class DenoisingAutoencoder(CodecMixin, keras.Model):
    """``corruption → autoencoder``, trained noisy → clean with ``fit(x, x)``.

    The corruption layer (``AdditiveGaussianNoise``, ``MaskingNoise``,
    ``SaltAndPepperNoise``, ``CrossOcclusion`` or any layer that is the
    identity unless ``training=True``) is the first layer of the model, so
    during ``fit`` each batch is corrupted afresh while the loss compares
    the reconstruction with the clean input; at inference the corruption is
    the identity and the model is the plain autoencoder. To denoise data
    that is already noisy, call the model (or ``autoencoder``) on it.

    The autoencoder is one nested layer of this model; a
    :class:`DenseAutoencoder` with tied weights keeps its ties inside it,
    through ``.keras`` files too, since it rebuilds itself from its config.

    Args:
        autoencoder: a single-input model mapping ``x`` to ``x̂`` of the same
            shape, e.g. from ``dense_autoencoder``, ``deep_autoencoder`` or
            ``conv_autoencoder``.
        corruption: the corruption layer.
        **kwargs: ``keras.Model`` arguments (``name``, ...).

    Call arguments:
        inputs: clean (training) or noisy (inference) data, shaped like the
            autoencoder's input.
        training: corrupt the inputs when True.

    Input shape:
        The autoencoder's input shape, ``(batch, ...)``.

    Output shape:
        The autoencoder's output shape, ``(batch, ...)``.

    Example:

    >>> import numpy as np
    >>> from keras_sep.layers import MaskingNoise
    >>> from keras_sep.models import dense_autoencoder
    >>> ae = dense_autoencoder(64, hidden=(32,), code_dim=8)
    >>> dae = DenoisingAutoencoder(ae, MaskingNoise(0.3, seed=0))
    >>> dae.compile("adam", "mse")
    >>> x = np.random.rand(16, 64).astype("float32")
    >>> _ = dae.fit(x, x, epochs=1, verbose=0)
    >>> bool(np.allclose(dae(x), ae(x)))  # inference: no corruption
    True

    References:
        - P. Vincent, H. Larochelle, Y. Bengio, P.-A. Manzagol, "Extracting
          and composing robust features with denoising autoencoders", ICML
          2008.
        - P. Vincent et al., "Stacked denoising autoencoders", JMLR, 2010.
    """

    def __init__(self, autoencoder, corruption, **kwargs):
        if not isinstance(autoencoder, keras.Model) or len(autoencoder.inputs) != 1:
            raise ValueError(
                f"autoencoder must be a single-input keras.Model, got {autoencoder!r}"
            )
        if not isinstance(corruption, keras.layers.Layer):
            raise ValueError(f"corruption must be a keras Layer, got {corruption!r}")
        inputs = keras.Input(shape=tuple(autoencoder.inputs[0].shape[1:]), name="inputs")
        outputs = autoencoder(corruption(inputs))
        check_model_kwargs(type(self), kwargs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.autoencoder = autoencoder
        self.corruption = corruption

    @property
    def encoder(self):
        """The autoencoder's encoder (clean input → code)."""
        return self.autoencoder.encoder

    @property
    def decoder(self):
        """The autoencoder's decoder (code → reconstruction)."""
        return self.autoencoder.decoder

    def corrupt(self, x):
        """A corrupted copy of ``x`` drawn from the model's corruption."""
        return keras.ops.convert_to_numpy(self.corruption.corrupt(x))


    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "autoencoder": keras.saving.serialize_keras_object(self.autoencoder),
            "corruption": keras.saving.serialize_keras_object(self.corruption),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("autoencoder", "corruption"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def denoising_autoencoder(autoencoder, corruption, **kwargs):
    """Build a :class:`DenoisingAutoencoder` from an autoencoder and a corruption.

    Example:

    >>> from keras_sep.layers import CrossOcclusion
    >>> from keras_sep.models import deep_autoencoder
    >>> ae = deep_autoencoder(64, hidden=(32,), code_dim=4)
    >>> dae = denoising_autoencoder(ae, CrossOcclusion(image_shape=(8, 8)))
    >>> dae.output_shape
    (None, 64)
    """
    return DenoisingAutoencoder(autoencoder, corruption, **kwargs)
