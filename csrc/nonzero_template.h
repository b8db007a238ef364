/* The nonzero values of one row of a relu RNN's state, in order, and the
 * offsets of their rows in a block's packed weights (part of step_template.h,
 * which defines V). A relu state is about half zeros (every unit whose
 * pre-activation is negative), and the recurrent product skips their
 * products: see rnn_sparse_rows.
 *
 * Written branch-free, at level 1 four values at a time: a compare, the
 * mask's pattern of lanes packed to the front by AVX's permutes, one store
 * of all lanes at the count so far. The scalar form (one value at a time,
 * the store unconditional, the count advanced by the test) took about 4
 * cycles a value on a Zen 5, a sixth of an RNN-relu step at medium size at
 * level 1; x86's level 0 (SSE2 has no such shuffle) keeps it, and level 2
 * does not skip zeros (isa.h). */

#if CYRNN_X86_DISPATCH && CYRNN_ISA_LEVEL == 1 && !defined(CYRNN_PICK4)
/* CYRNN_PICK4[m]: the lanes of a 4-bit mask m that are set, in order */
#define CYRNN_PICK4 cyrnn_pick4
static const int32_t cyrnn_pick4[16][4] __attribute__((aligned(16))) = {
    {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0},
    {2, 0, 0, 0}, {0, 2, 0, 0}, {1, 2, 0, 0}, {0, 1, 2, 0},
    {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0},
    {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3}};
#endif

/* The room nonzero_list needs for a row of K values: K, and the V past
 * them that its whole-vector stores may reach. */
static inline int FN(nonzero_list_room)(int K) { return K + V; }

/* Writes the values of h[0 .. K) that are not zero (NaN is not zero) to
 * vals and each one's k V to offs, both in order; returns their count.
 * Whole vectors are stored at the count: both arrays need room for
 * nonzero_list_room(K) entries, and what lies past the count is undefined. */
static inline __attribute__((always_inline)) int
FN(nonzero_list)(int K, const REAL *restrict h, REAL *restrict vals, int32_t *restrict offs)
{
    int c = 0, k = 0;
#if CYRNN_X86_DISPATCH && CYRNN_ISA_LEVEL == 1
    /* four values a turn: AVX2 permutes lanes by a vector of indices */
    __m128i at = _mm_mullo_epi32(_mm_set_epi32(3, 2, 1, 0), _mm_set1_epi32(V));
    for (; k + 4 <= K; k += 4, at = _mm_add_epi32(at, _mm_set1_epi32(4 * V))) {
        int m;
        __m128i pick;
#if CYRNN_DOUBLE
        __m256d v = _mm256_loadu_pd(h + k);
        m = _mm256_movemask_pd(_mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_NEQ_UQ));
        pick = _mm_load_si128((const __m128i *)CYRNN_PICK4[m]);
        /* lane i of doubles is lanes 2i and 2i + 1 of floats */
        __m256i two = _mm256_slli_epi64(_mm256_cvtepu32_epi64(pick), 1);
        __m256i pairs = _mm256_add_epi64(_mm256_or_si256(two, _mm256_slli_epi64(two, 32)),
                                         _mm256_set1_epi64x((int64_t)1 << 32));
        _mm256_storeu_pd(vals + c, _mm256_castps_pd(_mm256_permutevar8x32_ps(
                                       _mm256_castpd_ps(v), pairs)));
#else
        __m128 v = _mm_loadu_ps(h + k);
        m = _mm_movemask_ps(_mm_cmp_ps(v, _mm_setzero_ps(), _CMP_NEQ_UQ));
        pick = _mm_load_si128((const __m128i *)CYRNN_PICK4[m]);
        _mm_storeu_ps(vals + c, _mm_permutevar_ps(v, pick));
#endif
        _mm_storeu_si128((__m128i *)(offs + c),
                         _mm_castps_si128(_mm_permutevar_ps(_mm_castsi128_ps(at), pick)));
        c += __builtin_popcount(m);
    }
#endif
    for (; k < K; ++k) {
        vals[c] = h[k];
        offs[c] = k * V;
        c += h[k] != 0;
    }
    return c;
}
