"""A time-distributed dense layer, y = x W^T + b over the last axis, with
torch.nn.Linear's parameter names, shapes and default initialisation.

It is plain numpy: one BLAS matmul on a 2-D (rows, features) view of the
input, so it runs on (T, B, F) sequences, (N, F) batches or any other
number of leading axes alike."""
import threading

import numpy as np

from cyrnn._tape import Gradients
from cyrnn._validation import (
    as_real_array, check_bool, check_dtype, check_int, check_seed, check_shape)


class LinearTape:
    """What Linear.backward needs from one Linear.forward: read-only private
    copies of the input rows and of the weight used, and the shapes of x and
    y. Valid only with the layer that made it, and only until that layer's
    load_state_dict (which makes it stale)."""

    __slots__ = ("model", "weights_version", "x2d", "weight", "x_shape", "y_shape")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])

    def __repr__(self):
        return f"<cyrnn LinearTape of {self.model!r}, input {self.x_shape}>"


def _frozen_copy(array, source):
    """A C-contiguous array nobody else holds, made read-only."""
    array = np.ascontiguousarray(array)
    if np.may_share_memory(array, source):
        array = array.copy()
    array.flags.writeable = False
    return array


class Linear:
    """y = x @ weight.T + bias applied to the last axis of x.

    ``x`` has shape ``(..., in_features)`` with at least one leading axis:
    ``(T, B, in_features)``, ``(N, in_features)`` and so on; ``y`` has shape
    ``(..., out_features)``.

    * ``m(x) -> y`` for inference;
    * ``y, tape = m.forward(x)`` and ``g = m.backward(tape, dy)`` for
      training, where ``g`` is ``cyrnn.Gradients(input=dL/dx, hx=None,
      params={"weight": dL/dweight, "bias": dL/dbias})``.

    Parameters follow torch.nn.Linear: ``weight`` of shape
    ``(out_features, in_features)`` and ``bias`` of shape ``(out_features,)``,
    both drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)) with numpy's
    ``default_rng(seed)`` (weight first, then bias).

    The tape keeps its own read-only copies of the input and of the weight,
    so backward may be called any number of times with the same result, even
    after an optimizer updated ``parameters()`` in place: the gradients are
    those at the weights the forward pass used. ``load_state_dict`` makes
    every earlier tape stale (a ValueError in backward), as for the recurrent
    layers.
    """

    def __init__(self, in_features, out_features, *, bias=True, dtype=np.float32, seed=None):
        self._in_features = check_int("in_features", in_features)
        self._out_features = check_int("out_features", out_features)
        self._bias = check_bool("bias", bias)
        self._dtype = check_dtype(dtype)
        self._rng = np.random.default_rng(check_seed(seed))
        self._version_lock = threading.Lock()
        self._weights_version = 0
        bound = 1.0 / np.sqrt(self._in_features)
        self._params = {"weight": self._rng.uniform(
            -bound, bound, size=(self._out_features, self._in_features)).astype(self._dtype)}
        if self._bias:
            self._params["bias"] = self._rng.uniform(
                -bound, bound, size=(self._out_features,)).astype(self._dtype)

    # -- configuration, read-only once built -------------------------------
    in_features = property(lambda self: self._in_features)
    out_features = property(lambda self: self._out_features)
    bias = property(lambda self: self._bias, doc="Whether the layer has a bias (a bool, "
                    "as for the recurrent layers; the array is parameters()['bias']).")
    dtype = property(lambda self: self._dtype)

    def __repr__(self):
        options = [f"{self._in_features}", f"{self._out_features}"]
        if not self._bias:
            options.append("bias=False")
        options.append(f"dtype={self._dtype.name}")
        return f"Linear({', '.join(options)})"

    # -- parameters --------------------------------------------------------
    def _parameter_shapes(self):
        shapes = {"weight": (self._out_features, self._in_features)}
        if self._bias:
            shapes["bias"] = (self._out_features,)
        return shapes

    def parameters(self):
        """name -> the layer's own parameter array, for optimizers that update
        in place (state_dict() returns copies instead). Write into these
        arrays, never rebind them; shapes and dtype must not change."""
        return dict(self._params)

    def state_dict(self):
        """A copy of every parameter: 'weight' (out, in) and 'bias' (out,)."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copies parameters in from a mapping of array-likes (a torch
        state_dict through np.asarray included), converting to the layer's
        dtype. With strict, a missing or unexpected name is a ValueError; a
        wrong shape always is. Nothing is changed unless everything fits.
        Tapes made before this call become stale."""
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        strict = check_bool("strict", strict)
        expected = self._parameter_shapes()
        missing = [name for name in expected if name not in state_dict]
        unexpected = [name for name in state_dict.keys() if name not in expected]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match Linear's parameters: "
                             f"missing {missing}, unexpected {unexpected}")
        converted = {}
        for name, shape in expected.items():
            if name in state_dict:
                value = as_real_array(f"state_dict[{name!r}]", state_dict[name], self._dtype)
                check_shape(f"state_dict[{name!r}]", value, shape, str(shape))
                converted[name] = value
        with self._version_lock:
            for name, value in converted.items():
                np.copyto(self._params[name], value)
            self._weights_version += 1

    # -- forward -----------------------------------------------------------
    def _check_input(self, x):
        source = x
        x = as_real_array("x", x, self._dtype)
        if x.ndim < 2:
            raise ValueError(f"x must have shape (..., in_features) with at least one leading "
                             f"axis, e.g. (T, B, {self._in_features}) or (N, {self._in_features});"
                             f" got shape {x.shape}")
        if x.shape[-1] != self._in_features:
            raise ValueError(f"x must have in_features={self._in_features} features in its last "
                             f"axis, shape (..., {self._in_features}); got shape {x.shape}")
        # One C-contiguous (rows, in) matrix whatever the input's layout, so
        # BLAS always sees the same operands and gives the same numbers.
        x2d = np.ascontiguousarray(x.reshape(-1, self._in_features))
        return source, x, x2d

    def _apply(self, x2d, weight, bias, leading_shape):
        y = x2d @ weight.T
        if bias is not None:
            y += bias
        return y.reshape(leading_shape + (self._out_features,))

    def __call__(self, x):
        """Inference: y = x @ weight.T + bias, of shape (..., out_features)."""
        _, x, x2d = self._check_input(x)
        return self._apply(x2d, self._params["weight"], self._params.get("bias"), x.shape[:-1])

    def forward(self, x):
        """Training forward: (y, tape). The tape holds private copies of x
        and of the weight, so later changes to either do not affect backward."""
        source, x, x2d = self._check_input(x)
        with self._version_lock:
            version = self._weights_version
            weight = self._params["weight"].copy()
            bias = self._params["bias"].copy() if self._bias else None
        weight.flags.writeable = False
        x2d = _frozen_copy(x2d, source)
        y = self._apply(x2d, weight, bias, x.shape[:-1])
        tape = LinearTape(model=self, weights_version=version, x2d=x2d, weight=weight,
                          x_shape=x.shape, y_shape=y.shape)
        return y, tape

    # -- backward ----------------------------------------------------------
    def _check_tape(self, tape):
        if not isinstance(tape, LinearTape):
            raise TypeError(f"tape must be the tape returned by Linear.forward, "
                            f"got {type(tape).__name__}")
        if tape.model is not self:
            raise ValueError("tape was made by another Linear layer; pass the tape from this "
                             "layer's forward()")
        if tape.weights_version != self._weights_version:
            raise ValueError("tape is stale: load_state_dict changed the weights after the "
                             "forward pass that made it; run forward() again")

    def backward(self, tape, dy):
        """Gradients of a scalar loss L from dy = dL/dy (the shape of y):
        Gradients(input=dL/dx (shape of x), hx=None, params={'weight': ...,
        'bias': ...}) in the layer's dtype. Nothing in the layer changes."""
        self._check_tape(tape)
        dy = as_real_array("dy", dy, self._dtype)
        check_shape("dy", dy, tape.y_shape, "the shape of y (..., out_features)")
        dy2d = np.ascontiguousarray(dy.reshape(-1, self._out_features))
        dx = (dy2d @ tape.weight).reshape(tape.x_shape)
        grads = {"weight": dy2d.T @ tape.x2d}
        if self._bias:
            grads["bias"] = dy2d.sum(axis=0)
        return Gradients(input=dx, hx=None, params=grads)
