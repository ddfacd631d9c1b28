/* float16 <-> float32 conversions with NumPy's bits (npy_halfbits_to_floatbits,
 * npy_floatbits_to_halfbits: round to nearest even, NaN payloads kept, a NaN
 * whose payload would vanish keeps its lowest bit), written with selects
 * rather than branches so that the loops vectorize. float16 inputs are
 * widened to float32 for the kernels and max results narrowed back; NumPy's
 * own casts run on one thread at a fraction of the bandwidth (max 3x3 s2 on
 * float16 took 33x the copy), and they are what these must match bit for bit.
 */
#ifndef PYPOOL_HALF_H
#define PYPOOL_HALF_H

#include <stdint.h>
#include <string.h>

/* GCC keeps the int-to-float conversion of the subnormal arm behind a branch
 * (it could raise a floating-point flag), which stops the loop from
 * vectorizing; the conversion of a 10-bit integer is exact and raises none. */
#if defined(__GNUC__) && !defined(__clang__)
#define PYPOOL_NO_TRAPS __attribute__((optimize("no-trapping-math")))
#else
#define PYPOOL_NO_TRAPS
#endif
/* Every function here has the same options, and the per-element ones are
 * always inlined into the loops (GCC does not inline across differing
 * optimize attributes, and a call per element stops the vectorizing). */
#if defined(__GNUC__)
#define PYPOOL_HALF_ELEMENT PYPOOL_NO_TRAPS __attribute__((always_inline)) static inline
#else
#define PYPOOL_HALF_ELEMENT static inline
#endif

PYPOOL_HALF_ELEMENT uint32_t pypool_half_to_float_bits(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = h & 0x7c00u, m = h & 0x03ffu;
    uint32_t normal = sign | ((((uint32_t)h & 0x7fffu) + 0x1c000u) << 13);
    uint32_t special = sign | 0x7f800000u | (m << 13);           /* inf, NaN */
    /* m * 2**-24: m as a float (exact), its exponent lowered by 24 */
    float mf = (float)(int32_t)m;     /* (signed: AVX2 converts those in one step) */
    uint32_t tiny;
    memcpy(&tiny, &mf, sizeof tiny);
    tiny = (m ? tiny - (24u << 23) : 0u) | sign;                  /* zero, subnormal */
    normal = e == 0 ? tiny : normal;         /* (selects one at a time: vectorizes) */
    return e == 0x7c00u ? special : normal;
}

PYPOOL_HALF_ELEMENT uint16_t pypool_float_bits_to_half(uint32_t f) {
    uint32_t sign = (f >> 16) & 0x8000u, fe = f & 0x7f800000u, fs = f & 0x007fffffu;
    /* NaN keeps its top payload bits (at least one); inf and overflow give inf */
    uint32_t nan_sig = fs >> 13;
    uint32_t special = (fe == 0x7f800000u) & (fs != 0) ? 0x7c00u + (nan_sig ? nan_sig : 1u)
                                                        : 0x7c00u;
    /* normal half: round the significand to 10 bits, ties to even; a carry
     * runs into the exponent (up to inf), as it should */
    uint32_t sig = fs + ((fs & 0x3fffu) != 0x1000u ? 0x1000u : 0u);
    uint32_t normal = ((fe - 0x38000000u) >> 13) + (sig >> 13);
    /* subnormal half: the implicit bit joins, shifted by 1 to 11 more places;
     * bits shifted out count toward the rounding (the low 11 of f) */
    uint32_t shift = 113u - (fe >> 23);
    uint32_t sub = (0x00800000u + fs) >> (shift < 31u ? shift : 31u);
    sub += (((sub & 0x3fffu) != 0x1000u) | ((f & 0x7ffu) != 0)) ? 0x1000u : 0u;
    uint32_t subnormal = sub >> 13;
    uint32_t r = fe >= 0x47800000u ? special
                 : fe <= 0x38000000u ? (fe < 0x33000000u ? 0u : subnormal)
                 : normal;
    return (uint16_t)(sign + r);
}

/* float64 -> float16 bits, rounded once (NumPy's npy_doublebits_to_halfbits):
 * through float32 rounded to odd - its 24 bits then carry the exact value's
 * rounding information into the one rounding to 11 bits - and NaNs by
 * NumPy's rule on the double's own payload. No branch: it vectorizes. */
PYPOOL_HALF_ELEMENT uint16_t pypool_double_bits_to_half(double d) {
    uint64_t db;
    uint32_t fb, nan_bits;
    float f = (float)d;
    double back = (double)f;
    memcpy(&db, &d, sizeof db);
    memcpy(&fb, &f, sizeof fb);
    /* inexact: step to the float on d's side of zero (if f went past d), then odd */
    fb -= (back != d) & (back > d ? d > 0 : d < 0) ? 1u : 0u;
    fb |= back != d ? 1u : 0u;
    nan_bits = (uint32_t)((db >> 48) & 0x8000u)
               | (0x7c00u + ((db >> 42) & 0x3ffu ? (uint32_t)((db >> 42) & 0x3ffu) : 1u));
    return (d != d) ? (uint16_t)nan_bits : pypool_float_bits_to_half(fb);
}

PYPOOL_NO_TRAPS static inline void pypool_doubles_to_halfs(const double* src, uint16_t* dst,
                                                           int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++)
        dst[i] = pypool_double_bits_to_half(src[i]);
}

PYPOOL_NO_TRAPS static inline void pypool_halfs_to_floats(const uint16_t* src, float* dst,
                                                          int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        uint32_t b = pypool_half_to_float_bits(src[i]);
        memcpy(dst + i, &b, sizeof b);
    }
}

PYPOOL_NO_TRAPS static inline void pypool_floats_to_halfs(const float* src, uint16_t* dst,
                                                          int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, src + i, sizeof b);
        dst[i] = pypool_float_bits_to_half(b);
    }
}

#endif
