/* Division-free averages for float32 results (see finish_plane_row).
 *
 * q approximates a quotient a / d to within a few units in the last place of
 * a double. Rounded to float, q gives the same float as the exact quotient
 * (and as a / d computed in double) unless the quotient lies within those
 * few units of a float rounding midpoint, or outside float's normal range.
 * This test flags exactly those cases (with a wide margin) so the caller can
 * divide them; zero is safe.
 */
#ifndef PYPOOL_ROUNDING_H
#define PYPOOL_ROUNDING_H

#include <stdint.h>
#include <string.h>

static inline int pypool_float_rounding_risk(double q) {
    uint64_t b;
    memcpy(&b, &q, sizeof b);
    uint64_t e = (b >> 52) & 0x7ff;
    /* The 29 low mantissa bits are what a cast to float drops; a midpoint
       between floats has them equal to 2**28. */
    uint64_t low = b & ((UINT64_C(1) << 29) - 1);
    int near_midpoint = (low - ((UINT64_C(1) << 28) - 64)) < 128;
    int outside = (e < 1023 - 126 || e > 1023 + 127) && (b << 1) != 0;
    return near_midpoint | outside;
}

#endif
