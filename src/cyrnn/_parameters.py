"""Parameter ownership shared by every layer: the live arrays, copies out,
checked copies in, and the version that makes older tapes stale."""
import threading

import numpy as np

from cyrnn._validation import check_state_dict


class ParameterOwner:
    """Mixin over `self._params` (name -> array, created once and only ever
    written in place), `self._parameter_shapes()`, `self._dtype`,
    `self._owner_name`, `self._owner_noun` and `self._tape_class`."""

    _owner_noun = "model"

    def _init_parameter_state(self, params):
        self._params = params
        self._weights_version = 0
        self._version_lock = threading.Lock()

    def parameters(self):
        """name -> the layer's own parameter array, for optimizers that update
        in place (state_dict() returns copies instead). Write into these
        arrays, never rebind them; shapes and dtype must not change."""
        return dict(self._params)

    def state_dict(self):
        """A copy of every parameter, in torch's names, shapes and order."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copies parameters in from a mapping of array-likes (a torch
        state_dict through np.asarray included), converting to the layer's
        dtype. With strict, a missing or unexpected name is a ValueError; a
        wrong shape always is. Nothing is changed unless everything fits.
        Tapes made before this call become stale."""
        converted = check_state_dict(self._owner_name, state_dict, self._parameter_shapes(),
                                     self._dtype, strict)
        with self._version_lock:
            for name, value in converted.items():
                np.copyto(self._params[name], value)
            self._weights_version += 1

    def _check_tape(self, tape):
        """A tape is valid only with the layer that made it, and only while
        that layer's weights are the ones it was made with."""
        if not isinstance(tape, self._tape_class):
            raise TypeError(f"tape must be the tape returned by {self._owner_name}.forward, "
                            f"got {type(tape).__name__}")
        if tape.model is not self:
            raise ValueError(f"tape was made by another {self._owner_noun}; pass the tape "
                             f"from this {self._owner_noun}'s forward()")
        if tape.weights_version != self._weights_version:
            raise ValueError("tape is stale: load_state_dict changed the weights after the "
                             "forward pass that made it; run forward() again")
