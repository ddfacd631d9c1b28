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
 * Returns how many leading outputs it wrote: all n (the last few from masked
 * loads and stores), or 0 without AVX-512, when the caller does them. Reads
 * row[0 .. 2n] only: the windows must lie inside the row. Asks for the input
 * `ahead` bytes in front of each 32 outputs (the hardware prefetcher alone
 * left one thread waiting).
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

/* Lanes 0 .. n - 1 (none for n <= 0, all for n >= 16). */
static inline __mmask16 pypool_first_lanes16(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* 16 outputs of 3-wide stride-2 windows from 33 values: lo, hi (values
 * 0 .. 31) and lane 0 of next (value 32). */
PYPOOL_AVX512 static inline __m512 pypool_triples16(__m512 lo, __m512 hi, __m512 next) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                           16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512 e0 = _mm512_permutex2var_ps(lo, even, hi);    /* values 2i */
    __m512 e1 = _mm512_permutex2var_ps(lo, odd, hi);     /* values 2i + 1 */
    /* values 2i + 2: e0 moved down one lane, value 32 in the last */
    __m512 e2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next),
                                                        _mm512_castps_si512(e0), 1));
    return pypool_max_nan16(pypool_max_nan16(e0, e1), e2);
}

/* Outputs o .. o + 15 (row[2o .. 2o + 32]). */
PYPOOL_AVX512 static inline __m512 pypool_max3_s2_16(const float* row, int64_t o) {
    const float* p = row + 2 * o;
    return pypool_triples16(_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16), _mm512_set1_ps(p[32]));
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

/* The last n - o (< 16) outputs, from masked loads of row[2o .. 2n] (value
 * 32 of the triples is not needed). */
PYPOOL_AVX512 static inline void pypool_max3_s2_tail(const float* row, float* y, int64_t o,
                                                    int64_t n) {
    int64_t cols = 2 * (n - o) + 1;
    const float* p = row + 2 * o;
    __m512 lo = _mm512_maskz_loadu_ps(pypool_first_lanes16(cols), p);
    __m512 hi = _mm512_maskz_loadu_ps(pypool_first_lanes16(cols - 16), p + 16);
    _mm512_mask_storeu_ps(y + o, pypool_first_lanes16(n - o),
                          pypool_triples16(lo, hi, _mm512_setzero_ps()));
}

PYPOOL_AVX512 static int64_t pypool_max3_s2_all_avx512(const float* row, float* y, int64_t n,
                                                      int64_t ahead, int stream) {
    int64_t o = pypool_max3_s2_row_avx512(row, y, n, ahead, stream);
    if (o < n)
        pypool_max3_s2_tail(row, y, o, n);
    return n;
}

/* Column maxima of 2 or 3 rows (r2 NULL for 2) of W columns, columns c .. c + 15,
 * in column_triples_row's order; columns outside the rows (padding) are -inf,
 * and nothing outside them is read. */
PYPOOL_AVX512 static inline __m512 pypool_column_max16(const float* r0, const float* r1,
                                                      const float* r2, int64_t W, int64_t c) {
    __m512 m;
    if (c >= 0 && c + 16 <= W) {
        m = pypool_max_nan16(_mm512_loadu_ps(r0 + c), _mm512_loadu_ps(r1 + c));
        return r2 ? pypool_max_nan16(m, _mm512_loadu_ps(r2 + c)) : m;
    }
    const __m512 pad = _mm512_set1_ps(-__builtin_inff());
    __mmask16 k = (__mmask16)(pypool_first_lanes16(W - c) & ~pypool_first_lanes16(-c));
    m = pypool_max_nan16(_mm512_mask_loadu_ps(pad, k, r0 + c), _mm512_mask_loadu_ps(pad, k, r1 + c));
    return r2 ? pypool_max_nan16(m, _mm512_mask_loadu_ps(pad, k, r2 + c)) : m;
}

PYPOOL_AVX512 static int64_t pypool_max3_s2_rows_avx512(const float* r0, const float* r1,
                                                       const float* r2, int64_t W, int64_t c0,
                                                       float* y, int64_t n) {
    int64_t o;
    __m512 lo = pypool_column_max16(r0, r1, r2, W, c0), hi, next;
    for (o = 0; o < n; o += 16) {
        hi = pypool_column_max16(r0, r1, r2, W, c0 + 2 * o + 16);
        next = pypool_column_max16(r0, r1, r2, W, c0 + 2 * o + 32);
        if (o + 16 <= n)
            _mm512_storeu_ps(y + o, pypool_triples16(lo, hi, next));
        else
            _mm512_mask_storeu_ps(y + o, pypool_first_lanes16(n - o), pypool_triples16(lo, hi, next));
        lo = next;
    }
    return n;
}

/* Column maxima of nrows rows (any number), columns c .. c + 15, in order
 * (as pypool_column_max16 for 2 or 3), padding -inf. */
PYPOOL_AVX512 static inline __m512 pypool_column_max16_of(const float* const* rows,
                                                         int64_t nrows, int64_t W, int64_t c) {
    const __m512 pad = _mm512_set1_ps(-__builtin_inff());
    __mmask16 k = (__mmask16)0xFFFF;
    if (!(c >= 0 && c + 16 <= W))
        k = (__mmask16)(pypool_first_lanes16(W - c) & ~pypool_first_lanes16(-c));
    __m512 m = _mm512_mask_loadu_ps(pad, k, rows[0] + c);
    for (int64_t j = 1; j < nrows; j++)
        m = pypool_max_nan16(m, _mm512_mask_loadu_ps(pad, k, rows[j] + c));
    return m;
}

/* pypool_max3_s2_rows_avx512 over nrows >= 1 rows (3-D windows: a row of
 * each depth slice's rows, depth first), the column maxima folded in row
 * order as column_triples_row folds them. max3d 3x3x3 s2 p1 (8,32,32,64,64),
 * 1 thread: 19.6 -> 8.9 ms. */
PYPOOL_AVX512 static int64_t pypool_max3_s2_many_rows_avx512(const float* const* rows,
                                                            int64_t nrows, int64_t W,
                                                            int64_t c0, float* y, int64_t n) {
    __m512 lo = pypool_column_max16_of(rows, nrows, W, c0), hi, next;
    for (int64_t o = 0; o < n; o += 16) {
        hi = pypool_column_max16_of(rows, nrows, W, c0 + 2 * o + 16);
        next = pypool_column_max16_of(rows, nrows, W, c0 + 2 * o + 32);
        if (o + 16 <= n)
            _mm512_storeu_ps(y + o, pypool_triples16(lo, hi, next));
        else
            _mm512_mask_storeu_ps(y + o, pypool_first_lanes16(n - o), pypool_triples16(lo, hi, next));
        lo = next;
    }
    return n;
}

/* The same for 3-wide windows at stride 1: output o reads columns
 * c0 + o .. c0 + o + 2, y[o] = max_nan(max_nan(c[c0 + o], c[c0 + o + 1]),
 * c[c0 + o + 2]), the order of the plane path's fold_row and
 * horizontal_max. Each 16 column maxima serve two blocks of outputs; the
 * shifted columns come from aligns. 1 thread, max 3x3 s1 p1
 * (8,64,112,112): 4.85 -> 1.49 ms (before: the plane path's column pass to
 * a buffer, then its taps one column shift at a time). */
PYPOOL_AVX512 static int64_t pypool_max3_s1_rows_avx512(const float* r0, const float* r1,
                                                       const float* r2, int64_t W, int64_t c0,
                                                       float* y, int64_t n) {
    __m512 lo = pypool_column_max16(r0, r1, r2, W, c0), hi;
    for (int64_t o = 0; o < n; o += 16) {
        hi = pypool_column_max16(r0, r1, r2, W, c0 + o + 16);
        __m512 e1 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi),
                                                            _mm512_castps_si512(lo), 1));
        __m512 e2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(hi),
                                                            _mm512_castps_si512(lo), 2));
        __m512 m = pypool_max_nan16(pypool_max_nan16(lo, e1), e2);
        if (o + 16 <= n)
            _mm512_storeu_ps(y + o, m);
        else
            _mm512_mask_storeu_ps(y + o, pypool_first_lanes16(n - o), m);
        lo = hi;
    }
    return n;
}
#endif

/* A whole output row of 3-wide windows at stride 2 (or 1:
 * pypool_max3_s1_rows_avx512) over 2 or 3 rows of W columns (r2 NULL for
 * 2); output o reads columns c0 + 2o .. c0 + 2o + 2, those outside the rows
 * being padding:
 *
 *     y[o] = max_nan(max_nan(c[c0 + 2o], c[c0 + 2o + 1]), c[c0 + 2o + 2]),
 *     c[i] = max_nan(max_nan(r0[i], r1[i]), r2[i]), -inf outside [0, W)
 *
 * The order of column_triples_row and triple_edges, bit for bit (an output's
 * -inf padding changes nothing there: max_nan(-inf, v) and max_nan(v, -inf)
 * are v), with the column maxima kept in registers. Reads the rows only
 * (vectors reaching past them are masked). Returns n, or 0 without AVX-512
 * or for other strides.
 * 1 thread, max 3x3 s2 p1 (1,64,112,112), in cache: 0.78 -> 0.54 ns per
 * output (before: the column pass to a buffer in GCC's AVX2 code, then the
 * picks, and the edges tap by tap). */
static inline int64_t pypool_max3_rows_f32(const float* r0, const float* r1, const float* r2,
                                           int64_t W, int64_t c0, int64_t stride, float* y,
                                           int64_t n) {
#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
    if (pypool_sums_avx512 && stride == 2)
        return pypool_max3_s2_rows_avx512(r0, r1, r2, W, c0, y, n);
    if (pypool_sums_avx512 && stride == 1)
        return pypool_max3_s1_rows_avx512(r0, r1, r2, W, c0, y, n);
#endif
    (void)r0; (void)r1; (void)r2; (void)W; (void)c0; (void)stride; (void)y; (void)n;
    return 0;
}

/* pypool_max3_s2_many_rows_avx512 where the CPU has AVX-512, else 0. */
static inline int64_t pypool_max3_s2_many_rows_f32(const float* const* rows, int64_t nrows,
                                                   int64_t W, int64_t c0, float* y, int64_t n) {
#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
    if (pypool_sums_avx512)
        return pypool_max3_s2_many_rows_avx512(rows, nrows, W, c0, y, n);
#endif
    (void)rows; (void)nrows; (void)W; (void)c0; (void)y; (void)n;
    return 0;
}

static inline int64_t pypool_max3_s2_row_f32(const float* row, float* y, int64_t n,
                                             int64_t ahead, int stream) {
#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
    if (pypool_sums_avx512)
        return pypool_max3_s2_all_avx512(row, y, n, ahead, stream);
#endif
    (void)row; (void)y; (void)n; (void)ahead; (void)stream;
    return 0;
}

#endif
