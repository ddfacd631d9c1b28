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
 * per output; the (64,256,4096) benchmark case waited on memory either way
 * (25.8-28.3 ms against 26.9-28.3; prefetching into L2 instead, or 12 KB
 * ahead, changed nothing) until its results streamed (below).
 *
 * Returns how many leading outputs it wrote (0 without AVX-512); the caller
 * does the rest. Reads row[0 .. 2 * done]: the windows must lie inside the
 * row. Asks for the input `ahead` bytes in front of each 32 outputs (the
 * hardware prefetcher alone left one thread waiting).
 *
 * `stream`: y's whole 64-byte lines are written with streaming stores (the
 * caller fences, pypool_store_fence), the partial lines at its ends with
 * ordinary ones. One thread waits on each line an ordinary store reads
 * first; when the result cannot stay in the caches that read is wasted
 * (1 thread, (64,256,4096): 28.0 -> 23.6 ms, 3 alternating runs). Only whole
 * lines stream: a row's partial last line, finished by ordinary stores,
 * would otherwise be flushed half-written and read again.
 */
#ifndef PYPOOL_ROW_MAX_H
#define PYPOOL_ROW_MAX_H

#include <stdint.h>
#include "_sums.h"    /* pypool_sums_avx512 (the AVX-512 switch), pypool_max_nan16 */
#include "_prefetch.h"

#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
#include <immintrin.h>

/* Outputs o .. o + 15 (row[2o .. 2o + 32]). */
PYPOOL_AVX512 static inline __m512 pypool_max3_s2_16(const float* row, int64_t o) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                           16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const float* p = row + 2 * o;
    __m512 lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
    __m512 e0 = _mm512_permutex2var_ps(lo, even, hi);    /* row[2o + 2i] */
    __m512 e1 = _mm512_permutex2var_ps(lo, odd, hi);     /* row[2o + 2i + 1] */
    /* row[2o + 2i + 2]: e0 moved down one lane, row[2o + 32] in the last */
    __m512 e2 = _mm512_castsi512_ps(_mm512_alignr_epi32(
        _mm512_castps_si512(_mm512_set1_ps(p[32])), _mm512_castps_si512(e0), 1));
    return pypool_max_nan16(pypool_max_nan16(e0, e1), e2);
}

PYPOOL_AVX512 static int64_t pypool_max3_s2_row_avx512(const float* row, float* y, int64_t n,
                                                      int64_t ahead, int stream) {
    int64_t o = 0, head = (int64_t)(((64 - ((uintptr_t)y & 63)) & 63) / sizeof(float));
    if (stream && ((uintptr_t)y & 3) == 0 && n >= head + 16) {
        /* the outputs before y's first line boundary, then whole lines */
        _mm512_mask_storeu_ps(y, (__mmask16)((1u << head) - 1), pypool_max3_s2_16(row, 0));
        for (o = head; o + 16 <= n; o += 16) {
            if (((o - head) & 31) == 0)
                pypool_prefetch_bytes((const char*)(row + 2 * o) + ahead,
                                      64 * (int64_t)sizeof(float));
            _mm512_stream_ps(y + o, pypool_max3_s2_16(row, o));
        }
        return o;
    }
    for (; o + 16 <= n; o += 16) {
        if ((o & 31) == 0)
            pypool_prefetch_bytes((const char*)(row + 2 * o) + ahead, 64 * (int64_t)sizeof(float));
        _mm512_storeu_ps(y + o, pypool_max3_s2_16(row, o));
    }
    return o;
}
#endif

static inline int64_t pypool_max3_s2_row_f32(const float* row, float* y, int64_t n,
                                             int64_t ahead, int stream) {
#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
    if (pypool_sums_avx512)
        return pypool_max3_s2_row_avx512(row, y, n, ahead, stream);
#endif
    (void)row; (void)y; (void)n; (void)ahead; (void)stream;
    return 0;
}

#endif
