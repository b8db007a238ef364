"""The chain of layers a graph computes, as the reading finds it: a first
embedding, dense layers and recurrent nodes, each fed by the last one's
output, with their weights already in torch's layout."""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from cyrnn._cells import CellSpec
from cyrnn.onnx._errors import BadModel
from cyrnn.onnx._values import atom_size, data_atoms, describe_axes


@dataclass(eq=False)
class ChainEmbedding:
    weight: np.ndarray                # (num_embeddings, embedding_dim)
    where: str = ""                   # the node, for messages

    def state_dict(self):
        return {"weight": self.weight}


@dataclass(eq=False)
class ChainLinear:
    weight: np.ndarray                # (out_features, in_features)
    bias: Optional[np.ndarray]
    # the value its MatMul or Gemm makes: only an Add that alone reads it can
    # be the layer's bias
    output: str = ""
    where: str = ""

    def state_dict(self):
        if self.bias is None:
            return {"weight": self.weight}
        return {"weight": self.weight, "bias": self.bias}


@dataclass(eq=False)
class ChainRecurrent:
    """One LSTM, GRU or RNN node: one layer, one or two directions."""
    cell: CellSpec
    direction: str                    # "forward", "reverse" or "bidirectional"
    H: int
    I: int
    params: dict                      # torch's names of layer 0 -> arrays
    bias: bool
    lengths: Optional[str]            # the graph input of its sequence_lens
    h0: list                          # per direction: an InputRow or None (zeros)
    c0: Optional[list]
    where: str

    @property
    def D(self):
        return 2 if self.direction == "bidirectional" else 1

    def key(self):
        """What consecutive layers must share to be one multi-layer layer."""
        return (self.cell.key, self.direction, self.H, self.bias, self.lengths)


def stacked_params(elements, group):
    """The parameters of consecutive one-layer nodes (chain indices `group`)
    as one multi-layer layer's: the k-th node's _l0 names become _lk."""
    params = {}
    for layer, index in enumerate(group):
        for name, value in elements[index].params.items():
            params[name.replace("_l0", f"_l{layer}", 1)] = value
    return params


class Chain:
    """The layers read so far. Position k is the output of the k-th layer
    (position 0: the graph's data); `features[k]` are the data atoms of its
    features."""

    def __init__(self):
        self.elements = []
        self.features = {}
        self.ids = False          # the data input holds ids

    def __len__(self):
        return len(self.elements)

    def append(self, where, data, element):
        """Adds an element to the chain, fed by `data` (the chain's end);
        its output's position."""
        if data.pos != len(self.elements):
            raise BadModel(f"{where} reads the output of an earlier layer, but the chain has "
                           f"gone on from it: cyrnn models are a chain of layers, each reading "
                           f"the last one's output")
        self.elements.append(element)
        element.where = where
        return len(self.elements)

    def check_features(self, where, data, axis_index, width, what):
        """`data`'s axis holds exactly the features of its position, width wide."""
        axis = data_atoms(data.axes[axis_index])
        features = self.features[data.pos]
        if axis != features or (self.ids and data.pos == 0):
            raise BadModel(f"{where}'s {what} must hold the features of the data in its "
                           f"{'last ' if axis_index == -1 else ''}axis; its axes are "
                           f"{describe_axes(data.axes)}")
        size = math.prod(atom_size(a) for a in features)
        if size != width:
            raise BadModel(f"{where}'s {what} has {size} features, but its weights take {width}")
