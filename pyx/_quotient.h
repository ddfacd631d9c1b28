/* An average a / d without a division instruction: the bits of (a + 0.0) / d
 * (the "+ 0.0" makes a zero average +0, as a sum started from +0 would).
 *
 * A vectorized double division costs several cycles per lane on current x86
 * cores; the averages of the plane path divide once per output. Where the
 * kernels are compiled with FMA (the AVX2 build), the quotient is instead
 * q = a * r with r = 1 / d rounded once, corrected by one step of Newton's
 * method on the exact remainder: rem = a - q * d (exact, by FMA), then
 * q + rem * r. Markstein's theorem: with r the correctly rounded reciprocal
 * and q within an ulp of a / d, the corrected value is the correctly
 * rounded quotient, the same bits as a / d.
 *
 * Preconditions, which callers meet: d is a positive integer-valued double
 * below 2**64 (a count of taps), and a is zero, infinite, NaN or at least
 * 2**-800 in magnitude (so q, the remainder and the correction stay normal
 * numbers; a nonzero sum of floats or integers is at least 2**-149).
 * An infinite a makes the remainder NaN: the blend then keeps q (= +-inf).
 * A zero a of either sign gives rem = +0 and a corrected value of +0.
 */
#ifndef PYPOOL_QUOTIENT_H
#define PYPOOL_QUOTIENT_H

#include <math.h>

#ifdef __FMA__
#define PYPOOL_HAVE_FMA_QUOTIENT 1
static inline double pypool_average(double a, double d, double r) {
    double q = a * r;
    double rem = fma(-q, d, a);
    double fixed = fma(rem, r, q);
    return rem == rem ? fixed : q;
}
#else
#define PYPOOL_HAVE_FMA_QUOTIENT 0
static inline double pypool_average(double a, double d, double r) {
    (void)r;
    return (a + 0.0) / d;
}
#endif

#endif
