"""Dropout as a layer: a random mask in training, nothing at inference."""
import numbers
import threading

import numpy as np

from cyrnn._pickling import RebuiltOnArrival
from cyrnn._tape import Gradients, TapeRecord, check_tape_origin
from cyrnn._validation import check_seed, check_shape, real_array


class DropoutTape(TapeRecord):
    """What Dropout.backward needs from one Dropout.forward: the mask
    (already scaled by 1/(1-p)), or None when p is 0."""

    __slots__ = ("model", "mask", "y_shape")

    def __repr__(self):
        return f"<cyrnn DropoutTape of {self.model!r}, shape {self.y_shape}>"


def _check_p(p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a number in [0, 1], got {p!r}")
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return p


class Dropout(RebuiltOnArrival):
    """torch.nn.Dropout: in ``forward`` (training) each element is zeroed
    with probability ``p`` and the others are scaled by ``1 / (1 - p)``;
    ``m(x)`` (inference) returns ``x`` unchanged.

    The masks come from the layer's own generator, numpy's
    ``default_rng(seed)``, and are kept in the tape, so backward scales
    ``dy`` by the very mask forward used. ``x`` is any real array; its
    float dtype is kept (other numbers become float64). The layer has no
    parameters: ``parameters()`` and ``state_dict()`` are empty.
    """

    def __init__(self, p=0.5, *, seed=None):
        self._p = _check_p(p)
        self._rng = np.random.default_rng(check_seed(seed))
        self._rebuild_transient()

    _TRANSIENT = ("_rng_lock",)

    def _rebuild_transient(self):
        self._rng_lock = threading.Lock()

    p = property(lambda self: self._p)

    def __repr__(self):
        return f"Dropout(p={self._p})"

    # -- the layer protocol ------------------------------------------------
    def parameters(self):
        return {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict, strict=True):
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        if strict and list(state_dict.keys()):
            raise ValueError(f"state_dict does not match Dropout's parameters (none): "
                             f"unexpected {list(state_dict.keys())}")

    @staticmethod
    def _as_float(name, x):
        x = real_array(name, x)
        return x if x.dtype.kind == "f" else x.astype(np.float64)

    def __call__(self, x):
        """Inference: x itself (as a float array)."""
        return self._as_float("x", x)

    def forward(self, x):
        """Training forward: (x * mask, tape)."""
        x = self._as_float("x", x)
        if self._p == 0.0:
            return x.copy(), DropoutTape(model=self, mask=None, y_shape=x.shape)
        with self._rng_lock:
            draws = self._rng.random(x.shape)
        keep = 1.0 - self._p
        mask = ((draws < keep) / keep if keep else np.zeros(x.shape)).astype(x.dtype)
        return x * mask, DropoutTape(model=self, mask=mask, y_shape=x.shape)

    def backward(self, tape, dy):
        """Gradients(input=dy * mask, hx=None, params={})."""
        check_tape_origin(tape, DropoutTape, self, "Dropout", "Dropout")
        dy = check_shape("dy", self._as_float("dy", dy), tape.y_shape, "the shape of x")
        dx = dy.copy() if tape.mask is None else dy * tape.mask
        return Gradients(input=dx, hx=None, params={})
