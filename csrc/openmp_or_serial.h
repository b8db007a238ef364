/* OpenMP's thread queries, or their one-thread answers where the compiler
 * has no OpenMP (Apple's clang): cyrnn then runs every loop on one thread. */
#ifndef CYRNN_OPENMP_OR_SERIAL_H
#define CYRNN_OPENMP_OR_SERIAL_H

#ifdef _OPENMP
#include <omp.h>
#define CYRNN_OPENMP_VERSION _OPENMP
#else
#define CYRNN_OPENMP_VERSION 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
#endif

#endif
