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
    kernels. The paper pretrains layer by layer with RBMs; with Adam and
    Glorot initialisation, end-to-end training of smaller versions works
    without it (see ``examples/dae_vs_pca.py``).

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
