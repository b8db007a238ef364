"""Inference and one training step of every cell kind, across sizes and dtypes.

Sizes are (T, B, I, H) from common.SIZES; `large` runs in float32 only (its
float64 combinations are skipped, shown as n/a) to keep the suite short.
"""
from .common import CELLS, DTYPES, SIZES, Problem, pin_threads, pool_threads


def _skip_large_float64(size, dtype):
    if size == "large" and dtype == "float64":
        raise NotImplementedError("size 'large' runs in float32 only")


class Inference(Problem):
    """y, h_n = model(x): no tape, no dropout."""

    params = [CELLS, list(SIZES), DTYPES]
    param_names = ["cell", "size", "dtype"]
    timeout = 180

    def setup(self, cell, size, dtype):
        _skip_large_float64(size, dtype)
        self.build(cell, size, dtype)

    def time_inference(self, cell, size, dtype):
        self.inference()


class TrainingStep(Problem):
    """y, hn, tape = model.forward(x); model.backward(tape, dy), and its two halves."""

    params = [CELLS, list(SIZES), DTYPES]
    param_names = ["cell", "size", "dtype"]
    timeout = 300

    def setup(self, cell, size, dtype):
        _skip_large_float64(size, dtype)
        self.build(cell, size, dtype)

    def time_training_step(self, cell, size, dtype):
        self.training_step()

    def time_forward_with_tape(self, cell, size, dtype):
        self.model.forward(self.x)

    def time_backward(self, cell, size, dtype):
        # a tape may be replayed: backward leaves it (and the model) unchanged
        self.model.backward(self.tape, self.dy)


class Threads:
    """Records how many threads the BLAS and OpenMP pools (cyrnn's time loops
    use OpenMP) run with once the suites have pinned them: 1 expected; a
    timing taken with more is not comparable. NaN: pool not found."""

    def setup(self):
        pin_threads()

    def track_blas_threads(self):
        n = pool_threads("blas")
        return float("nan") if n is None else n

    track_blas_threads.unit = "threads"

    def track_openmp_threads(self):
        n = pool_threads("openmp")
        return float("nan") if n is None else n

    track_openmp_threads.unit = "threads"
