# cython: language_level=3
"""The instruction-set level of the C kernels (csrc/cpu_level.h), and
whether BLAS's products outpace them."""
import os

cdef extern from "cpu_level.h" nogil:
    int cyrnn_kernel_level()
    int cyrnn_cpu_best_level()
    int cyrnn_cpu_has_avx()
    int cyrnn_cpu_is_amd()
    const char *cyrnn_kernel_level_name(int level)
    int cyrnn_kernel_vector_bytes(int level)
    int CYRNN_X86_DISPATCH


def kernel_level():
    """The level the kernels run: 2 AVX-512, 1 AVX2 + FMA, 0 the build's
    baseline (SSE2 on x86-64, NEON on aarch64)."""
    return cyrnn_kernel_level()


def cpu_best_level():
    """The best level this CPU runs, whatever CYRNN_CPU_LEVEL says."""
    return cyrnn_cpu_best_level()


def level_name(int level):
    return cyrnn_kernel_level_name(level).decode()


def vector_bytes(int level):
    """The width of the kernels' vectors at `level`, in bytes."""
    return cyrnn_kernel_vector_bytes(level)


def has_dispatch():
    """Whether this build picks the level at run time (x86-64, GCC or clang)."""
    return bool(CYRNN_X86_DISPATCH)


# A training forward pass stores a direction's tape past the caches from this
# size up (at the levels whose vectors are whole cache lines, csrc/isa.h): a
# tape that would not stay in the caches until BPTT reads it evicts the
# weights on its way through. About one L2 on Intel: on a Sapphire Rapids,
# training steps of a small and a medium LSTM and a medium GRU ran 2-2.5%
# faster streamed, a tiny LSTM's 77 kB tape 8% slower. On AMD's Zen the L3
# (32 MB a CCD) keeps what the L2s evict and gives a tape of a few MB back
# faster than memory: on an EPYC (Zen 5), AVX-512, alternating processes, the
# small LSTM's training step (a 2.5 MB tape) ran 9% faster kept, T = 100
# (4.9 MB) the same either way, and tapes of 9.8 and 19.7 MB (the medium
# LSTM) 2-3% faster streamed.
STREAM_TAPE_BYTES = 1 << 20
STREAM_TAPE_BYTES_AMD = 4 << 20


def stream_tape_bytes():
    """The size from which a direction's tape is streamed past the caches."""
    return STREAM_TAPE_BYTES_AMD if cyrnn_cpu_is_amd() else STREAM_TAPE_BYTES


# OpenBLAS's names of x86-64 cores without AVX (OPENBLAS_CORETYPE), lower case
_CORES_WITHOUT_AVX = frozenset((
    "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "opteron",
    "opteron_sse3", "barcelona", "bobcat", "nano"))


def blas_core_without_avx():
    """Whether OPENBLAS_CORETYPE holds OpenBLAS's kernels to a core without
    AVX (benchmarks/compare.py --cpu-level 0 does, to cap BLAS as it caps
    cyrnn and torch)."""
    return os.environ.get("OPENBLAS_CORETYPE", "").strip().lower() in _CORES_WITHOUT_AVX


def blas_outpaces_kernels():
    """Whether BLAS's products beat the kernels' own: at level 0 (SSE2, 4
    floats a vector, no FMA) on a CPU with AVX, whose vectors BLAS uses
    (x86-64's AVX2 and AVX-512 CPUs capped by CYRNN_CPU_LEVEL=0, and AVX
    ones without AVX2, such as Sandy Bridge). Measured: a step's product at
    B=16, H=128 runs 33 GFLOP/s in the SSE2 kernel, 105 in scipy's OpenBLAS
    on AVX-512 and 76 on AVX2; at levels 1 and 2, BLAS's products were
    slower than the kernels'."""
    return (cyrnn_kernel_level() == 0 and bool(cyrnn_cpu_has_avx())
            and not blas_core_without_avx())


PRODUCTS_ENV = "CYRNN_PRODUCTS"
_PRODUCTS_CHOICES = ("blas", "kernels")
cdef int _blas_runs = -1


def requested_products():
    """CYRNN_PRODUCTS's "blas" or "kernels", or None (unset or anything else:
    the choice is then blas_outpaces_kernels')."""
    value = os.environ.get(PRODUCTS_ENV, "").strip().lower()
    return value if value in _PRODUCTS_CHOICES else None


def blas_runs_products():
    """Whether BLAS runs the products rather than the kernels, chosen once
    per process: as CYRNN_PRODUCTS asks, else where BLAS outpaces them. The
    variable is for CPUs whose BLAS is faster than cyrnn could measure here
    (Apple's Accelerate, ARM cores with SVE) and for testing either path on
    any CPU."""
    global _blas_runs
    if _blas_runs < 0:
        requested = requested_products()
        _blas_runs = (requested == "blas" if requested is not None
                      else blas_outpaces_kernels())
    return bool(_blas_runs)


# The weights (G*H*(in_size + Hout) elements) from which a layer's chunk
# products run faster in BLAS than in the kernels at level 1
BLAS_GRADIENT_WEIGHTS = 1 << 18
cdef Py_ssize_t _NEVER = (<Py_ssize_t>1) << 62
cdef Py_ssize_t _blas_gradients_from = -1  # the fewest weights that BLAS runs


def blas_runs_gradients(Py_ssize_t weights):
    """Whether BLAS runs BPTT's products over a chunk of steps (dx and the
    weight gradients) rather than the kernels, for a layer of `weights`
    weights: wherever BLAS runs every product (blas_runs_products), and at
    level 1 (AVX2) from BLAS_GRADIENT_WEIGHTS up, unless
    CYRNN_PRODUCTS=kernels. A chunk's products are GEMMs of some 256 rows,
    which OpenBLAS's AVX2 kernel runs at 110-117 GFLOP/s where the kernels'
    tiles reach 87-96. Measured with OpenBLAS held to Haswell, alternating
    runs, training steps at 1 thread: LSTM large 182 -> 170 ms, medium 86.4
    -> 83.7, GRU medium 62.2 -> 59.8; at 2 threads LSTM large 92.8 -> 89.2,
    medium 45.8 -> 47.1. Below the threshold BLAS's packing of dg costs
    more than it gains (the small LSTM, 98k weights: 3% slower), and with
    AVX-512 the kernels keep up with BLAS (LSTM large 2% faster, small 5%
    slower)."""
    global _blas_gradients_from
    if _blas_gradients_from < 0:  # chosen once per process, as blas_runs_products
        if requested_products() is not None or blas_runs_products():
            _blas_gradients_from = 0 if blas_runs_products() else _NEVER
        elif has_dispatch() and cyrnn_kernel_level() == 1:
            _blas_gradients_from = BLAS_GRADIENT_WEIGHTS
        else:
            _blas_gradients_from = _NEVER
    return weights >= _blas_gradients_from
