"""Forward-packed weights kept between inference calls.

Every forward pass packs W_hh, W_ih, the folded biases (and a peephole
LSTM's weights) into the layout of the step kernel. Inference with unchanged
weights, the common case, need not do that again: a call compares the live
arrays with the copies the cached packing was made from (a memcmp, several
times cheaper than packing) and reuses it, and the biases folded then, when
they are byte for byte the same. Any change, in place or by
load_state_dict, is caught by that comparison; there is nothing to
invalidate. Entries are never modified once made, only replaced, so
concurrent calls can share them.
"""
from typing import NamedTuple, Optional

import numpy as np

from cyrnn._arrays import same_bytes
from cyrnn._workspace import aligned_empty


class DirectionWeights(NamedTuple):
    """One direction's parameters (None where the layer has none)."""
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: Optional[np.ndarray]
    b_hh: Optional[np.ndarray]
    w_hr: Optional[np.ndarray]
    peephole: Optional[np.ndarray]

    def copy_packed(self):
        """Private copies of the arrays the forward packing is made from
        (w_hr is not packed: the projection reads it as it is)."""
        return self._replace(**{name: None if value is None else value.copy()
                                for name, value in self._asdict().items() if name != "w_hr"})

    def packs_as(self, other):
        """Whether the arrays a forward packing is made from hold the same
        bytes in both."""
        return all(a is None or same_bytes(a, b)
                   for name, a, b in zip(self._fields, self, other) if name != "w_hr")


class Packing(NamedTuple):
    """A forward packing: the weights it was made from, the biases folded
    from them, the packed array, and whether it holds them yet."""
    weights: DirectionWeights
    bias_x: np.ndarray
    bias_hn: Optional[np.ndarray]
    packed: np.ndarray
    ready: bool


class PackedWeightCache:
    """One Packing per (layer, direction)."""

    def __init__(self):
        self._entries = {}

    def prepare(self, key, weights, size, dtype, fold):
        """(the Packing for a forward pass with `weights`, the entry to file
        with store() once the pass has packed it, or None on a hit);
        fold(b_ih, b_hh) gives the folded biases on a miss."""
        entry = self._entries.get(key)
        if entry is not None and weights.packs_as(entry.weights):
            return entry, None
        # The pass packs from private copies, so the entry records exactly
        # what was packed even if another thread writes the live weights.
        copies = weights.copy_packed()
        bias_x, bias_hn = fold(copies.b_ih, copies.b_hh)
        packing = Packing(copies, bias_x, bias_hn, aligned_empty((size,), dtype), False)
        return packing, (key, packing._replace(ready=True))

    def store(self, new_entries):
        for key, entry in new_entries:
            self._entries[key] = entry
