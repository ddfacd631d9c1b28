/* float32 loops bound by converting to double: global averages of small
 * contiguous planes, and avg 2x2 stride 2 rows.
 *
 * Each plane is summed exactly as sum_contiguous (forward.pxi) does it: lane j
 * of 8 adds elements j, j+8, j+16, ...; the n % 8 leftover elements go to
 * lanes 0.. in order; then ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)). Four planes
 * advance together so their chains of dependent adds overlap (a 7x7 plane is
 * only 6 steps long). Returns 1 when it did the work (AVX2 builds), else 0.
 *
 * On CPUs with AVX-512 (a function-level target, so the module's flags stay
 * AVX2; chosen once at import, see pypool_sums_enable_avx512), the global
 * averages go 8 planes at a time, divided and stored, and avg 2x2 rows 8
 * outputs at a time: one 512-bit conversion does 8 where the AVX2 one does
 * 4. The same operations in the same order, so the same results.
 */
#ifndef PYPOOL_SUMS_H
#define PYPOOL_SUMS_H

#include <stdint.h>
#include "_prefetch.h"
#ifdef __AVX2__
#include <immintrin.h>

/* The 8 lanes of one plane, held as lo = lanes 0-3 and hi = lanes 4-7. */
static inline double pypool_fold_lanes(__m256d lo, __m256d hi) {
    __m256d h = _mm256_hadd_pd(lo, hi);                 /* l0+l1, l4+l5, l2+l3, l6+l7 */
    __m256d s = _mm256_add_pd(h, _mm256_permute2f128_pd(h, h, 1));
    __m128d q = _mm256_castpd256_pd128(s);             /* (l0+l1)+(l2+l3), (l4+l5)+(l6+l7) */
    return _mm_cvtsd_f64(q) + _mm_cvtsd_f64(_mm_unpackhi_pd(q, q));
}

/* Load the n % 8 leftover floats into lanes 0.. (others +0, which leaves a
 * lane unchanged: a lane started at +0 is never -0). */
static inline void pypool_tail(const float* p, int64_t rest, __m256d* lo, __m256d* hi) {
    static const int32_t ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    __m256i mask = _mm256_loadu_si256((const __m256i*)(ones + 8 - rest));
    __m256 v = _mm256_maskload_ps(p, mask);
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

static inline int pypool_sum_planes_f32(const float* p, int64_t stride, int64_t n,
                                        int64_t count, double* sums) {
    int64_t b = 0, i, r, full = n - n % 8, rest = n % 8;
    for (; b + 4 <= count; b += 4) {
        const float* q[4] = {p + b * stride, p + (b + 1) * stride, p + (b + 2) * stride,
                             p + (b + 3) * stride};
        __m256d lo[4], hi[4];
        for (r = 0; r < 4; r++)
            lo[r] = hi[r] = _mm256_setzero_pd();
        for (i = 0; i < full; i += 8) {
            for (r = 0; r < 4; r++) {
                lo[r] = _mm256_add_pd(lo[r], _mm256_cvtps_pd(_mm_loadu_ps(q[r] + i)));
                hi[r] = _mm256_add_pd(hi[r], _mm256_cvtps_pd(_mm_loadu_ps(q[r] + i + 4)));
            }
        }
        for (r = 0; r < 4; r++) {
            if (rest)
                pypool_tail(q[r] + full, rest, &lo[r], &hi[r]);
            sums[b + r] = pypool_fold_lanes(lo[r], hi[r]);
        }
    }
    for (; b < count; b++) {
        const float* q = p + b * stride;
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        for (i = 0; i < full; i += 8) {
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm_loadu_ps(q + i)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm_loadu_ps(q + i + 4)));
        }
        if (rest)
            pypool_tail(q + full, rest, &lo, &hi);
        sums[b] = pypool_fold_lanes(lo, hi);
    }
    return 1;
}

/* Whether the loops below may use AVX-512; set once at import. */
static int pypool_sums_avx512 = 0;

#if defined(__GNUC__) && defined(__x86_64__) && !defined(PYPOOL_NO_AVX512)
#define PYPOOL_SUMS_HAVE_AVX512 1
#define PYPOOL_AVX512 __attribute__((target("avx512f")))
/* The same target for every function between these two (code written with
 * GCC vector extensions and macros, where an attribute per function would
 * not reach). */
#if defined(__clang__)
#define PYPOOL_AVX512_BEGIN                                                                 \
    _Pragma("clang attribute push (__attribute__((target(\"avx512f\"))), apply_to = function)")
#define PYPOOL_AVX512_END _Pragma("clang attribute pop")
#else
#define PYPOOL_AVX512_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f\")")
#define PYPOOL_AVX512_END _Pragma("GCC pop_options")
#endif

/* One pairwise step on two planes' lanes: [a0+a1, a2+a3, a4+a5, a6+a7, b0+b1, ...]. */
PYPOOL_AVX512 static inline __m512d pypool_pair_sums(__m512d a, __m512d b) {
    const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_add_pd(_mm512_permutex2var_pd(a, even, b), _mm512_permutex2var_pd(a, odd, b));
}

/* The 16 floats of v widened to doubles: lo = elements 0-7, hi = 8-15. */
PYPOOL_AVX512 static inline void pypool_widen16(__m512 v, __m512d* lo, __m512d* hi) {
    *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* max_nan (forward.pxi) on 16 floats: m = (v > m ? v : m), then v where v is
 * NaN (the max paths of _running.h and _row_max.h share it). */
PYPOOL_AVX512 static inline __m512 pypool_max_nan16(__m512 m, __m512 v) {
    return _mm512_mask_mov_ps(_mm512_max_ps(v, m), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
}

/* The 8 lanes of each of 8 planes -> the 8 plane sums, in pypool_fold_lanes' order. */
PYPOOL_AVX512 static inline __m512d pypool_fold_8_planes(const __m512d* lanes) {
    __m512d q0 = pypool_pair_sums(pypool_pair_sums(lanes[0], lanes[1]),
                                  pypool_pair_sums(lanes[2], lanes[3]));
    __m512d q1 = pypool_pair_sums(pypool_pair_sums(lanes[4], lanes[5]),
                                  pypool_pair_sums(lanes[6], lanes[7]));
    return pypool_pair_sums(q0, q1);
}

/* pypool_float_rounding_risk (_rounding.h) lane by lane. */
PYPOOL_AVX512 static inline __mmask8 pypool_rounding_risk8(__m512d q) {
    __m512i bits = _mm512_castpd_si512(q);
    __m512i low = _mm512_and_si512(bits, _mm512_set1_epi64((INT64_C(1) << 29) - 1));
    __mmask8 near_midpoint = _mm512_cmplt_epu64_mask(
        _mm512_sub_epi64(low, _mm512_set1_epi64((INT64_C(1) << 28) - 64)), _mm512_set1_epi64(128));
    __m512i e = _mm512_and_si512(_mm512_srli_epi64(bits, 52), _mm512_set1_epi64(0x7ff));
    __mmask8 outside = _mm512_cmpgt_epu64_mask(_mm512_sub_epi64(e, _mm512_set1_epi64(1023 - 126)),
                                               _mm512_set1_epi64(253));
    __m512i magnitude = _mm512_slli_epi64(bits, 1);
    return near_midpoint | (outside & _mm512_test_epi64_mask(magnitude, magnitude));
}

/* pypool_rounding_risk8 of 16 quotients (q0's lanes in bits 0-7, q1's in
 * 8-15), on 32-bit halves: the bits it tests lie in the low half (the 29
 * dropped by a cast to float) or the high one (sign and exponent), and
 * gathering each half of both vectors into one takes a permute, so the
 * tests run once per 16 lanes: 12 operations instead of 22. */
PYPOOL_AVX512 static inline __mmask16 pypool_rounding_risk16(__m512d q0, __m512d q1) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512i b0 = _mm512_castpd_si512(q0), b1 = _mm512_castpd_si512(q1);
    __m512i low = _mm512_permutex2var_epi32(b0, even, b1);
    __m512i high = _mm512_permutex2var_epi32(b0, odd, b1);
    __mmask16 near_midpoint = _mm512_cmplt_epu32_mask(
        _mm512_sub_epi32(_mm512_and_si512(low, _mm512_set1_epi32((1 << 29) - 1)),
                         _mm512_set1_epi32((1 << 28) - 64)),
        _mm512_set1_epi32(128));
    /* magnitude: the exponent in bits 21-31; its range test as in risk8 */
    __m512i magnitude = _mm512_slli_epi32(high, 1);
    __mmask16 outside = _mm512_cmpge_epu32_mask(
        _mm512_sub_epi32(magnitude, _mm512_set1_epi32((1023 - 126) << 21)),
        _mm512_set1_epi32(254 << 21));
    __m512i any = _mm512_or_si512(magnitude, low);
    return near_midpoint | (outside & _mm512_test_epi32_mask(any, any));
}

/* y[k * ystride] = sums[k] / divisor for 8 planes: sums * recip, except where
 * pypool_rounding_risk8 asks for the quotient. */
PYPOOL_AVX512 static inline void pypool_store_8_averages(__m512d sums, double divisor,
                                                         double recip, float* y,
                                                         int64_t ystride) {
    __m512d q = _mm512_mul_pd(sums, _mm512_set1_pd(recip));
    __mmask8 risk = pypool_rounding_risk8(q);
    if (risk)
        q = _mm512_mask_div_pd(q, risk, sums, _mm512_set1_pd(divisor));
    __m256 f = _mm512_cvtpd_ps(q);
    if (ystride == 1) {
        _mm256_storeu_ps(y, f);
    } else {
        float t[8];
        _mm256_storeu_ps(t, f);
        for (int k = 0; k < 8; k++)
            y[k * ystride] = t[k];
    }
}

/* Averages of planes [0, count - count % 8); returns how many it did.
 * prefetch_bytes > 0 asks for the planes that far ahead (the hardware
 * prefetcher leaves these short reads waiting on memory); 0 for inputs that
 * are already in cache, where prefetching only costs. */
PYPOOL_AVX512 static int64_t pypool_average_planes_avx512(const float* p, int64_t stride,
                                                          int64_t n, int64_t count,
                                                          double divisor, double recip,
                                                          float* y, int64_t ystride,
                                                          int64_t prefetch_bytes) {
    static const int32_t ones[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    int64_t b, i, r, full = n - n % 8, rest = n % 8;
    __m256i tail = _mm256_loadu_si256((const __m256i*)(ones + 8 - rest));
    int64_t ahead = prefetch_bytes ? prefetch_bytes / (stride * (int64_t)sizeof(float)) + 1 : 0;
    for (b = 0; b + 8 <= count; b += 8) {
        const float* q = p + b * stride;
        __m512d lanes[8];
        if (ahead == 0)
            ;
        else if (stride == n)
            pypool_prefetch_bytes(q + ahead * stride, 8 * n * (int64_t)sizeof(float));
        else
            for (r = 0; r < 8; r++)
                pypool_prefetch_bytes(q + (ahead + r) * stride, n * (int64_t)sizeof(float));
        for (r = 0; r < 8; r++)
            lanes[r] = _mm512_setzero_pd();
        for (i = 0; i < full; i += 8)
            for (r = 0; r < 8; r++)
                lanes[r] = _mm512_add_pd(lanes[r], _mm512_cvtps_pd(_mm256_loadu_ps(q + r * stride + i)));
        if (rest)    /* leftovers into lanes 0.., the rest +0 (see pypool_tail) */
            for (r = 0; r < 8; r++)
                lanes[r] = _mm512_add_pd(
                    lanes[r], _mm512_cvtps_pd(_mm256_maskload_ps(q + r * stride + full, tail)));
        pypool_store_8_averages(pypool_fold_8_planes(lanes), divisor, recip, y + b * ystride,
                                ystride);
    }
    return b;
}
#endif

/* y[b * ystride] = (sum of plane b) / divisor, as store_average (forward.pxi)
 * rounds it, for the planes the AVX-512 path covers; returns how many that is
 * (0 without AVX-512: the caller sums the rest). */
static inline int64_t pypool_average_planes_f32(const float* p, int64_t stride, int64_t n,
                                                int64_t count, double divisor, double recip,
                                                float* y, int64_t ystride,
                                                int64_t prefetch_bytes) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512)
        return pypool_average_planes_avx512(p, stride, n, count, divisor, recip, y, ystride,
                                            prefetch_bytes);
#endif
    (void)p; (void)stride; (void)n; (void)count; (void)divisor; (void)recip; (void)y;
    (void)ystride; (void)prefetch_bytes;
    return 0;
}

/* One output row of avg 2x2 stride 2 from float32 rows, as pair_average_row
 * (forward.pxi) computes it: y[o] = (((r0[2o] + r0[2o+1]) + (r1[2o] +
 * r1[2o+1])) + 0.0) * (rec_dh * recw[o]) in double, o < n. 8 outputs per
 * step; only the row's end uses masked loads (masked loads that missed the
 * cache ran 4x slower on the Zen 5 this was measured on). Converting no
 * longer bounds it, memory does: the input 8 KiB ahead is prefetched (A/B,
 * (32,128,56,56), 1 thread: 2.3 -> 1.7 ms; in cache unchanged).
 * Returns 1 when done (AVX-512), else 0. */
#define PYPOOL_PAIR_ROWS_AHEAD 2048   /* floats */
#ifdef PYPOOL_SUMS_HAVE_AVX512
/* [a0+a1, a2+a3, ...] of the 16 floats at p (m of them read, the rest +0). */
PYPOOL_AVX512 static inline __m512d pypool_adjacent_sums(const float* p, __mmask16 m) {
    __m512d lo, hi;
    pypool_widen16(m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p), &lo, &hi);
    return pypool_pair_sums(lo, hi);
}

PYPOOL_AVX512 static void pypool_pair_average_row_avx512(float* y, const float* r0,
                                                         const float* r1, double rec_dh,
                                                         const double* recw, int64_t n) {
    __m512d dh = _mm512_set1_pd(rec_dh), zero = _mm512_setzero_pd();
    for (int64_t o = 0; o < n; o += 8) {
        int64_t m = n - o < 8 ? n - o : 8;
        __mmask8 outs = (__mmask8)((1u << m) - 1);
        __mmask16 ins = (__mmask16)((1u << (2 * m)) - 1);
        pypool_prefetch_line(r0 + 2 * o + PYPOOL_PAIR_ROWS_AHEAD);
        pypool_prefetch_line(r1 + 2 * o + PYPOOL_PAIR_ROWS_AHEAD);
        __m512d s = _mm512_add_pd(_mm512_add_pd(pypool_adjacent_sums(r0 + 2 * o, ins),
                                                pypool_adjacent_sums(r1 + 2 * o, ins)), zero);
        __m512d rw = m == 8 ? _mm512_loadu_pd(recw + o) : _mm512_maskz_loadu_pd(outs, recw + o);
        __m256 f = _mm512_cvtpd_ps(_mm512_mul_pd(s, _mm512_mul_pd(dh, rw)));
        if (m == 8)
            _mm256_storeu_ps(y + o, f);
        else
            _mm512_mask_storeu_ps(y + o, (__mmask16)outs, _mm512_castps256_ps512(f));
    }
}
#endif

static inline int pypool_pair_average_row_f32(float* y, const float* r0, const float* r1,
                                              double rec_dh, const double* recw, int64_t n) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512) {
        pypool_pair_average_row_avx512(y, r0, r1, rec_dh, recw, n);
        return 1;
    }
#endif
    (void)y; (void)r0; (void)r1; (void)rec_dh; (void)recw; (void)n;
    return 0;
}

/* acc[c] += (double)row[c], c < n: one position of a channels_last global
 * average (each channel adds its positions in order). AVX-512 CPUs convert 16
 * per step and prefetch `ahead` floats further on (0: none); A/B
 * (64,7,7,2048), 1 thread: 0.74 -> 0.57 ms with 12 KiB ahead, 0.72 without.
 * Returns 1 when done (AVX-512), else 0. */
#ifdef PYPOOL_SUMS_HAVE_AVX512
PYPOOL_AVX512 static void pypool_add_row_avx512(double* acc, const float* row, int64_t n,
                                                int64_t ahead) {
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) {
        if (ahead)
            pypool_prefetch_line(row + c + ahead);
        __m512d lo, hi;
        pypool_widen16(_mm512_loadu_ps(row + c), &lo, &hi);
        _mm512_storeu_pd(acc + c, _mm512_add_pd(_mm512_loadu_pd(acc + c), lo));
        _mm512_storeu_pd(acc + c + 8, _mm512_add_pd(_mm512_loadu_pd(acc + c + 8), hi));
    }
    for (; c < n; c++)
        acc[c] = acc[c] + (double)row[c];
}
#endif

static inline int pypool_add_row_f32(double* acc, const float* row, int64_t n, int64_t ahead) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512) {
        pypool_add_row_avx512(acc, row, n, ahead);
        return 1;
    }
#endif
    (void)acc; (void)row; (void)n; (void)ahead;
    return 0;
}

/* Turns the AVX-512 path on where the CPU (and OS) run it, unless disabled;
 * returns whether it is on. */
static int pypool_sums_enable_avx512(int allow) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    __builtin_cpu_init();
    pypool_sums_avx512 = allow && __builtin_cpu_supports("avx512f");
#else
    (void)allow;
#endif
    return pypool_sums_avx512;
}

#else
static inline int pypool_sum_planes_f32(const float* p, int64_t stride, int64_t n,
                                        int64_t count, double* sums) {
    (void)p; (void)stride; (void)n; (void)count; (void)sums;
    return 0;
}

static inline int64_t pypool_average_planes_f32(const float* p, int64_t stride, int64_t n,
                                                int64_t count, double divisor, double recip,
                                                float* y, int64_t ystride,
                                                int64_t prefetch_bytes) {
    (void)p; (void)stride; (void)n; (void)count; (void)divisor; (void)recip; (void)y;
    (void)ystride; (void)prefetch_bytes;
    return 0;
}

static int pypool_sums_enable_avx512(int allow) {
    (void)allow;
    return 0;
}

static inline int pypool_pair_average_row_f32(float* y, const float* r0, const float* r1,
                                              double rec_dh, const double* recw, int64_t n) {
    (void)y; (void)r0; (void)r1; (void)rec_dh; (void)recw; (void)n;
    return 0;
}

static inline int pypool_add_row_f32(double* acc, const float* row, int64_t n, int64_t ahead) {
    (void)acc; (void)row; (void)n; (void)ahead;
    return 0;
}
#endif

#endif
