"""How a batch of sequences sits in the time loops' buffers.

Rows are packed as torch's PackedSequence does: the batch sorted by length
(longest first), step t owning the first batch_sizes[t] rows, stored one step
after another. A full-length batch needs no sorting and its packed form is the
time-major (T * B, F) array itself; a ragged one costs only its real steps.
"""
from functools import lru_cache

import numpy as np

from cyrnn._workspace import aligned_empty


class SequenceLayout:
    """The packing of a (T, B) batch with optional per-sequence lengths."""

    def __init__(self, T, B, lengths=None):
        self.T = T
        self.B = B
        if lengths is None or np.all(lengths == T):
            self.order = None
            self.batch_sizes = np.full(T, B, dtype=np.intp)
            self.time_index = self.batch_index = None
        else:
            self.order = np.argsort(-lengths, kind="stable")
            sorted_lengths = lengths[self.order]
            steps = np.arange(T)
            # batch_sizes[t] = how many sequences are longer than t
            self.batch_sizes = (sorted_lengths[None, :] > steps[:, None]).sum(axis=1).astype(np.intp)
            self.time_index = np.repeat(steps, self.batch_sizes)
            self.batch_index = self.order[
                np.concatenate([np.arange(n) for n in self.batch_sizes])]
        self.offsets = np.zeros(T + 1, dtype=np.intp)
        np.cumsum(self.batch_sizes, out=self.offsets[1:])
        self.N = int(self.offsets[-1])

    @staticmethod
    def full(T, B):
        """SequenceLayout(T, B): the layout of a batch without lengths. Short
        ones (whose construction costs more than their steps) are shared
        between calls, since a layout never changes once built."""
        return _full_layout(T, B) if T <= 4096 else SequenceLayout(T, B)

    def pack(self, x_tm, dtype, copy=False):
        """(T, B, F) of any layout -> a fresh or borrowed (N, F) C array."""
        if self.order is None:
            packed = np.ascontiguousarray(x_tm, dtype=dtype)
            if copy and np.shares_memory(packed, x_tm):
                packed = packed.copy()
            return packed.reshape(self.N, x_tm.shape[2])
        return np.ascontiguousarray(x_tm[self.time_index, self.batch_index], dtype=dtype)

    def unpack(self, packed, batch_first):
        """(N, F) -> (T, B, F), or (B, T, F); zero past each sequence's end."""
        F = packed.shape[1]
        if self.order is None:
            out = packed.reshape(self.T, self.B, F)
            return np.ascontiguousarray(out.transpose(1, 0, 2)) if batch_first else out
        if batch_first:
            out = np.zeros((self.B, self.T, F), dtype=packed.dtype)
            out[self.batch_index, self.time_index] = packed
        else:
            out = np.zeros((self.T, self.B, F), dtype=packed.dtype)
            out[self.time_index, self.batch_index] = packed
        return out

    def sort_states(self, states):
        """(K, B, F) in the caller's batch order -> a fresh C array in packed
        (sorted) order, which the time loops update in place."""
        out = aligned_empty(states.shape, states.dtype)
        out[...] = states if self.order is None else states[:, self.order]
        return out

    def unsort_states(self, states):
        """Inverse of sort_states."""
        if self.order is None:
            return states
        out = np.empty_like(states)
        out[:, self.order] = states
        return out


@lru_cache(maxsize=32)
def _full_layout(T, B):
    # at most 32 * 64 kB of index arrays, made read-only to keep them shared
    layout = SequenceLayout(T, B)
    layout.batch_sizes.flags.writeable = False
    layout.offsets.flags.writeable = False
    return layout
