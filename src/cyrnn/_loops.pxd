# What the forward and BPTT time loops share: how many threads a product is
# worth, the barrier between a step's phases, and a thread's share of a
# packing. Inline, so each loop module compiles its own copy.
from cython cimport floating

from cyrnn._kernels cimport pack_weight_blocks, packed_blocks

cdef extern from *:
    """
    /* An orphaned barrier binds to the enclosing parallel region, which
     * Cython's parallel() blocks cannot name themselves. */
    static void cyrnn_omp_barrier(void)
    {
    #pragma omp barrier
    }
    """
    void omp_barrier "cyrnn_omp_barrier"() noexcept nogil


cdef inline int threads_for(int max_threads, int blocks, double flops) noexcept nogil:
    """Threads to share `blocks` unit blocks of a product of about `flops`
    multiply-adds: one below a million, where waking a team costs more than
    it saves (measured on the per-step products)."""
    return min(max_threads, blocks) if flops >= 1e6 else 1


cdef inline void pack_share(int chunk, int threads, int G, int H, int K, const floating *w,
                            Py_ssize_t row_stride, Py_ssize_t col_stride,
                            floating *packed) noexcept nogil:
    """Thread `chunk`'s share of the unit blocks of pack_weights(G, H, K, w,
    row_stride, col_stride, packed)."""
    cdef int blocks = packed_blocks(H, <floating *>NULL)
    if H > 0:
        pack_weight_blocks(G, H, K, w, row_stride, col_stride, chunk * blocks // threads,
                           (chunk + 1) * blocks // threads, packed)
