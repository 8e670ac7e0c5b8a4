"""Train a separator from one JSON configuration (what ``keras-sep train`` runs).

A configuration has three sections; anything left out takes the defaults
below. ``resolve(config, overrides)`` merges them, ``train(config,
output_dir)`` runs it and writes ``separator.keras`` (waveform in, stems
out: ready for ``keras-sep separate -m``) and ``config.json`` (the resolved
configuration) into ``output_dir``.

    {
      "model": {"preset": "spleeter:2stems", "pretrained": false, "overrides": {}},
      "data": {"source": "bach", "root": null, "targets": null, "tracks": 8,
               "seconds": 30, "batch_size": 4, "augment": true, "seed": 0},
      "training": {"epochs": 10, "steps_per_epoch": 50, "validation_steps": 4,
                   "learning_rate": 1e-4, "loss": "l1", "precision": "auto",
                   "strategy": "auto", "freeze_encoder": false, "patience": 10}
    }

``model.overrides`` are :class:`UNetSeparator` arguments (e.g. smaller
``filters``) and, under ``"signal"``, :class:`WaveformSeparator` ones.
``data.source`` is ``"bach"`` (the built-in dataset), ``"folder"`` (a
MUSDB-layout folder at ``data.root``) or ``"musdb"`` (MUSDB18 at
``data.root`` through the musdb package).

The parts: the configuration's defaults and checks
(:mod:`.config`), the U-Net recipe and :func:`train`, which hands an
Open-Unmix preset on (:mod:`.unet`), and the Open-Unmix recipe
(:mod:`.open_unmix`).
"""
from keras_sep.recipes.config import DEFAULTS, ConfigError, parse_override, resolve  # noqa: F401
from keras_sep.recipes.open_unmix import train_open_unmix  # noqa: F401
from keras_sep.recipes.unet import build_separator, datasets, train  # noqa: F401

__all__ = ["DEFAULTS", "ConfigError", "parse_override", "resolve", "build_separator", "datasets", "train",
           "train_open_unmix"]
