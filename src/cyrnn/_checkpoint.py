"""What a checkpoint keeps beside the weights, so that training resumed
from it continues exactly as it would have: the optimizer's state (step
counts in the header, buffers as arrays) and the layers' random
generators (dropout masks)."""
import numbers

import numpy as np

from cyrnn import optim
from cyrnn._model_config import BadFile

OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adam, optim.AdamW)}
ARRAY_PREFIX = "__optimizer__::"  # "__optimizer__::<buffer>::<parameter>"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


# -- the optimizer -----------------------------------------------------------
def optimizer_record(optimizer, model):
    """(the header's {"class", "hyperparameters", "steps"}, the arrays of
    its buffers) for an optimizer over exactly model.parameters()."""
    name = type(optimizer).__name__
    if OPTIMIZERS.get(name) is not type(optimizer):
        raise TypeError(f"optimizer must be one of cyrnn.optim's {list(OPTIMIZERS)}, "
                        f"got {type(optimizer).__name__}")
    params, trained = model.parameters(), optimizer.params
    if list(trained) != list(params) or any(trained[k] is not params[k] for k in params):
        raise ValueError("optimizer must train exactly model.parameters() (the same names and "
                         "arrays), so that load can build it again over the loaded model")
    state = optimizer.state_dict()
    hyper = {k: list(v) if isinstance(v, tuple) else v
             for k, v in state["hyperparameters"].items()}
    steps, arrays = {}, {}
    for param, buffers in state["state"].items():
        for key, value in buffers.items():
            if key == "step":
                steps[param] = value
            else:
                arrays[f"{ARRAY_PREFIX}{key}::{param}"] = value
    return {"class": name, "hyperparameters": hyper, "steps": steps}, arrays


def restore_optimizer(record, arrays, model):
    """The optimizer a record and its arrays describe, over model.parameters()."""
    if not isinstance(record, dict) or set(record) != {"class", "hyperparameters", "steps"}:
        raise BadFile(f"its optimizer must be an object with the keys 'class', "
                      f"'hyperparameters' and 'steps', got {record!r:.200}")
    cls = OPTIMIZERS.get(record["class"]) if isinstance(record["class"], str) else None
    hyper, steps = record["hyperparameters"], record["steps"]
    if cls is None or not isinstance(hyper, dict) or not isinstance(steps, dict):
        raise BadFile(f"its optimizer is not one of {list(OPTIMIZERS)} with hyper-parameters "
                      f"and steps: {record!r:.200}")
    state = {}
    for key, value in arrays.items():
        buffer, _, param = key[len(ARRAY_PREFIX):].partition("::")
        state.setdefault(param, {})[buffer] = value
    for param, step in steps.items():
        if not isinstance(step, numbers.Integral):
            raise BadFile(f"its optimizer's step of {param!r:.100} is {step!r:.100}, "
                          f"not an integer")
        state.setdefault(param, {})["step"] = step
    try:
        optimizer = cls(model.parameters(), **hyper)
        optimizer.load_state_dict({"hyperparameters": hyper, "state": state})
    except (TypeError, ValueError) as exc:
        raise BadFile(f"its optimizer does not fit the model: {exc}") from None
    return optimizer


# -- random generators ---------------------------------------------------------
def _with_generators(model):
    """(path, layer) of the model and its layers that own a generator: ""
    for the model itself, "i" for a Sequential's layer i."""
    layers = [("", model)] + [(str(i), layer) for i, layer in enumerate(
        model.layers if hasattr(model, "layers") else ())]
    return [(path, layer) for path, layer in layers
            if isinstance(getattr(layer, "_rng", None), np.random.Generator)]


def generator_states(model):
    """{path: the bit generator's state} of every generator in the model."""
    states = {}
    for path, layer in _with_generators(model):
        states[path] = layer._rng.bit_generator.state
    return states


def restore_generators(model, states):
    """Sets the generators of the model (built from the same description)
    to the saved states."""
    if not isinstance(states, dict):
        raise BadFile(f"its generators must be an object, got {type(states).__name__}")
    layers = dict(_with_generators(model))
    if set(states) != set(layers):
        raise BadFile(f"its generators are for {sorted(states)!r:.200}, the model has them "
                      f"at {sorted(layers)}")
    for path, state in states.items():
        kind = state.get("bit_generator") if isinstance(state, dict) else None
        if kind not in _BIT_GENERATORS:
            raise BadFile(f"its generator {path!r} is not one of numpy's {_BIT_GENERATORS}: "
                          f"{state!r:.200}")
        generator = getattr(np.random, kind)()
        try:
            generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise BadFile(f"its generator {path!r} has a state numpy refuses: {exc}") from None
        layers[path]._rng = np.random.Generator(generator)
