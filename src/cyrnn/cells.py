"""Single-step cells, as torch.nn.LSTMCell, GRUCell and RNNCell: one step of
a recurrence, for loops the caller writes (decoders, sampling, custom
unrolling, reinforcement learning).

A cell computes nothing itself. It holds a one-layer, unidirectional layer
of its kind (cyrnn.LSTM, GRU or RNN) whose parameter arrays are the cell's
own (weight_ih is that layer's weight_ih_l0: the same array object), and
runs it over a sequence of one step, through reshaped views of the
caller's arrays. So a cell's step is the layers' kernels, forward and
backward, with the layers' rules for dtypes, tapes and threads; what the
cell adds is the torch cell's shapes and names, and the checks that name
the cell's arguments (x, hx, dh, dc, tape) before anything runs.
"""
import numpy as np

from cyrnn._base import RecurrentLayer
from cyrnn._cells import direction_suffix
from cyrnn._tape import Gradients, check_tape_origin
from cyrnn._validation import check_bool, check_int, check_state_dict, real_array
from cyrnn.layers import GRU, LSTM, RNN, make_layer

__all__ = ["LSTMCell", "GRUCell", "RNNCell", "CellTape"]

_SUFFIX = direction_suffix(0, 0)  # "_l0": the names of the held layer's parameters


class CellTape:
    """What a cell's forward hands to its backward: the held layer's tape of
    its one-step pass. Opaque; valid only with the cell that made it, and
    only until that cell's load_state_dict (an optimizer stepping
    parameters() in place does not make it stale: backward uses the weights
    forward used, as the layers' tapes do)."""

    __slots__ = ("cell", "tape", "shape")

    def __init__(self, cell, tape, shape):
        # shape: the state's, (B, hidden_size) or unbatched (hidden_size,)
        self.cell, self.tape, self.shape = cell, tape, shape

    def __repr__(self):
        return (f"<cyrnn CellTape of {self.cell!r}, "
                f"input {self.shape[:-1] + (self.cell.input_size,)}>")


class _Cell:
    """What the three cells share; see LSTMCell for the whole interface."""

    _layer_class = None  # the layer class a cell of this class holds

    def _hold(self, layer):
        """Becomes the cell of `layer`, a one-layer unidirectional layer of
        this cell's kind, whose parameter arrays become the cell's."""
        self._layer = layer
        self._spec = layer._cell
        self._dtype = layer.dtype
        self._input_size, self._hidden_size = layer.input_size, layer.hidden_size
        # the cell's names -> the layer's arrays: the same objects
        self._params = {name[:-len(_SUFFIX)]: array
                        for name, array in layer.parameters().items()}
        self._shapes = {name: array.shape for name, array in self._params.items()}
        self._layer_names = [(name, name + _SUFFIX) for name in self._params]
        self._pair = self._spec.has_cell_state

    @classmethod
    def _of_layer(cls, layer):
        cell = cls.__new__(cls)
        cell._hold(layer)
        return cell

    # -- configuration, read-only once built -------------------------------
    input_size = property(lambda self: self._input_size)
    hidden_size = property(lambda self: self._hidden_size)
    bias = property(lambda self: self._layer.bias)
    dtype = property(lambda self: self._dtype)

    @property
    def _name(self):
        return type(self).__name__

    def __repr__(self):
        options = [f"{self._input_size}", f"{self._hidden_size}"]
        if not self.bias:
            options.append("bias=False")
        options += self._extra_repr()
        if self._dtype != np.float32:
            options.append(f"dtype={self._dtype.name}")
        return f"{self._name}({', '.join(options)})"

    def _extra_repr(self):
        return []

    # -- parameters --------------------------------------------------------
    def parameters(self):
        """name -> the cell's own parameter array (the held layer's too), for
        optimizers that update in place. Write into these arrays, never
        rebind them."""
        return dict(self._params)

    def state_dict(self):
        """A copy of every parameter, in torch's cell names: weight_ih
        (G*H, input_size), weight_hh (G*H, hidden_size), bias_ih and bias_hh
        (G*H,) [, weight_peephole (3, hidden_size)]."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copies parameters in from a mapping of array-likes in the cell's
        names (a torch cell's state_dict through np.asarray included),
        converting to the cell's dtype. With strict, a missing or unexpected
        name is a ValueError; a wrong shape always is. Nothing is changed
        unless everything fits. Tapes made before this call become stale."""
        converted = check_state_dict(self._name, state_dict, self._shapes, self._dtype, strict)
        self._layer.load_state_dict({name + _SUFFIX: value for name, value in converted.items()},
                                    strict=False)

    # -- moving weights between layers and cells ---------------------------
    @classmethod
    def from_layer(cls, model, layer=0, reverse=False):
        """A new cell computing one layer and direction of `model` (a layer of
        this cell's class: cyrnn.LSTM for LSTMCell...), with a copy of that
        direction's weights and the model's dtype, bias and cell variant.
        `layer` counts from 0; `reverse` picks the reverse direction of a
        bidirectional model. A layer with a projection (proj_size) has no
        cell."""
        suffix, in_size = cls._direction_of(model, layer, reverse)
        cell = cls._of_layer(make_layer(model._cell.key, in_size, model.hidden_size,
                                        bias=model.bias, dtype=model.dtype, seed=0))
        live = model.parameters()
        cell.load_state_dict({name: live[name + suffix] for name in cell._params})
        return cell

    def to_layer(self, *, batch_first=False):
        """A new one-layer, unidirectional layer (cyrnn.LSTM for LSTMCell...)
        computing this cell over whole sequences, with a copy of its
        weights (named weight_ih_l0...). `batch_first` is the layer's."""
        model = make_layer(self._spec.key, self._input_size, self._hidden_size,
                           bias=self.bias, batch_first=batch_first, dtype=self._dtype)
        model.load_state_dict(self._layer.state_dict())
        return model

    def into_layer(self, model, layer=0, reverse=False):
        """Copies this cell's weights into one layer and direction of
        `model`, a layer of the same kind and variant, sizes and bias, in
        place (converted to the model's dtype); the model's other weights
        do not change, and its earlier tapes become stale."""
        suffix, in_size = self._direction_of(model, layer, reverse)
        if model._cell is not self._spec:
            raise ValueError(f"model computes the {model._cell.key} cell and {self!r} the "
                             f"{self._spec.key} cell; their weights do not mean the same")
        for what, theirs, ours in (("input size", in_size, self._input_size),
                                   ("hidden_size", model.hidden_size, self._hidden_size),
                                   ("bias", model.bias, self.bias)):
            if theirs != ours:
                raise ValueError(f"model's layer {layer} has {what} {theirs}, "
                                 f"{self!r} has {ours}")
        model.load_state_dict({name + suffix: value for name, value in self._params.items()},
                              strict=False)

    @classmethod
    def _direction_of(cls, model, layer, reverse):
        """(parameter suffix, input size) of a layer and direction of
        `model`, all checked."""
        expected = cls._layer_class.__name__
        if not isinstance(model, RecurrentLayer) or model._cell.layer != expected:
            raise TypeError(f"model must be a cyrnn.{expected} for {cls.__name__}, "
                            f"got {type(model).__name__}")
        layer = check_int("layer", layer, minimum=0)
        if layer >= model.num_layers:
            raise ValueError(f"layer must be in [0, {model.num_layers - 1}] for a model of "
                             f"num_layers={model.num_layers}, got {layer}")
        reverse = check_bool("reverse", reverse)
        if reverse and not model.bidirectional:
            raise ValueError("reverse=True needs a bidirectional model")
        if model.proj_size:
            raise ValueError(f"model has proj_size={model.proj_size}: a cell has no projection")
        D = 2 if model.bidirectional else 1
        in_size = model.input_size if layer == 0 else D * model.hidden_size
        return direction_suffix(layer, int(reverse)), in_size

    # -- arguments -----------------------------------------------------------
    def _check_x(self, x):
        """x as the held layer's sequence of one step (a view), and the shape
        of the states that go with it: x is (B, input_size) or unbatched
        (input_size,). The layer sees unbatched input as a batch of one row:
        its unbatched path costs more per call."""
        x = real_array("x", x)
        shape = x.shape
        if len(shape) == 2 and shape[1] == self._input_size and shape[0]:
            return x[None], (shape[0], self._hidden_size)
        if len(shape) == 1 and shape[0] == self._input_size:
            return x[None, None], (self._hidden_size,)
        if len(shape) == 2 and shape[1] == self._input_size:
            raise ValueError(f"x must have at least one row; got shape {shape}")
        raise ValueError(f"x must have shape (B, input_size) or, unbatched, (input_size,) "
                         f"with input_size={self._input_size}; got shape {shape}")

    def _check_rows(self, name, value, shape):
        """One state (or state gradient) of `shape`: None, or the layer's
        view of it, (1, B, hidden_size) (one layer; unbatched, one row)."""
        if value is None:
            return None
        array = real_array(name, value)
        if array.shape != shape:
            meaning = "(hidden_size,)" if len(shape) == 1 else "(B, hidden_size)"
            raise ValueError(f"{name} must have shape {meaning} = {shape}, got {array.shape}")
        return array[None] if len(shape) == 2 else array[None, None]

    def _reject_pair(self, name, value):
        """A one-state cell takes one array: a pair of arrays (the LSTM's form)
        is refused rather than read as a stacked array."""
        if isinstance(value, tuple) and len(value) == 2 and \
                any(part is None or isinstance(part, np.ndarray) for part in value):
            raise TypeError(f"{name} must be one array for {self._name}, not a pair")

    def _call_arguments(self, x, hx):
        """(x, hx, the states' shape) with x and hx checked, as the held
        layer's batch of one step: views with a leading axis of one step (x)
        or one layer (the states). hx is None, one array, or for LSTMCell a
        pair whose parts may be None."""
        x, shape = self._check_x(x)
        if hx is None:
            return x, None, shape
        if self._pair:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx must be a pair (h0, c0) for {self._name}, "
                                f"got {type(hx).__name__}")
            return x, (self._check_rows("hx[0]", hx[0], shape),
                       self._check_rows("hx[1]", hx[1], shape)), shape
        self._reject_pair("hx", hx)
        return x, self._check_rows("hx", hx, shape), shape

    def _state(self, hn, shape):
        """The layer's (1, B, H) final states -> the cell's, of `shape`
        (views of the layer's fresh arrays)."""
        index = 0 if len(shape) == 2 else (0, 0)
        return (hn[0][index], hn[1][index]) if self._pair else hn[index]

    # -- forward and backward ------------------------------------------------
    def __call__(self, x, hx=None):
        """One step: h1 (GRUCell, RNNCell) or (h1, c1) (LSTMCell), fresh
        arrays of the shape of hx's."""
        x, hx, shape = self._call_arguments(x, hx)
        return self._state(self._layer(x, hx)[1], shape)

    def forward(self, x, hx=None):
        """Training step: (what __call__ returns, tape) for backward."""
        x, hx, shape = self._call_arguments(x, hx)
        _, hn, tape = self._layer.forward(x, hx)
        return self._state(hn, shape), CellTape(self, tape, shape)

    def _check_tape(self, tape):
        check_tape_origin(tape, CellTape, self, self._name, "cell", field="cell")
        self._layer._check_tape(tape.tape)  # stale after load_state_dict

    def _check_gradient(self, name, value, shape):
        self._reject_pair(name, value)
        return self._check_rows(name, value, shape)

    def _backward(self, tape, dh, dc):
        self._check_tape(tape)
        shape = tape.shape
        dh = self._check_gradient("dh", dh, shape)
        if self._pair:
            dhn = (dh, self._check_gradient("dc", dc, shape))
        else:
            dhn = dh
        g = self._layer.backward(tape.tape, None, dhn)
        index = 0 if len(shape) == 2 else (0, 0)
        return Gradients(input=g.input[index], hx=self._state(g.hx, shape),
                         params={name: g.params[ours] for name, ours in self._layer_names})


class LSTMCell(_Cell):
    """One LSTM step, as torch.nn.LSTMCell: gates i, f, g, o;
    c1 = f * c0 + i * g, h1 = o * tanh(c1).

    cell = LSTMCell(input_size, hidden_size, bias=True, *, peephole=False,
                    dtype=np.float32, seed=None)

    * ``h1, c1 = cell(x, (h0, c0))``: x is (B, input_size) or unbatched
      (input_size,); h0, c0 are (B, hidden_size) or (hidden_size,). hx=None,
      or either part None, means zeros. Returns fresh arrays.
    * ``(h1, c1), tape = cell.forward(x, hx)`` and
      ``g = cell.backward(tape, dh, dc=None)`` for training, with dh = dL/dh1
      and dc = dL/dc1 (either None: zero). ``g`` is ``cyrnn.Gradients(input=
      dL/dx, hx=(dL/dh0, dL/dc0), params={"weight_ih": ..., ...})`` in the
      shapes of x, hx and state_dict(). A tape is refused by any other cell,
      and is stale after load_state_dict, as a layer's.
    * Parameters as torch's cell: ``weight_ih`` (4H, input_size),
      ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,), drawn from
      U(-1/sqrt(H), 1/sqrt(H)) by ``default_rng(seed)`` in that order (the
      draws of ``cyrnn.LSTM(input_size, H, seed=seed)``'s layer 0).
      ``peephole=True`` adds ``weight_peephole`` (3, H), as cyrnn.LSTM's.
      ``parameters()`` gives the live arrays, ``state_dict()`` copies,
      ``load_state_dict(mapping, strict=True)`` takes the cell's names.

    A cell's step is cyrnn.LSTM's: the cell holds a one-layer LSTM whose
    weight_ih_l0 (and so on) *is* the cell's weight_ih, and runs it over one
    step. Weights move between cells and layers by layer and direction,
    without renaming by hand (copies, in both directions):

    * ``LSTMCell.from_layer(lstm, layer=0, reverse=False)``: a cell with a
      copy of that layer's and direction's weights, and the model's dtype;
    * ``cell.into_layer(lstm, layer=0, reverse=False)``: copies the cell's
      weights into that layer and direction of an existing model;
    * ``cell.to_layer(batch_first=False)``: a new one-layer cyrnn.LSTM with
      the cell's weights, to run it over whole sequences.

    A layer with a projection (proj_size) has no cell.
    """

    _layer_class = LSTM

    def __init__(self, input_size, hidden_size, bias=True, *, peephole=False,
                 dtype=np.float32, seed=None):
        self._hold(LSTM(input_size, hidden_size, bias=bias, peephole=peephole, dtype=dtype,
                        seed=seed))

    peephole = property(lambda self: self._spec.peephole)

    def _extra_repr(self):
        return ["peephole=True"] if self._spec.peephole else []

    def backward(self, tape, dh, dc=None):
        """Gradients(input, hx=(dh0, dc0), params) of a loss L from dh =
        dL/dh1 and dc = dL/dc1 (either None: zero)."""
        return self._backward(tape, dh, dc)


class GRUCell(_Cell):
    """One GRU step, as torch.nn.GRUCell: gates r, z, n;
    n = tanh(W_in x + b_in + r * (W_hn h0 + b_hn)), h1 = (1 - z) * n + z * h0.

    cell = GRUCell(input_size, hidden_size, bias=True, *, reset_after=True,
                   dtype=np.float32, seed=None)

    ``h1 = cell(x, h0)``; ``h1, tape = cell.forward(x, h0)`` and
    ``g = cell.backward(tape, dh)`` (g.hx = dL/dh0). Parameters weight_ih
    (3H, input_size), weight_hh (3H, H), bias_ih, bias_hh (3H,).
    ``reset_after=False`` is cyrnn.GRU's variant (r scales h0 before W_hn).
    Otherwise as LSTMCell, whose docstring describes shapes, tapes, the
    parameters and moving weights to and from cyrnn.GRU (from_layer,
    into_layer, to_layer).
    """

    _layer_class = GRU

    def __init__(self, input_size, hidden_size, bias=True, *, reset_after=True,
                 dtype=np.float32, seed=None):
        self._hold(GRU(input_size, hidden_size, bias=bias, reset_after=reset_after,
                       dtype=dtype, seed=seed))

    reset_after = property(lambda self: not self._spec.reset_before)

    def _extra_repr(self):
        return ["reset_after=False"] if self._spec.reset_before else []

    def backward(self, tape, dh):
        """Gradients(input, hx=dh0, params) of a loss L from dh = dL/dh1
        (None: zero)."""
        return self._backward(tape, dh, None)


class RNNCell(_Cell):
    """One Elman RNN step, as torch.nn.RNNCell:
    h1 = nonlinearity(W_ih x + b_ih + W_hh h0 + b_hh), "tanh" or "relu".

    cell = RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                   dtype=np.float32, seed=None)

    ``h1 = cell(x, h0)``; ``h1, tape = cell.forward(x, h0)`` and
    ``g = cell.backward(tape, dh)``. Parameters weight_ih (H, input_size),
    weight_hh (H, H), bias_ih, bias_hh (H,). Otherwise as LSTMCell, whose
    docstring describes shapes, tapes, the parameters and moving weights to
    and from cyrnn.RNN (from_layer, into_layer, to_layer).
    """

    _layer_class = RNN

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", *,
                 dtype=np.float32, seed=None):
        self._hold(RNN(input_size, hidden_size, nonlinearity=nonlinearity, bias=bias,
                       dtype=dtype, seed=seed))

    nonlinearity = property(lambda self: self._layer.nonlinearity)

    def _extra_repr(self):
        # torch writes it unquoted: RNNCell(16, 32, nonlinearity=relu)
        return [] if self.nonlinearity == "tanh" else [f"nonlinearity={self.nonlinearity}"]

    def backward(self, tape, dh):
        """Gradients(input, hx=dh0, params) of a loss L from dh = dL/dh1
        (None: zero)."""
        return self._backward(tape, dh, None)
