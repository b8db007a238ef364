"""Saving and loading whole models: configuration and weights in one .npz.

    cyrnn.save("model.npz", model)
    model = cyrnn.load("model.npz")

The file is an ordinary numpy .npz archive (readable with np.load, from any
language with a zip and .npy reader) holding

* ``__cyrnn__``: a 0-d numpy unicode array with a JSON document,
  ``{"format": "cyrnn", "format_version": 1, "cyrnn_version": "...",
  "model": {"class": "LSTM", "config": {"input_size": 8, ...}}}``; a
  Sequential's config is ``{"layers": [{"class": ..., "config": ...}, ...]}``;
* one float32/float64 array per parameter, named as in ``state_dict()``.

No pickle is involved either way: loading uses
``np.load(..., allow_pickle=False)``, and everything read is checked (format
and version, class names, the config's keys, and its values through the
classes' own constructors, the weights' dtypes, names and shapes through
``load_state_dict``) before it is used, so a tampered, truncated or foreign
file is a ValueError saying what is wrong, never arbitrary code or a huge
allocation. What is not saved: the seed and random generator state (a
loaded model draws dropout masks from a fresh generator) and optimizer
state (``opt.state_dict()`` has its own round trip).
"""
import json
import os
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from cyrnn import _cells
from cyrnn._cells import PEEPHOLE_ROWS
from cyrnn._version import __version__
from cyrnn.layers import GRU, LSTM, RNN
from cyrnn.linear import Linear
from cyrnn.sequential import Sequential

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_FORMAT = "cyrnn"
_HEADER = "__cyrnn__"
_DTYPES = ("float32", "float64")

# class name -> (class, config keys in constructor order)
_RECURRENT_KEYS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                   "dropout", "bidirectional")
_CLASSES = {
    "LSTM": (LSTM, _RECURRENT_KEYS + ("proj_size", "peephole", "dtype")),
    "GRU": (GRU, _RECURRENT_KEYS + ("reset_after", "dtype")),
    "RNN": (RNN, _RECURRENT_KEYS + ("nonlinearity", "dtype")),
    "Linear": (Linear, ("in_features", "out_features", "bias", "dtype")),
    "Sequential": (Sequential, ("layers",)),
}
# config keys that files written before them leave out, and their defaults
_ADDED_KEYS = {"LSTM": {"peephole": False}, "GRU": {"reset_after": True}}
_CELL_OPTIONS = ("peephole", "reset_after", "nonlinearity")  # the keys that select a cell (_cells.py)


# -- writing -----------------------------------------------------------------
def _describe(model, where="model"):
    """{"class": name, "config": {...}} for a model of one of the known classes."""
    for name, (cls, keys) in _CLASSES.items():
        if type(model) is cls:
            break
    else:
        raise TypeError(f"{where} must be a cyrnn LSTM, GRU, RNN, Linear or Sequential, "
                        f"got {type(model).__name__}")
    if name == "Sequential":
        config = {"layers": [_describe(layer, f"{where}.layers[{i}]")
                             for i, layer in enumerate(model.layers)]}
    else:
        config = {key: (model.dtype.name if key == "dtype" else getattr(model, key))
                  for key in keys}
    return {"class": name, "config": config}


def _check_path(path, mode):
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    needed = "write" if mode == "w" else "read"
    if hasattr(path, needed) and hasattr(path, "seek"):
        return path
    raise TypeError(f"path must be a file path (str or os.PathLike) or a binary file object "
                    f"open for {'writing' if mode == 'w' else 'reading'}, "
                    f"got {type(path).__name__}")


def save(path, model):
    """Writes `model` (LSTM, GRU, RNN, Linear or Sequential) with its
    configuration and weights to one .npz file at exactly `path` (no suffix
    is added; ".npz" is the convention), or to a binary file object. The
    file is written to a temporary name and renamed, so an interrupted save
    never leaves a half-written file at `path`. cyrnn.load reads it back."""
    description = _describe(model)
    path = _check_path(path, "w")
    header = {"format": _FORMAT, "format_version": FORMAT_VERSION,
              "cyrnn_version": __version__, "model": description}
    arrays = {_HEADER: np.array(json.dumps(header, allow_nan=False))}
    arrays.update(model.state_dict())
    if not isinstance(path, str):
        np.savez(path, **arrays)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cyrnn-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- reading -----------------------------------------------------------------
class _Bad(Exception):
    """A problem with the file's content; load() reports it as ValueError."""


def _reject_constant(name):
    raise _Bad(f"its header holds {name}, which is not valid JSON")


def _read_header_json(text):
    try:
        header = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _Bad(f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _Bad(f"its header must be a JSON object, got {type(header).__name__}")
    expected = {"format", "format_version", "cyrnn_version", "model"}
    if header.get("format") != _FORMAT:
        raise _Bad(f"its header's format is {header.get('format')!r}, not {_FORMAT!r}")
    version = header.get("format_version")
    if type(version) is not int:
        raise _Bad(f"its format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        written_by = header.get("cyrnn_version")
        raise _Bad(f"it has format version {version} (written by cyrnn {written_by!r}); "
                   f"this cyrnn ({__version__}) reads format version {FORMAT_VERSION}: "
                   f"upgrade cyrnn")
    if version != FORMAT_VERSION:
        raise _Bad(f"it has an unknown format version {version}; this cyrnn reads "
                   f"format version {FORMAT_VERSION}")
    if set(header) != expected:
        raise _Bad(f"its header must have exactly the keys {sorted(expected)}, "
                   f"got {sorted(header)}")
    if not isinstance(header["cyrnn_version"], str):
        raise _Bad(f"its cyrnn_version must be a string, got {header['cyrnn_version']!r}")
    return header["model"]


def _check_description(description, where, nested=False):
    """-> (class name, config dict), with the keys checked (values are the
    constructors' business)."""
    if not isinstance(description, dict) or set(description) != {"class", "config"}:
        raise _Bad(f"{where} must be an object with exactly the keys 'class' and 'config', "
                   f"got {description!r:.200}")
    name, config = description["class"], description["config"]
    allowed = [n for n in _CLASSES if not (nested and n == "Sequential")]
    if not isinstance(name, str) or name not in allowed:
        raise _Bad(f"{where}['class'] is {name!r:.100}, not one of the known classes {allowed}")
    if not isinstance(config, dict):
        raise _Bad(f"{where}['config'] must be an object, got {type(config).__name__}")
    keys = _CLASSES[name][1]
    config = {**_ADDED_KEYS.get(name, {}), **config}
    missing = [k for k in keys if k not in config]
    unexpected = [k for k in config if k not in keys]
    if missing or unexpected:
        raise _Bad(f"{where}['config'] does not match {name}'s options: missing {missing}, "
                   f"unexpected {unexpected!r:.200}")
    if "dtype" in config and config["dtype"] not in _DTYPES:
        raise _Bad(f"{where}['config']['dtype'] must be one of {list(_DTYPES)}, "
                   f"got {config['dtype']!r:.100}")
    return name, config


def _parameter_count(name, config):
    """How many numbers the config's parameters hold, or None when a value
    is of the wrong type (then the constructor rejects it before allocating).
    Checked against the file's arrays before anything is built, so that a
    config claiming enormous sizes is refused without being allocated."""
    def ints(*keys):
        values = [config[k] for k in keys]
        return values if all(type(v) is int and v >= 0 for v in values) else None

    if name == "Linear":
        sizes = ints("in_features", "out_features")
        if sizes is None or type(config["bias"]) is not bool:
            return None
        n_in, n_out = sizes
        return n_out * n_in + (n_out if config["bias"] else 0)
    sizes = ints("input_size", "hidden_size", "num_layers",
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


def _build(name, config, where):
    cls = _CLASSES[name][0]
    if name == "Sequential":
        layers = config["layers"]
        if not isinstance(layers, list) or not layers:
            raise _Bad(f"{where}['config']['layers'] must be a non-empty list, "
                       f"got {layers!r:.100}")
        built = []
        for i, item in enumerate(layers):
            sub = f"{where}['config']['layers'][{i}]"
            built.append(_build(*_check_description(item, sub, nested=True), sub))
        try:
            return Sequential(*built)
        except (TypeError, ValueError) as exc:
            raise _Bad(f"{where} does not make a valid Sequential: {exc}") from None
    kwargs = dict(config, dtype=np.dtype(config["dtype"]))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"{where}['config'] is not a valid {name} configuration: {exc}") from None


def _total_count(name, config):
    if name == "Sequential":
        layers = config["layers"]
        if not isinstance(layers, list):
            return None
        counts = []
        for i, item in enumerate(layers):
            sub_name, sub_config = _check_description(
                item, f"model['config']['layers'][{i}]", nested=True)
            counts.append(_parameter_count(sub_name, sub_config))
        return None if None in counts else sum(counts)
    return _parameter_count(name, config)


def _member_headers(npz):
    """name -> (shape, dtype) of every member, from the .npy headers only,
    each checked against the member's size in the zip directory."""
    headers = {}
    for info in npz.zip.infolist():
        if not info.filename.endswith(".npy"):
            raise _Bad(f"it holds {info.filename!r:.100}, which is not a .npy array")
        name = info.filename[:-4]
        with npz.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise _Bad(f"its member {name!r:.100} uses .npy version {version}, "
                           f"which cyrnn does not write")
            offset = member.tell()
        if dtype.hasobject:
            raise _Bad(f"its member {name!r:.100} is a pickled object array; cyrnn files "
                       f"never hold pickles, and this one is not loaded")
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if offset + size != info.file_size:
            raise _Bad(f"its member {name!r:.100} is truncated or padded: its header "
                       f"announces {size} bytes of data, the archive holds "
                       f"{info.file_size - offset}")
        headers[name] = (tuple(shape), dtype)
    return headers


def _read(npz):
    headers = _member_headers(npz)
    if _HEADER not in headers:
        raise _Bad(f"it has no {_HEADER!r} header: not a file written by cyrnn.save")
    shape, dtype = headers.pop(_HEADER)
    if dtype.kind != "U" or shape != ():
        raise _Bad(f"its {_HEADER!r} header must be a 0-d unicode string array, "
                   f"got dtype {dtype} and shape {shape}")
    description = _read_header_json(str(npz[_HEADER][()]))
    name, config = _check_description(description, "model")

    wanted = np.dtype(config["dtype"]) if name != "Sequential" else None
    for weight, (shape, dtype) in headers.items():
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise _Bad(f"its weight {weight!r:.100} has dtype {dtype}; weights are float32 "
                       f"or float64")
        if wanted is not None and dtype != wanted:
            raise _Bad(f"its weight {weight!r:.100} has dtype {dtype}, but the model's "
                       f"dtype is {wanted}")
    expected = _total_count(name, config)
    stored = sum(int(np.prod(shape, dtype=object)) for shape, _ in headers.values())
    if expected is not None and expected != stored:
        raise _Bad(f"its configuration describes {expected} parameter values but it "
                   f"holds {stored}")

    model = _build(name, config, "model")
    if name == "Sequential":
        for weight, (_, dtype) in headers.items():
            if dtype != model.dtype:
                raise _Bad(f"its weight {weight!r:.100} has dtype {dtype}, but the "
                           f"model's dtype is {model.dtype}")
    weights = {weight: npz[weight] for weight in headers}
    try:
        model.load_state_dict(weights)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"its weights do not fit the model it describes: {exc}") from None
    return model


# Everything a damaged archive can raise while being read.
_READ_ERRORS = (_Bad, zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError,
                struct.error, NotImplementedError, UnicodeDecodeError, OverflowError,
                MemoryError, RuntimeError, OSError)


def load(path):
    """Reads a model written by cyrnn.save (from a path or a binary file
    object) and returns it, built from the stored configuration with the
    stored weights: its outputs equal the saved model's. A file that is
    missing or unreadable raises the usual OSError; one that is not a
    cyrnn model file, or was damaged or tampered with, raises ValueError
    saying what is wrong."""
    path = _check_path(path, "r")
    label = path if isinstance(path, str) else "the file object"
    owned = isinstance(path, str)
    f = open(path, "rb") if owned else path     # OSError (missing file...) as usual
    try:
        try:
            npz = np.load(f, allow_pickle=False)
        except _READ_ERRORS as exc:
            raise ValueError(f"{label!r} is not a cyrnn model file: it is not a readable "
                             f".npz archive ({type(exc).__name__}: {exc})") from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"{label!r} is not a cyrnn model file: it holds a single .npy "
                             f"array, not an .npz archive")
        with npz:
            try:
                return _read(npz)
            except _READ_ERRORS as exc:
                reason = str(exc) if isinstance(exc, _Bad) else \
                    f"it is damaged ({type(exc).__name__}: {exc})"
                raise ValueError(f"{label!r} is not a valid cyrnn model file: "
                                 f"{reason}") from None
    finally:
        if owned:
            f.close()
