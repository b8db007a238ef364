"""The public recurrent layers. Each is its cell's entry of the registry
(_cells.py), chosen by its options, on the shared machinery of
_base.RecurrentLayer; see that class for the calls."""
import numpy as np

from cyrnn import _cells
from cyrnn._base import RecurrentLayer
from cyrnn._validation import check_bool


class LSTM(RecurrentLayer):
    """Multi-layer LSTM with torch.nn.LSTM's parameters and semantics.

    y, (h_n, c_n) = m(x, (h0, c0), lengths=None) for inference;
    y, (h_n, c_n), tape = m.forward(...) and m.backward(tape, dy, (dh_n, dc_n))
    for training. Gates i, f, g, o; `proj_size` > 0 adds weight_hr_l*.
    `reverse=True` (every layer class) runs the one direction from the last
    step to the first, as ONNX's direction="reverse" and Keras's
    go_backwards=True do; y stays aligned with x's time axis (as the reverse
    half of a bidirectional layer), and with `lengths` each sequence starts
    from its own last step. Parameters keep the forward names (weight_ih_l0).
    `peephole=True` adds peephole connections (ONNX's LSTM input P,
    TensorFlow's use_peepholes): weight_peephole_l* of shape (3, hidden_size),
    rows i, f, o, with i = sigmoid(... + p_i * c_{t-1}),
    f = sigmoid(... + p_f * c_{t-1}) and o = sigmoid(... + p_o * c_t).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 peephole=False, reverse=False, dtype=np.float32, seed=None):
        cell = _cells.select("LSTM", peephole=check_bool("peephole", peephole))
        self._configure(cell, input_size, hidden_size, num_layers, bias=bias,
                        batch_first=batch_first, dropout=dropout,
                        bidirectional=bidirectional, proj_size=proj_size, dtype=dtype,
                        seed=seed, reverse=reverse)

    peephole = property(lambda self: self._cell.peephole)

    def _extra_repr(self):
        return ["peephole=True"] if self._cell.peephole else []


class GRU(RecurrentLayer):
    """Multi-layer GRU with torch.nn.GRU's parameters and semantics: gates
    r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) and
    h' = (1 - z) * n + z * h. `reset_after=False` applies r before the
    recurrent product instead, as ONNX's default GRU (linear_before_reset=0)
    and Keras's reset_after=False do: n = tanh(W_in x + b_in + W_hn (r * h)
    + b_hn), with the same parameters."""

    def __init__(self, input_size, hidden_size, num_layers=1, *, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, reset_after=True,
                 reverse=False, dtype=np.float32, seed=None):
        cell = _cells.select("GRU", reset_after=check_bool("reset_after", reset_after))
        self._configure(cell, input_size, hidden_size, num_layers, bias=bias,
                        batch_first=batch_first, dropout=dropout,
                        bidirectional=bidirectional, proj_size=0, dtype=dtype, seed=seed,
                        reverse=reverse)

    reset_after = property(lambda self: not self._cell.reset_before)

    def _extra_repr(self):
        return [] if self.reset_after else ["reset_after=False"]


class RNN(RecurrentLayer):
    """Multi-layer Elman RNN, h' = nonlinearity(W_ih x + b_ih + W_hh h + b_hh),
    with nonlinearity "tanh" or "relu", as torch.nn.RNN."""

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh",
                 bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                 reverse=False, dtype=np.float32, seed=None):
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._configure(_cells.select("RNN", nonlinearity=nonlinearity), input_size,
                        hidden_size, num_layers, bias=bias, batch_first=batch_first,
                        dropout=dropout, bidirectional=bidirectional, proj_size=0,
                        dtype=dtype, seed=seed, reverse=reverse)
        self._nonlinearity = nonlinearity

    nonlinearity = property(lambda self: self._nonlinearity)

    def _extra_repr(self):
        return [] if self._nonlinearity == "tanh" else [f"nonlinearity={self._nonlinearity!r}"]


_LAYERS = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
CELL_KEYS = tuple(cell.key for cell in _cells.CELLS)


def make_layer(cell, input_size, hidden_size, **options):
    """The layer computing `cell`, a key of the registry of cells (one of
    CELL_KEYS: "LSTM", "GRU", "RNN_TANH", "RNN_RELU", "LSTM_PEEPHOLE",
    "GRU_RESET_BEFORE"), built with the options that select that cell and
    `options`: make_layer("GRU_RESET_BEFORE", 8, 16) is GRU(8, 16,
    reset_after=False)."""
    if not isinstance(cell, str) or cell not in _cells.BY_KEY:
        raise ValueError(f"cell must be one of {list(CELL_KEYS)}, got {cell!r}")
    spec = _cells.BY_KEY[cell]
    return _LAYERS[spec.layer](input_size, hidden_size, **dict(spec.options), **options)
