"""Hinton & Salakhutdinov's deep autoencoder with tied weights."""
from keras_sep.models.dense_autoencoder import DenseAutoencoder


def deep_autoencoder(
    input_dim=784,
    hidden=(1000, 500, 250),
    code_dim=30,
    tied=True,
    activation="sigmoid",
    output_activation="sigmoid",
    **kwargs,
):
    """The 784-1000-500-250-30 deep autoencoder of Hinton & Salakhutdinov.

    A :class:`DenseAutoencoder` with the paper's defaults: logistic hidden
    units, a linear code layer, a logistic reconstruction for pixels in
    ``[0, 1]`` and tied weights (``W6 = W1ᵀ``, ``W5 = W2ᵀ``, ``W4 = W3ᵀ``
    for three hidden layers; the code layer is tied to the first decoder
    layer too). ``tied=False`` gives the untied variant with twice the
    kernels.

    Two ways to train it, both with the paper's logistic units:

    - the paper's recipe: ``model.pretrain(x)`` trains the encoder layer
      by layer as restricted Boltzmann machines (contrastive divergence;
      Gaussian hidden units for the linear code), which initialises every
      kernel and bias, then ``compile`` and ``fit`` fine-tune end to end;
    - a plain ``fit`` from the default initialisation, Glorot & Bengio's
      range for logistic units (see
      :func:`~keras_sep.models.dense_autoencoder.default_kernel_initializer`):
      with Keras's usual Glorot range the logistic units stay near 0.5 and
      Adam leaves the model at the mean input, which is why the paper
      needed pretraining with small random weights.

    ``examples/dae_vs_pca.py`` compares both recipes with PCA.

    Args:
        input_dim: number of input features (784 for 28×28 MNIST).
        hidden: hidden sizes of the encoder, input side first.
        code_dim: code size (30, or 2 for the paper's 2-D visualisation).
        tied: tie each decoder kernel to its mirror encoder kernel.
        activation: activation of the hidden layers.
        output_activation: activation of the reconstruction.
        **kwargs: further :class:`DenseAutoencoder` arguments
            (``code_activation``, ``kernel_initializer``, ``name``, ...).

    Input shape:
        ``(batch, input_dim)``.

    Output shape:
        ``(batch, input_dim)``; ``model.encoder`` gives ``(batch, code_dim)``
        and ``model.decoder`` maps codes back.

    Example:

    >>> model = deep_autoencoder()
    >>> sum(len(w.shape) == 2 for w in model.weights)  # 4 kernels, not 8
    4
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 30), (None, 784))

    The paper's recipe on a small version:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((100, 16)).astype("float32")
    >>> small = deep_autoencoder(16, hidden=(12, 8), code_dim=2)
    >>> history = small.pretrain(x, epochs=2, verbose=0)   # RBMs, layer by layer
    >>> small.compile("adam", "mse")
    >>> small.fit(x, x, epochs=1, verbose=0).history["loss"][0] < 0.25
    True

    References:
        - G. E. Hinton, R. R. Salakhutdinov, "Reducing the dimensionality of
          data with neural networks", Science 313(5786), 504-507, 2006.
    """
    kwargs.setdefault("name", "deep_autoencoder")
    return DenseAutoencoder(
        input_dim,
        hidden=hidden,
        code_dim=code_dim,
        activation=activation,
        output_activation=output_activation,
        tied=tied,
        **kwargs,
    )
