"""tf.data input pipelines: stems folders, MUSDB18, augmentation, a built-in dataset;
f0 tracking for DDSP (:func:`track_pitch`).

Builders return unbatched examples ``{"mixture": (samples, 2), target:
(samples, 2), ...}`` of float32 stereo audio; :func:`batch` adds shuffle,
repeat, batch and prefetch; :func:`to_spectrogram_pairs` turns examples into
a spectrogram separator's ``(input, targets)``.
"""
from keras_sep.data.augment import random_channel_swap, random_gain, recompute_mixture
from keras_sep.data.bach import bach_chorales
from keras_sep.data.ddsp_features import audio_features, ddsp_dataset, to_model_inputs
from keras_sep.data.dataset import batch, group_targets, stems_dataset, store_dataset
from keras_sep.data.musdb_dataset import musdb_dataset, musdb_tracks
from keras_sep.data.pitch import track_pitch
from keras_sep.data.soundfont import SoundFontRenderer
from keras_sep.data.spectrogram import spectrogram_settings, to_spectrogram_pairs
from keras_sep.data.stems import StemStore, find_tracks

__all__ = [
    "SoundFontRenderer",
    "StemStore",
    "audio_features",
    "bach_chorales",
    "batch",
    "ddsp_dataset",
    "find_tracks",
    "group_targets",
    "musdb_dataset",
    "musdb_tracks",
    "random_channel_swap",
    "random_gain",
    "recompute_mixture",
    "spectrogram_settings",
    "stems_dataset",
    "store_dataset",
    "to_model_inputs",
    "to_spectrogram_pairs",
    "track_pitch",
]
