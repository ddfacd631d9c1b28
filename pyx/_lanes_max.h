/* Max pooling values on the lanes path (channels_last), float32: the maxima of
 * 64 (AVX-512), 32 or 8 consecutive lanes over all of an output's taps, kept
 * in registers.
 *
 * The generic loop folds each tap into an accumulator array, which the
 * compiler keeps in memory: a load and a store per vector per tap. Here the
 * accumulators stay in registers across the taps. The fold is the same as
 * max_nan (forward.pxi): m = (v > m ? v : m), then v where v is NaN, taps
 * in the caller's (row-major) order, so results are identical.
 *
 * base is the output's first column; the taps (pypool_lane_taps) are taken
 * row by row. Their rows are listed once per output row, not per output
 * (the per-output list took a fifth of the time). Returns how many leading
 * lanes were done (a multiple of 8; 0 without AVX2), the caller does the rest.
 *
 * stream: write whole vectors with streaming stores where the outputs are
 * 16-byte aligned (results of STREAM_MIN_BYTES and more, forward.pxi: with
 * 64 channels, (32,112,112,64) 3x3 s2 with indices, 1 thread, 7.4 -> 6.0
 * ms). The caller fences once its task is done.
 */
#ifndef PYPOOL_LANES_MAX_H
#define PYPOOL_LANES_MAX_H

#include <stdint.h>

#define PYPOOL_LANE_ROWS_MAX 64

/* An output's taps: ncols columns, col_step apart, of each of nrows window
 * rows; tap (r, c) starts at rows[r] + c * col_step (from the output's
 * first column) and has the flat index flats[r] + flat0 + c * flat_step.
 * rows and flats hold for a whole output row; ncols and flat0 change with
 * the column. */
typedef struct {
    int64_t rows[PYPOOL_LANE_ROWS_MAX];
    int32_t flats[PYPOOL_LANE_ROWS_MAX];
    int64_t nrows, ncols, col_step, flat0, flat_step;
} pypool_lane_taps;
#ifdef __AVX2__
#include <immintrin.h>
#include <math.h>
#include "_sums.h"    /* pypool_sums_avx512: the AVX-512 switch */
#include "_stream.h"

static inline __m256 pypool_max_nan8(__m256 m, __m256 v) {
    __m256 r = _mm256_max_ps(v, m);    /* v > m ? v : m (m on NaN or tie) */
    return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

#ifdef PYPOOL_SUMS_HAVE_AVX512
/* 32 lanes (or the first n) from p: two vectors, masked when n < 32. */
PYPOOL_AVX512 static inline void pypool_lanes_load32(const float* p, int64_t n, __m512* v0,
                                                     __m512* v1) {
    if (n >= 32) {
        *v0 = _mm512_loadu_ps(p);
        *v1 = _mm512_loadu_ps(p + 16);
    } else {
        *v0 = _mm512_maskz_loadu_ps(n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1), p);
        *v1 = _mm512_maskz_loadu_ps(n <= 16 ? (__mmask16)0 : (__mmask16)((1u << (n - 16)) - 1),
                                    p + 16);
    }
}

/* 64 bytes to p (16-byte aligned) by streaming stores, a quarter at a time. */
PYPOOL_AVX512 static inline void pypool_lanes_stream64(void* p, __m512i v) {
    __m128i* q = (__m128i*)p;
    _mm_stream_si128(q, _mm512_castsi512_si128(v));
    _mm_stream_si128(q + 1, _mm512_extracti32x4_epi32(v, 1));
    _mm_stream_si128(q + 2, _mm512_extracti32x4_epi32(v, 2));
    _mm_stream_si128(q + 3, _mm512_extracti32x4_epi32(v, 3));
}

/* One block of up to 16 * NV lanes of pypool_lanes_max_avx512 (n of them).
 * NV is a constant where inlined, so that blocks of fewer lanes (channels
 * a multiple of 16 below 64) load, compare and store only their own
 * vectors. */
PYPOOL_AVX512 static inline __attribute__((always_inline)) void pypool_lanes_max_block(
        const float* base, const pypool_lane_taps* taps, int64_t l, int64_t n, float* out,
        int stream, const int NV) {
    const __m512 lowest = _mm512_set1_ps(-INFINITY);
    int64_t r, c;
    int j;
    __mmask16 k[4];
    __m512 a[4] = {lowest, lowest, lowest, lowest};
    for (j = 0; j < NV; j++)
        k[j] = n >= 16 * (j + 1) ? (__mmask16)0xffff : (__mmask16)((1u << (n - 16 * j)) - 1);
    /* the lanes ordered so far, vectors 0 and 1 (or 0 alone), 2 and 3 */
    __mmask16 ordered01 = k[0], ordered23 = NV > 2 ? k[2] : 0;
    for (r = 0; r < taps->nrows; r++)
        for (c = 0; c < taps->ncols; c++) {
            const float* p = base + taps->rows[r] + c * taps->col_step + l;
            __m512 v[4];
            for (j = 0; j < NV; j++) {
                v[j] = _mm512_maskz_loadu_ps(k[j], p + 16 * j);
                a[j] = _mm512_max_ps(v[j], a[j]);
            }
            ordered01 = _mm512_mask_cmp_ps_mask(ordered01, v[0], NV > 1 ? v[1] : v[0],
                                                _CMP_ORD_Q);
            if (NV > 2)
                ordered23 = _mm512_mask_cmp_ps_mask(ordered23, v[2], NV > 3 ? v[3] : v[2],
                                                    _CMP_ORD_Q);
        }
    if (ordered01 != k[0] || (NV > 2 && ordered23 != k[2])) {
        for (j = 0; j < NV; j++)
            a[j] = lowest;
        for (r = 0; r < taps->nrows; r++)
            for (c = 0; c < taps->ncols; c++) {
                const float* p = base + taps->rows[r] + c * taps->col_step + l;
                for (j = 0; j < NV; j++)
                    a[j] = pypool_max_nan16(a[j], _mm512_maskz_loadu_ps(k[j], p + 16 * j));
            }
    }
    /* Only the block's own vectors are stored: a store with an empty mask
       still writes to the line past the block, and where that line was being
       streamed (the next output's lanes) the pair took 15-20x the copy's time
       (max 2x2 s2 over 32 channels, 1 thread: 105 ms). */
    for (j = 0; j < NV; j++) {
        if (k[j] == 0xffff && stream)
            pypool_lanes_stream64(out + l + 16 * j, _mm512_castps_si512(a[j]));
        else
            _mm512_mask_storeu_ps(out + l + 16 * j, k[j], a[j]);
    }
}

/* pypool_lanes_max_f32 on AVX-512, every lane (returns nl). Per block of 64
 * lanes the taps are taken by max_ps alone (max_nan where no tap is NaN),
 * the NaN check folded into one masked compare per vector pair (the lanes
 * ordered so far); a block that saw a NaN is redone with the NaN rule.
 * (2,112,112,64) 3x3 s2 p1 in cache, 1 thread: 0.236 -> 0.177 ms (the AVX2
 * loop's blend per tap and vector, or max_ps with an AVX2 NaN check, cost
 * the same); the (32,112,112,64) case waits on memory either way. */
PYPOOL_AVX512 static int64_t pypool_lanes_max_avx512(const float* base,
                                                    const pypool_lane_taps* taps, int64_t nl,
                                                    float* out, int stream) {
    /* Streaming stores only for outputs of whole vectors: a part vector's plain
       (masked) store into a line that the next output's streaming stores are
       filling cost as much as the rest of the output on the Zen 4 here (max
       3x3 s2 on (32,112,112,44), 1 thread: 33 ms streamed, 5 for 48 channels;
       with indices 70 ms). */
    stream = stream && ((uintptr_t)out & 15) == 0 && nl % 16 == 0;
    for (int64_t l = 0; l < nl; l += 64) {
        int64_t n = nl - l < 64 ? nl - l : 64;
        switch ((n + 15) / 16) {
        case 1: pypool_lanes_max_block(base, taps, l, n, out, stream, 1); break;
        case 2: pypool_lanes_max_block(base, taps, l, n, out, stream, 2); break;
        case 3: pypool_lanes_max_block(base, taps, l, n, out, stream, 3); break;
        default: pypool_lanes_max_block(base, taps, l, n, out, stream, 4); break;
        }
    }
    return nl;
}

/* Stores a lane block's 16 maxima and their indices (int32 lanes widened),
 * streamed when asked (out and where 16-byte aligned) and all 16 are there. */
PYPOOL_AVX512 static inline void pypool_lanes_store16(float* out, int64_t* where, __m512 a,
                                                      __m512i i, int64_t n, int stream) {
    __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i));
    __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i, 1));
    if (n >= 16 && stream) {
        pypool_lanes_stream64(out, _mm512_castps_si512(a));
        pypool_lanes_stream64(where, lo);
        pypool_lanes_stream64(where + 8, hi);
    } else if (n >= 16) {
        _mm512_storeu_ps(out, a);
        _mm512_storeu_si512(where, lo);
        _mm512_storeu_si512(where + 8, hi);
    } else if (n > 0) {
        __mmask16 k = (__mmask16)((1u << n) - 1);
        _mm512_mask_storeu_ps(out, k, a);
        _mm512_mask_storeu_epi64(where, (__mmask8)k, lo);
        if (n > 8)    /* (no store with an empty mask: see pypool_lanes_max_avx512) */
            _mm512_mask_storeu_epi64(where + 8, (__mmask8)(k >> 8), hi);
    }
}

/* Lanes [l, l + n) (n <= 32) of every tap into a0/a1 (maxima) and i0/i1
 * (their taps' flats), in tap order. nan_rule 0: "greater" alone; returns
 * the largest magnitude's bits seen (above infinity's when a tap was NaN).
 * nan_rule 1: a tap is taken when greater, or NaN while the maximum so far
 * is not. */
PYPOOL_AVX512 static inline __attribute__((always_inline)) __m512i pypool_lanes_argmax32(
        const float* base, const pypool_lane_taps* taps, int64_t l, int64_t n, int nan_rule,
        __m512* a0, __m512* a1, __m512i* i0, __m512i* i1) {
    const __m512i no_sign = _mm512_set1_epi32(0x7fffffff);
    __m512 v0, v1;
    pypool_lanes_load32(base + taps->rows[0] + l, n, a0, a1);
    *i0 = *i1 = _mm512_set1_epi32(taps->flats[0] + (int32_t)taps->flat0);
    __m512i m0 = _mm512_and_si512(_mm512_castps_si512(*a0), no_sign);
    __m512i m1 = _mm512_and_si512(_mm512_castps_si512(*a1), no_sign);
    for (int64_t r = 0; r < taps->nrows; r++)
    for (int64_t c = r == 0; c < taps->ncols; c++) {    /* (tap (0, 0) is loaded above) */
        pypool_lanes_load32(base + taps->rows[r] + c * taps->col_step + l, n, &v0, &v1);
        __m512i f = _mm512_set1_epi32(taps->flats[r]
                                      + (int32_t)(taps->flat0 + c * taps->flat_step));
        __mmask16 k0, k1;
        if (nan_rule) {
            k0 = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(*a0, *a0, _CMP_ORD_Q), v0, *a0,
                                         _CMP_NLE_UQ);
            k1 = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(*a1, *a1, _CMP_ORD_Q), v1, *a1,
                                         _CMP_NLE_UQ);
        } else {
            m0 = _mm512_max_epi32(m0, _mm512_and_si512(_mm512_castps_si512(v0), no_sign));
            m1 = _mm512_max_epi32(m1, _mm512_and_si512(_mm512_castps_si512(v1), no_sign));
            k0 = _mm512_cmp_ps_mask(v0, *a0, _CMP_GT_OQ);
            k1 = _mm512_cmp_ps_mask(v1, *a1, _CMP_GT_OQ);
        }
        *a0 = _mm512_mask_mov_ps(*a0, k0, v0);
        *a1 = _mm512_mask_mov_ps(*a1, k1, v1);
        *i0 = _mm512_mask_mov_epi32(*i0, k0, f);
        *i1 = _mm512_mask_mov_epi32(*i1, k1, f);
    }
    return _mm512_max_epi32(m0, m1);
}

/* pypool_lanes_max_idx_f32 on AVX-512, every lane (returns nl). Per block of
 * 32 lanes the taps are first taken by "greater" alone, with the magnitudes
 * on the side; a block that saw a NaN is redone with the NaN rule, whose
 * compare chain (is the maximum so far NaN?) made the AVX2 loop
 * latency-bound. */
PYPOOL_AVX512 static int64_t pypool_lanes_max_idx_avx512(const float* base,
                                                        const pypool_lane_taps* taps,
                                                        int64_t nl, float* out, int64_t* where,
                                                        int stream) {
    const __m512i inf = _mm512_set1_epi32(0x7f800000);
    /* (whole vectors only: see pypool_lanes_max_avx512) */
    stream = stream && (((uintptr_t)out | (uintptr_t)where) & 15) == 0 && nl % 16 == 0;
    for (int64_t l = 0; l < nl; l += 32) {
        int64_t n = nl - l < 32 ? nl - l : 32;
        __m512 a0, a1;
        __m512i i0, i1;
        __m512i mag = pypool_lanes_argmax32(base, taps, l, n, 0, &a0, &a1, &i0,
                                            &i1);
        if (_mm512_cmp_epi32_mask(mag, inf, _MM_CMPINT_GT))
            pypool_lanes_argmax32(base, taps, l, n, 1, &a0, &a1, &i0, &i1);
        pypool_lanes_store16(out + l, where + l, a0, i0, n, stream);
        pypool_lanes_store16(out + l + 16, where + l + 16, a1, i1, n - 16, stream);
    }
    return nl;
}
#endif

static inline int64_t pypool_lanes_max_f32(const float* base, const pypool_lane_taps* taps,
                                           int64_t nl, float* out, int stream) {
    int64_t l = 0, r, c;
    const __m256 lowest = _mm256_set1_ps(-INFINITY);
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512)
        return pypool_lanes_max_avx512(base, taps, nl, out, stream);
#endif
    /* (whole vectors only, the rest being the caller's plain stores: see
       pypool_lanes_max_avx512) */
    stream = stream && ((uintptr_t)out & 15) == 0 && nl % 8 == 0;
    for (; l + 32 <= nl; l += 32) {
        __m256 a0 = lowest, a1 = lowest, a2 = lowest, a3 = lowest;
        for (r = 0; r < taps->nrows; r++)
            for (c = 0; c < taps->ncols; c++) {
                const float* p = base + taps->rows[r] + c * taps->col_step + l;
                a0 = pypool_max_nan8(a0, _mm256_loadu_ps(p));
                a1 = pypool_max_nan8(a1, _mm256_loadu_ps(p + 8));
                a2 = pypool_max_nan8(a2, _mm256_loadu_ps(p + 16));
                a3 = pypool_max_nan8(a3, _mm256_loadu_ps(p + 24));
            }
        pypool_put_ps8(out + l, a0, stream);
        pypool_put_ps8(out + l + 8, a1, stream);
        pypool_put_ps8(out + l + 16, a2, stream);
        pypool_put_ps8(out + l + 24, a3, stream);
    }
    for (; l + 8 <= nl; l += 8) {
        __m256 a = lowest;
        for (r = 0; r < taps->nrows; r++)
            for (c = 0; c < taps->ncols; c++)
                a = pypool_max_nan8(a, _mm256_loadu_ps(base + taps->rows[r]
                                                       + c * taps->col_step + l));
        pypool_put_ps8(out + l, a, stream);
    }
    return l;
}

/* The same with indices: where[] gets, per lane, the flat index of the first
 * tap holding the maximum (the first NaN once there is one), as fold_phase's
 * tags do; lanes whose taps all equal -inf get the first tap's. At least one
 * tap. On
 * AVX-512 CPUs every lane, else whole blocks of 16. */
static inline int64_t pypool_lanes_max_idx_f32(const float* base, const pypool_lane_taps* taps,
                                               int64_t nl, float* out, int64_t* where,
                                               int stream) {
    int64_t l = 0, r, c;
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512)
        return pypool_lanes_max_idx_avx512(base, taps, nl, out, where, stream);
#endif
    (void)stream;    /* (AVX2: stored plainly) */
    const __m256 lowest = _mm256_set1_ps(-INFINITY);
    for (; l + 16 <= nl; l += 16) {
        __m256 a0 = lowest, a1 = lowest;
        __m256i i0 = _mm256_set1_epi32(taps->flats[0] + (int32_t)taps->flat0), i1 = i0;
        for (r = 0; r < taps->nrows; r++)
        for (c = 0; c < taps->ncols; c++) {
            const float* p = base + taps->rows[r] + c * taps->col_step + l;
            __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
            __m256i f = _mm256_set1_epi32(taps->flats[r]
                                          + (int32_t)(taps->flat0 + c * taps->flat_step));
            /* taken: v > a, or v is NaN and a is not */
            __m256 k0 = _mm256_or_ps(_mm256_cmp_ps(v0, a0, _CMP_GT_OQ),
                                     _mm256_andnot_ps(_mm256_cmp_ps(a0, a0, _CMP_UNORD_Q),
                                                      _mm256_cmp_ps(v0, v0, _CMP_UNORD_Q)));
            __m256 k1 = _mm256_or_ps(_mm256_cmp_ps(v1, a1, _CMP_GT_OQ),
                                     _mm256_andnot_ps(_mm256_cmp_ps(a1, a1, _CMP_UNORD_Q),
                                                      _mm256_cmp_ps(v1, v1, _CMP_UNORD_Q)));
            a0 = _mm256_blendv_ps(a0, v0, k0);
            a1 = _mm256_blendv_ps(a1, v1, k1);
            i0 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i0), _mm256_castsi256_ps(f), k0));
            i1 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i1), _mm256_castsi256_ps(f), k1));
        }
        _mm256_storeu_ps(out + l, a0);
        _mm256_storeu_ps(out + l + 8, a1);
        _mm256_storeu_si256((__m256i*)(where + l), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i0)));
        _mm256_storeu_si256((__m256i*)(where + l + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i0, 1)));
        _mm256_storeu_si256((__m256i*)(where + l + 8), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i1)));
        _mm256_storeu_si256((__m256i*)(where + l + 12), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i1, 1)));
    }
    return l;
}
#else
static inline int64_t pypool_lanes_max_idx_f32(const float* base, const pypool_lane_taps* taps,
                                               int64_t nl, float* out, int64_t* where,
                                               int stream) {
    (void)base; (void)taps; (void)nl; (void)out; (void)where; (void)stream;
    return 0;
}
static inline int64_t pypool_lanes_max_f32(const float* base, const pypool_lane_taps* taps,
                                           int64_t nl, float* out, int stream) {
    (void)base; (void)taps; (void)nl; (void)out; (void)stream;
    return 0;
}
#endif

#endif
