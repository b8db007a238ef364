"""Scratch arrays kept between calls.

Large arrays come from fresh memory pages, which the kernel must zero on
first touch: for a large training step that cost about an eighth of the time
(measured). Scratch that never reaches the caller (BPTT's pre-activation
gradients, packed weights, and a tape's internal buffers once the tape is
dropped) is therefore taken from and given back to a small per-model cache.
A call takes arrays out, so concurrent calls never share one; a call that
finds the cache empty allocates."""
import threading

import numpy as np

from cyrnn._arrays import aligned_array


# Bytes: a cache line, and what the kernels' streamed stores need. Every
# array a kernel writes row by row starts on one, outputs included: with rows
# 16 bytes off (numpy's large arrays), each 64-byte store splits across two
# lines. Measured in a C driver, one process, aligned and unaligned output
# alternating: medium RNN-relu and LSTM steps 2-2.5% longer unaligned.
ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """np.empty, starting on a cache line (numpy's own large arrays start 16
    bytes past a page: glibc's header)."""
    return aligned_array(tuple(shape), dtype, ALIGNMENT, False)


def aligned_zeros(shape, dtype):
    """np.zeros, starting on a cache line."""
    return aligned_array(tuple(shape), dtype, ALIGNMENT, True)


class Workspace:
    """One cached array per name; a shape or dtype that no longer matches
    (say, a batch of another size) replaces it, so the cache stays bounded."""

    def __init__(self):
        self._lock = threading.Lock()
        self._free = {}

    def take(self, name, shape, dtype):
        """An uninitialised C array of that shape and dtype."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        with self._lock:
            array = self._free.pop(name, None)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = aligned_empty(shape, dtype)
        return array

    def give(self, name, array):
        """Returns an array from take() for a later call; nothing handed to
        the caller may still reference it."""
        if array is not None:
            with self._lock:
                self._free[name] = array
