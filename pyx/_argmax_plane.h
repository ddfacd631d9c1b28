/* Max pooling with indices of float32 channels_first inputs on AVX-512 CPUs:
 * output rows [r0, r1) over planes in one call (pypool_argmax_plane_f32),
 * 2-D windows without dilation, a column stride of 1 or 2, contiguous rows.
 *
 * The rule is max_plane_rows' (forward.pxi): taps in row-major order, a tap
 * replaces the best so far when it is greater, or NaN while the best is
 * not, so the first maximum and the first NaN win and the value is the
 * chosen tap's (a zero keeps its sign). The first in-bounds tap starts the
 * search whatever it holds (-inf included).
 *
 * 16 outputs per step, each tap one vector of 16 columns (stride 2: two
 * loads and a permute per pair of taps). Without NaN, "greater" alone
 * decides: each window row is reduced on its own (first maximum of the
 * row), then the rows in order, a later row taking only when greater, which
 * is the row-major first maximum. Whether a tap was NaN is kept on the side
 * (an integer max of the magnitudes' bits); a step that saw one is redone
 * in the same order with the NaN rule. Offsets in the plane are int32 lanes,
 * widened to int64 on the store. Outputs whose window crosses the left or
 * right edge go tap by tap.
 *
 * Why a kernel of its own: the general path folds rows into tagged column
 * maxima and reduces the columns with index compares, in passes over
 * scratch. 3x3 stride 2 in cache, called from Python (8 planes of 112 x
 * 112): 1.86 ns per output there, 1.16 here.
 *
 * Returns 1 when it did the rows, 0 when it did none and the caller's path
 * must (no AVX-512, the switch in _sums.h off, or another column stride).
 */
#ifndef PYPOOL_ARGMAX_PLANE_H
#define PYPOOL_ARGMAX_PLANE_H

#include <stdint.h>
#include "_sums.h"    /* pypool_sums_avx512: the AVX-512 switch */
#include "_prefetch.h"

/* How far ahead of the rows being read the input is asked for (bytes). */
#define PYPOOL_ARGMAX_AHEAD 4096

#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
#define PYPOOL_ARGMAX_HAVE_AVX512 1

/* One output tap by tap: rows [h0, h0 + nh), columns [c0, c0 + nc) of the plane. */
static inline void pypool_argmax_one(const float* plane, int64_t xrow, int64_t W, int64_t h0,
                                     int64_t nh, int64_t c0, int64_t nc, float* value,
                                     int64_t* index) {
    float best = -__builtin_inff();
    int64_t at = -1;
    for (int64_t h = h0; h < h0 + nh; h++)
        for (int64_t c = c0; c < c0 + nc; c++) {
            float v = plane[h * xrow + c];
            if (at < 0 || (best == best && (v > best || v != v))) {
                best = v;
                at = h * W + c;
            }
        }
    *value = best;
    *index = at;
}

/* The lowest n bits. */
static inline __mmask16 pypool_argmax_bits(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Tap j of 16 outputs from p (the first output's first column): p[j + i * sw]
 * for the n outputs asked for (n == 16: plain loads). Stride 2 loads
 * p[j .. j + 15] and p[j + 15 .. j + 30], never past the last tap. */
PYPOOL_AVX512 static inline __m512 pypool_argmax_tap(const float* p, int64_t j, int sw,
                                                     int64_t n) {
    if (sw == 1)
        return n == 16 ? _mm512_loadu_ps(p + j) : _mm512_maskz_loadu_ps(pypool_argmax_bits(n), p + j);
    /* lane i < 8: element 2i of the first load; i >= 8: element 2i - 15 of the second */
    const __m512i even = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 14, 12, 10, 8, 6, 4, 2, 0);
    __m512 lo, hi;
    if (n == 16) {
        lo = _mm512_loadu_ps(p + j);
        hi = _mm512_loadu_ps(p + j + 15);
    } else {
        lo = _mm512_maskz_loadu_ps(pypool_argmax_bits(2 * n - 1), p + j);
        hi = _mm512_maskz_loadu_ps(pypool_argmax_bits(2 * n - 16), p + j + 15);
    }
    return _mm512_permutex2var_ps(lo, even, hi);
}

/* Stores 16 (or the first n) outputs: values and, as int64, their taps'
 * offsets in the plane plus the columns c + i * sw. */
PYPOOL_AVX512 static inline void pypool_argmax_store(float* y, int64_t* ind, __m512 best,
                                                     __m512i tap, int64_t c, int sw, int64_t n) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i at = _mm512_add_epi32(tap, _mm512_add_epi32(_mm512_set1_epi32((int32_t)c),
                                                        _mm512_mullo_epi32(lane, _mm512_set1_epi32(sw))));
    __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(at));
    __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(at, 1));
    if (n == 16) {
        _mm512_storeu_ps(y, best);
        _mm512_storeu_si512(ind, lo);
        _mm512_storeu_si512(ind + 8, hi);
    } else {
        __mmask16 k = pypool_argmax_bits(n);
        _mm512_mask_storeu_ps(y, k, best);
        _mm512_mask_storeu_epi64(ind, (__mmask8)k, lo);
        if (n > 8)    /* (no store with an empty mask: see _lanes_max.h) */
            _mm512_mask_storeu_epi64(ind + 8, (__mmask8)(k >> 8), hi);
    }
}

/* Does v replace best? "greater" alone, or with nan_rule also a NaN v while
 * best is not NaN: not (v <= best) where best is ordered. */
PYPOOL_AVX512 static inline __mmask16 pypool_argmax_replaces(__m512 best, __m512 v,
                                                             int nan_rule) {
    if (!nan_rule)
        return _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
    return _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(best, best, _CMP_ORD_Q), v, best,
                                   _CMP_NLE_UQ);
}

/* Row reduction state of pypool_argmax_step: the row's maximum so far, the
 * tap number (column within the window) it sits at, the next tap's number,
 * and the magnitudes' bits seen (NaN's are above infinity's). */
typedef struct {
    __m512 m;
    __m512i col, next, mag;
} pypool_argmax_rowmax;

/* Takes tap v (number r->next) into the row's reduction; without the NaN
 * rule, notes its magnitude's bits. */
PYPOOL_AVX512 static inline __attribute__((always_inline)) void pypool_argmax_take(
        pypool_argmax_rowmax* r, __m512 v, int nan_rule) {
    if (!nan_rule)
        r->mag = _mm512_max_epi32(r->mag, _mm512_and_si512(_mm512_castps_si512(v),
                                                           _mm512_set1_epi32(0x7fffffff)));
    __mmask16 take = pypool_argmax_replaces(r->m, v, nan_rule);
    r->m = _mm512_mask_mov_ps(r->m, take, v);
    /* tap numbers counted up in a vector: broadcasting them from a general
     * register in the chain made the step 1.5x slower */
    r->col = _mm512_mask_mov_epi32(r->col, take, r->next);
    r->next = _mm512_add_epi32(r->next, _mm512_set1_epi32(1));
}

PYPOOL_AVX512 static void pypool_argmax_step_nan(const float* plane, int64_t xrow, int64_t W,
                                                 int64_t h0, int64_t nh, int64_t kw, int sw,
                                                 int64_t pw, int64_t o, int64_t n, float* y,
                                                 int64_t* ind);

/* Outputs [o, o + n) (n <= 16) of one output row whose windows lie inside
 * the plane's columns: rows [h0, h0 + nh) (nh >= 1), kw columns from
 * o * sw - pw on. Each window row is reduced on its own, then the rows are
 * taken in order, a later row's result replacing only as a later tap would.
 * Under either rule that is the tap-by-tap result: a row's result is its
 * first maximum (or first NaN), and rows are taken in row-major order.
 * Without nan_rule, "greater" alone decides, and a step that saw a NaN is
 * handed to pypool_argmax_step_nan. The NaN check is an integer max per tap
 * rather than the NaN rule's compare into a mask that every next compare
 * waits on (in cache 0.98 -> 0.55 ns per output). */
PYPOOL_AVX512 static inline __attribute__((always_inline)) void pypool_argmax_step(
        const float* plane, int64_t xrow, int64_t W, int64_t h0, int64_t nh, int64_t kw, int sw,
        int64_t pw, int64_t o, int64_t n, float* y, int64_t* ind, int nan_rule) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    int64_t c = o * sw - pw;
    const float* p = plane + h0 * xrow + c;
    __m512 best = _mm512_setzero_ps();
    __m512i tap = _mm512_setzero_si512(), mag = _mm512_setzero_si512();
    __m512i row_at = _mm512_set1_epi32((int32_t)(h0 * W));
    for (int64_t r = 0; r < nh; r++, p += xrow) {
        pypool_argmax_rowmax rm;
        rm.col = _mm512_setzero_si512();
        rm.next = _mm512_set1_epi32(1);
        rm.mag = mag;
        int64_t j = 0;
        if (sw == 2 && kw >= 2) {
            /* taps 0 and 1 (then 2 and 3, ...) from the same 32 columns */
            for (; j + 1 < kw; j += 2) {
                __m512 lo, hi;
                if (n == 16) {
                    lo = _mm512_loadu_ps(p + j);
                    hi = _mm512_loadu_ps(p + j + 16);
                } else {
                    lo = _mm512_maskz_loadu_ps(pypool_argmax_bits(2 * n), p + j);
                    hi = _mm512_maskz_loadu_ps(pypool_argmax_bits(2 * n - 16), p + j + 16);
                }
                __m512 v = _mm512_permutex2var_ps(lo, even, hi);
                if (j == 0)
                    rm.m = v;
                else
                    pypool_argmax_take(&rm, v, nan_rule);
                pypool_argmax_take(&rm, _mm512_permutex2var_ps(lo, odd, hi), nan_rule);
            }
        } else {
            rm.m = pypool_argmax_tap(p, 0, sw, n);
            j = 1;
        }
        for (; j < kw; j++)
            pypool_argmax_take(&rm, pypool_argmax_tap(p, j, sw, n), nan_rule);
        /* the row's first tap, unless replaced, is its maximum: NaN there stays */
        if (!nan_rule)
            mag = _mm512_max_epi32(rm.mag, _mm512_and_si512(_mm512_castps_si512(rm.m),
                                                            _mm512_set1_epi32(0x7fffffff)));
        __m512i at = _mm512_add_epi32(rm.col, row_at);
        row_at = _mm512_add_epi32(row_at, _mm512_set1_epi32((int32_t)W));
        if (r == 0) {
            best = rm.m;
            tap = at;
        } else {
            __mmask16 take = pypool_argmax_replaces(best, rm.m, nan_rule);
            best = _mm512_mask_mov_ps(best, take, rm.m);
            tap = _mm512_mask_mov_epi32(tap, take, at);
        }
    }
    if (!nan_rule && _mm512_cmp_epi32_mask(mag, _mm512_set1_epi32(0x7f800000), _MM_CMPINT_GT)) {
        pypool_argmax_step_nan(plane, xrow, W, h0, nh, kw, sw, pw, o, n, y, ind);
        return;
    }
    pypool_argmax_store(y + o, ind + o, best, tap, c, sw, n);
}

/* The step of a window that holds a NaN: the NaN rule (not inlined; rare). */
PYPOOL_AVX512 static void pypool_argmax_step_nan(const float* plane, int64_t xrow, int64_t W,
                                                 int64_t h0, int64_t nh, int64_t kw, int sw,
                                                 int64_t pw, int64_t o, int64_t n, float* y,
                                                 int64_t* ind) {
    pypool_argmax_step(plane, xrow, W, h0, nh, kw, sw, pw, o, n, y, ind, 1);
}
/* Output rows [r0, r1) over planes; see pypool_argmax_plane_f32. Inlined
 * into a copy per common window width and stride (below), whose constants
 * unroll the tap loops. */
PYPOOL_AVX512 static inline __attribute__((always_inline)) void pypool_argmax_plane_rows(
        const float* x, int64_t xplane, int64_t xrow, int64_t W, float* y,
        int64_t yplane, int64_t yrow, int64_t* ind, int64_t iplane, int64_t irow, int64_t OH,
        int64_t OW, int64_t kw, int64_t sh, int sw, int64_t pw, const int64_t* first_h,
        const int64_t* count_h, const int64_t* first_w, const int64_t* count_w, int64_t r0,
        int64_t r1) {
    /* Outputs [o_lo, o_hi) have every column inside the row. */
    int64_t o_lo = (pw + sw - 1) / sw, o_hi = W - kw + pw >= 0 ? (W - kw + pw) / sw + 1 : 0;
    if (o_hi > OW)
        o_hi = OW;
    if (o_lo > o_hi)
        o_lo = o_hi;
    for (int64_t r = r0; r < r1; r++) {
        int64_t plane_no = r / OH, oh = r % OH, h0 = first_h[oh], nh = count_h[oh];
        const float* plane = x + plane_no * xplane;
        float* yr = y + plane_no * yplane + oh * yrow;
        int64_t* ir = ind + plane_no * iplane + oh * irow;
        if (nh > 0)
            /* the rows the output row sh rows on starts reading, AHEAD bytes on */
            pypool_prefetch_bytes((const char*)(plane + (h0 + nh - 1) * xrow) + PYPOOL_ARGMAX_AHEAD,
                                  sh * xrow * (int64_t)sizeof(float));
        for (int64_t o = 0; o < OW; o++) {
            if (o == o_lo && nh > 0) {
                for (; o + 16 <= o_hi; o += 16)
                    pypool_argmax_step(plane, xrow, W, h0, nh, kw, sw, pw, o, 16, yr, ir, 0);
                if (o < o_hi)
                    pypool_argmax_step(plane, xrow, W, h0, nh, kw, sw, pw, o, o_hi - o, yr,
                                       ir, 0);
                o = o_hi;
                if (o >= OW)
                    break;
            }
            pypool_argmax_one(plane, xrow, W, h0, nh, first_w[o], count_w[o], yr + o, ir + o);
        }
    }
}

/* The copies: 3x3 stride 2 in cache, 1.39 ns per output with the width and
 * stride as variables, 1.16 with them as constants (called from Python). */
#define PYPOOL_ARGMAX_ROWS(NAME, KW, SW)                                                     \
PYPOOL_AVX512 static void NAME(const float* x, int64_t xplane, int64_t xrow, int64_t W,      \
                               float* y, int64_t yplane, int64_t yrow, int64_t* ind,        \
                               int64_t iplane, int64_t irow, int64_t OH, int64_t OW,        \
                               int64_t kw, int64_t sh, int sw, int64_t pw,                  \
                               const int64_t* first_h, const int64_t* count_h,              \
                               const int64_t* first_w, const int64_t* count_w, int64_t r0,  \
                               int64_t r1) {                                                \
    (void)kw; (void)sw;                                                                     \
    pypool_argmax_plane_rows(x, xplane, xrow, W, y, yplane, yrow, ind, iplane, irow, OH, OW, \
                             KW, sh, SW, pw, first_h, count_h, first_w, count_w, r0, r1);   \
}
PYPOOL_ARGMAX_ROWS(pypool_argmax_rows_2s2, 2, 2)
PYPOOL_ARGMAX_ROWS(pypool_argmax_rows_3s2, 3, 2)
PYPOOL_ARGMAX_ROWS(pypool_argmax_rows_3s1, 3, 1)
PYPOOL_ARGMAX_ROWS(pypool_argmax_rows_any, kw, sw)
#undef PYPOOL_ARGMAX_ROWS
#endif

/* Output rows [r0, r1) (plane r / OH, row r % OH) of max pooling with indices:
 * x, y and ind point at the first plane, rows of x, y and ind contiguous;
 * window rows of output row oh are first_h[oh] + [0, count_h[oh]), columns
 * of output o first_w[o] + [0, count_w[o]) (in bounds), the regular form
 * o * sw - pw + [0, kw) where that is inside the row. Planes below 2**31
 * elements (offsets in int32 lanes). */
static inline int pypool_argmax_plane_f32(const float* x, int64_t xplane, int64_t xrow, int64_t W, float* y, int64_t yplane, int64_t yrow,
                                          int64_t* ind, int64_t iplane, int64_t irow, int64_t OH,
                                          int64_t OW, int64_t kw, int64_t sh, int64_t sw,
                                          int64_t pw, const int64_t* first_h,
                                          const int64_t* count_h, const int64_t* first_w,
                                          const int64_t* count_w, int64_t r0, int64_t r1) {
#ifdef PYPOOL_ARGMAX_HAVE_AVX512
    if (pypool_sums_avx512 && (sw == 1 || sw == 2)) {
        void (*rows)(const float*, int64_t, int64_t, int64_t, float*, int64_t, int64_t, int64_t*,
                     int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int64_t,
                     const int64_t*, const int64_t*, const int64_t*, const int64_t*, int64_t,
                     int64_t) = pypool_argmax_rows_any;
        if (kw == 2 && sw == 2)
            rows = pypool_argmax_rows_2s2;
        else if (kw == 3 && sw == 2)
            rows = pypool_argmax_rows_3s2;
        else if (kw == 3 && sw == 1)
            rows = pypool_argmax_rows_3s1;
        rows(x, xplane, xrow, W, y, yplane, yrow, ind, iplane, irow, OH, OW, kw, sh, (int)sw, pw,
             first_h, count_h, first_w, count_w, r0, r1);
        return 1;
    }
#endif
    (void)x; (void)xplane; (void)xrow; (void)W; (void)y; (void)yplane; (void)yrow;
    (void)ind; (void)iplane; (void)irow; (void)OH; (void)OW; (void)kw; (void)sh; (void)sw;
    (void)pw; (void)first_h; (void)count_h; (void)first_w; (void)count_w; (void)r0; (void)r1;
    return 0;
}

#endif
