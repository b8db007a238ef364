"""A time-distributed dense layer, y = x W^T + b over the last axis, with
torch.nn.Linear's parameter names, shapes and default initialisation.

It is plain numpy: one BLAS matmul on a 2-D (rows, features) view of the
input, so it runs on (T, B, F) sequences, (N, F) batches or any other
number of leading axes alike."""
import numpy as np

from cyrnn._parameters import ParameterOwner
from cyrnn._tape import Gradients, TapeRecord
from cyrnn._validation import (
    as_real_array, check_bool, check_dtype, check_int, check_seed, check_shape)


class LinearTape(TapeRecord):
    """What Linear.backward needs from one Linear.forward: read-only private
    copies of the input rows and of the weight used, and the shapes of x and
    y. Valid only with the layer that made it, and only until that layer's
    load_state_dict (which makes it stale)."""

    __slots__ = ("model", "weights_version", "x2d", "weight", "x_shape", "y_shape")

    def __repr__(self):
        return f"<cyrnn LinearTape of {self.model!r}, input {self.x_shape}>"


def _frozen_copy(array, source):
    """A C-contiguous array nobody else holds, made read-only."""
    array = np.ascontiguousarray(array)
    if np.may_share_memory(array, source):
        array = array.copy()
    array.flags.writeable = False
    return array


class Linear(ParameterOwner):
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
        bound = 1.0 / np.sqrt(self._in_features)
        # torch's default for both: U(-1/sqrt(in), 1/sqrt(in)), weight first
        self._init_parameter_state({
            name: self._rng.uniform(-bound, bound, size=shape).astype(self._dtype)
            for name, shape in self._parameter_shapes().items()})

    # -- configuration, read-only once built -------------------------------
    in_features = property(lambda self: self._in_features)
    out_features = property(lambda self: self._out_features)
    bias = property(lambda self: self._bias, doc="Whether the layer has a bias (a bool, "
                    "as for the recurrent layers; the array is parameters()['bias']).")
    dtype = property(lambda self: self._dtype)
    _owner_name = "Linear"
    _tape_class = LinearTape
    _owner_noun = "Linear layer"

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
    def backward(self, tape, dy, *, input_grad=True):
        """Gradients of a scalar loss L from dy = dL/dy (the shape of y):
        Gradients(input=dL/dx (shape of x), hx=None, params={'weight': ...,
        'bias': ...}) in the layer's dtype; input_grad=False leaves out dL/dx
        (input None). Nothing in the layer changes."""
        input_grad = check_bool("input_grad", input_grad)
        self._check_tape(tape)
        dy = as_real_array("dy", dy, self._dtype)
        check_shape("dy", dy, tape.y_shape, "the shape of y (..., out_features)")
        dy2d = np.ascontiguousarray(dy.reshape(-1, self._out_features))
        dx = (dy2d @ tape.weight).reshape(tape.x_shape) if input_grad else None
        grads = {"weight": dy2d.T @ tape.x2d}
        if self._bias:
            grads["bias"] = dy2d.sum(axis=0)
        return Gradients(input=dx, hx=None, params=grads)
