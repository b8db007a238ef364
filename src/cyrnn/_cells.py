"""What distinguishes the cell kinds to the shared machinery."""
from dataclasses import dataclass

from cyrnn import _recurrence


@dataclass(frozen=True)
class CellSpec:
    name: str             # the torch.nn class it mirrors, for messages
    kind: int             # _recurrence.CellKind
    gates: int            # gate blocks in weight_ih / weight_hh
    has_cell_state: bool  # LSTM's c

    def folded_biases(self, b_ih, b_hh, H):
        """(bias added to the input projection, GRU's b_hn or None).

        Every recurrent bias can join the input projection but GRU's b_hn,
        which is scaled by r."""
        if self.kind != _recurrence.CellKind.GRU:
            return b_ih + b_hh, None
        folded = b_ih.copy()
        folded[: 2 * H] += b_hh[: 2 * H]
        return folded, b_hh[2 * H:].copy()


LSTM = CellSpec("LSTM", _recurrence.CellKind.LSTM, 4, True)
GRU = CellSpec("GRU", _recurrence.CellKind.GRU, 3, False)
RNN_TANH = CellSpec("RNN", _recurrence.CellKind.RNN_TANH, 1, False)
RNN_RELU = CellSpec("RNN", _recurrence.CellKind.RNN_RELU, 1, False)
