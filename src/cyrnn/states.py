"""Carrying recurrent state across chunks of a long sequence (truncated BPTT).

cyrnn has no autograd graph: the states a forward pass returns are plain,
fresh numpy arrays, and a backward pass stops at the ``hx`` it was given
(it returns dL/dhx, which nobody needs to pass further). So truncated BPTT
is just::

    states = None
    for x, y in chunks:                      # consecutive pieces of one long series
        out, states, tape = model.forward(x, states)
        loss, dout = cyrnn.losses.mse(out, y)
        grads = model.backward(tape, dout).params     # gradient cut at the chunk start
        opt.step(grads)
        states = cyrnn.detach_states(states)          # values kept for the next chunk

``detach_states`` only copies (torch users know the name from
``tensor.detach()``); passing ``states`` on as they are works the same,
since cyrnn never changes them. The copy makes the intent visible and
guards against code of your own that writes into the arrays later.
"""
import numpy as np

__all__ = ["detach_states"]


def _detach(name, value, depth):
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point state array, "
                            f"got dtype {value.dtype}")
        return value.copy()
    if isinstance(value, (list, tuple)) and depth < 2:
        items = [_detach(f"{name}[{i}]", item, depth + 1) for i, item in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"{name} must be a state array, a (h_n, c_n) pair, None, or a list of "
                    f"those (as a model returns), got {type(value).__name__}")


def detach_states(states):
    """A copy of recurrent states with the same structure: an array (h_n),
    a pair (h_n, c_n), or a list of those as Sequential returns (None
    entries stay None). Use it to carry the values of the last states into
    the next chunk of a long sequence while the gradient stops there."""
    return _detach("states", states, 0)
