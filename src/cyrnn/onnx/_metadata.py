"""The cyrnn configuration a cyrnn export keeps in the file's metadata:
written by export, and built again by load (Dropout, padding_idx, dropout
between layers included) when it matches the graph's chain exactly."""
import json
from typing import NamedTuple

from cyrnn import _cells
from cyrnn._model_config import BadFile, build, check_description, describe
from cyrnn.onnx._chain import ChainEmbedding, ChainLinear, ChainRecurrent, stacked_params
from cyrnn.sequential import Sequential

METADATA_KEY = "cyrnn.model"
_RECURRENT_LAYERS = frozenset(cell.layer for cell in _cells.CELLS)


def write_metadata(proto, model):
    """The model's cyrnn configuration (JSON), for load to rebuild the same
    layers (Dropout, padding_idx, dropout between layers) when it fits."""
    try:
        text = json.dumps(describe(model), allow_nan=False)
    except (TypeError, ValueError):
        return
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text


def metadata_text(proto):
    """The configuration a cyrnn export wrote into the file, or None."""
    metadata = {}
    for entry in proto.metadata_props:
        metadata[entry.key] = entry.value
    return metadata.get(METADATA_KEY)


class _Planned(NamedTuple):
    """A layer the metadata describes, matched to the chain elements it
    computes (none for a Dropout)."""
    kind: str
    config: dict
    indices: list


def build_from_metadata(chain, text, batch_first, dtype):
    """(model, groups): the layers the metadata describes, when they match
    the chain (a list of its elements) exactly, each size and option checked
    against the chain before anything is built; else None."""
    described = _described_layers(text)
    if described is None:
        return None
    name, items = described
    planned = _plan(items, chain, batch_first, dtype)
    built = _build_planned(planned, chain) if planned is not None else None
    if built is None:
        return None
    model = Sequential(*built) if name == "Sequential" else built[0]
    return model, [item.indices for item in planned if item.kind in _RECURRENT_LAYERS]


def _refuse_constant(name):
    raise ValueError(name)  # NaN and Infinity: no configuration cyrnn writes has them


def _described_layers(text):
    """(the model's kind, [(kind, config)] of its layers), or None when the
    text is no cyrnn description."""
    try:
        description = json.loads(text, parse_constant=_refuse_constant)
        name, config = check_description(description, "model")
        items = [check_description(item, "layer", nested=True) for item in config["layers"]] \
            if name == "Sequential" else [(name, config)]
    except (ValueError, TypeError, KeyError, RecursionError, BadFile):
        return None
    return name, items


def _plan(items, chain, batch_first, dtype):
    """Each described layer with the chain elements it computes, or None
    when the description and the chain differ anywhere."""
    planned, index = [], 0
    for kind, config in items:
        config = dict(config)
        if "dtype" in config:
            config["dtype"] = dtype.name
        if kind == "Dropout":
            indices = []
        elif kind == "Embedding":
            indices = _match_embedding(config, chain, index)
        elif kind == "Linear":
            indices = _match_linear(config, chain, index)
        else:
            indices = _match_recurrent(kind, config, chain, index)
            config["batch_first"] = batch_first
        if indices is None:
            return None
        planned.append(_Planned(kind, config, indices))
        index += len(indices)
    return planned if index == len(chain) else None


def _match_embedding(config, chain, index):
    if index >= len(chain) or not isinstance(chain[index], ChainEmbedding) or \
            [config.get("num_embeddings"), config.get("embedding_dim")] != \
            list(chain[index].weight.shape):
        return None
    return [index]


def _match_linear(config, chain, index):
    e = chain[index] if index < len(chain) else None
    if not isinstance(e, ChainLinear) or config.get("bias") is not (e.bias is not None) \
            or [config.get("out_features"), config.get("in_features")] != \
            list(e.weight.shape):
        return None
    return [index]


def _match_recurrent(kind, config, chain, index):
    """The chain indices of the num_layers nodes a recurrent layer's
    configuration describes, or None."""
    L = config.get("num_layers")
    if type(L) is not int or L < 1 or index + L > len(chain):
        return None
    group = list(range(index, index + L))
    try:
        cell = _cells.select(kind, **{k: config[k] for k in
                                      ("peephole", "reset_after", "nonlinearity")
                                      if k in config})
    except TypeError:
        return None
    first = chain[index]
    direction = "bidirectional" if config.get("bidirectional") else \
        ("reverse" if config.get("reverse") else "forward")
    for k in group:
        e = chain[k]
        if not isinstance(e, ChainRecurrent) or e.cell is not cell or \
                e.key() != first.key() or e.direction != direction or \
                e.H != config.get("hidden_size") or e.bias is not config.get("bias"):
            return None
    if first.I != config.get("input_size") or config.get("proj_size", 0) != 0:
        return None
    return group


def _build_planned(planned, chain):
    """The planned layers with the chain's weights, or None when cyrnn
    refuses a configuration."""
    built = []
    try:
        for item in planned:
            layer = build(item.kind, item.config)
            if item.kind in _RECURRENT_LAYERS:
                layer.load_state_dict(stacked_params(chain, item.indices))
            elif item.indices:  # an Embedding or a Linear
                layer.load_state_dict(chain[item.indices[0]].state_dict())
            built.append(layer)
    except (BadFile, TypeError, ValueError):
        return None
    return built
