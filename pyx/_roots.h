/* The p-th roots that finish an Lp norm, for float32 results, without a libm
 * call per output.
 *
 * An Lp norm's result is (float)pow(s, q), s the float64 sum of |x|**p and
 * q = 1/p. pow costs tens of nanoseconds, which made Lp 13x13 with p = 3
 * tens of times slower than a copy. Here s**q = 2**(q*log2(s)) is computed
 * in plain double arithmetic (log2 by the atanh series, 2**f by Taylor,
 * the exponent by bit operations), in a branch-free loop that vectorizes,
 * to a relative error below 2**-34.
 *
 * That is not pow's float64 result, but float32 needs only its rounding:
 * when r*(1 - 2**-32) and r*(1 + 2**-32) round to the same float, pow's
 * value (which lies between them) rounds there too. Otherwise - about one
 * output in 2**8, and sums outside the fast path (zero, subnormal, inf,
 * NaN, results that leave the normal range) - the output is pow's own.
 * The results are therefore exactly (float)pow(s, q), on every build.
 */
#ifndef PYPOOL_ROOTS_H
#define PYPOOL_ROOTS_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include "_sums.h"   /* the AVX-512 switch */

static inline uint64_t pypool_bits_of(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline double pypool_double_of(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Powers q*log2(s) beyond this go to pow: 2**n must stay a normal double. */
#define PYPOOL_ROOT_MAX_EXP 1000.0

/* s**q for normal positive s, or a negative number when this s (or its
 * result) needs pow, or when the float rounding of the estimate is in doubt. */
static inline double pypool_root_estimate(double s, double q) {
    const double magic = 6755399441055744.0;     /* 1.5 * 2**52: rounds to an integer */
    const double two52 = 4503599627370496.0;
    uint64_t u = pypool_bits_of(s);
    /* s = m * 2**e with m in [sqrt(1/2), sqrt(2)): e from the bits of s / sqrt(1/2),
     * biased by 1024 so that only logical shifts are needed (AVX2 has no
     * arithmetic one on 64-bit lanes, nor an int64 conversion). */
    uint64_t eb = (u - 0x3FE6A09E667F3BCDULL + (1024ULL << 52)) >> 52;
    double m = pypool_double_of(u - ((eb - 1024) << 52));
    double ed = pypool_double_of(0x4330000000000000ULL | eb) - (two52 + 1024.0);
    /* ln(m) = 2 atanh(z) = 2 (z + z**3/3 + ...): |z| <= 0.1716, so stopping
     * at z**11 / 11 leaves less than 2**-35. Polynomials go by Estrin's
     * scheme: short chains of dependent operations, which is what limits
     * this loop. */
    double z = (m - 1.0) / (m + 1.0), z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
    double t = ((1.0 / 3.0 + z2 * (1.0 / 5.0)) + z4 * (1.0 / 7.0 + z2 * (1.0 / 9.0)))
               + z8 * (1.0 / 11.0);
    double ln_m = 2.0 * z + 2.0 * z * (z2 * t);
    double y = q * (ed + ln_m * 1.4426950408889634);   /* q * log2(s) */
    /* 2**y = 2**n * e**g, n the nearest integer, |g| = |y - n| ln 2 <= 0.347:
     * Taylor to degree 9 leaves less than 2**-37. */
    double big = y + magic;
    double nd = big - magic;
    double g = (y - nd) * 0.6931471805599453, g2 = g * g, g4 = g2 * g2, g8 = g4 * g4;
    double x = ((1.0 + g) + g2 * (0.5 + g * (1.0 / 6.0)))
               + g4 * ((1.0 / 24.0 + g * (1.0 / 120.0)) + g2 * (1.0 / 720.0 + g * (1.0 / 5040.0)))
               + g8 * (1.0 / 40320.0 + g * (1.0 / 362880.0));
    uint64_t n = pypool_bits_of(big) - pypool_bits_of(magic);   /* y's integer, mod 2**64 */
    double r = x * pypool_double_of((n + 1023) << 52);
    /* The rounding to float32 is certain when the whole error interval rounds alike. */
    const double eps = 1.0 / 4294967296.0;         /* 2**-32 */
    float lo = (float)(r - r * eps), hi = (float)(r + r * eps);
    int fast = (u >= 0x0010000000000000ULL) & (u < 0x7FF0000000000000ULL)
               & (y > -PYPOOL_ROOT_MAX_EXP) & (y < PYPOOL_ROOT_MAX_EXP) & (lo == hi);
    return fast ? r : -1.0;
}

static inline void pypool_root_estimates(const double* s, double* r, int64_t n, double q) {
    int64_t i;
    for (i = 0; i < n; i++)
        r[i] = pypool_root_estimate(s[i], q);
}

#ifdef PYPOOL_SUMS_HAVE_AVX512
/* The same loop, 8 lanes wide: AVX-512 also has the 64-bit shifts and
 * conversions that AVX2 lacks (about twice as fast). The same results. */
PYPOOL_AVX512 static void pypool_root_estimates_avx512(const double* s, double* r, int64_t n,
                                                       double q) {
    int64_t i;
    for (i = 0; i < n; i++)
        r[i] = pypool_root_estimate(s[i], q);
}
#endif

/* y[i * ystride] = (float)pow(s[i], q) for the n sums at s (each >= +0 or
 * NaN), q = 1/p with p >= 1 (a larger q would need a more accurate log2). */
static inline void pypool_float_roots(const double* s, int64_t n, double q, float* y,
                                      int64_t ystride) {
    enum { BLOCK = 256 };
    double r[BLOCK];
    int64_t i0, i, len;
    for (i0 = 0; i0 < n; i0 += BLOCK) {
        len = n - i0 < BLOCK ? n - i0 : BLOCK;
#ifdef PYPOOL_SUMS_HAVE_AVX512
        if (pypool_sums_avx512)
            pypool_root_estimates_avx512(s + i0, r, len, q);
        else
#endif
            pypool_root_estimates(s + i0, r, len, q);
        for (i = 0; i < len; i++)
            y[(i0 + i) * ystride] = (float)(r[i] >= 0.0 ? r[i] : pow(s[i0 + i], q));
    }
}

#endif
