/* The maximum of a contiguous run of float32 or float64 values (a plane of a
 * global max), 8 or 4 lanes at a time with AVX2. Returns 1 with *out set, or
 * 0 when the caller must take its own loop: no AVX2, fewer values than a
 * vector, a NaN among them (any NaN is then the result; the caller's loop
 * picks it), or a zero maximum (whose sign must be the row-major first
 * zero's, which the lanes do not track). Without NaN the maximum's value is
 * unique up to the sign of zero, so the lanes' order does not matter. The
 * last vector overlaps the one before it (max is idempotent): no scalar tail.
 */
#ifndef PYPOOL_PLANE_MAX_H
#define PYPOOL_PLANE_MAX_H

#include <stdint.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

static inline int pypool_plane_max_f32(const float* p, int64_t n, float* out) {
#ifdef __AVX2__
    __m256 m, v, nan;
    __m128 h;
    int64_t i;
    float r;
    if (n < 8)
        return 0;
    m = _mm256_loadu_ps(p);
    nan = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
    for (i = 8; i < n; i += 8) {
        v = _mm256_loadu_ps(p + (i + 8 <= n ? i : n - 8));
        m = _mm256_max_ps(v, m);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(nan))
        return 0;
    h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    r = _mm_cvtss_f32(h);
    if (r == 0.0f)
        return 0;
    *out = r;
    return 1;
#else
    (void)p; (void)n; (void)out;
    return 0;
#endif
}

static inline int pypool_plane_max_f64(const double* p, int64_t n, double* out) {
#ifdef __AVX2__
    __m256d m, v, nan;
    __m128d h;
    int64_t i;
    double r;
    if (n < 4)
        return 0;
    m = _mm256_loadu_pd(p);
    nan = _mm256_cmp_pd(m, m, _CMP_UNORD_Q);
    for (i = 4; i < n; i += 4) {
        v = _mm256_loadu_pd(p + (i + 4 <= n ? i : n - 4));
        m = _mm256_max_pd(v, m);
        nan = _mm256_or_pd(nan, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_pd(nan))
        return 0;
    h = _mm_max_pd(_mm256_castpd256_pd128(m), _mm256_extractf128_pd(m, 1));
    h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
    r = _mm_cvtsd_f64(h);
    if (r == 0.0)
        return 0;
    *out = r;
    return 1;
#else
    (void)p; (void)n; (void)out;
    return 0;
#endif
}

#endif
