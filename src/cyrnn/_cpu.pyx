# cython: language_level=3
"""The instruction-set level of the C kernels (csrc/cpu_level.h)."""

cdef extern from "cpu_level.h" nogil:
    int cyrnn_kernel_level()
    int cyrnn_cpu_best_level()
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
