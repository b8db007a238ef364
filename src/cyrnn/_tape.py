"""What a training forward pass hands to backward."""
from typing import NamedTuple


class TapeRecord:
    """A tape of named fields (its __slots__), all given to the
    constructor by name."""

    __slots__ = ()

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields[name])


class Tape(TapeRecord):
    """Everything backward needs from one training forward pass: the packed
    layout, the per-layer buffers the time loops filled (inputs, activated
    gates, states before each step, dropout masks) and the shapes the caller
    used. Opaque to users; valid only with the model that made it, and only
    while that model's weights are the ones it was made with."""

    __slots__ = ("model", "weights_version", "layout", "layers", "x_shape",
                 "y_shape", "hn_shape", "cn_shape", "unbatched", "scratch")

    def __del__(self):
        # The internal buffers (never handed to the caller) go back to the
        # model's workspace for the next forward pass.
        workspace = getattr(self.model, "_workspace", None)
        if workspace is not None:
            for name, array in self.scratch:
                workspace.give(name, array)

    def __repr__(self):
        return (f"<cyrnn Tape of {type(self.model).__name__}, "
                f"input {self.x_shape}, {self.layout.N} packed rows>")


class Gradients(NamedTuple):
    """Gradients of a scalar loss: `input` has the shape of x, `hx` the shape
    of the initial state (a pair (dh0, dc0) for LSTM) and `params` the names
    and shapes of state_dict()."""
    input: object
    hx: object
    params: dict


def check_tape_origin(tape, tape_class, owner, maker, noun, field="model"):
    """A tape is valid only with the object that made it: a TypeError for
    anything that is not a `tape_class`, a ValueError for another `noun`'s
    (`field` is the tape's attribute holding its maker)."""
    if not isinstance(tape, tape_class):
        raise TypeError(f"tape must be the {tape_class.__name__} returned by {maker}.forward, "
                        f"got {type(tape).__name__}")
    if getattr(tape, field) is not owner:
        raise ValueError(f"tape was made by another {noun}; pass the tape from this {noun}'s "
                         f"forward()")
