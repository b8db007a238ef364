"""Sequential: layers stacked into one model, each feeding the next.

    model = cyrnn.Sequential(cyrnn.Embedding(V, 64, seed=0), cyrnn.LSTM(64, 128, seed=1),
                             cyrnn.Dropout(0.2, seed=2), cyrnn.Linear(128, V, seed=3))
    out, states = model(tokens)                       # inference
    out, states, tape = model.forward(tokens)         # training
    g = model.backward(tape, dout)                    # g.params keyed "1.weight_ih_l0", "3.weight"

Parameter names are those torch.nn.Sequential gives: the layer's index, a
dot, and the layer's own parameter name.

The layer protocol
------------------
Any object with these methods can sit in a Sequential; cyrnn's own layers
are no different. A *stateless* layer (Linear, Embedding, Dropout, or your
own numpy function of each position) has:

* ``layer(x) -> y``, inference;
* ``layer.forward(x) -> (y, tape)``, training; the tape is whatever the
  layer's backward needs;
* ``layer.backward(tape, dy) -> cyrnn.Gradients(input=dL/dx or None,
  hx=None, params={name: dL/dparam})``; ``input`` is None where x has no
  gradient (integer ids);
* ``layer.parameters() -> {name: live array}`` (updated in place by the
  optimizers; ``{}`` for none), ``layer.state_dict() -> {name: copy}`` and
  ``layer.load_state_dict(mapping, strict=True)``.

A *stateful* layer (LSTM, GRU, RNN) says so with ``stateful = True`` and
carries a state through the sequence: ``layer(x, hx, *, lengths) ->
(y, state)``, ``layer.forward(x, hx, *, lengths) -> (y, state, tape)`` and
``layer.backward(tape, dy, dstate) -> Gradients(input, hx=dL/dhx, params)``.

A layer's backward may also take the keyword ``input_grad``: with
``input_grad=False`` it leaves out dL/dx (``input`` None). Sequential asks
that of its first layer when its own backward is called so (cyrnn's
recurrent layers and Linear take it; a first layer without it computes dL/dx
and Sequential drops it).

Optional attributes make Sequential check more when it is built:
``dtype`` (the layers that have one must agree), ``in_features`` /
``out_features`` (or ``input_size`` / ``output_size``: neighbours must
agree) and ``batch_first`` (stateful layers must agree).

A minimal layer of your own::

    class Tanh:
        def __call__(self, x): return np.tanh(x)
        def forward(self, x):
            y = np.tanh(x)
            return y, y
        def backward(self, y, dy): return cyrnn.Gradients(dy * (1 - y * y), None, {})
        def parameters(self): return {}
        state_dict = parameters
        def load_state_dict(self, state_dict, strict=True): pass

Tied weights (``decoder.tie("weight", embedding)``): an array that two
layers share is one parameter of the Sequential, named where it first
appears; its gradient is the sum of both layers', and it is saved once.
"""

import functools
import inspect

from cyrnn._sparse import add_gradients
from cyrnn._tape import Gradients, check_tape_origin
from cyrnn._validation import (
    as_real_array, check_bool, check_shape, check_state_dict, real_array)

__all__ = ["Sequential", "SequentialTape", "SequentialStream"]

_METHODS = ("__call__", "forward", "backward", "parameters", "state_dict", "load_state_dict")


class SequentialTape:
    """What Sequential.backward needs from one Sequential.forward: each
    layer's own tape, in order, and the output's shape. Valid only with the
    model that made it (and stale, as the layers' tapes, once
    load_state_dict changed the weights)."""

    __slots__ = ("model", "tapes", "out_shape")

    def __init__(self, model, tapes, out_shape):
        self.model = model
        self.tapes = tuple(tapes)
        self.out_shape = out_shape

    def __repr__(self):
        return f"<cyrnn SequentialTape of {len(self.tapes)} layers>"


def _features(layer, names):
    """The first of the attributes `names` that the layer has and sets, or None."""
    for name in names:
        value = getattr(layer, name, None)
        if value is not None:
            return value
    return None


def _in_features(layer):
    return _features(layer, ("in_features", "input_size"))


def _out_features(layer):
    return _features(layer, ("out_features", "output_size"))


def _stateful(layer):
    return getattr(layer, "stateful", False) is True


class Sequential:
    """A stack of layers, each feeding the next, typically
    ``Sequential(LSTM(...), Linear(...))``; any layer with the protocol of
    this module's docstring fits.

    * ``out, states = model(x, hx=None, *, lengths=None)`` for inference;
    * ``out, states, tape = model.forward(x, hx=None, *, lengths=None)`` and
      ``g = model.backward(tape, dout, dstates=None)`` for training, where
      ``g`` is ``Gradients(input=dL/dx, hx=[dL/dhx per stateful layer],
      params={"0.weight_ih_l0": ..., "1.weight": ...})``; ``input`` is None
      when the first layer takes ids (an Embedding).

    ``x`` is what the first layer takes: ``(T, B, I)``, ``(B, T, I)`` or
    unbatched ``(T, I)`` for a recurrent layer (all of them share
    ``batch_first``), integer ids for an Embedding. ``lengths`` goes to
    every stateful layer. ``states`` is a list with one entry per stateful
    layer, in order: its ``h_n``, or ``(h_n, c_n)`` for an LSTM. ``hx`` is
    None (zeros everywhere) or such a list, any entry of which may be None.
    ``dstates`` is the same for the gradients of the final states.

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

    stateful = True  # a Sequential can sit in a Sequential: its states are a list

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer, got none")
        for i, layer in enumerate(layers):
            missing = [name for name in _METHODS if not callable(getattr(layer, name, None))]
            if missing:
                raise TypeError(f"layers[{i}] must be a layer (see cyrnn.sequential's layer "
                                f"protocol): {type(layer).__name__} has no {missing}")
            for j in range(i):
                if layers[j] is layer:
                    raise ValueError(f"layers[{i}] is the same object as layers[{j}]; "
                                     f"build a separate layer for each position")
        self._check_agreement(layers)
        self._layers = tuple(layers)
        self._stateful = tuple(i for i, layer in enumerate(layers) if _stateful(layer))
        dtypes = [layer.dtype for layer in layers if getattr(layer, "dtype", None) is not None]
        self._dtype = dtypes[0] if dtypes else None
        batch_first = [layer.batch_first for layer in layers
                       if _stateful(layer) and hasattr(layer, "batch_first")]
        self._batch_first = batch_first[0] if batch_first else False

    @staticmethod
    def _check_agreement(layers):
        """dtype, batch_first and the features between neighbours, where
        the layers tell them."""
        dtypes = [(i, layer.dtype) for i, layer in enumerate(layers)
                  if getattr(layer, "dtype", None) is not None]
        if len({dtype for _, dtype in dtypes}) > 1:
            raise ValueError(f"layers must all have the same dtype, got "
                             f"{ {f'layers[{i}]': str(dtype) for i, dtype in dtypes} }")
        flags = [layer.batch_first for layer in layers
                 if _stateful(layer) and hasattr(layer, "batch_first")]
        if len(set(flags)) > 1:
            raise ValueError(f"the recurrent layers must agree on batch_first, got {flags}")
        for i in range(1, len(layers)):
            produced, wanted = _out_features(layers[i - 1]), _in_features(layers[i])
            if produced is not None and wanted is not None and produced != wanted:
                raise ValueError(f"layers[{i}] takes {wanted} input features but layers[{i - 1}] "
                                 f"produces {produced} ({layers[i - 1]!r} -> {layers[i]!r})")

    # -- structure ---------------------------------------------------------
    layers = property(lambda self: self._layers, doc="The layers, in order (a tuple).")
    dtype = property(lambda self: self._dtype)
    batch_first = property(lambda self: self._batch_first,
                           doc="Whether x is (B, T, I): the recurrent layers' setting.")
    input_size = property(lambda self: _in_features(self._layers[0]),
                          doc="Features of x's last axis (None for ids or when unknown).")
    output_size = property(lambda self: _out_features(self._layers[-1]),
                           doc="Features of out's last axis (None when unknown).")
    num_states = property(lambda self: len(self._stateful),
                          doc="Entries of states/hx: the number of stateful layers.")

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
    def _named_parameters(self):
        """("index.name", live array) of every layer in order, and
        alias -> name for the arrays that appear again (tied weights)."""
        named, aliases, first = [], {}, {}
        for i, layer in enumerate(self._layers):
            for name, value in layer.parameters().items():
                key = f"{i}.{name}"
                if id(value) in first:
                    aliases[key] = first[id(value)]
                else:
                    first[id(value)] = key
                    named.append((key, value))
        return named, aliases

    def parameters(self):
        """"index.name" -> the layers' own parameter arrays (live: write into
        them, never rebind them), for optimizers that update in place. A
        tied array appears once, under its first name."""
        return dict(self._named_parameters()[0])

    def tied(self):
        """{alias: name}: the parameters that are another's array (tie()),
        each mapped to the name it is listed under."""
        return self._named_parameters()[1]

    def state_dict(self):
        """A copy of every parameter, keyed "index.name" as
        torch.nn.Sequential; a tied array once, under its first name."""
        named, aliases = self._named_parameters()
        copies = {}
        for i, layer in enumerate(self._layers):
            copies.update((f"{i}.{name}", value) for name, value in layer.state_dict().items())
        return {key: copies[key] for key, _ in named}

    def load_state_dict(self, state_dict, strict=True):
        """Copies parameters in from a mapping "index.name" -> array-like
        (converted to the model's dtype). With strict, a missing or
        unexpected name is a ValueError; a wrong shape always is. A tied
        parameter may also come under its alias (as torch's state_dict has
        it), with the same values. Nothing changes unless everything fits.
        Earlier tapes become stale."""
        named, aliases = self._named_parameters()
        given = self._fold_aliases(state_dict, aliases)
        expected = {key: value.shape for key, value in named}
        dtype = self._dtype if self._dtype is not None or not named else named[0][1].dtype
        converted = check_state_dict("Sequential", given, expected, dtype, strict)
        converted.update((alias, converted[name]) for alias, name in aliases.items()
                         if name in converted)
        per_layer = [{} for _ in self._layers]
        for key, value in converted.items():
            index, name = key.split(".", 1)
            per_layer[int(index)][name] = value
        # Everything is checked: the layers' own loads cannot fail now.
        for layer, values in zip(self._layers, per_layer):
            if values:
                layer.load_state_dict(values, strict=False)

    @staticmethod
    def _fold_aliases(state_dict, aliases):
        """state_dict with each tied parameter's alias entry moved to its
        name (a ValueError if both are there with different values)."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        given = {key: state_dict[key] for key in state_dict.keys()}
        for alias, name in aliases.items():
            if alias not in given:
                continue
            value = given.pop(alias)
            if name not in given:
                given[name] = value
            elif not _same_values(real_array(f"state_dict[{alias!r}]", value),
                                  real_array(f"state_dict[{name!r}]", given[name])):
                raise ValueError(f"state_dict[{alias!r}] and state_dict[{name!r}] differ, but "
                                 f"they are one tied parameter")
        return given

    # -- states ------------------------------------------------------------
    def _check_list(self, name, value):
        """None -> [None] * num_states; else a list/tuple of that length."""
        n = len(self._stateful)
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
        (h_n, c_n) for LSTM) per stateful layer. No dropout."""
        hx = iter(self._check_list("hx", hx))
        states = []
        for layer in self._layers:
            if _stateful(layer):
                x, state = layer(x, next(hx), lengths=lengths)
                states.append(state)
            else:
                x = layer(x)
        return x, states

    def forward(self, x, hx=None, *, lengths=None):
        """Training forward: (out, states, tape); the layers apply their
        dropout."""
        hx = iter(self._check_list("hx", hx))
        states, tapes = [], []
        for layer in self._layers:
            if _stateful(layer):
                x, state, tape = layer.forward(x, next(hx), lengths=lengths)
                states.append(state)
            else:
                x, tape = layer.forward(x)
            tapes.append(tape)
        return x, states, SequentialTape(self, tapes, x.shape)

    def stream(self, batch_size=1, hx=None):
        """A SequentialStream feeding the model one time step at a time,
        the stateful layers' states kept inside (each layer's stream(): its
        weights packed once, now). hx: None or one state per stateful
        layer, as for __call__."""
        hx = self._check_list("hx", hx)
        streams, states = {}, iter(hx)
        for i, layer in enumerate(self._layers):
            if _stateful(layer):
                if not callable(getattr(layer, "stream", None)):
                    raise TypeError(f"layers[{i}] ({type(layer).__name__}) has no stream()")
                streams[i] = layer.stream(batch_size, next(states))
        return SequentialStream(self, streams)

    # -- backward ----------------------------------------------------------
    def backward(self, tape, dout, dstates=None, *, input_grad=True):
        """Gradients of a scalar loss L from dout = dL/dout and optionally
        dstates = [dL/dstates per stateful layer] (None entries allowed).
        Returns Gradients(input=dL/dx, hx=[dL/dhx per stateful layer],
        params={"index.name": ...}); nothing in the model changes.
        input_grad=False: no dL/dx (input None), and the first layer is
        spared computing it where it can be (see the module's docstring)."""
        input_grad = check_bool("input_grad", input_grad)
        check_tape_origin(tape, SequentialTape, self, "Sequential", "model")
        dout = as_real_array("dout", dout, self._dtype) if self._dtype is not None \
            else real_array("dout", dout)
        check_shape("dout", dout, tape.out_shape, "the shape of out")
        dstates = self._check_list("dstates", dstates)
        params, dhx = {}, [None] * len(self._stateful)
        k, grad = len(self._stateful), dout
        for i in range(len(self._layers) - 1, -1, -1):
            layer, layer_tape = self._layers[i], tape.tapes[i]
            if grad is None:
                raise ValueError(f"layers[{i + 1}] ({self._layers[i + 1]!r}) gives no "
                                 f"gradient of its input for layers[{i}] to go on from")
            options = backward_options(layer, input_grad or i > 0)
            if _stateful(layer):
                k -= 1
                g = layer.backward(layer_tape, grad, dstates[k], **options)
                dhx[k] = g.hx
            else:
                g = layer.backward(layer_tape, grad, **options)
            params.update((f"{i}.{name}", value) for name, value in g.params.items())
            grad = g.input
        return Gradients(input=grad if input_grad else None, hx=dhx,
                         params=self._gather(params))

    def _gather(self, params):
        """The layers' gradients in parameters() order, a tied parameter's
        summed over the layers that share it."""
        named, aliases = self._named_parameters()
        ordered = {key: params[key] for key, _ in named if key in params}
        for alias, name in aliases.items():
            if alias in params:
                ordered[name] = add_gradients(ordered.get(name), params[alias])
        return ordered


def backward_options(layer, input_grad):
    """The keywords for layer.backward: input_grad=False where dL/dx is not
    wanted and its backward takes the keyword (see the module's docstring)."""
    return {} if input_grad or not _takes_input_grad(type(layer)) else {"input_grad": False}


@functools.cache
def _takes_input_grad(layer_type):
    """Whether a layer's backward takes the keyword input_grad."""
    backward = getattr(layer_type, "backward", None)
    try:
        return backward is not None and "input_grad" in inspect.signature(backward).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, say)
        return False


def _same_values(a, b):
    return a.shape == b.shape and bool((a == b).all())


class SequentialStream:
    """A Sequential fed one time step at a time (Sequential.stream): each
    stateful layer steps through its own stream (see RecurrentLayer.stream),
    every other layer is called on the step's rows. ``y = stream.step(x)``
    with x of shape (batch_size, features) (or (batch_size,) ids for an
    Embedding first), ``state`` the list of the stateful layers' states,
    ``reset(hx=None)`` with hx such a list."""

    def __init__(self, model, streams):
        self._model = model
        self._streams = streams  # layer index -> its stream

    def __repr__(self):
        return f"<SequentialStream of {len(self._model)} layers>"

    def step(self, x):
        for i, layer in enumerate(self._model.layers):
            stream = self._streams.get(i)
            x = stream.step(x) if stream is not None else layer(x)
        return x

    @property
    def state(self):
        return [self._streams[i].state for i in self._model._stateful]

    def reset(self, hx=None):
        hx = self._model._check_list("hx", hx)
        for i, state in zip(self._model._stateful, hx):
            self._streams[i].reset(state)
