# cython: language_level=3
"""How many threads the time loops use: OpenMP's setting, so OMP_NUM_THREADS
and threadpoolctl's `threadpool_limits(n, user_api="openmp")` apply, with
set_num_threads() as cyrnn's own global switch."""
cimport openmp


def get_num_threads():
    """Threads each step's work is split across (OpenMP's max threads)."""
    return openmp.omp_get_max_threads()


def set_num_threads(int n):
    """Sets OpenMP's thread count for cyrnn's time loops (all OpenMP code of
    this process that shares the runtime sees it too)."""
    if n < 1:
        raise ValueError(f"n must be a positive number of threads, got {n}")
    openmp.omp_set_num_threads(n)
