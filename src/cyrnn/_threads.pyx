# cython: language_level=3
"""How many threads the time loops use.

One, unless asked for more: cyrnn.set_num_threads(n) for the whole process,
or the OMP_NUM_THREADS environment variable. OpenMP's current limit for the
calling thread (which threadpoolctl's `threadpool_limits(n,
user_api="openmp")` lowers) caps either.

Why not all cores by default: BLAS thread pools (numpy's and scipy's
OpenBLAS) keep spinning for a while after each call; a multi-threaded time
loop that starts beside them stalls at every step's synchronisation. With
several cyrnn threads, keep BLAS at one thread (threadpoolctl or
OPENBLAS_NUM_THREADS=1): cyrnn splits its own big products over its threads.

A build without OpenMP runs on one thread whatever is asked."""
import os
import warnings

cdef extern from "openmp_or_serial.h" nogil:
    int omp_get_max_threads()
    int omp_get_num_procs()
    int CYRNN_OPENMP_VERSION

OPENMP_VERSION = CYRNN_OPENMP_VERSION  # _OPENMP's yyyymm, 0 without OpenMP

cdef int _fixed = 0
cdef bint _from_environment = bool(os.environ.get("OMP_NUM_THREADS", "").strip())


def get_num_threads():
    """Threads each step's work is split across."""
    cdef int limit = omp_get_max_threads()
    if not CYRNN_OPENMP_VERSION:
        return 1
    if _fixed > 0:
        return min(_fixed, limit) if limit < omp_get_num_procs() else _fixed
    return limit if _from_environment else 1


def set_num_threads(n):
    """Sets the thread count of cyrnn's time loops for the whole process (any
    Python thread that calls a model); None returns to the default."""
    global _fixed
    if n is None:
        _fixed = 0
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of threads or None, got {n!r}")
    if n > 1 and not CYRNN_OPENMP_VERSION:
        warnings.warn("cyrnn was built without OpenMP: it runs on one thread",
                      RuntimeWarning, stacklevel=2)
    _fixed = n
