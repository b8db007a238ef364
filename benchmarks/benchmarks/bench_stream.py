"""Streaming inference: one time step per call of model.stream().step, one
sequence (B = 1), as a sensor or a token generator feeds a layer (issue 20).

Sizes are the (I, H) of common.SIZES; a step's own cost is well under the
time of a call of model(x) on one step, so asv repeats it many times per
sample. compare.py --step times the same against torch, onnxruntime and the
gemv of the weights.
"""
import numpy as np

from .common import CELLS, DTYPES, SIZES, make_input, make_model, pin_threads

STEP_SIZES = ["tiny", "small"]


class StreamStep:
    """y = stream.step(x): a fresh y each step, or written into out."""

    params = [CELLS, STEP_SIZES, DTYPES]
    param_names = ["cell", "size", "dtype"]

    def setup(self, cell, size, dtype):
        pin_threads()
        _, _, I, H = SIZES[size]
        self.stream = make_model(cell, I, H, dtype=dtype).stream()
        self.x = make_input(1, 1, I, dtype)[0]
        self.out = np.empty((1, H), dtype)
        self.stream.step(self.x)  # the first step's costs out of the timings

    def time_step(self, cell, size, dtype):
        self.stream.step(self.x)

    def time_step_out(self, cell, size, dtype):
        self.stream.step(self.x, out=self.out)


class MakeStream:
    """model.stream(): its checks and buffers, with the weights' packing made
    by an earlier call (as for every stream of a model after its first)."""

    params = [["LSTM", "GRU"], STEP_SIZES]
    param_names = ["cell", "size"]

    def setup(self, cell, size):
        pin_threads()
        _, _, I, H = SIZES[size]
        self.model = make_model(cell, I, H)
        self.model.stream()

    def time_make_stream(self, cell, size):
        self.model.stream()
