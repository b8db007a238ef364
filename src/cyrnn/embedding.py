"""A lookup table from token ids to vectors, with torch.nn.Embedding's
parameter name, layout and default initialisation."""
import numpy as np

from cyrnn._parameters import ParameterOwner
from cyrnn._sparse import RowGradient
from cyrnn._tape import Gradients, TapeRecord
from cyrnn._validation import (
    array_of_kinds, as_real_array, check_dtype, check_int, check_seed, check_shape)


class EmbeddingTape(TapeRecord):
    """What Embedding.backward needs from one Embedding.forward: a private
    copy of the ids looked up, and the output's shape."""

    __slots__ = ("model", "weights_version", "indices", "y_shape")

    def __repr__(self):
        return f"<cyrnn EmbeddingTape of {self.model!r}, {self.indices.size} ids>"


class Embedding(ParameterOwner):
    """y = weight[x]: each integer id of ``x`` replaced by its row of the
    table ``weight`` of shape ``(num_embeddings, embedding_dim)``.

    ``x`` is an integer array of any shape (``(T, B)`` token ids, say) with
    values in ``[0, num_embeddings)``; ``y`` has shape
    ``x.shape + (embedding_dim,)``.

    * ``m(x) -> y`` for inference;
    * ``y, tape = m.forward(x)`` and ``g = m.backward(tape, dy)`` for
      training: ``g.params["weight"]`` is a ``cyrnn.RowGradient`` holding
      only the rows the ids touched (duplicates summed), so a step costs
      what the tokens cost, not what the vocabulary does; ``g.input`` is
      None (ids have no gradient).

    As torch: ``weight`` starts as N(0, 1) draws from numpy's
    ``default_rng(seed)``; the row ``padding_idx`` (if given; negative counts
    from the end) starts at zero and gets no gradient.
    """

    def __init__(self, num_embeddings, embedding_dim, *, padding_idx=None, dtype=np.float32,
                 seed=None):
        self._num_embeddings = check_int("num_embeddings", num_embeddings)
        self._embedding_dim = check_int("embedding_dim", embedding_dim)
        self._padding_idx = self._check_padding_idx(padding_idx)
        self._dtype = check_dtype(dtype)
        self._rng = np.random.default_rng(check_seed(seed))
        weight = self._rng.standard_normal(self._parameter_shapes()["weight"]).astype(self._dtype)
        if self._padding_idx is not None:
            weight[self._padding_idx] = 0
        self._init_parameter_state({"weight": weight})

    def _check_padding_idx(self, padding_idx):
        if padding_idx is None:
            return None
        V = self._num_embeddings
        index = check_int("padding_idx", padding_idx, minimum=-V)
        if index >= V:
            raise ValueError(f"padding_idx must be in [-{V}, {V}) (num_embeddings={V}), "
                             f"got {index}")
        return index % V

    # -- configuration, read-only once built -------------------------------
    num_embeddings = property(lambda self: self._num_embeddings)
    embedding_dim = property(lambda self: self._embedding_dim)
    padding_idx = property(lambda self: self._padding_idx,
                           doc="The row that stays zero, in [0, num_embeddings), or None.")
    dtype = property(lambda self: self._dtype)
    in_features = None  # ids, not features
    out_features = property(lambda self: self._embedding_dim)
    _owner_name = "Embedding"
    _tape_class = EmbeddingTape
    _owner_noun = "Embedding"

    def __repr__(self):
        padding = "" if self._padding_idx is None else f", padding_idx={self._padding_idx}"
        return (f"Embedding({self._num_embeddings}, {self._embedding_dim}{padding}, "
                f"dtype={self._dtype.name})")

    def _parameter_shapes(self):
        return {"weight": (self._num_embeddings, self._embedding_dim)}

    # -- forward -----------------------------------------------------------
    def _check_ids(self, x):
        ids = array_of_kinds("x", x, "iu", "an array of integer ids")
        if ids.size:
            low, high = ids.min(), ids.max()
            if low < 0 or high >= self._num_embeddings:
                bad = low if low < 0 else high
                raise ValueError(f"x holds the id {bad}, outside [0, num_embeddings) = "
                                 f"[0, {self._num_embeddings})")
        return ids.astype(np.intp, copy=False)

    def __call__(self, x):
        """Inference: the rows of weight for the ids x, shape
        x.shape + (embedding_dim,)."""
        return self._params["weight"][self._check_ids(x)]

    def forward(self, x):
        """Training forward: (y, tape)."""
        ids = self._check_ids(x)
        y = self._params["weight"][ids]
        tape = EmbeddingTape(model=self, weights_version=self._weights_version,
                             indices=np.array(ids, copy=True), y_shape=y.shape)
        return y, tape

    # -- backward ----------------------------------------------------------
    def backward(self, tape, dy):
        """Gradients(input=None, hx=None, params={"weight": RowGradient}):
        each looked-up row's dy summed into its table row; the padding row
        gets none."""
        self._check_tape(tape)
        dy = as_real_array("dy", dy, self._dtype)
        check_shape("dy", dy, tape.y_shape, "x.shape + (embedding_dim,)")
        ids = tape.indices.ravel()
        rows = dy.reshape(-1, self._embedding_dim)
        if self._padding_idx is not None:
            keep = ids != self._padding_idx
            ids, rows = ids[keep], rows[keep]
        grad = RowGradient.from_lookups(ids, rows, self._parameter_shapes()["weight"])
        return Gradients(input=None, hx=None, params={"weight": grad})
