/* Instantiates the template named by CYRNN_TEMPLATE (a .c file defines it,
 * then includes this).
 *
 * A template has two parts. Its kernels (everything outside
 * `#ifdef CYRNN_ENTRY_POINTS`) are compiled once per level and type
 * (instantiate_level.h), each time for that level's instruction set and
 * vector width: FN(name) is then name_<level>_<type>, e.g.
 * cyrnn_cell_step_avx2_f, and static. Its entry points (inside
 * `#ifdef CYRNN_ENTRY_POINTS`) are compiled once per type: FN(name) is
 * name_<type>, the exported cyrnn_kernels.h function, which calls
 * CYRNN_PICK(name), the variant of the level in use (cpu_level.h). */
#include <stdint.h>
#include <string.h>
#include "cyrnn_kernels.h"
#include "cpu_level.h"
#include "isa.h"
#if CYRNN_X86_DISPATCH
#include <immintrin.h>
#endif

#define CYRNN_PASTE_(a, b) a##b
#define CYRNN_PASTE(a, b) CYRNN_PASTE_(a, b)
#define CYRNN_CAT3_(a, b, c) a##_##b##_##c
#define CYRNN_CAT3(a, b, c) CYRNN_CAT3_(a, b, c)
#define CYRNN_CAT_(a, b) a##_##b
#define CYRNN_CAT(a, b) CYRNN_CAT_(a, b)

/* The kernels of every level this build dispatches to. */
#if CYRNN_X86_DISPATCH
#define CYRNN_ISA avx512
#define CYRNN_ISA_LEVEL 2
#include "instantiate_level.h"
#undef CYRNN_ISA
#undef CYRNN_ISA_LEVEL
#define CYRNN_ISA avx2
#define CYRNN_ISA_LEVEL 1
#include "instantiate_level.h"
#undef CYRNN_ISA
#undef CYRNN_ISA_LEVEL
#endif
#define CYRNN_ISA base
#define CYRNN_ISA_LEVEL 0
#include "instantiate_level.h"
#undef CYRNN_ISA
#undef CYRNN_ISA_LEVEL

/* The entry points. */
#define CYRNN_ENTRY_POINTS
#define FN(name) CYRNN_CAT(name, SFX)
#if CYRNN_X86_DISPATCH
#define CYRNN_PICK(name)                                                       \
    (cyrnn_kernel_level() == 2   ? CYRNN_CAT3(name, avx512, SFX)               \
     : cyrnn_kernel_level() == 1 ? CYRNN_CAT3(name, avx2, SFX)                 \
                                 : CYRNN_CAT3(name, base, SFX))
#else
#define CYRNN_PICK(name) CYRNN_CAT3(name, base, SFX)
#endif
#define CYRNN_DOUBLE 0
#include "real.h"
#include CYRNN_TEMPLATE
#undef CYRNN_DOUBLE
#define CYRNN_DOUBLE 1
#include "real.h"
#include CYRNN_TEMPLATE
#undef CYRNN_DOUBLE
