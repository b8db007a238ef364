"""Sequential: recurrent layers and Linear heads stacked into one model.

    model = cyrnn.Sequential(cyrnn.LSTM(V, 128, seed=0), cyrnn.Linear(128, V, seed=1))
    out, states = model(x)                            # inference
    out, states, tape = model.forward(x)              # training
    g = model.backward(tape, dout)                    # g.params keyed "0.weight_ih_l0", "1.weight"

Layer i's output is layer i+1's input. Parameter names are those
torch.nn.Sequential gives: the layer's index, a dot, and the layer's own
(torch) parameter name.
"""

from cyrnn._base import RecurrentLayer
from cyrnn._tape import Gradients
from cyrnn._validation import as_real_array, check_shape, check_state_dict
from cyrnn.linear import Linear

__all__ = ["Sequential", "SequentialTape"]


class SequentialTape:
    """What Sequential.backward needs from one Sequential.forward: each
    layer's own tape, in order. Valid only with the model that made it (and
    stale, as the layers' tapes, once load_state_dict changed the weights)."""

    __slots__ = ("model", "tapes")

    def __init__(self, model, tapes):
        self.model = model
        self.tapes = tuple(tapes)

    def __repr__(self):
        return f"<cyrnn SequentialTape of {len(self.tapes)} layers>"


def _out_features(layer):
    if isinstance(layer, Linear):
        return layer.out_features
    return (2 if layer.bidirectional else 1) * (layer.proj_size or layer.hidden_size)


def _in_features(layer):
    return layer.in_features if isinstance(layer, Linear) else layer.input_size


class Sequential:
    """A stack of recurrent layers (LSTM, GRU, RNN) and Linear layers, each
    feeding the next, typically ``Sequential(LSTM(...), Linear(...))``.

    * ``out, states = model(x, hx=None, *, lengths=None)`` for inference;
    * ``out, states, tape = model.forward(x, hx=None, *, lengths=None)`` and
      ``g = model.backward(tape, dout, dstates=None)`` for training, where
      ``g`` is ``Gradients(input=dL/dx, hx=[dL/dhx per recurrent layer],
      params={"0.weight_ih_l0": ..., "1.weight": ...})``.

    ``x`` is laid out as the recurrent layers expect it (all of them share
    ``batch_first``): ``(T, B, I)``, ``(B, T, I)`` or unbatched ``(T, I)``.
    ``lengths`` goes to every recurrent layer. ``states`` is a list with one
    entry per recurrent layer, in order: its ``h_n``, or ``(h_n, c_n)`` for an
    LSTM. ``hx`` is None (zeros everywhere) or such a list, any entry of
    which may be None. ``dstates`` is the same for the gradients of the
    final states.

    The states are plain, fresh numpy arrays: passing them back as ``hx``
    for the next chunk of a long sequence carries the values while the
    gradient stops at the chunk boundary (truncated BPTT; see
    ``cyrnn.detach_states``).

    With ``lengths``, a recurrent layer's output is zero past each
    sequence's length but a Linear layer after it maps those zeros to its
    bias; pass the same ``lengths`` to the loss (``cyrnn.losses``) so the
    padding counts for nothing and gets a zero gradient.

    The layers stay owned by the caller: ``model.layers[i]`` is the very
    object passed in, and ``parameters()`` are its live arrays.
    """

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (RecurrentLayer, Linear)):
                raise TypeError(f"layers[{i}] must be a cyrnn LSTM, GRU, RNN or Linear, "
                                f"got {type(layer).__name__}")
        for i, layer in enumerate(layers):
            for j in range(i):
                if layers[j] is layer:
                    raise ValueError(f"layers[{i}] is the same object as layers[{j}]; "
                                     f"build a separate layer for each position")
        dtypes = {layer.dtype for layer in layers}
        if len(dtypes) != 1:
            raise ValueError(f"layers must all have the same dtype, got "
                             f"{[layer.dtype.name for layer in layers]}")
        recurrent = [layer for layer in layers if isinstance(layer, RecurrentLayer)]
        if len({layer.batch_first for layer in recurrent}) > 1:
            raise ValueError(f"the recurrent layers must agree on batch_first, got "
                             f"{[layer.batch_first for layer in recurrent]}")
        for i in range(1, len(layers)):
            produced, wanted = _out_features(layers[i - 1]), _in_features(layers[i])
            if produced != wanted:
                raise ValueError(f"layers[{i}] takes {wanted} input features but layers[{i - 1}] "
                                 f"produces {produced} ({layers[i - 1]!r} -> {layers[i]!r})")
        self._layers = tuple(layers)
        self._recurrent = tuple(i for i, layer in enumerate(layers)
                                if isinstance(layer, RecurrentLayer))
        self._dtype = layers[0].dtype
        self._batch_first = recurrent[0].batch_first if recurrent else False

    # -- structure ---------------------------------------------------------
    layers = property(lambda self: self._layers, doc="The layers, in order (a tuple).")
    dtype = property(lambda self: self._dtype)
    batch_first = property(lambda self: self._batch_first,
                           doc="Whether x is (B, T, I): the recurrent layers' setting.")
    input_size = property(lambda self: _in_features(self._layers[0]),
                          doc="Features of x's last axis.")
    output_size = property(lambda self: _out_features(self._layers[-1]),
                           doc="Features of out's last axis.")
    num_states = property(lambda self: len(self._recurrent),
                          doc="Entries of states/hx: the number of recurrent layers.")

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def __getitem__(self, index):
        return self._layers[index]

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self._layers))
        return f"Sequential({inner}\n)"

    # -- parameters --------------------------------------------------------
    def parameters(self):
        """"index.name" -> the layers' own parameter arrays (live: write into
        them, never rebind them), for optimizers that update in place."""
        return {f"{i}.{name}": value for i, layer in enumerate(self._layers)
                for name, value in layer.parameters().items()}

    def state_dict(self):
        """A copy of every parameter, keyed "index.name" as torch.nn.Sequential."""
        return {f"{i}.{name}": value for i, layer in enumerate(self._layers)
                for name, value in layer.state_dict().items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copies parameters in from a mapping "index.name" -> array-like
        (converted to the model's dtype). With strict, a missing or
        unexpected name is a ValueError; a wrong shape always is. Nothing
        changes unless everything fits. Earlier tapes become stale."""
        expected = {f"{i}.{name}": value.shape for i, layer in enumerate(self._layers)
                    for name, value in layer.parameters().items()}
        converted = check_state_dict("Sequential", state_dict, expected, self._dtype, strict)
        per_layer = [{} for _ in self._layers]
        for key, value in converted.items():
            index, name = key.split(".", 1)
            per_layer[int(index)][name] = value
        # Everything is checked: the layers' own loads cannot fail now.
        for layer, values in zip(self._layers, per_layer):
            if values:
                layer.load_state_dict(values, strict=False)

    # -- states ------------------------------------------------------------
    def _check_list(self, name, value):
        """None -> [None] * num_states; else a list/tuple of that length."""
        n = len(self._recurrent)
        if value is None:
            return [None] * n
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be None or a list with one entry per recurrent layer "
                            f"({n}), got {type(value).__name__}")
        if len(value) != n:
            raise ValueError(f"{name} must have one entry per recurrent layer ({n}), "
                             f"got {len(value)}")
        return list(value)

    # -- forward -----------------------------------------------------------
    def __call__(self, x, hx=None, *, lengths=None):
        """Inference: (out, states), states a list with one h_n (or
        (h_n, c_n) for LSTM) per recurrent layer. No dropout."""
        hx = self._check_list("hx", hx)
        states, k = [], 0
        for layer in self._layers:
            if isinstance(layer, Linear):
                x = layer(x)
            else:
                x, state = layer(x, hx[k], lengths=lengths)
                states.append(state)
                k += 1
        return x, states

    def forward(self, x, hx=None, *, lengths=None):
        """Training forward: (out, states, tape); recurrent layers apply
        their dropout between their own stacked layers."""
        hx = self._check_list("hx", hx)
        states, tapes, k = [], [], 0
        for layer in self._layers:
            if isinstance(layer, Linear):
                x, tape = layer.forward(x)
            else:
                x, state, tape = layer.forward(x, hx[k], lengths=lengths)
                states.append(state)
                k += 1
            tapes.append(tape)
        return x, states, SequentialTape(self, tapes)

    # -- backward ----------------------------------------------------------
    def backward(self, tape, dout, dstates=None):
        """Gradients of a scalar loss L from dout = dL/dout and optionally
        dstates = [dL/dstates per recurrent layer] (None entries allowed).
        Returns Gradients(input=dL/dx, hx=[dL/dhx per recurrent layer],
        params={"index.name": ...}); nothing in the model changes."""
        if not isinstance(tape, SequentialTape):
            raise TypeError(f"tape must be the SequentialTape returned by Sequential.forward, "
                            f"got {type(tape).__name__}")
        if tape.model is not self:
            raise ValueError("tape was made by another model; pass the tape from this "
                             "model's forward()")
        dout = as_real_array("dout", dout, self._dtype)
        check_shape("dout", dout, tape.tapes[-1].y_shape, "the shape of out")
        dstates = self._check_list("dstates", dstates)
        params, dhx = {}, [None] * len(self._recurrent)
        k = len(self._recurrent)
        grad = dout
        for i in range(len(self._layers) - 1, -1, -1):
            layer, layer_tape = self._layers[i], tape.tapes[i]
            if isinstance(layer, Linear):
                g = layer.backward(layer_tape, grad)
            else:
                k -= 1
                g = layer.backward(layer_tape, grad, dstates[k])
                dhx[k] = g.hx
            params.update((f"{i}.{name}", value) for name, value in g.params.items())
            grad = g.input
        ordered = {f"{i}.{name}": params[f"{i}.{name}"]
                   for i, layer in enumerate(self._layers) for name in layer.parameters()}
        return Gradients(input=grad, hx=dhx, params=ordered)
