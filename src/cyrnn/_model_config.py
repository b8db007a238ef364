"""A model as the JSON a saved file holds, and back: each class's
configuration, its parameter count from that configuration alone (checked
against the file before anything is allocated), and the model built from
it."""
import numpy as np

from cyrnn import _cells
from cyrnn._cells import PEEPHOLE_ROWS
from cyrnn.dropout import Dropout
from cyrnn.embedding import Embedding
from cyrnn.layers import GRU, LSTM, RNN
from cyrnn.linear import Linear
from cyrnn.sequential import Sequential

DTYPES = ("float32", "float64")

# class name -> (class, config keys in constructor order)
_RECURRENT_KEYS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                   "dropout", "bidirectional", "reverse")
_CLASSES = {
    "LSTM": (LSTM, _RECURRENT_KEYS + ("proj_size", "peephole", "dtype")),
    "GRU": (GRU, _RECURRENT_KEYS + ("reset_after", "dtype")),
    "RNN": (RNN, _RECURRENT_KEYS + ("nonlinearity", "dtype")),
    "Linear": (Linear, ("in_features", "out_features", "bias", "dtype")),
    "Embedding": (Embedding, ("num_embeddings", "embedding_dim", "padding_idx", "dtype")),
    "Dropout": (Dropout, ("p",)),
    "Sequential": (Sequential, ("layers", "tied")),
}
# config keys that files written before them leave out, and their defaults
_ADDED_KEYS = {"LSTM": {"peephole": False, "reverse": False},
               "GRU": {"reset_after": True, "reverse": False}, "RNN": {"reverse": False},
               "Sequential": {"tied": {}}}
# the keys that select a cell (_cells.py)
_CELL_OPTIONS = ("peephole", "reset_after", "nonlinearity")


class BadFile(Exception):
    """A problem with a file's content; cyrnn.load reports it as ValueError."""


# -- writing -----------------------------------------------------------------
def describe(model, where="model"):
    """{"class": name, "config": {...}} for a model of one of the known classes."""
    for name, (cls, keys) in _CLASSES.items():
        if type(model) is cls:
            break
    else:
        raise TypeError(f"{where} must be a cyrnn LSTM, GRU, RNN, Linear, Embedding, Dropout "
                        f"or Sequential of them, got {type(model).__name__}")
    if name == "Sequential":
        config = {"layers": [describe(layer, f"{where}.layers[{i}]")
                             for i, layer in enumerate(model.layers)],
                  "tied": model.tied()}
    else:
        config = {key: (model.dtype.name if key == "dtype" else getattr(model, key))
                  for key in keys}
    return {"class": name, "config": config}


# -- reading -----------------------------------------------------------------
def check_description(description, where, nested=False):
    """-> (class name, config dict), with the keys checked (values are the
    constructors' business)."""
    if not isinstance(description, dict) or set(description) != {"class", "config"}:
        raise BadFile(f"{where} must be an object with exactly the keys 'class' and 'config', "
                      f"got {description!r:.200}")
    name, config = description["class"], description["config"]
    allowed = [n for n in _CLASSES if not (nested and n == "Sequential")]
    if not isinstance(name, str) or name not in allowed:
        raise BadFile(f"{where}['class'] is {name!r:.100}, not one of the known classes "
                      f"{allowed}")
    if not isinstance(config, dict):
        raise BadFile(f"{where}['config'] must be an object, got {type(config).__name__}")
    keys = _CLASSES[name][1]
    config = {**_ADDED_KEYS.get(name, {}), **config}
    missing = [k for k in keys if k not in config]
    unexpected = [k for k in config if k not in keys]
    if missing or unexpected:
        raise BadFile(f"{where}['config'] does not match {name}'s options: missing {missing}, "
                      f"unexpected {unexpected!r:.200}")
    if "dtype" in config and config["dtype"] not in DTYPES:
        raise BadFile(f"{where}['config']['dtype'] must be one of {list(DTYPES)}, "
                      f"got {config['dtype']!r:.100}")
    return name, config


def _sizes(config, *keys):
    """The config's values of keys if all are non-negative ints, else None."""
    values = [config[k] for k in keys]
    return values if all(type(v) is int and v >= 0 for v in values) else None


def _recurrent_count(name, config):
    sizes = _sizes(config, "input_size", "hidden_size", "num_layers",
                   *(("proj_size",) if name == "LSTM" else ()))
    flags = [config[k] for k in ("bias", "bidirectional", "peephole", "reset_after")
             if k in config]
    if sizes is None or any(type(flag) is not bool for flag in flags):
        return None
    try:
        cell = _cells.select(name, **{k: config[k] for k in _CELL_OPTIONS if k in config})
    except TypeError:
        return None
    I, H, L = sizes[:3]
    P = sizes[3] if name == "LSTM" else 0
    G, D, Hout = cell.gates, 2 if config["bidirectional"] else 1, P or H
    per_direction = G * H * Hout + (2 * G * H if config["bias"] else 0) + (Hout * H if P else 0) \
        + (PEEPHOLE_ROWS * H if cell.peephole else 0)
    first = D * (G * H * I + per_direction)
    later = D * (G * H * D * Hout + per_direction)
    return first + max(L - 1, 0) * later


def parameter_count(name, config):
    """How many numbers the config's parameters hold (a tied array counted
    in each layer that has it), or None when a value is of the wrong type
    (then the constructor rejects it before allocating). Checked against
    the file's arrays before anything is built, so that a config claiming
    enormous sizes is refused without being allocated."""
    if name == "Sequential":
        layers = config["layers"]
        if not isinstance(layers, list):
            return None
        counts = [parameter_count(*check_description(
            item, f"model['config']['layers'][{i}]", nested=True)) for i, item in enumerate(layers)]
        return None if None in counts else sum(counts)
    if name == "Dropout":
        return 0
    if name == "Embedding":
        sizes = _sizes(config, "num_embeddings", "embedding_dim")
        return None if sizes is None else sizes[0] * sizes[1]
    if name == "Linear":
        sizes = _sizes(config, "in_features", "out_features")
        if sizes is None or type(config["bias"]) is not bool:
            return None
        return sizes[1] * sizes[0] + (sizes[1] if config["bias"] else 0)
    return _recurrent_count(name, config)


def check_ties(name, config, stored):
    """A Sequential's {alias: name} of tied parameters, checked against the
    names of the stored arrays: every name stored, no alias stored."""
    tied = config.get("tied", {}) if name == "Sequential" else {}
    if not isinstance(tied, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tied.items()):
        raise BadFile(f"model['config']['tied'] must map names to names, got {tied!r:.200}")
    for alias, target in tied.items():
        if alias in stored or target not in stored:
            raise BadFile(f"its tied parameter {alias!r:.100} -> {target!r:.100} must name a "
                          f"stored weight and one that is not stored")
    return tied


def build(name, config, where="model"):
    cls = _CLASSES[name][0]
    if name == "Sequential":
        layers = config["layers"]
        if not isinstance(layers, list) or not layers:
            raise BadFile(f"{where}['config']['layers'] must be a non-empty list, "
                          f"got {layers!r:.100}")
        built = []
        for i, item in enumerate(layers):
            sub = f"{where}['config']['layers'][{i}]"
            built.append(build(*check_description(item, sub, nested=True), sub))
        try:
            model = Sequential(*built)
            _tie(model, config["tied"])
        except (TypeError, ValueError) as exc:
            raise BadFile(f"{where} does not make a valid Sequential: {exc}") from None
        return model
    kwargs = dict(config)
    if "dtype" in kwargs:
        kwargs["dtype"] = np.dtype(config["dtype"])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BadFile(f"{where}['config'] is not a valid {name} configuration: {exc}") from None


def _tie(model, tied):
    """Ties model's parameters as {"i.name": "j.name"} says."""
    def owner(key):
        index, _, name = key.partition(".")
        if not index.isdigit() or int(index) >= len(model):
            raise ValueError(f"{key!r:.100} is not a layer's parameter")
        return model[int(index)], name

    for alias, target in tied.items():
        (layer, name), (source, source_name) = owner(alias), owner(target)
        if not hasattr(layer, "tie"):
            raise ValueError(f"{alias!r:.100} is not a layer's parameter")
        layer.tie(name, source, source_name)
