"""Model builders made of keras_sep layers."""
from keras_sep import _backend  # noqa: F401  (refuses a Keras backend other than TensorFlow)
# A compiled model's .keras file names its loss: registered with the models,
# so that keras.saving.load_model reads what keras_sep's training saved.
from keras_sep import losses as _losses  # noqa: E402,F401
from keras_sep.models.unet_separator import UNetSeparator, unet_separator  # noqa: E402,F401
from keras_sep.models.waveform_separator import WaveformSeparator  # noqa: E402,F401
from keras_sep.models.dense_autoencoder import DenseAutoencoder, dense_autoencoder  # noqa: E402,F401
from keras_sep.models.deep_autoencoder import deep_autoencoder  # noqa: E402,F401
from keras_sep.models.pca import PCA, pca_baseline  # noqa: E402,F401
from keras_sep.models.denoising_autoencoder import DenoisingAutoencoder, denoising_autoencoder  # noqa: E402,F401
from keras_sep.models.anomaly_detector import AnomalyDetector  # noqa: E402,F401
from keras_sep.models.conv_autoencoder import ConvAutoencoder, conv_autoencoder  # noqa: E402,F401
from keras_sep.models.encoder_decoder import EncoderDecoder, encoder_decoder  # noqa: E402,F401
from keras_sep.models.unet import UNet, unet  # noqa: E402,F401
from keras_sep.models.open_unmix import OpenUnmix, bandwidth_to_max_bin, open_unmix  # noqa: E402,F401
from keras_sep.models.ddsp_autoencoder import DDSPAutoencoder, ddsp_autoencoder  # noqa: E402,F401
from keras_sep.models.open_unmix_separator import OpenUnmixSeparator  # noqa: E402,F401
