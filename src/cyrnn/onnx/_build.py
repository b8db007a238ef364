"""The cyrnn model of a chain: the layers the metadata of a cyrnn export
describes when they fit, else one layer per chain element, consecutive
recurrent nodes of one kind merged into multi-layer layers."""
from typing import NamedTuple

import numpy as np

from cyrnn._validation import check_dtype
from cyrnn.embedding import Embedding
from cyrnn.layers import make_layer
from cyrnn.linear import Linear
from cyrnn.onnx._chain import ChainEmbedding, ChainRecurrent, stacked_params
from cyrnn.onnx._errors import BadModel
from cyrnn.onnx._metadata import build_from_metadata
from cyrnn.sequential import Sequential


class BuiltModel(NamedTuple):
    model: object
    groups: list          # per stateful layer: the chain indices of its nodes


def build_model(interpretation, dtype, metadata):
    """The BuiltModel of an Interpretation; `metadata` is the text a cyrnn
    export wrote, or None."""
    chain = interpretation.chain
    dtype = _model_dtype(chain, dtype)
    built = build_from_metadata(chain, metadata, interpretation.batch_first, dtype) \
        if metadata else None
    if built is not None:
        return BuiltModel(*built)
    layers, groups, index = [], [], 0
    grouped = {group[0]: group for group in _recurrent_groups(chain)}
    while index < len(chain):
        element = chain[index]
        if isinstance(element, ChainRecurrent):
            group = grouped[index]
            layers.append(_recurrent_layer(chain, group, interpretation.batch_first, dtype))
            groups.append(group)
            index += len(group)
        else:
            layers.append(_feed_forward_layer(element, dtype))
            index += 1
    model = layers[0] if len(layers) == 1 else Sequential(*layers)
    return BuiltModel(model, groups)


def _model_dtype(chain, dtype):
    if dtype is not None:
        return check_dtype(dtype)
    kinds = set()
    for element in chain:
        arrays = [element.weight] if not isinstance(element, ChainRecurrent) else \
            list(element.params.values())
        kinds |= {a.dtype for a in arrays}
    kinds = {np.dtype(k) for k in kinds}
    if len(kinds) == 1 and kinds <= {np.dtype(np.float32), np.dtype(np.float64)}:
        return kinds.pop()
    raise BadModel(f"its weights are {sorted(str(k) for k in kinds)}; cyrnn computes in "
                   f"float32 or float64 (pass dtype=np.float32 to convert them)")


def _recurrent_groups(chain):
    """The chain's recurrent elements grouped into multi-layer layers:
    consecutive ones of the same cell, direction, size, bias and lengths."""
    groups, current = [], None
    for index, element in enumerate(chain):
        if isinstance(element, ChainRecurrent):
            if current and chain[current[-1]].key() == element.key() and \
                    current[-1] == index - 1:
                current.append(index)
            else:
                current = [index]
                groups.append(current)
        else:
            current = None
    return groups


def _feed_forward_layer(element, dtype):
    if isinstance(element, ChainEmbedding):
        layer = Embedding(*element.weight.shape, dtype=dtype)
    else:
        layer = Linear(element.weight.shape[1], element.weight.shape[0],
                       bias=element.bias is not None, dtype=dtype)
    layer.load_state_dict(element.state_dict())
    return layer


def _recurrent_layer(chain, group, batch_first, dtype):
    first = chain[group[0]]
    kwargs = dict(num_layers=len(group), bias=first.bias, batch_first=batch_first,
                  bidirectional=first.D == 2, dtype=dtype)
    if first.direction == "reverse":
        kwargs["reverse"] = True
    try:
        layer = make_layer(first.cell.key, first.I, first.H, **kwargs)
    except TypeError as exc:
        if "reverse" in str(exc):
            raise BadModel(f"{first.where} runs in direction 'reverse', which this cyrnn's "
                           f"layers do not have (reverse=True)") from None
        raise
    layer.load_state_dict(stacked_params(chain, group))
    return layer
