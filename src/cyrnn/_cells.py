"""The registry of cell kinds: the one place that says what a cell is.

Each entry gives everything the rest of cyrnn needs to know about a cell:
its gates, the step kernel's accumulators, what its tape keeps, its
parameters and their torch and ONNX names, and what it can do. The C
kernels read the same facts from csrc/generated/cyrnn_cells.h, which
setup.py writes from this module (so it imports nothing compiled), and
every C dispatch on the kind is a switch over that header's enum without
a default: a kind without its kernels does not compile.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    key: str               # the registry's name; C's CYRNN_CELL_<key>
    layer: str             # the public layer class (torch.nn's name)
    options: tuple         # ((constructor option, value), ...) that select this cell
    gates: int             # gate blocks of H rows in weight_ih and weight_hh
    accumulators: int      # register accumulators per row of the step kernel's tile
    extra: int             # tape values per unit besides the gates
    has_cell_state: bool   # the LSTM's c
    bias_hn_apart: bool    # b_hn stays out of the input projection: r scales it
    split_gradients: bool  # the recurrent pre-activations' gradients differ from
    #                        the input side's (dgh != dgx), and BPTT's product
    #                        adds to what the cell's backward leaves in dh
    fused_backward: bool   # BPTT's product runs the next step's cell backward
    projection: bool       # proj_size may be set (weight_hr)
    peephole: bool         # weight_peephole (3, H): c_{t-1} into i, f; c_t into o
    reset_before: bool     # the GRU's r scales h before W_hn: a step and its
    #                        BPTT in two phases (gru_reset_before_template.h)
    zeros_in_state: bool   # the state is about half exact zeros (relu), whose
    #                        products the step skips where W_hh is finite
    recurrent_groups: tuple  # W_hh's gate blocks in the groups the step packs
    #                          apart, in order (one group: all G together)
    onnx_op: str           # the ONNX operator that computes it
    onnx_attributes: tuple  # ((attribute, value), ...) of that operator
    onnx_gate_order: tuple  # ONNX's gate blocks as indices of torch's

    @property
    def kind(self):
        """The number C knows this cell by: its place in CELLS."""
        return _KINDS[self.key]

    def parameter_shapes(self, input_size, hidden_size, num_layers, *, bias,
                         bidirectional, proj_size):
        """name -> shape of every parameter, in torch's names and order."""
        G, H, D = self.gates, hidden_size, 2 if bidirectional else 1
        Hout = proj_size or hidden_size
        shapes = {}
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else D * Hout
            for direction in range(D):
                sfx = direction_suffix(layer, direction)
                shapes["weight_ih" + sfx] = (G * H, in_size)
                shapes["weight_hh" + sfx] = (G * H, Hout)
                if bias:
                    shapes["bias_ih" + sfx] = (G * H,)
                    shapes["bias_hh" + sfx] = (G * H,)
                if proj_size:
                    shapes["weight_hr" + sfx] = (Hout, H)
                if self.peephole:
                    shapes["weight_peephole" + sfx] = (PEEPHOLE_ROWS, H)
        return shapes

    def folded_biases(self, b_ih, b_hh, H):
        """(bias added to the input projection, b_hn or None): every recurrent
        bias joins the input projection but one that r scales."""
        if not self.bias_hn_apart:
            return b_ih + b_hh, None
        folded = b_ih.copy()
        folded[: 2 * H] += b_hh[: 2 * H]
        return folded, b_hh[2 * H:].copy()


PEEPHOLE_ROWS = 3  # i, f, o
# ONNX's peephole rows (i, o, f: its input P) as indices of cyrnn's (i, f, o)
ONNX_PEEPHOLE_ORDER = (0, 2, 1)


def direction_suffix(layer, direction):
    """torch's suffix of a layer's and direction's parameter names."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def _lstm(key, options, peephole):
    return CellSpec(key, "LSTM", options, gates=4, accumulators=4, extra=2,
                    has_cell_state=True, bias_hn_apart=False, split_gradients=False,
                    fused_backward=True, projection=True, peephole=peephole,
                    reset_before=False, zeros_in_state=False, recurrent_groups=(4,),
                    onnx_op="LSTM",
                    onnx_attributes=(),
                    onnx_gate_order=(0, 3, 1, 2))  # i, o, f, c


def _rnn(key, nonlinearity, activation):
    return CellSpec(key, "RNN", (("nonlinearity", nonlinearity),), gates=1, accumulators=1,
                    extra=0, has_cell_state=False, bias_hn_apart=False,
                    split_gradients=False, fused_backward=False, projection=False,
                    peephole=False, reset_before=False,
                    zeros_in_state=nonlinearity == "relu", recurrent_groups=(1,),
                    onnx_op="RNN", onnx_attributes=(("activations", (activation,)),),
                    onnx_gate_order=(0,))


# The kinds, in the order that numbers them. The LSTM's tape keeps i, f, g, o
# and (c_{t-1}, tanh c_t); the GRU's r, z, n and W_hn h + b_hn, and its step
# accumulates W_hn h apart (a fourth accumulator); the RNN's keeps h_t.
LSTM = _lstm("LSTM", (("peephole", False),), peephole=False)
GRU = CellSpec("GRU", "GRU", (("reset_after", True),), gates=3, accumulators=4, extra=1,
               has_cell_state=False, bias_hn_apart=True, split_gradients=True,
               fused_backward=False, projection=False, peephole=False, reset_before=False,
               zeros_in_state=False, recurrent_groups=(3,), onnx_op="GRU",
               onnx_attributes=(("linear_before_reset", 1),),
               onnx_gate_order=(1, 0, 2))  # z, r, h
RNN_TANH = _rnn("RNN_TANH", "tanh", "Tanh")
RNN_RELU = _rnn("RNN_RELU", "relu", "Relu")
LSTM_PEEPHOLE = _lstm("LSTM_PEEPHOLE", (("peephole", True),), peephole=True)
# r scales h, so b_hn joins the input projection; the tape keeps r, z, n and
# r * h, the input of W_hn's gradient; W_h{r,z} and W_hn are packed apart.
GRU_RESET_BEFORE = CellSpec(
    "GRU_RESET_BEFORE", "GRU", (("reset_after", False),), gates=3, accumulators=3, extra=1,
    has_cell_state=False, bias_hn_apart=False, split_gradients=False, fused_backward=False,
    projection=False, peephole=False, reset_before=True, zeros_in_state=False,
    recurrent_groups=(2, 1),
    onnx_op="GRU",
    onnx_attributes=(("linear_before_reset", 0),), onnx_gate_order=(1, 0, 2))
CELLS = (LSTM, GRU, RNN_TANH, RNN_RELU, LSTM_PEEPHOLE, GRU_RESET_BEFORE)
BY_KEY = {cell.key: cell for cell in CELLS}
_KINDS = {cell.key: kind for kind, cell in enumerate(CELLS)}


def select(layer, **options):
    """The entry of a layer class whose options match (a TypeError naming the
    option when none does)."""
    entries = [cell for cell in CELLS if cell.layer == layer]
    unknown = set(options) - {name for cell in entries for name, _ in cell.options}
    if unknown:
        raise TypeError(f"{layer} has no option {sorted(unknown)[0]!r}")
    for cell in entries:
        if all(options.get(k, v) == v for k, v in cell.options):
            return cell
    raise TypeError(f"{layer}: no cell has the options {options}")
