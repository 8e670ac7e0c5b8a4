"""Pure TensorFlow functions underneath the layers (no Keras state)."""
