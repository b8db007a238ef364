"""Shared pieces of the cyrnn asv suites: problem sizes, models, inputs and
thread pinning.

asv runs every benchmark's setup() and timed function in the same process, so
setup() pins BLAS to one thread with threadpoolctl when it is installed (the
env_nobuild variables in asv.conf.json cover the case where it is not).
"""
import numpy as np

from cyrnn.layers import make_layer

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - env vars in asv.conf.json take over
    threadpool_info = threadpool_limits = None

#: (T, B, I, H): time steps, batch, input features, hidden units
SIZES = {
    "tiny": (100, 1, 16, 32),
    "small": (50, 16, 64, 128),
    "medium": (100, 32, 128, 256),
    "large": (100, 64, 512, 512),
}

#: the cell kinds, as names usable in asv parameter lists
CELLS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]

DTYPES = ["float32", "float64"]

BLAS_THREADS = 1
_limiter = None


def pin_threads(n=BLAS_THREADS):
    """Limit every BLAS (and OpenMP) pool loaded in this process to n threads.

    The limiter is kept alive at module level; threadpool_limits applies its
    limits when called and they stay in force until restored."""
    global _limiter
    if threadpool_limits is not None:
        _limiter = threadpool_limits(limits=n)


def pool_threads(user_api):
    """Largest thread count among the loaded pools of one kind, "blas" or
    "openmp" (None if threadpoolctl is missing or no such pool is loaded)."""
    if threadpool_info is None:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == user_api]
    return max(counts) if counts else None


def make_model(cell, input_size, hidden_size, num_layers=1, bidirectional=False,
               dtype="float32", seed=0):
    return make_layer(cell, input_size, hidden_size, num_layers=num_layers,
                      bidirectional=bidirectional, dtype=np.dtype(dtype), seed=seed)


def make_input(T, B, I, dtype="float32", seed=1):
    return np.random.default_rng(seed).standard_normal((T, B, I)).astype(dtype)


def random_lengths(T, B, seed=2):
    """Lengths uniform in [T/4, T], from a fixed seed."""
    return np.random.default_rng(seed).integers(max(1, T // 4), T + 1, size=B)


class Problem:
    """Base for the suites: builds model, x, dy (and lengths) in setup().

    Subclasses call self.build(...) from setup()."""

    def build(self, cell, size, dtype="float32", num_layers=1, bidirectional=False,
              lengths=False, warm=True):
        """warm=False leaves out the untimed warm-up passes and the stored
        tape; peakmem_* suites need that, since asv reports the process's
        high-water RSS, which setup() counts towards."""
        pin_threads()
        T, B, I, H = SIZES[size]
        D = 2 if bidirectional else 1
        self.model = make_model(cell, I, H, num_layers, bidirectional, dtype)
        self.x = make_input(T, B, I, dtype)
        self.lengths = random_lengths(T, B) if lengths else None
        self.dy = np.random.default_rng(3).standard_normal((T, B, D * H)).astype(dtype)
        self.tape = None
        if warm:
            # one untimed pass of each kind keeps first-call costs out of the timings
            self.model(self.x, lengths=self.lengths)
            _, _, self.tape = self.model.forward(self.x, lengths=self.lengths)
            self.model.backward(self.tape, self.dy)

    def inference(self):
        return self.model(self.x, lengths=self.lengths)

    def training_step(self):
        _, _, tape = self.model.forward(self.x, lengths=self.lengths)
        return self.model.backward(tape, self.dy)
