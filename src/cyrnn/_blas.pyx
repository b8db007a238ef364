# cython: language_level=3, boundscheck=False, wraparound=False
"""Row-major gemm on top of scipy's Fortran (column-major) BLAS.

A row-major matrix is the transpose of the same memory read column-major, so
C = op(A) op(B) in row-major order is C^T = op(B)^T op(A)^T in column-major
order: the operands swap places and keep their transpose flags.
"""
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating *a, int lda,
               const floating *b, int ldb,
               floating beta, floating *c, int ldc) noexcept nogil:
    """C (m x n) = alpha op(A) (m x k) op(B) (k x n) + beta C, row-major."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *>b, &ldb,
              <float *>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *>b, &ldb,
              <double *>a, &lda, &beta, c, &ldc)

