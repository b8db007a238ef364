"""Parameter ownership shared by every layer: the live arrays, copies out,
checked copies in, and the version that makes older tapes stale."""
import threading
import weakref

import numpy as np

from cyrnn._pickling import RebuiltOnArrival
from cyrnn._tape import check_tape_origin
from cyrnn._validation import check_state_dict


# The arrays state_dict() handed out, while they live: an optimizer given
# one of them would train a copy the model never reads (is_state_dict_copy).
_STATE_DICT_COPIES = weakref.WeakValueDictionary()


def is_state_dict_copy(array):
    """Whether `array` is one of the copies a layer's state_dict() returned."""
    return _STATE_DICT_COPIES.get(id(array)) is array


class ParameterOwner(RebuiltOnArrival):
    """Mixin over `self._params` (name -> array, written in place and
    rebound only by tie(), which then calls `self._bind_parameters()`),
    `self._parameter_shapes()`, `self._dtype`, `self._owner_name`,
    `self._owner_noun` and `self._tape_class`."""

    _owner_noun = "model"
    _TRANSIENT = ("_version_lock",)

    def _init_parameter_state(self, params):
        self._params = params
        self._weights_version = 0
        self._rebuild_transient()

    def _rebuild_transient(self):
        self._version_lock = threading.Lock()

    def parameters(self):
        """name -> the layer's own parameter array, for optimizers that update
        in place (state_dict() returns copies instead). Write into these
        arrays, never rebind them; shapes and dtype must not change."""
        return dict(self._params)

    def state_dict(self):
        """A copy of every parameter, in torch's names, shapes and order."""
        copies = {name: value.copy() for name, value in self._params.items()}
        for value in copies.values():
            _STATE_DICT_COPIES[id(value)] = value
        return copies

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
        check_tape_origin(tape, self._tape_class, self, self._owner_name, self._owner_noun)
        if tape.weights_version != self._weights_version:
            raise ValueError("tape is stale: load_state_dict changed the weights after the "
                             "forward pass that made it; run forward() again")

    def tie(self, name, source, source_name=None):
        """Makes this layer's parameter `name` the very array that is
        `source`'s parameter `source_name` (by default `name` too), as
        torch's ``decoder.weight = encoder.weight``: both layers then read
        and train one array. In a Sequential it is one parameter (listed,
        saved and updated once, under the name that comes first) whose
        gradient is the sum of both layers'. Shapes and dtypes must match."""
        if name not in self._params:
            raise ValueError(f"name must be one of {self._owner_name}'s parameters "
                             f"{list(self._params)}, got {name!r}")
        if not isinstance(source, ParameterOwner):
            raise TypeError(f"source must be a cyrnn layer with parameters, "
                            f"got {type(source).__name__}")
        source_name = name if source_name is None else source_name
        if source_name not in source._params:
            raise ValueError(f"source_name must be one of {source._owner_name}'s parameters "
                             f"{list(source._params)}, got {source_name!r}")
        mine, theirs = self._params[name], source._params[source_name]
        if mine.shape != theirs.shape or mine.dtype != theirs.dtype:
            raise ValueError(f"{source._owner_name}'s {source_name!r} ({theirs.shape}, "
                             f"{theirs.dtype}) cannot stand for {self._owner_name}'s {name!r} "
                             f"({mine.shape}, {mine.dtype}): shapes and dtypes must match")
        with self._version_lock:
            self._params[name] = theirs
            self._weights_version += 1
            self._bind_parameters()

    def _bind_parameters(self):
        """What a layer derives from its parameter arrays' identity, made
        again after tie() rebound one (nothing by default)."""
