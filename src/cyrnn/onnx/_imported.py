"""ImportedGraph: the model read from a graph, run with the graph's own
input and output names and layouts."""
import math

import numpy as np

from cyrnn.onnx._values import atom_size, data_atoms, is_unit
from cyrnn.sequential import Sequential


class ImportedGraph:
    """An ONNX graph read into a cyrnn model, and how the graph's inputs and
    outputs map onto it.

    * ``model``: the cyrnn layer, or Sequential, computing the graph;
    * ``input_roles``: graph input -> "x" (the data), "ids", "lengths",
      "state" (initial state rows), "constant" (given to load_graph) or
      "unused";
    * ``output_roles``: graph output -> "y" (the model's output, in the
      graph's layout) or "state" (final state rows);
    * ``batch_first``: whether the graph's data is (batch, time, ...);
    * ``run(output_names, input_feed)``: the graph's outputs (a list, in
      the order asked; None for all) from its inputs by name, computed by
      ``model``, as onnxruntime's ``InferenceSession.run`` answers.
    """

    def __init__(self, model, interpretation, groups):
        g = interpretation
        self.model = model
        self.batch_first = g.batch_first
        self.input_roles = dict(g.input_roles)
        self.output_roles = {name: output.role for name, output in g.outputs.items()}
        self._data = g.data_input
        self._lengths = g.lengths_input
        self._outputs = g.outputs
        self._groups = groups           # per stateful layer: [element index, ...]
        self._elements = {index: (k, layer) for k, group in enumerate(groups)
                          for layer, index in enumerate(group)}
        self._chain = g.chain
        self._state_inputs = dict(g.state_inputs)
        self._lead = g.lead_atoms
        self._y_atoms = g.lead_atoms + list(g.y_features)
        self._B = g.B

    def __repr__(self):
        return (f"<cyrnn.onnx.ImportedGraph inputs {self.input_roles}, outputs "
                f"{self.output_roles}, model {self.model!r}>")

    def run(self, output_names=None, input_feed=None):
        names, feed = self._checked(output_names, input_feed)
        x = np.asarray(feed[self._data])
        y, states = self._compute(feed, x)
        finals = [state if isinstance(state, tuple) else (state, None) for state in states]
        sizes = self._sizes(y)
        results = []
        for name in names:
            output = self._outputs[name]
            if output.role == "y":
                results.append(_arrange(y, self._y_atoms, output.axes, sizes))
            else:
                results.append(self._final_rows(output.rows, output.axes, finals, sizes))
        return results

    def _checked(self, output_names, input_feed):
        """The output names asked for and the feed, checked against the graph."""
        names = list(self._outputs) if output_names is None else list(output_names)
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise ValueError(f"output_names: the graph has no outputs {unknown}; it has "
                             f"{list(self._outputs)}")
        feed = dict(input_feed or {})
        unknown = [n for n in feed if n not in self.input_roles]
        if unknown:
            raise ValueError(f"input_feed: the graph has no inputs {unknown}; it has "
                             f"{list(self.input_roles)}")
        if self._data not in feed:
            raise ValueError(f"input_feed must hold the graph's data input {self._data!r}")
        return names, feed

    def _compute(self, feed, x):
        """The model's output and its list of final states."""
        lengths = None
        if self._lengths is not None:
            if self._lengths not in feed:
                raise ValueError(f"input_feed must hold the sequence lengths "
                                 f"{self._lengths!r}")
            lengths = np.asarray(feed[self._lengths])
        if not getattr(self.model, "stateful", False):
            return self.model(x), []
        hx = self._initial_states(feed, x)
        if not isinstance(self.model, Sequential):
            y, state = self.model(x, hx[0], lengths=lengths)
            return y, [state]
        y, states = self.model(x, hx, lengths=lengths)
        return y, states

    def _sizes(self, y):
        sizes = {}
        for k, atom in enumerate(self._lead):
            sizes[atom[0]] = y.shape[k]
        return sizes

    def _initial_states(self, feed, x):
        """Each stateful layer's hx, gathered row by row from the fed state
        inputs (zeros where a row has none, or its input is not fed)."""
        B = x.shape[0 if self.batch_first else 1] if x.ndim >= 2 else 1
        hx = []
        for group in self._groups:
            kinds = ("h", "c") if self._chain[group[0]].cell.has_cell_state else ("h",)
            parts = [self._fed_state(feed, group, kind, B) for kind in kinds]
            if len(parts) == 1:
                hx.append(parts[0])
                continue
            h, c = parts
            if h is None and c is None:
                hx.append(None)
                continue
            template = h if h is not None else c
            hx.append((h if h is not None else np.zeros_like(template),
                       c if c is not None else np.zeros_like(template)))
        return hx

    def _fed_state(self, feed, group, kind, B):
        """A layer's initial `kind` ("h" or "c"), its rows from the fed
        inputs; None when none is fed."""
        rows, any_given = [], False
        for index in group:
            element = self._chain[index]
            for ref in (element.h0 if kind == "h" else element.c0):
                row = None
                if ref is not None and ref.input in feed:
                    array = np.asarray(feed[ref.input])
                    if array.ndim != 3:
                        raise ValueError(f"input_feed[{ref.input!r}] must have 3 axes, "
                                         f"got shape {array.shape}")
                    row = np.take(array, ref.row, axis=self._state_inputs[ref.input].rows_axis)
                    any_given = True
                rows.append(row)
        if not any_given:
            return None
        H = self._chain[group[0]].H
        dtype = self.model.dtype
        return np.stack([np.zeros((B, H), dtype) if r is None else r for r in rows])

    def _final_rows(self, rows, axes, finals, sizes):
        """A state output: the final state rows it names, in its layout."""
        arrays = []
        for row in rows:
            k, layer = self._elements[row.element]
            h_n, c_n = finals[k]
            D = self._chain[row.element].D
            arrays.append((h_n if row.kind == "h" else c_n)[layer * D + row.direction])
        stacked = np.stack(arrays)
        atoms = [a for a in ((("R", len(rows)),), (self._B,),
                             (("S", self._chain[rows[0].element].H),)) for a in data_atoms(a)]
        sizes = dict(sizes, B=stacked.shape[1])
        return _arrange(stacked, atoms, axes, sizes)


def _arrange(array, source, target_axes, sizes):
    """`array`, whose axes are the atoms `source` (merged as it has them), laid
    out as `target_axes`."""
    def size(atom):
        return sizes[atom[0]] if atom_size(atom) is None else atom_size(atom)
    source = [a for a in source if not is_unit(a)]
    array = array.reshape([size(a) for a in source])
    flat = [a for axis in target_axes for a in data_atoms(axis)]
    array = array.transpose([source.index(a) for a in flat])
    return np.ascontiguousarray(array.reshape(
        [math.prod(size(a) for a in data_atoms(axis)) for axis in target_axes]))
