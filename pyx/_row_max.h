/* Max of 3-wide stride-2 windows along one contiguous float32 row (max1d
 * k3 s2, and 2-D or 3-D windows one row high) on AVX-512 CPUs:
 *
 *     y[o] = max_nan(max_nan(row[2o], row[2o + 1]), row[2o + 2])
 *
 * max_nan as in forward.pxi (v > m ? v : m, then v where v is NaN), in the
 * same order, so the results are those of the scalar loop bit for bit.
 *
 * GCC's AVX2 code for the scalar loop gathers the even and odd elements with
 * six permutes and three blends per 8 outputs; here two two-source permutes
 * and an align give 16 outputs. In L2 ((1,48,4096), 1 thread) 0.64 -> 0.44 ns
 * per output; the (64,256,4096) benchmark case waits on memory either way
 * (25.8-28.3 ms against 26.9-28.3; prefetching into L2 instead, or 12 KB
 * ahead, changed nothing).
 *
 * Returns how many leading outputs it wrote (a multiple of 16; 0 without
 * AVX-512); the caller does the rest. Reads row[0 .. 2 * done]: the windows
 * must lie inside the row. Asks for the input `ahead` bytes in front of
 * each 32 outputs (the hardware prefetcher alone left one thread waiting).
 */
#ifndef PYPOOL_ROW_MAX_H
#define PYPOOL_ROW_MAX_H

#include <stdint.h>
#include "_sums.h"    /* pypool_sums_avx512 (the AVX-512 switch), pypool_max_nan16 */
#include "_prefetch.h"

#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
#include <immintrin.h>

PYPOOL_AVX512 static int64_t pypool_max3_s2_row_avx512(const float* row, float* y, int64_t n,
                                                      int64_t ahead) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                           16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int64_t o;
    for (o = 0; o + 16 <= n; o += 16) {
        const float* p = row + 2 * o;
        if ((o & 31) == 0)
            pypool_prefetch_bytes((const char*)p + ahead, 64 * (int64_t)sizeof(float));
        __m512 lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
        __m512 e0 = _mm512_permutex2var_ps(lo, even, hi);    /* row[2o + 2i] */
        __m512 e1 = _mm512_permutex2var_ps(lo, odd, hi);     /* row[2o + 2i + 1] */
        /* row[2o + 2i + 2]: e0 moved down one lane, row[2o + 32] in the last */
        __m512 e2 = _mm512_castsi512_ps(_mm512_alignr_epi32(
            _mm512_castps_si512(_mm512_set1_ps(p[32])), _mm512_castps_si512(e0), 1));
        _mm512_storeu_ps(y + o, pypool_max_nan16(pypool_max_nan16(e0, e1), e2));
    }
    return o;
}
#endif

static inline int64_t pypool_max3_s2_row_f32(const float* row, float* y, int64_t n,
                                             int64_t ahead) {
#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
    if (pypool_sums_avx512)
        return pypool_max3_s2_row_avx512(row, y, n, ahead);
#endif
    (void)row; (void)y; (void)n; (void)ahead;
    return 0;
}

#endif
