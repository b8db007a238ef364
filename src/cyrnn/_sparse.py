"""The gradient of a lookup table: only the rows a batch touched."""
import numpy as np


class RowGradient:
    """The gradient of a (rows, width) parameter that is zero except in a
    few rows, as Embedding.backward gives for its table: ``values[k]`` is
    the gradient of row ``indices[k]``; ``indices`` are sorted and unique.

    It costs what the tokens of a batch cost, not what the vocabulary does.
    The optimizers take it where a dense gradient goes (plain SGD updates
    only those rows; the others make it dense, as their update reaches
    every row anyway), and so do clip_grad_norm and clip_grad_value.
    ``np.asarray(g)`` or ``g.toarray()`` gives the dense array."""

    __slots__ = ("indices", "values", "shape")

    def __init__(self, indices, values, shape):
        self.indices = indices
        self.values = values
        self.shape = tuple(shape)

    @classmethod
    def from_lookups(cls, indices, values, shape):
        """The sum, per row, of the gradients `values` (n, width) of the n
        lookups `indices` (n,) of a table of `shape`."""
        rows, inverse = np.unique(indices, return_inverse=True)
        summed = np.zeros((rows.size, shape[1]), dtype=values.dtype)
        np.add.at(summed, inverse.ravel(), values)
        return cls(rows, summed, shape)

    dtype = property(lambda self: self.values.dtype)
    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))

    def toarray(self):
        """The dense gradient (a new array)."""
        dense = np.zeros(self.shape, dtype=self.values.dtype)
        dense[self.indices] = self.values
        return dense

    def __array__(self, dtype=None, copy=None):
        dense = self.toarray()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def add_to(self, dense):
        """dense += self, in place (dense has self's shape)."""
        dense[self.indices] += self.values
        return dense

    def astype(self, dtype):
        return RowGradient(self.indices, self.values.astype(dtype, copy=False), self.shape)

    def __repr__(self):
        return (f"RowGradient({self.indices.size} of {self.shape[0]} rows, "
                f"shape={self.shape}, dtype={self.dtype})")


def add_gradients(a, b):
    """a + b for gradients of one parameter, each an array, a RowGradient or
    None (none); a new object, neither operand changed. Two RowGradients
    stay one."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, RowGradient) and isinstance(b, RowGradient):
        return RowGradient.from_lookups(np.concatenate([a.indices, b.indices]),
                                        np.concatenate([a.values, b.values]), a.shape)
    if isinstance(a, RowGradient):
        a, b = b, a
    total = np.array(a, copy=True)
    return b.add_to(total) if isinstance(b, RowGradient) else np.add(total, b, out=total)
