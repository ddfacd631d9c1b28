/* Sums of small contiguous float32 planes in double (global average pooling).
 *
 * Each plane is summed exactly as sum_contiguous (forward.pxi) does it: lane j
 * of 8 adds elements j, j+8, j+16, ...; the n % 8 leftover elements go to
 * lanes 0.. in order; then ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7)). Four planes
 * advance together so their chains of dependent adds overlap (a 7x7 plane is
 * only 6 steps long). Returns 1 when it did the work (AVX2 builds), else 0.
 */
#ifndef PYPOOL_SUMS_H
#define PYPOOL_SUMS_H

#include <stdint.h>
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

#else
static inline int pypool_sum_planes_f32(const float* p, int64_t stride, int64_t n,
                                        int64_t count, double* sums) {
    (void)p; (void)stride; (void)n; (void)count; (void)sums;
    return 0;
}
#endif

#endif
