"""Upstream Open-Unmix (PyTorch) state dicts → keras_sep :class:`OpenUnmix`.

The layouts differ in three ways that the conversion undoes:

- PyTorch flattens a frame as ``(channels, bins)``, keras_sep as
  ``(bins, channels)``: the rows of ``fc1``, the columns of ``fc3`` and
  ``bn3``'s per-feature values are permuted accordingly;
- ``Linear`` stores ``(out, in)`` weights, ``Dense`` ``(in, out)`` kernels;
- PyTorch's LSTM has two biases (input and recurrent) that are summed into
  Keras' one; both order the gates input, forget, cell, output.

BatchNorm statistics and epsilon (1e-5) carry over as they are.
"""
import os

import numpy as np

from keras_sep.checkpoints.torch_pth import read_state_dict


def open_unmix_config(state):
    """The :class:`OpenUnmix` arguments that a state dict's shapes imply.

    >>> import numpy as np
    >>> state = {"fc1.weight": np.zeros((16, 2 * 20)), "fc3.weight": np.zeros((2 * 33, 16)),
    ...          "output_scale": np.zeros(33), "lstm.weight_hh_l0": np.zeros((32, 8)),
    ...          "lstm.weight_hh_l0_reverse": np.zeros((32, 8))}
    >>> sorted(open_unmix_config(state).items())
    [('hidden_size', 16), ('max_bin', 20), ('nb_bins', 33), ('nb_channels', 2), ('nb_layers', 1), ('unidirectional', False)]
    """
    missing = [k for k in ("fc1.weight", "fc3.weight", "output_scale", "lstm.weight_hh_l0") if k not in state]
    if missing:
        raise ValueError(f"not an Open-Unmix state dict: missing {missing}")
    hidden_size, flat_in = state["fc1.weight"].shape
    nb_bins = state["output_scale"].shape[0]
    nb_channels = state["fc3.weight"].shape[0] // nb_bins
    nb_layers = sum(1 for k in state if k.startswith("lstm.weight_hh_l") and not k.endswith("_reverse"))
    return {
        "nb_bins": int(nb_bins),
        "nb_channels": int(nb_channels),
        "hidden_size": int(hidden_size),
        "nb_layers": int(nb_layers),
        "max_bin": int(flat_in // nb_channels),
        "unidirectional": "lstm.weight_hh_l0_reverse" not in state,
    }


def _lstm_weights(state, suffix):
    kernel = state[f"lstm.weight_ih_{suffix}"].T
    recurrent = state[f"lstm.weight_hh_{suffix}"].T
    bias = state[f"lstm.bias_ih_{suffix}"] + state[f"lstm.bias_hh_{suffix}"]
    return [kernel, recurrent, bias]


def _bins_channels(values, channels, bins):
    """PyTorch's ``(channels, bins)`` flattening of the last axis as
    keras_sep's ``(bins, channels)``."""
    lead = values.shape[:-1]
    return np.swapaxes(values.reshape(lead + (channels, bins)), -1, -2).reshape(lead + (bins * channels,))


def _expected_names(model):
    names = ["input_mean", "input_scale", "output_scale", "output_mean",
             "fc1.weight", "fc2.weight", "fc3.weight"]
    names += [f"bn{i}.{k}" for i in (1, 2, 3) for k in ("weight", "bias", "running_mean", "running_var")]
    for index in range(model.nb_layers):
        for direction in ("",) if model.unidirectional else ("", "_reverse"):
            names += [f"lstm.{k}_l{index}{direction}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return names


def load_open_unmix_state_dict(model, state):
    """Copy an upstream ``OpenUnmix`` state dict into ``model``.

    Args:
        model: an :class:`~keras_sep.models.OpenUnmix` of the same sizes.
        state: ``{name: numpy array}``, e.g. from ``read_state_dict``.

    Returns:
        ``model``.

    Raises:
        ValueError: the sizes differ or a parameter is missing.
    """
    config = open_unmix_config(state)
    ours = {k: getattr(model, k) for k in config}
    if ours != config:
        raise ValueError(f"the state dict is of an OpenUnmix with {config}, not {ours}")
    bins, channels, max_bin = model.nb_bins, model.nb_channels, model.max_bin
    missing = sorted(set(_expected_names(model)) - set(state))
    if missing:
        raise ValueError(f"the state dict lacks {len(missing)} parameters, e.g. {missing[:3]}")

    def bn(name, permute=False):
        values = [state[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
        return [_bins_channels(v, channels, bins) for v in values] if permute else values

    assignments = {
        "input_norm": [state["input_mean"], state["input_scale"]],
        "fc1": [_bins_channels(state["fc1.weight"], channels, max_bin).T],
        "bn1": bn("bn1"),
        "fc2": [state["fc2.weight"].T],
        "bn2": bn("bn2"),
        "fc3": [_bins_channels(state["fc3.weight"].T, channels, bins)],
        "bn3": bn("bn3", permute=True),
        model.target: [state["output_scale"], state["output_mean"]],
    }
    for index in range(model.nb_layers):
        if model.unidirectional:
            assignments[f"lstm_{index}"] = _lstm_weights(state, f"l{index}")
        else:
            assignments[f"blstm_{index}"] = (_lstm_weights(state, f"l{index}")
                                             + _lstm_weights(state, f"l{index}_reverse"))
    for name, values in assignments.items():
        layer = model.get_layer(name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if shapes != [v.shape for v in values]:
            raise ValueError(f"layer {name!r}: state dict shapes {[v.shape for v in values]} != model {shapes}")
        layer.set_weights([np.asarray(v, "float32") for v in values])
    return model


def open_unmix_from_pth(path, target=None, **kwargs):
    """An :class:`~keras_sep.models.OpenUnmix` with the weights of an upstream ``.pth``.

    Args:
        path: a state dict saved by ``openunmix`` (either PyTorch format).
        target: the model's target; by default the file name up to its
            first ``-`` (upstream names files ``vocals-b62c91ce.pth``).
        **kwargs: further :class:`OpenUnmix` arguments (``name``).

    Raises:
        ValueError: one line naming the file when it cannot be read or is
            not an Open-Unmix state dict.
    """
    from keras_sep.models.open_unmix import OpenUnmix

    name = os.fspath(path)
    state = read_state_dict(name)
    if target is None:
        target = os.path.basename(name).split("-")[0].split(".")[0]
    try:
        model = OpenUnmix(target=target, **open_unmix_config(state), **kwargs)
        return load_open_unmix_state_dict(model, state)
    except (ValueError, KeyError) as error:
        raise ValueError(f"{name}: {str(error).splitlines()[0]}") from None
