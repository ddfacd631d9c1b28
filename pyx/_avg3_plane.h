/* 3x3 stride-1 averages of float32 inputs on AVX-512 CPUs: rows [oh0, oh1)
 * of one channels_first plane (contiguous rows; pypool_avg3_plane_f32, which
 * also takes 3-wide windows one row high, as avg1d k3 s1) or of one
 * channels_last batch item (contiguous positions; pypool_avg3_lanes_f32) in
 * one call.
 *
 * The same sums, in the same order, as the general paths (reduce_plane_rows
 * in forward.pxi, lane_sum_rows in lane_sums.pxi): each input row's
 * horizontal sums (x[c-1] + x[c]) + x[c+1] in double, kept in a ring of
 * three rows while later output rows need them; an output row adds its
 * window's rows top to bottom, adds +0.0 and divides by divisor_row[oh] *
 * divisor_col[o]. A row or column missing from a window is a row or column
 * of zeros here, which changes at most the sign of a zero sum, and the +0.0
 * makes every zero sum +0 either way.
 *
 * Why kernels of their own: the general paths spend more on choosing and
 * keeping rows than on the arithmetic when rows are short (channels_first,
 * 56 columns: 0.64 ns per output in cache, this kernel 0.37). They need
 * AVX-512 to pay: a 512-bit conversion or divide does 8 where AVX2's does 4.
 *
 * Both take a task's output rows, across planes (batch items), allocate
 * their scratch once, and return 1 when they did them all, 0 when they did
 * none and the caller's path must (no AVX-512, the switch in _sums.h off, or
 * scratch not allocated).
 */
#ifndef PYPOOL_AVG3_PLANE_H
#define PYPOOL_AVG3_PLANE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "_sums.h"    /* pypool_sums_avx512: the AVX-512 switch */
#include "_prefetch.h"
#include "_stream.h"

/* How far ahead of the row being copied the input is asked for (bytes): the
 * hardware prefetcher alone left the copies waiting on memory (1 thread,
 * (32,128,56,56): 6.4-6.9 ms without, 5.5 with 2 or 8 KiB). */
#define PYPOOL_AVG3_AHEAD 4096

#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)
#define PYPOOL_AVG3_HAVE_AVX512 1

/* (pf[o] + pf[o + 1]) + pf[o + 2] for 8 outputs, in double. */
PYPOOL_AVX512 static inline __m512d pypool_avg3_taps(const float* pf) {
    return _mm512_add_pd(_mm512_add_pd(_mm512_cvtps_pd(_mm256_loadu_ps(pf)),
                                       _mm512_cvtps_pd(_mm256_loadu_ps(pf + 1))),
                         _mm512_cvtps_pd(_mm256_loadu_ps(pf + 2)));
}

/* Horizontal sums of the padded row pf into hs, n outputs (whole vectors:
 * hs and pf have room past n). */
PYPOOL_AVX512 static void pypool_avg3_sum_row(double* hs, const float* pf, int64_t n) {
    for (int64_t o = 0; o < n; o += 8)
        _mm512_storeu_pd(hs + o, pypool_avg3_taps(pf + o));
}

/* Whether an output row of n floats at y (rows of n floats following each
 * other) goes by streaming stores, when asked: only rows of whole vectors,
 * 16-byte aligned. A row with a part vector would store it plainly into the
 * line the next row's streaming stores are filling, and on the Zen 4 here
 * each such store cost as much as the rest of the row (avg 3x3 s1 on
 * (32,128,60,60), 1 thread: 78 ms streamed, against 9 ms for 56x56). */
static inline int pypool_avg3_streams(const float* y, int64_t n, int stream) {
    return stream && ((uintptr_t)y & 15) == 0 && (n & 7) == 0;
}

/* One output row: y[o] = (float)((((a[o] + b[o]) + c[o]) + 0.0) / (dh * dw[o])),
 * where c is the horizontal sums of pf (stored to c as well) when pf is
 * given. dw has room past n (whole vectors are read); y is written only below
 * n, with streaming stores for whole vectors when stream is set and y is
 * 16-byte aligned. */
PYPOOL_AVX512 static void pypool_avg3_out_row(float* y, const double* a, const double* b,
                                              double* c, const float* pf, double dh,
                                              const double* dw, int64_t n, int stream) {
    __m512d vdh = _mm512_set1_pd(dh), zero = _mm512_setzero_pd();
    stream = pypool_avg3_streams(y, n, stream);
    for (int64_t o = 0; o < n; o += 8) {
        __m512d h;
        if (pf != NULL) {
            h = pypool_avg3_taps(pf + o);
            _mm512_storeu_pd(c + o, h);
        } else {
            h = _mm512_loadu_pd(c + o);
        }
        __m512d s = _mm512_add_pd(_mm512_add_pd(_mm512_loadu_pd(a + o), _mm512_loadu_pd(b + o)), h);
        __m512d d = _mm512_mul_pd(vdh, _mm512_loadu_pd(dw + o));
        /* Plain stores for whole vectors: masked ones are slower even unmasked. */
        if (n - o >= 8) {
            pypool_put_ps8(y + o, _mm512_cvtpd_ps(_mm512_div_pd(_mm512_add_pd(s, zero), d)),
                           stream);
        } else {
            __mmask8 k = (__mmask8)((1u << (n - o)) - 1);
            __m256 f = _mm512_cvtpd_ps(_mm512_maskz_div_pd(k, _mm512_add_pd(s, zero), d));
            _mm512_mask_storeu_ps(y + o, (__mmask16)k, _mm512_castps256_ps512(f));
        }
    }
}

/* Scratch of the channels_first kernel: 3 ring rows and a zero row of L
 * doubles, the column divisors (L, padded with ones), and two padded rows of
 * floats (the zeros around a copied row stay zero). */
#define PYPOOL_AVG3_PLANE_L(OW) (((OW) + 7) / 8 * 8 + 8)
#define PYPOOL_AVG3_PLANE_PLEN(OW) ((OW) + 2 + 16)

/* Rows [oh0, oh1) of one plane. */
PYPOOL_AVX512 static void pypool_avg3_plane_rows(double* ring, const float* x, int64_t xrow,
                                                 int64_t H, int64_t W, float* y, int64_t yrow,
                                                 int64_t OW, int64_t ph, int64_t pw,
                                                 int64_t oh0, int64_t oh1, double div_d,
                                                 const double* divh, int stream) {
    int64_t L = PYPOOL_AVG3_PLANE_L(OW), plen = PYPOOL_AVG3_PLANE_PLEN(OW);
    double* zero = ring + 3 * L;
    double* dw = ring + 4 * L;
    float* pbuf = (float*)(ring + 5 * L);
    /* Input row h padded: pf[pw + c] = x[h][c] in buffer h % 2; the zeros
       around stay zero. Columns past OW + 1 - pw are never read by whole
       outputs. A row is copied one row before it is read: read at once, the
       loads that straddle the copy's stores waited for them to retire (in
       cache 0.51 ns per output, 0.37 copied ahead). */
    int64_t ncopy = W < OW + 2 - pw ? W : OW + 2 - pw;
#define PYPOOL_AVG3_PADDED(h) (pbuf + ((h) & 1) * plen)
#define PYPOOL_AVG3_LOAD(h) \
    memcpy(PYPOOL_AVG3_PADDED(h) + pw, x + (h) * xrow, (size_t)ncopy * sizeof(float))
#define PYPOOL_AVG3_SLOT(h) (ring + ((h) % 3) * L)
    /* Prime the ring with the first output row's window rows but the last,
       and copy that last row. */
    int64_t top = oh0 - ph;
    for (int64_t h = top < 0 ? 0 : top; h < top + 2 && h < H; h++) {
        PYPOOL_AVG3_LOAD(h);
        pypool_avg3_sum_row(PYPOOL_AVG3_SLOT(h), PYPOOL_AVG3_PADDED(h), OW);
    }
    if (top + 2 < H)
        PYPOOL_AVG3_LOAD(top + 2);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        int64_t h0 = oh - ph, hn = h0 + 2;    /* the window's rows h0 .. hn */
        const double* a = h0 >= 0 ? PYPOOL_AVG3_SLOT(h0) : zero;
        const double* b = PYPOOL_AVG3_SLOT(h0 + 1);    /* (within [0, H) for padding <= 1) */
        double dh = div_d * divh[oh];
        if (hn + 1 < H && oh + 1 < oh1)
            PYPOOL_AVG3_LOAD(hn + 1);    /* the next output row's new row */
        /* (Integer arithmetic: past the plane's last row this is the next plane's,
           or nothing at all; a prefetch never faults.) */
        uintptr_t ahead = (uintptr_t)x + (uintptr_t)(hn * xrow * (int64_t)sizeof(float));
        pypool_prefetch_bytes((const void*)(ahead + PYPOOL_AVG3_AHEAD),
                              ncopy * (int64_t)sizeof(float));
        if (hn < H)
            pypool_avg3_out_row(y + oh * yrow, a, b, PYPOOL_AVG3_SLOT(hn),
                                PYPOOL_AVG3_PADDED(hn), dh, dw, OW, stream);
        else
            pypool_avg3_out_row(y + oh * yrow, a, b, zero, NULL, dh, dw, OW, stream);
    }
#undef PYPOOL_AVG3_LOAD
#undef PYPOOL_AVG3_PADDED
#undef PYPOOL_AVG3_SLOT
}

/* Windows 1 row high (1-D, or 1x3): y[o] = (float)((h + 0.0) / (dh * dw[o]))
 * with h the horizontal sums of the input row (W long; padding pw), which is
 * what the general path computes: its sum of one row of sums is that row.
 * Straight from the row, but for the vectors at its ends, which read their
 * taps from a copy padded with zeros. dw has room past OW (whole vectors). */
PYPOOL_AVX512 static void pypool_avg3_line(float* y, const float* row, int64_t W, int64_t OW,
                                           int64_t pw, double dh, const double* dw,
                                           int stream) {
    __m512d vdh = _mm512_set1_pd(dh), zero = _mm512_setzero_pd();
    float edge[8 + 2];
    stream = pypool_avg3_streams(y, OW, stream);
    for (int64_t o = 0; o < OW; o += 8) {
        const float* pf = row + o - pw;    /* the taps of outputs o .. o + 7 */
        if (o - pw < 0 || o - pw + 10 > W) {
            for (int64_t t = 0; t < 10; t++)
                edge[t] = o - pw + t >= 0 && o - pw + t < W ? row[o - pw + t] : 0.0f;
            pf = edge;
        }
        __m512d s = _mm512_add_pd(pypool_avg3_taps(pf), zero);
        __m512d q = _mm512_div_pd(s, _mm512_mul_pd(vdh, _mm512_loadu_pd(dw + o)));
        if (OW - o >= 8) {
            pypool_put_ps8(y + o, _mm512_cvtpd_ps(q), stream);
        } else {
            __mmask16 k = (__mmask16)((1u << (OW - o)) - 1);
            _mm512_mask_storeu_ps(y + o, k, _mm512_castps256_ps512(_mm512_cvtpd_ps(q)));
        }
    }
}

/* Output rows [r0, r1) over planes of OH rows of windows 1 row high: output
 * row oh reads input row oh * sh alone. */
PYPOOL_AVX512 static void pypool_avg3_single_rows(const float* x, int64_t xplane, int64_t xrow,
                                                  int64_t W, float* y, int64_t yplane,
                                                  int64_t yrow, int64_t OH, int64_t OW,
                                                  int64_t sh, int64_t pw, int64_t r0,
                                                  int64_t r1, double div_d, const double* divh,
                                                  const double* dw, int stream) {
    for (int64_t r = r0; r < r1; r++) {
        int64_t plane = r / OH, oh = r - plane * OH;
        pypool_avg3_line(y + plane * yplane + oh * yrow, x + plane * xplane + oh * sh * xrow, W,
                         OW, pw, div_d * divh[oh], dw, stream);
    }
}

/* Output rows [r0, r1) counted over planes of OH rows, planes xplane /
 * yplane apart, windows kh (3, or 1: pypool_avg3_single_rows) rows high;
 * 0 (nothing done) when the scratch cannot be allocated. */
PYPOOL_AVX512 static int pypool_avg3_plane_avx512(const float* x, int64_t xplane, int64_t xrow,
                                                  int64_t H, int64_t W, float* y,
                                                  int64_t yplane, int64_t yrow, int64_t OH,
                                                  int64_t OW, int64_t kh, int64_t sh,
                                                  int64_t ph, int64_t pw, int64_t r0,
                                                  int64_t r1, double div_d,
                                                  const double* divh, const double* divw,
                                                  int stream) {
    int64_t L = PYPOOL_AVG3_PLANE_L(OW), plen = PYPOOL_AVG3_PLANE_PLEN(OW);
    /* rows 1 high need the column divisors alone */
    double* ring = kh == 1 ? (double*)malloc((size_t)L * sizeof(double))
                           : (double*)calloc((size_t)(5 * L) * sizeof(double)
                                             + (size_t)(2 * plen) * sizeof(float), 1);
    if (ring == NULL)
        return 0;
    double* dw = kh == 1 ? ring : ring + 4 * L;
    for (int64_t o = 0; o < L; o++)
        dw[o] = o < OW ? divw[o] : 1.0;
    if (kh == 1) {
        pypool_avg3_single_rows(x, xplane, xrow, W, y, yplane, yrow, OH, OW, sh, pw, r0, r1,
                                div_d, divh, dw, stream);
        r0 = r1;
    }
    while (r0 < r1) {
        int64_t plane = r0 / OH, end = r1 < (plane + 1) * OH ? r1 : (plane + 1) * OH;
        pypool_avg3_plane_rows(ring, x + plane * xplane, xrow, H, W, y + plane * yplane, yrow,
                               OW, ph, pw, r0 - plane * OH, end - plane * OH, div_d, divh,
                               stream);
        r0 = end;
    }
    pypool_store_fence();    /* the streaming stores, ordered before the task's end */
    free(ring);
    return 1;
}

/* channels_last: one float8 of tap p (NULL: a padding column, zeros) at
 * channel c, widened. */
PYPOOL_AVX512 static inline __m512d pypool_avg3_lane_load(const float* p, int64_t c, __mmask8 k) {
    if (p == NULL)
        return _mm512_setzero_pd();
    return _mm512_cvtps_pd(k == 0xff ? _mm256_loadu_ps(p + c)
                                     : _mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)k, p + c)));
}

PYPOOL_AVX512 static inline __m512d pypool_avg3_lane_taps(const float* l, const float* m,
                                                          const float* r, int64_t c, __mmask8 k) {
    return _mm512_add_pd(_mm512_add_pd(pypool_avg3_lane_load(l, c, k),
                                       pypool_avg3_lane_load(m, c, k)),
                         pypool_avg3_lane_load(r, c, k));
}

/* The lanes of channels [c, V) among the next 8. */
PYPOOL_AVX512 static inline __mmask8 pypool_avg3_lanes_from(int64_t c, int64_t V) {
    return V - c >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (V - c)) - 1);
}

/* Plain loads and stores for whole vectors (masked ones are slower even with
 * every lane set), masked ones for the channels' end. */
PYPOOL_AVX512 static inline __m512d pypool_avg3_load8(const double* p, __mmask8 k) {
    return k == 0xff ? _mm512_loadu_pd(p) : _mm512_maskz_loadu_pd(k, p);
}

PYPOOL_AVX512 static inline void pypool_avg3_store8(double* p, __mmask8 k, __m512d v) {
    if (k == 0xff)
        _mm512_storeu_pd(p, v);
    else
        _mm512_mask_storeu_pd(p, k, v);
}

/* Output column o's window taps in input row xr (V channels per column):
   columns o - pw .. o - pw + 2, NULL where outside [0, W). */
#define PYPOOL_AVG3_LANE_TAP(xr, o, t) \
    ((o) - pw + (t) >= 0 && (o) - pw + (t) < W ? (xr) + ((o) - pw + (t)) * V : NULL)

/* Horizontal sums of input row xr into hs (OW * V doubles). */
PYPOOL_AVX512 static void pypool_avg3_lane_sum_row(double* hs, const float* xr, int64_t W,
                                                   int64_t V, int64_t OW, int64_t pw) {
    for (int64_t o = 0; o < OW; o++) {
        const float* l = PYPOOL_AVG3_LANE_TAP(xr, o, 0);
        const float* m = PYPOOL_AVG3_LANE_TAP(xr, o, 1);
        const float* r = PYPOOL_AVG3_LANE_TAP(xr, o, 2);
        for (int64_t c = 0; c < V; c += 8) {
            __mmask8 k = pypool_avg3_lanes_from(c, V);
            pypool_avg3_store8(hs + o * V + c, k, pypool_avg3_lane_taps(l, m, r, c, k));
        }
    }
}

/* One output row, channels_last: y[o * V + c] = (float)((((a + b) + h) + 0.0) /
   (dh * divw[o])) with h the new row xr's horizontal sums (stored to hn), or
   the zero row's when xr is NULL. ahead: the row after, asked for column by
   column (or NULL). Streaming stores as in pypool_avg3_out_row (and V a
   multiple of 8, so that every vector is aligned). */
PYPOOL_AVX512 static void pypool_avg3_lane_out_row(float* y, const double* a, const double* b,
                                                   double* hn, const float* xr,
                                                   const float* ahead, int64_t W, int64_t V,
                                                   int64_t OW, int64_t pw, double dh,
                                                   const double* divw, int stream) {
    __m512d zero = _mm512_setzero_pd();
    stream = stream && ((uintptr_t)y & 15) == 0 && (V & 7) == 0;
    for (int64_t o = 0; o < OW; o++) {
        const float* l = xr ? PYPOOL_AVG3_LANE_TAP(xr, o, 0) : NULL;
        const float* m = xr ? PYPOOL_AVG3_LANE_TAP(xr, o, 1) : NULL;
        const float* r = xr ? PYPOOL_AVG3_LANE_TAP(xr, o, 2) : NULL;
        if (ahead != NULL && o < W)
            pypool_prefetch_bytes(ahead + o * V, V * (int64_t)sizeof(float));
        __m512d d = _mm512_set1_pd(dh * divw[o]);
        int64_t at = o * V;
        for (int64_t c = 0; c < V; c += 8) {
            __mmask8 k = pypool_avg3_lanes_from(c, V);
            __m512d h;
            if (xr != NULL) {
                h = pypool_avg3_lane_taps(l, m, r, c, k);
                pypool_avg3_store8(hn + at + c, k, h);
            } else {
                h = zero;
            }
            __m512d s = _mm512_add_pd(_mm512_add_pd(pypool_avg3_load8(a + at + c, k),
                                                    pypool_avg3_load8(b + at + c, k)), h);
            __m256 f = _mm512_cvtpd_ps(_mm512_maskz_div_pd(k, _mm512_add_pd(s, zero), d));
            if (k == 0xff)
                pypool_put_ps8(y + at + c, f, stream);
            else
                _mm512_mask_storeu_ps(y + at + c, (__mmask16)k, _mm512_castps256_ps512(f));
        }
    }
}
#undef PYPOOL_AVG3_LANE_TAP

/* Rows [oh0, oh1) of one batch item, ring: 3 rows and a zero row of
 * OW * V + 8 doubles. */
PYPOOL_AVX512 static void pypool_avg3_lanes_rows(double* ring, const float* x, int64_t xrow,
                                                 int64_t H, int64_t W, int64_t V, float* y,
                                                 int64_t yrow, int64_t OW, int64_t ph,
                                                 int64_t pw, int64_t oh0, int64_t oh1,
                                                 double div_d, const double* divh,
                                                 const double* divw, int stream) {
    int64_t L = OW * V + 8;
    double* zero = ring + 3 * L;
#define PYPOOL_AVG3_SLOT(h) (ring + ((h) % 3) * L)
    int64_t top = oh0 - ph;
    for (int64_t h = top < 0 ? 0 : top; h < top + 2 && h < H; h++)
        pypool_avg3_lane_sum_row(PYPOOL_AVG3_SLOT(h), x + h * xrow, W, V, OW, pw);
    for (int64_t oh = oh0; oh < oh1; oh++) {
        int64_t h0 = oh - ph, hn = h0 + 2;
        const double* a = h0 >= 0 ? PYPOOL_AVG3_SLOT(h0) : zero;
        const double* b = PYPOOL_AVG3_SLOT(h0 + 1);
        const float* xr = hn < H ? x + hn * xrow : NULL;
        const float* ahead = hn + 1 < H && oh + 1 < oh1 ? x + (hn + 1) * xrow : NULL;
        pypool_avg3_lane_out_row(y + oh * yrow, a, b, hn < H ? PYPOOL_AVG3_SLOT(hn) : zero, xr,
                                 ahead, W, V, OW, pw, div_d * divh[oh], divw, stream);
    }
#undef PYPOOL_AVG3_SLOT
}

/* Output rows [r0, r1) counted over batch items of OH rows, items xitem /
 * yitem apart; 0 (nothing done) when the scratch cannot be allocated. */
PYPOOL_AVX512 static int pypool_avg3_lanes_avx512(const float* x, int64_t xitem, int64_t xrow,
                                                  int64_t H, int64_t W, int64_t V, float* y,
                                                  int64_t yitem, int64_t yrow, int64_t OH,
                                                  int64_t OW, int64_t ph, int64_t pw,
                                                  int64_t r0, int64_t r1, double div_d,
                                                  const double* divh, const double* divw,
                                                  int stream) {
    double* ring = (double*)calloc((size_t)(4 * (OW * V + 8)), sizeof(double));
    if (ring == NULL)
        return 0;
    while (r0 < r1) {
        int64_t b = r0 / OH, end = r1 < (b + 1) * OH ? r1 : (b + 1) * OH;
        pypool_avg3_lanes_rows(ring, x + b * xitem, xrow, H, W, V, y + b * yitem, yrow, OW, ph,
                               pw, r0 - b * OH, end - b * OH, div_d, divh, divw, stream);
        r0 = end;
    }
    pypool_store_fence();    /* the streaming stores, ordered before the task's end */
    free(ring);
    return 1;
}
#endif

/* channels_first: output rows [r0, r1) over planes (x and y point at the
 * first plane; rows contiguous); windows kh = 3 rows high at row stride 1,
 * or kh = 1 row high at row stride sh. */
static inline int pypool_avg3_plane_f32(const float* x, int64_t xplane, int64_t xrow, int64_t H,
                                        int64_t W, float* y, int64_t yplane, int64_t yrow,
                                        int64_t OH, int64_t OW, int64_t kh, int64_t sh,
                                        int64_t ph, int64_t pw, int64_t r0, int64_t r1,
                                        double div_d, const double* divh, const double* divw,
                                        int stream) {
#ifdef PYPOOL_AVG3_HAVE_AVX512
    if (pypool_sums_avx512)
        return pypool_avg3_plane_avx512(x, xplane, xrow, H, W, y, yplane, yrow, OH, OW, kh, sh,
                                        ph, pw, r0, r1, div_d, divh, divw, stream);
#endif
    (void)x; (void)xplane; (void)xrow; (void)H; (void)W; (void)y; (void)yplane; (void)yrow;
    (void)OH; (void)OW; (void)kh; (void)sh; (void)ph; (void)pw; (void)r0; (void)r1;
    (void)div_d; (void)divh;
    (void)divw; (void)stream;
    return 0;
}

/* channels_last: output rows [r0, r1) over batch items (x and y point at the
 * first item; positions contiguous, V channels each). The same sums in the
 * same order as lane_sum_rows (lane_sums.pxi). */
static inline int pypool_avg3_lanes_f32(const float* x, int64_t xitem, int64_t xrow, int64_t H,
                                        int64_t W, int64_t V, float* y, int64_t yitem,
                                        int64_t yrow, int64_t OH, int64_t OW, int64_t ph,
                                        int64_t pw, int64_t r0, int64_t r1, double div_d,
                                        const double* divh, const double* divw, int stream) {
#ifdef PYPOOL_AVG3_HAVE_AVX512
    if (pypool_sums_avx512)
        return pypool_avg3_lanes_avx512(x, xitem, xrow, H, W, V, y, yitem, yrow, OH, OW, ph, pw,
                                        r0, r1, div_d, divh, divw, stream);
#endif
    (void)x; (void)xitem; (void)xrow; (void)H; (void)W; (void)V; (void)y; (void)yitem;
    (void)yrow; (void)OH; (void)OW; (void)ph; (void)pw; (void)r0; (void)r1; (void)div_d;
    (void)divh; (void)divw; (void)stream;
    return 0;
}

#endif
