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

PYPOOL_NO_TRAPS static inline void pypool_doubles_to_halfs_portable(const double* src,
                                                                    uint16_t* dst, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++)
        dst[i] = pypool_double_bits_to_half(src[i]);
}

PYPOOL_NO_TRAPS static inline void pypool_halfs_to_floats_portable(const uint16_t* src,
                                                                   float* dst, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        uint32_t b = pypool_half_to_float_bits(src[i]);
        memcpy(dst + i, &b, sizeof b);
    }
}

PYPOOL_NO_TRAPS static inline void pypool_floats_to_halfs_portable(const float* src,
                                                                   uint16_t* dst, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, src + i, sizeof b);
        dst[i] = pypool_float_bits_to_half(b);
    }
}


/* ------------------------------------------------------------- F16C
 * The AVX2 build converts with the F16C instructions where the CPU has them
 * (every AVX2 CPU so far): the loops above cost 0.6 (float) and 1.6 (double)
 * ns per value, more than the pooling. The hardware rounds finite values
 * exactly as NumPy does (to nearest even, whatever the MXCSR rounding and
 * flush modes: vcvtps2ph takes its rounding from the instruction and ignores
 * flush-to-zero, and inputs too small for float32's normal range round to a
 * zero anyway), but quiets signaling NaNs. So a group of 16 holding a NaN -
 * or, widening, an infinity or a subnormal float16, whose conversion might
 * follow denormals-are-zero - goes through the portable code instead: the
 * bits never depend on the hardware's choices. */
static int pypool_half_hw = 0;    /* set once at import: pypool_half_enable_hw */

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && defined(__AVX2__)
#define PYPOOL_HALF_HAVE_HW 1
#include <immintrin.h>
#define PYPOOL_F16C __attribute__((target("avx2,f16c")))

PYPOOL_F16C static void pypool_halfs_to_floats_hw(const uint16_t* src, float* dst, int64_t n) {
    const __m256i exp_bits = _mm256_set1_epi16(0x7c00), man_bits = _mm256_set1_epi16(0x03ff);
    const __m256i zero = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i*)(src + i));
        __m256i e = _mm256_and_si256(h, exp_bits);
        /* exponent all ones (inf, NaN), or zero with a nonzero significand */
        __m256i odd = _mm256_or_si256(
            _mm256_cmpeq_epi16(e, exp_bits),
            _mm256_andnot_si256(_mm256_cmpeq_epi16(_mm256_and_si256(h, man_bits), zero),
                                _mm256_cmpeq_epi16(e, zero)));
        if (_mm256_movemask_epi8(odd)) {
            pypool_halfs_to_floats_portable(src + i, dst + i, 16);
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_castsi256_si128(h)));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
    }
    pypool_halfs_to_floats_portable(src + i, dst + i, n - i);
}

PYPOOL_F16C static void pypool_floats_to_halfs_hw(const float* src, uint16_t* dst, int64_t n) {
    const int round = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(src + i), b = _mm256_loadu_ps(src + i + 8);
        if (_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q))) {   /* a NaN in either */
            pypool_floats_to_halfs_portable(src + i, dst + i, 16);
            continue;
        }
        _mm256_storeu_si256((__m256i*)(dst + i),
                            _mm256_set_m128i(_mm256_cvtps_ph(b, round), _mm256_cvtps_ph(a, round)));
    }
    pypool_floats_to_halfs_portable(src + i, dst + i, n - i);
}

/* 4 doubles, none a NaN, to float32 rounded to odd (see
 * pypool_double_bits_to_half): the nearest float, stepped toward zero if it
 * went past, with its last bit set when inexact. */
PYPOOL_F16C static inline __m128 pypool_round_to_odd_pd(__m256d d) {
    const __m256d sign = _mm256_set1_pd(-0.0);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m128 f = _mm256_cvtpd_ps(d);
    __m256d back = _mm256_cvtps_pd(f);
    __m256d inexact = _mm256_cmp_pd(back, d, _CMP_NEQ_OQ);
    __m256d past = _mm256_cmp_pd(_mm256_andnot_pd(sign, back), _mm256_andnot_pd(sign, d),
                                 _CMP_GT_OQ);
    /* the 64-bit masks' low halves, as 32-bit lanes */
    __m128i inexact32 = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(inexact), low_halves));
    __m128i past32 = _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(_mm256_castpd_si256(past), low_halves));
    __m128i bits = _mm_add_epi32(_mm_castps_si128(f), past32);      /* (-1 where past) */
    bits = _mm_or_si128(bits, _mm_srli_epi32(inexact32, 31));
    return _mm_castsi128_ps(bits);
}

PYPOOL_F16C static void pypool_doubles_to_halfs_hw(const double* src, uint16_t* dst, int64_t n) {
    const int round = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_loadu_pd(src + i), hi = _mm256_loadu_pd(src + i + 4);
        if (_mm256_movemask_pd(_mm256_cmp_pd(lo, hi, _CMP_UNORD_Q))) {   /* a NaN in either */
            pypool_doubles_to_halfs_portable(src + i, dst + i, 8);
            continue;
        }
        __m256 f = _mm256_set_m128(pypool_round_to_odd_pd(hi), pypool_round_to_odd_pd(lo));
        _mm_storeu_si128((__m128i*)(dst + i), _mm256_cvtps_ph(f, round));
    }
    pypool_doubles_to_halfs_portable(src + i, dst + i, n - i);
}

/* With AVX-512, rounding to odd is one conversion toward zero (embedded
 * rounding, whatever the MXCSR mode) and the inexact lanes' last bit set:
 * 16 doubles take about as many instructions as 4 do above. */
#define PYPOOL_HALF_AVX512 __attribute__((target("avx2,f16c,avx512f")))

PYPOOL_HALF_AVX512 static inline __m256 pypool_round_to_odd_avx512(__m512d d, __mmask8* inexact) {
    __m256 t = _mm512_cvt_roundpd_ps(d, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    *inexact = _mm512_cmp_pd_mask(_mm512_cvtps_pd(t), d, _CMP_NEQ_OQ);
    return t;
}

PYPOOL_HALF_AVX512 static void pypool_doubles_to_halfs_avx512(const double* src, uint16_t* dst,
                                                              int64_t n) {
    const __m512i one = _mm512_set1_epi32(1);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d lo = _mm512_loadu_pd(src + i), hi = _mm512_loadu_pd(src + i + 8);
        if (_mm512_cmp_pd_mask(lo, hi, _CMP_UNORD_Q)) {   /* a NaN in either */
            pypool_doubles_to_halfs_portable(src + i, dst + i, 16);
            continue;
        }
        __mmask8 in_lo, in_hi;
        __m256 f_lo = pypool_round_to_odd_avx512(lo, &in_lo);
        __m256 f_hi = pypool_round_to_odd_avx512(hi, &in_hi);
        __m512i f = _mm512_castpd_si512(_mm512_insertf64x4(
            _mm512_castpd256_pd512(_mm256_castps_pd(f_lo)), _mm256_castps_pd(f_hi), 1));
        f = _mm512_mask_or_epi32(f, (__mmask16)(in_lo | (in_hi << 8)), f, one);
        _mm256_storeu_si256((__m256i*)(dst + i),
                            _mm512_cvtps_ph(_mm512_castsi512_ps(f),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    pypool_doubles_to_halfs_portable(src + i, dst + i, n - i);
}
#endif

/* Turns the F16C loops on where the build has them and the CPU runs them,
 * and their AVX-512 one too unless disallowed; returns 0 (off), 1 (F16C) or
 * 2 (with AVX-512). */
static int pypool_half_enable_hw(int allow_avx512) {
#ifdef PYPOOL_HALF_HAVE_HW
    __builtin_cpu_init();
    pypool_half_hw = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    if (pypool_half_hw && allow_avx512 && __builtin_cpu_supports("avx512f"))
        pypool_half_hw = 2;
#else
    (void)allow_avx512;
#endif
    return pypool_half_hw;
}

/* The conversions at a given level: 0 the portable loops, 1 F16C, 2 F16C
 * and AVX-512 (levels above pypool_half_hw must not be asked for: halfs.pxi
 * caps them, and tests ask for each one that runs here). */
static inline void pypool_halfs_to_floats_at(const uint16_t* src, float* dst, int64_t n,
                                             int level) {
#ifdef PYPOOL_HALF_HAVE_HW
    if (level >= 1) {
        pypool_halfs_to_floats_hw(src, dst, n);
        return;
    }
#endif
    (void)level;
    pypool_halfs_to_floats_portable(src, dst, n);
}

static inline void pypool_floats_to_halfs_at(const float* src, uint16_t* dst, int64_t n,
                                             int level) {
#ifdef PYPOOL_HALF_HAVE_HW
    if (level >= 1) {
        pypool_floats_to_halfs_hw(src, dst, n);
        return;
    }
#endif
    (void)level;
    pypool_floats_to_halfs_portable(src, dst, n);
}

static inline void pypool_doubles_to_halfs_at(const double* src, uint16_t* dst, int64_t n,
                                              int level) {
#ifdef PYPOOL_HALF_HAVE_HW
    if (level >= 2) {
        pypool_doubles_to_halfs_avx512(src, dst, n);
        return;
    }
    if (level == 1) {
        pypool_doubles_to_halfs_hw(src, dst, n);
        return;
    }
#endif
    (void)level;
    pypool_doubles_to_halfs_portable(src, dst, n);
}

#endif
