"""Saving and loading whole models: configuration and weights in one .npz.

    cyrnn.save("model.npz", model)
    model = cyrnn.load("model.npz")

The file is an ordinary numpy .npz archive (readable with np.load, from any
language with a zip and .npy reader) holding

* ``__cyrnn__``: a 0-d numpy unicode array with a JSON document,
  ``{"format": "cyrnn", "format_version": 2, "cyrnn_version": "...",
  "model": {"class": "LSTM", "config": {"input_size": 8, ...}},
  "generators": {"": <numpy bit generator state>}}``; a Sequential's config
  is ``{"layers": [{"class": ..., "config": ...}, ...], "tied": {alias:
  name}}`` and its generators are keyed by layer index; a checkpoint adds
  ``"optimizer": {"class": "Adam", "hyperparameters": {...}, "steps":
  {name: step}}``;
* one float32/float64 array per parameter, named as in ``state_dict()`` (a
  tied array once);
* in a checkpoint, one array per optimizer buffer,
  ``__optimizer__::<buffer>::<parameter name>``.

No pickle is involved either way: loading uses
``np.load(..., allow_pickle=False)``, and everything read is checked (format
and version, class names, the config's keys, and its values through the
classes' own constructors, the weights' dtypes, names and shapes through
``load_state_dict``) before it is used, so a tampered, truncated or foreign
file is a ValueError saying what is wrong, never arbitrary code or a huge
allocation.

A checkpoint (``save(path, model, optimizer=opt)``) also holds the
optimizer's state, so that ``model, opt = load(path, with_optimizer=True)``
resumes training exactly where it stopped. Every file keeps the state of
the layers' random generators (dropout masks continue as they would have).
"""
import json
import os
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from cyrnn import _checkpoint
from cyrnn._model_config import (
    DTYPES, BadFile as _Bad, build, check_description, check_ties, describe, parameter_count)
from cyrnn._validation import check_bool
from cyrnn._version import __version__

__all__ = ["save", "load", "FORMAT_VERSION"]

# 2: the header may hold "generators" and "optimizer"; files of 1 still load
FORMAT_VERSION = 2
_FORMAT = "cyrnn"
_HEADER = "__cyrnn__"
_HEADER_KEYS = {"format", "format_version", "cyrnn_version", "model"}
_ADDED_HEADER_KEYS = {"generators", "optimizer"}


def _check_path(path, mode):
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    needed = "write" if mode == "w" else "read"
    if hasattr(path, needed) and hasattr(path, "seek"):
        return path
    raise TypeError(f"path must be a file path (str or os.PathLike) or a binary file object "
                    f"open for {'writing' if mode == 'w' else 'reading'}, "
                    f"got {type(path).__name__}")


def save(path, model, *, optimizer=None):
    """Writes `model` (LSTM, GRU, RNN, Linear, Embedding, Dropout or a
    Sequential of them) with its configuration, weights and generator
    states to one .npz file at exactly `path` (no suffix is added; ".npz" is
    the convention), or to a binary file object. With `optimizer` (an SGD,
    Adam or AdamW over exactly ``model.parameters()``) the file is a
    checkpoint that also holds its state; see load(with_optimizer=True).

    The file is written to a temporary name in the same folder, flushed to
    disk (fsync) and renamed over `path`, so that a crash or an interrupted
    save leaves either the old file or the new one, never a mixture."""
    header = {"format": _FORMAT, "format_version": FORMAT_VERSION,
              "cyrnn_version": __version__, "model": describe(model),
              "generators": _checkpoint.generator_states(model)}
    arrays = dict(model.state_dict())
    if optimizer is not None:
        header["optimizer"], buffers = _checkpoint.optimizer_record(optimizer, model)
        arrays.update(buffers)
    arrays[_HEADER] = np.array(json.dumps(header, allow_nan=False))
    path = _check_path(path, "w")
    if isinstance(path, str):
        _write_atomically(path, arrays)
    else:
        np.savez(path, **arrays)


def _write_atomically(path, arrays):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".cyrnn-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Makes the rename itself durable (POSIX; Windows has no such call)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading -----------------------------------------------------------------
def _reject_constant(name):
    raise _Bad(f"its header holds {name}, which is not valid JSON")


def _read_header_json(text):
    """The header's JSON object, its format, version and keys checked."""
    try:
        header = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _Bad(f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _Bad(f"its header must be a JSON object, got {type(header).__name__}")
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
    if version < 1:
        raise _Bad(f"it has an unknown format version {version}; this cyrnn reads "
                   f"format versions 1 to {FORMAT_VERSION}")
    allowed = _HEADER_KEYS | (_ADDED_HEADER_KEYS if version >= 2 else set())
    if not _HEADER_KEYS <= set(header) <= allowed:
        raise _Bad(f"its header must have the keys {sorted(_HEADER_KEYS)} and may have "
                   f"{sorted(allowed - _HEADER_KEYS)}, got {sorted(header)}")
    if not isinstance(header["cyrnn_version"], str):
        raise _Bad(f"its cyrnn_version must be a string, got {header['cyrnn_version']!r}")
    return header


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


def _read(npz, with_optimizer):
    """(model, optimizer or None) from an open archive, everything checked
    before it is used."""
    headers = _member_headers(npz)
    if _HEADER not in headers:
        raise _Bad(f"it has no {_HEADER!r} header: not a file written by cyrnn.save")
    shape, dtype = headers.pop(_HEADER)
    if dtype.kind != "U" or shape != ():
        raise _Bad(f"its {_HEADER!r} header must be a 0-d unicode string array, "
                   f"got dtype {dtype} and shape {shape}")
    header = _read_header_json(str(npz[_HEADER][()]))
    name, config = check_description(header["model"], "model")
    buffers = {k: v for k, v in headers.items() if k.startswith(_checkpoint.ARRAY_PREFIX)}
    weights = {k: v for k, v in headers.items() if k not in buffers}
    _check_arrays(name, config, weights, buffers)
    if with_optimizer and "optimizer" not in header:
        raise _Bad("it holds no optimizer: it was saved without one (save(path, model, "
                   "optimizer=opt) writes a checkpoint)")

    model = build(name, config)
    if getattr(model, "dtype", None) is not None:
        for weight, (_, dtype) in weights.items():
            if dtype != model.dtype:
                raise _Bad(f"its weight {weight!r:.100} has dtype {dtype}, but the "
                           f"model's dtype is {model.dtype}")
    try:
        model.load_state_dict({weight: npz[weight] for weight in weights})
    except (TypeError, ValueError) as exc:
        raise _Bad(f"its weights do not fit the model it describes: {exc}") from None
    if "generators" in header:
        _checkpoint.restore_generators(model, header["generators"])
    optimizer = None
    if with_optimizer:
        optimizer = _checkpoint.restore_optimizer(
            header["optimizer"], {k: npz[k] for k in buffers}, model)
    return model, optimizer


def _check_arrays(name, config, weights, buffers):
    """The stored arrays' dtypes and sizes against the configuration, from
    their headers alone (nothing is allocated for a file that lies)."""
    wanted = np.dtype(config["dtype"]) if "dtype" in config else None
    for key, (shape, dtype) in {**weights, **buffers}.items():
        if dtype.name not in DTYPES:
            raise _Bad(f"its array {key!r:.100} has dtype {dtype}; weights are float32 "
                       f"or float64")
        if wanted is not None and dtype != wanted:
            raise _Bad(f"its weight {key!r:.100} has dtype {dtype}, but the model's "
                       f"dtype is {wanted}")
    for key, (shape, _) in buffers.items():
        param = key[len(_checkpoint.ARRAY_PREFIX):].partition("::")[2]
        if param not in weights or weights[param][0] != shape:
            raise _Bad(f"its optimizer array {key!r:.100} has no weight of its shape")
    tied = check_ties(name, config, weights)
    expected = parameter_count(name, config)
    size = lambda shape: int(np.prod(shape, dtype=object))  # noqa: E731
    stored = sum(size(shape) for shape, _ in weights.values())
    stored += sum(size(weights[target][0]) for target in tied.values())
    if expected is not None and expected != stored:
        raise _Bad(f"its configuration describes {expected} parameter values but it "
                   f"holds {stored}")


# Everything a damaged archive can raise while being read.
_READ_ERRORS = (_Bad, zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError,
                struct.error, NotImplementedError, UnicodeDecodeError, OverflowError,
                MemoryError, RuntimeError, OSError)


def load(path, *, with_optimizer=False):
    """Reads a model written by cyrnn.save (from a path or a binary file
    object) and returns it, built from the stored configuration with the
    stored weights and generator states: its outputs equal the saved
    model's. With with_optimizer, returns (model, optimizer): the
    checkpoint's optimizer over the loaded model's parameters, with its
    state, so that training continues exactly as it would have. A file
    that is missing or unreadable raises the usual OSError; one that is
    not a cyrnn model file, or was damaged or tampered with, raises
    ValueError saying what is wrong."""
    path = _check_path(path, "r")
    with_optimizer = check_bool("with_optimizer", with_optimizer)
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
                model, optimizer = _read(npz, with_optimizer)
                return (model, optimizer) if with_optimizer else model
            except _READ_ERRORS as exc:
                reason = str(exc) if isinstance(exc, _Bad) else \
                    f"it is damaged ({type(exc).__name__}: {exc})"
                raise ValueError(f"{label!r} is not a valid cyrnn model file: "
                                 f"{reason}") from None
    finally:
        if owned:
            f.close()
