"""Argument checks shared by every public class. Each raises TypeError or
ValueError naming the argument and what was expected, before any C runs."""
import numbers
import operator

import numpy as np

# BLAS takes 32-bit ints for every dimension and leading dimension.
BLAS_INT_MAX = 2**31 - 1

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_int(name, value, minimum=1):
    """A Python or numpy integer >= minimum (bools are not sizes)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if value > BLAS_INT_MAX:
        raise ValueError(f"{name} must be at most {BLAS_INT_MAX} (BLAS's int), got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_probability(name, value):
    """A float in [0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def check_dtype(value):
    """float32 or float64, from anything np.dtype accepts; None means
    float32, torch's default (numpy would read it as float64)."""
    if value is None:
        return np.dtype(np.float32)
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {value!r}") from None
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_seed(value):
    if value is None or isinstance(value, np.random.Generator):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        raise TypeError(f"seed must be None, a non-negative integer or a numpy Generator, got {value!r}")
    return int(value)


def as_real_array(name, value, dtype):
    """value as an ndarray of dtype; integers and bools convert, anything that
    is not real numbers (complex, object, strings) is a TypeError."""
    return real_array(name, value).astype(dtype, copy=False)


def real_array(name, value):
    """value as an ndarray of real numbers, not yet converted (so that its
    shape can be checked before any copy is made)."""
    return array_of_kinds(name, value, "biuf", "a real numeric array")


def array_of_kinds(name, value, kinds, what):
    """value as an ndarray whose dtype.kind is one of `kinds`; else a
    TypeError saying that name must be `what`."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be {what}: {exc}") from None
    if array.dtype.kind not in kinds:
        raise TypeError(f"{name} must be {what}, got dtype {array.dtype}")
    return array


def check_shape(name, array, expected, meaning):
    """Compares a shape against a tuple of ints; `meaning` spells the
    expected shape symbolically for the message, e.g. '(L*D, B, H_out)'."""
    if array.shape != tuple(expected):
        raise ValueError(
            f"{name} must have shape {meaning} = {tuple(expected)}, got {array.shape}")
    return array


def check_state_dict(owner, state_dict, expected, dtype, strict):
    """The entries of a state_dict-like mapping, checked against `expected`
    (name -> shape) and converted to dtype, before anything is copied: a
    missing or unexpected name (with strict) or a wrong shape is a
    ValueError naming it. `owner` names the model in messages."""
    if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to arrays, "
                        f"got {type(state_dict).__name__}")
    strict = check_bool("strict", strict)
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict.keys() if name not in expected]
    if strict and (missing or unexpected):
        raise ValueError(f"state_dict does not match {owner}'s parameters: "
                         f"missing {missing}, unexpected {unexpected}")
    converted = {}
    for name, shape in expected.items():
        if name in state_dict:
            value = as_real_array(f"state_dict[{name!r}]", state_dict[name], dtype)
            check_shape(f"state_dict[{name!r}]", value, shape, str(shape))
            converted[name] = value
    return converted
