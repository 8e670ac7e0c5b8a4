"""Checkpoints of other frameworks read into keras_sep models, without those frameworks."""
