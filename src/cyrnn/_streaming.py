"""Streaming inference: a sequence fed one time step at a time, its state
kept inside (RecurrentLayer.stream makes one).

The layer builds the records of a one-step inference pass once (its weights
packed, its buffers allocated); each step then runs that pass again on the
caller's x (_stream.pyx), with nothing checked or allocated on the way but
x, the output and two pointers."""
import numpy as np

from cyrnn._packing import SequenceLayout
from cyrnn._stream import StreamCore
from cyrnn._validation import real_array


class Stream(StreamCore):
    """A recurrent layer fed one time step at a time, as a sensor or a
    token generator does, with its state kept inside: made by
    ``model.stream(batch_size=1, hx=None)``.

    ``y = stream.step(x)`` feeds one step, x of shape (batch_size,
    input_size), or (input_size,) for a stream made with batch_size=None,
    and returns the last layer's output (batch_size, H_out), or (H_out,);
    ``step(x, out=y)`` fills an array instead of making one. Over a
    sequence, the outputs are the rows of ``model(x_sequence, hx)``'s y
    (its very bits, except at kernel level 0 on a CPU with AVX, where the
    layer's products run in BLAS and the stream's in its kernels: there
    within rounding), and ``state`` its final states.

    ``state`` is a copy of the current state in the layer's format: h_n
    (num_layers, batch_size, H_out), or for LSTM (h_n, c_n) with c_n
    (num_layers, batch_size, hidden_size) (without the batch axis when
    unbatched). ``reset(hx=None)`` starts again from zeros or from the given
    states, checked as the layer checks its hx.

    The weights are those the layer had when the stream was made, packed
    once then: weights changed afterwards (an optimizer's step,
    load_state_dict) are not seen; make a new stream. Dropout does not
    apply (inference). Each step runs on one thread, without the GIL unless
    it is tiny, so streams in different threads run in parallel; one stream
    is used by one thread at a time."""

    def __init__(self, model, layers, h, c, batch_size):
        """(By RecurrentLayer.stream.) layers: the LayerBuffers of the
        one-step pass, whose records hold h[l] and c[l] as the state and
        their weights' packings (packed here unless ready)."""
        self._model = model
        self._unbatched = batch_size is None
        self._batch = 1 if batch_size is None else batch_size
        self._layout = SequenceLayout.full(1, self._batch)
        self._h, self._c = h, c
        B, I, Hout = self._batch, model.input_size, model._out_size
        self._x_shape = (I,) if self._unbatched else (B, I)
        self._x_meaning = "(input_size,)" if self._unbatched else "(batch_size, input_size)"
        self._y_shape = (Hout,) if self._unbatched else (B, Hout)
        self._bind(model._cell, model.hidden_size, Hout, layers, model.dtype, self._x_shape,
                   self._y_shape)

    dtype = property(lambda self: self._model.dtype)
    batch_size = property(lambda self: None if self._unbatched else self._batch)

    def __repr__(self):
        return f"<Stream of {self._model!r}, batch_size={self.batch_size}>"

    @property
    def state(self):
        """A copy of the current state: h_n, or for LSTM (h_n, c_n), shaped
        as the layer's."""
        self._require_idle()
        h = self._h[:, 0] if self._unbatched else self._h
        if self._c is None:
            return h.copy()
        return h.copy(), (self._c[:, 0] if self._unbatched else self._c).copy()

    def reset(self, hx=None):
        """Starts the sequence again: from zero states, or from hx, given as
        the layer's hx (h0, or for LSTM (h0, c0), either part None for
        zeros). Nothing changes if hx is malformed."""
        h, c = self._model._check_states("hx", hx, self._layout, self._batch, self._unbatched,
                                         "(h0, c0)")
        self._require_idle()
        np.copyto(self._h, h)
        if c is not None:
            np.copyto(self._c, c)

    # step's slow path (see StreamCore.step): x or out other than an array
    # the C takes as it is
    def _input(self, x):
        """x checked, and converted to a C-contiguous aligned array of the
        stream's dtype."""
        array = real_array("x", x)
        if array.shape != self._x_shape:
            raise ValueError(f"x must have shape {self._x_meaning} = {self._x_shape}, "
                             f"got {array.shape}")
        return np.require(array, self.dtype, ["C_CONTIGUOUS", "ALIGNED"])

    def _check_out(self, out):
        """Raises the error that says what is wrong with out."""
        dtype, shape = self.dtype, self._y_shape
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array of dtype {dtype} and shape {shape}, "
                            f"got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"out must have the stream's dtype {dtype}, got {out.dtype}")
        if out.shape != shape:
            meaning = "(H_out,)" if self._unbatched else "(batch_size, H_out)"
            raise ValueError(f"out must have shape {meaning} = {shape}, got {out.shape}")
        if not (out.flags.c_contiguous and out.flags.aligned and out.flags.writeable):
            raise ValueError("out must be a writeable, C-contiguous and aligned array")
