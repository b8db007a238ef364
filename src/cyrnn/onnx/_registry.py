"""The registry of cells (cyrnn._cells) in ONNX's terms, both ways: gate
blocks and peepholes between torch's order and ONNX's, the recurrent
operators' default attributes, and the registry entry a node computes."""
import numpy as np

from cyrnn import _cells
from cyrnn.onnx._errors import BadModel

# ONNX's default attributes of each operator (the spec's), to compare a
# node's with the registry's CellSpec.onnx_attributes.
ONNX_DEFAULTS = {"LSTM": {"activations": ("sigmoid", "tanh", "tanh")},
                 "GRU": {"activations": ("sigmoid", "tanh"), "linear_before_reset": 0},
                 "RNN": {"activations": ("tanh",)}}
RECURRENT_OPS = tuple(sorted({cell.onnx_op for cell in _cells.CELLS}))
# activations that take no alpha or beta: their activation_alpha/beta are moot
_PLAIN_ACTIVATIONS = {"sigmoid", "tanh", "relu"}


def normal_attributes(op, attributes):
    """An operator's attributes with ONNX's defaults filled in and the
    activations lower-case, as a dict."""
    normal = dict(ONNX_DEFAULTS[op])
    for name, value in attributes:
        normal[name] = tuple(v.lower() for v in value) if name == "activations" else value
    return normal


def onnx_blocks(w, cell):
    """torch's gate blocks (along axis 0) in ONNX's order."""
    blocks = np.split(np.asarray(w), cell.gates, axis=0)
    return np.concatenate([blocks[k] for k in cell.onnx_gate_order], axis=0)


def torch_blocks(w, cell):
    """ONNX's gate blocks (along axis 0) in torch's order."""
    blocks = np.split(np.asarray(w), cell.gates, axis=0)
    ordered = [None] * cell.gates
    for j, k in enumerate(cell.onnx_gate_order):
        ordered[k] = blocks[j]
    return np.concatenate(ordered, axis=0)


def onnx_peephole(p):
    """cyrnn's (3, H) rows i, f, o -> ONNX's P (3H,): blocks i, o, f."""
    return np.asarray(p)[list(_cells.ONNX_PEEPHOLE_ORDER)].reshape(-1)


def torch_peephole(p, H):
    """ONNX's P (3H,) -> cyrnn's (3, H) rows."""
    blocks = np.asarray(p).reshape(_cells.PEEPHOLE_ROWS, H)
    rows = [None] * _cells.PEEPHOLE_ROWS
    for j, k in enumerate(_cells.ONNX_PEEPHOLE_ORDER):
        rows[k] = blocks[j]
    return np.stack(rows)


def select_cell(where, op, attributes, D, peephole):
    """The registry's cell for a node's operator and attributes."""
    normal = dict(ONNX_DEFAULTS[op])
    normal.update(_given_attributes(where, op, attributes, D))
    for cell in _cells.CELLS:
        if cell.onnx_op != op or cell.peephole != peephole:
            continue
        if normal_attributes(op, cell.onnx_attributes) == normal:
            return cell
    shown = {k: list(v) if isinstance(v, tuple) else v for k, v in normal.items()}
    cells = [dict(c.onnx_attributes) or 'the defaults' for c in _cells.CELLS if c.onnx_op == op]
    raise BadModel(f"{where}: cyrnn has no cell computing {op} with {shown}"
                   f"{' and peepholes' if peephole else ''}; its {op} cells are {cells}")


def _given_attributes(where, op, attributes, D):
    """The node's attributes that choose a cell: its activations (one
    direction's, lower-case) and linear_before_reset, where it gives them."""
    given = {}
    activations = attributes.get("activations")
    if activations is not None:
        names = tuple(a.lower() for a in activations)
        n = len(ONNX_DEFAULTS[op]["activations"])
        if len(names) == n * D and D == 2:
            if names[:n] != names[n:]:
                raise BadModel(f"{where} has different activations per direction {activations}")
            names = names[:n]
        if len(names) != n:
            raise BadModel(f"{where} has {len(names)} activations; {op} takes {n} per "
                           f"direction")
        if any(a not in _PLAIN_ACTIVATIONS for a in names):
            raise BadModel(f"{where} has activations {list(activations)}; cyrnn's cells "
                           f"use Sigmoid, Tanh and, for RNN, Relu")
        given["activations"] = names
    if "linear_before_reset" in attributes:
        given["linear_before_reset"] = attributes["linear_before_reset"]
    return given
