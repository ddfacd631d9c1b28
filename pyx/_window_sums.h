/* Window sums of channels_first rows at a column stride of 2 or more, on
 * AVX-512 CPUs: the averages whose windows share no row with the next output
 * row (4x4 at stride 4, 8x8 at 8, ...), which the plane path (reduce_plane_rows
 * in forward.pxi) otherwise does by splitting every row into its stride
 * phases, a scalar loop that took 5-8 times a global average's time on the
 * same input.
 *
 * acc[o], o < n, is the sum over the window's rows r (in order) of row r's
 * taps rows[r][o*s + j], j < k, added left to right from tap 0: the plane
 * path's additions in its order, so the same bits. Lanes are 8 consecutive
 * outputs: each row's taps come as 8 loads of 8 taps (one per output, as
 * doubles) and an 8 x 8 transpose turns them into 8 vectors of one tap each.
 * Gathers of the taps (tried first) were 20-40% slower on the Intel machine
 * here, and use half their lanes or less when a row has few outputs.
 *
 * Returns 1 when it did the sums, 0 when the caller must (no AVX-512, or the
 * switch in _sums.h off).
 */
#ifndef PYPOOL_WINDOW_SUMS_H
#define PYPOOL_WINDOW_SUMS_H

#include <stdint.h>
#include "_sums.h"    /* pypool_sums_avx512: the AVX-512 switch */

#if defined(__AVX2__) && defined(PYPOOL_SUMS_HAVE_AVX512)

PYPOOL_AVX512_BEGIN

/* The mask of lanes 0 .. n - 1 of 16 (none for n <= 0). */
static inline uint32_t pypool_lanes_below(int64_t n) {
    return n >= 16 ? 0xFFFFu : n <= 0 ? 0u : (1u << n) - 1;
}

/* Lanes 8 .. 15 of v. */
static inline __m256 pypool_high8(__m512 v) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* c[j] lane l = r[l] lane j: an 8x8 transpose in 24 shuffles. */
static inline void pypool_transpose8_pd(__m512d r[8], __m512d c[8]) {
    const __m512i lo_pairs = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i hi_pairs = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    __m512d t[8], u[8];
    int i;
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);      /* columns 0, 2, 4, 6 of the pair */
        t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);  /* columns 1, 3, 5, 7 */
    }
    for (i = 0; i < 8; i += 4) {
        u[i] = _mm512_permutex2var_pd(t[i], lo_pairs, t[i + 2]);          /* columns 0, 4 */
        u[i + 1] = _mm512_permutex2var_pd(t[i], hi_pairs, t[i + 2]);      /* 2, 6 */
        u[i + 2] = _mm512_permutex2var_pd(t[i + 1], lo_pairs, t[i + 3]);  /* 1, 5 */
        u[i + 3] = _mm512_permutex2var_pd(t[i + 1], hi_pairs, t[i + 3]);  /* 3, 7 */
    }
    c[0] = _mm512_shuffle_f64x2(u[0], u[4], 0x44);
    c[4] = _mm512_shuffle_f64x2(u[0], u[4], 0xEE);
    c[2] = _mm512_shuffle_f64x2(u[1], u[5], 0x44);
    c[6] = _mm512_shuffle_f64x2(u[1], u[5], 0xEE);
    c[1] = _mm512_shuffle_f64x2(u[2], u[6], 0x44);
    c[5] = _mm512_shuffle_f64x2(u[2], u[6], 0xEE);
    c[3] = _mm512_shuffle_f64x2(u[3], u[7], 0x44);
    c[7] = _mm512_shuffle_f64x2(u[3], u[7], 0xEE);
}

/* Row r's taps j0 .. j0+nt-1 (nt <= 8) of outputs o .. o+nl-1 (nl <= 8), as
 * doubles; lanes past them zero. Rows of 8 or 4 taps take plain loads (a
 * 512-bit masked load of 8 floats still pays for the line split of the 64
 * bytes it spans: 5.0 -> 4.2 ms for 8x8 windows). */
static inline void pypool_load_taps_f32(__m512d v[8], const float* base, int64_t s, int64_t nl,
                                        int64_t nt) {
    __mmask16 taps = (__mmask16)((1u << nt) - 1);
    int64_t l;
    for (l = 0; l < 8; l++) {
        if (l >= nl)
            v[l] = _mm512_setzero_pd();
        else if (nt == 8)
            v[l] = _mm512_cvtps_pd(_mm256_loadu_ps(base + l * s));
        else if (nt == 4)    /* (4x4 windows; lanes 4-7 are never added) */
            v[l] = _mm512_zextpd256_pd512(_mm256_cvtps_pd(_mm_loadu_ps(base + l * s)));
        else
            v[l] = _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps(taps,
                                                                                base + l * s)));
    }
}

static inline void pypool_load_taps_f64(__m512d v[8], const double* base, int64_t s, int64_t nl,
                                        int64_t nt) {
    __mmask8 taps = (__mmask8)((1u << nt) - 1);
    int64_t l;
    for (l = 0; l < 8; l++) {
        if (l >= nl)
            v[l] = _mm512_setzero_pd();
        else if (nt == 8)
            v[l] = _mm512_loadu_pd(base + l * s);
        else
            v[l] = _mm512_maskz_loadu_pd(taps, base + l * s);
    }
}

/* One kernel body per input type: FLOAT the element, LOAD its tap loader. */
#define PYPOOL_WINDOW_SUMS_BODY(FLOAT, LOAD)                                          \
    int64_t o, r, j0, j;                                                              \
    for (o = 0; o < n; o += 8) {                                                      \
        int64_t nl = n - o < 8 ? n - o : 8;                                           \
        __m512d sum = _mm512_setzero_pd();                                            \
        for (r = 0; r < nrows; r++) {                                                 \
            const FLOAT* base = rows[r] + o * s;                                      \
            __m512d h = _mm512_setzero_pd(), v[8], c[8];                              \
            for (j0 = 0; j0 < k; j0 += 8) {                                           \
                int64_t nt = k - j0 < 8 ? k - j0 : 8;                                 \
                LOAD(v, base + j0, s, nl, nt);                                        \
                pypool_transpose8_pd(v, c);                                           \
                /* Tap 0 starts the row's sum (no +0 before it). */                    \
                h = j0 == 0 ? c[0] : _mm512_add_pd(h, c[0]);                          \
                for (j = 1; j < nt; j++)                                              \
                    h = _mm512_add_pd(h, c[j]);                                       \
            }                                                                         \
            sum = r == 0 ? h : _mm512_add_pd(sum, h);                                 \
        }                                                                             \
        _mm512_mask_storeu_pd(acc + o, (__mmask8)((1u << nl) - 1), sum);              \
    }

/* Column strides 3 and 4 with k <= s (avg 3x3 s3, 4x4 s4): 16 outputs' taps
 * lie in s consecutive vectors of 16 floats, and tap j of all 16 is picked
 * from them by two two-source permutes and a blend - 3 shuffles per tap and
 * 16 outputs, where the transposes take 24 per 8 outputs (avg 3x3 s3 on
 * 57x57 planes was 10x the copy). The same additions in the same order. */
static void pypool_window_sums_s34_f32(double* acc, const float* const* rows, int64_t nrows,
                                       int64_t s, int64_t k, int64_t n) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i idx[4];
    __mmask16 upper[4];
    int64_t o, r, j, v;
    for (j = 0; j < k; j++) {   /* tap j of output l: element s*l + j of the 16*s */
        idx[j] = _mm512_add_epi32(_mm512_mullo_epi32(lane, _mm512_set1_epi32((int)s)),
                                  _mm512_set1_epi32((int)j));
        upper[j] = _mm512_cmpge_epi32_mask(idx[j], _mm512_set1_epi32(32));
    }
    for (o = 0; o < n; o += 16) {
        int64_t nl = n - o < 16 ? n - o : 16;
        int64_t need = (nl - 1) * s + k;    /* floats read from o's first tap */
        __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
        for (r = 0; r < nrows; r++) {
            const float* base = rows[r] + o * s;
            __m512 a[4];
            __m512d h_lo = _mm512_setzero_pd(), h_hi = _mm512_setzero_pd();
            for (v = 0; v < 4; v++) {   /* (no read past the last tap: rows end there) */
                int64_t left = need - 16 * v;
                if (left >= 16)
                    a[v] = _mm512_loadu_ps(base + 16 * v);
                else if (left > 0)
                    a[v] = _mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1), base + 16 * v);
                else
                    a[v] = _mm512_setzero_ps();
            }
            for (j = 0; j < k; j++) {
                __m512 t = _mm512_mask_blend_ps(upper[j],
                                                _mm512_permutex2var_ps(a[0], idx[j], a[1]),
                                                _mm512_permutex2var_ps(a[2], idx[j], a[3]));
                __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(t));
                __m512d hi = _mm512_cvtps_pd(
                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(t), 1)));
                /* Tap 0 starts the row's sum (no +0 before it). */
                h_lo = j == 0 ? lo : _mm512_add_pd(h_lo, lo);
                h_hi = j == 0 ? hi : _mm512_add_pd(h_hi, hi);
            }
            sum_lo = r == 0 ? h_lo : _mm512_add_pd(sum_lo, h_lo);
            sum_hi = r == 0 ? h_hi : _mm512_add_pd(sum_hi, h_hi);
        }
        _mm512_mask_storeu_pd(acc + o, (__mmask8)((1u << (nl < 8 ? nl : 8)) - 1), sum_lo);
        if (nl > 8)
            _mm512_mask_storeu_pd(acc + o + 8, (__mmask8)((1u << (nl - 8)) - 1), sum_hi);
    }
}

static void pypool_window_sums_f32_avx512(double* acc, const float* const* rows, int64_t nrows,
                                          int64_t s, int64_t k, int64_t n) {
    if ((s == 3 || s == 4) && k <= s) {
        pypool_window_sums_s34_f32(acc, rows, nrows, s, k, n);
        return;
    }
    PYPOOL_WINDOW_SUMS_BODY(float, pypool_load_taps_f32)
}

static void pypool_window_sums_f64_avx512(double* acc, const double* const* rows, int64_t nrows,
                                          int64_t s, int64_t k, int64_t n) {
    PYPOOL_WINDOW_SUMS_BODY(double, pypool_load_taps_f64)
}

#undef PYPOOL_WINDOW_SUMS_BODY

/* channels_last: one window's sums for channels [c, c + 8 * NV) of a position
 * (the first tap at x; rows rs apart, taps ts apart, in elements), 8 channels
 * a vector, NV vectors kept in registers while the window is read. */
#define PYPOOL_LANE_WINDOW_BODY(NV, LOAD)                                             \
    __m512d a[NV], h[NV];                                                             \
    int64_t r, j, v;                                                                  \
    for (r = 0; r < nh; r++) {                                                        \
        for (v = 0; v < NV; v++)                                                      \
            h[v] = LOAD(x + r * rs + 8 * v, m);                                       \
        for (j = 1; j < nw; j++)                                                      \
            for (v = 0; v < NV; v++)                                                  \
                h[v] = _mm512_add_pd(h[v], LOAD(x + r * rs + j * ts + 8 * v, m));     \
        for (v = 0; v < NV; v++)                                                      \
            a[v] = r == 0 ? h[v] : _mm512_add_pd(a[v], h[v]);                         \
    }                                                                                 \
    for (v = 0; v < NV; v++)                                                          \
        _mm512_mask_storeu_pd(acc + 8 * v, m, a[v]);

/* 8 channels as doubles; a mask below 0xFF loads only its lanes (whole
 * vectors take plain loads: see pypool_load_taps_f32). */
static inline __m512d pypool_load8_f32(const float* p, __mmask8 m) {
    if (m == 0xFF)
        return _mm512_cvtps_pd(_mm256_loadu_ps(p));
    return _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)m, p)));
}

static inline __m512d pypool_load8_f64(const double* p, __mmask8 m) {
    if (m == 0xFF)
        return _mm512_loadu_pd(p);
    return _mm512_maskz_loadu_pd(m, p);
}

/* acc[c], c < V: sum over the window's nh rows (in order) of each row's nw
 * taps added left to right from tap 0, channel c of every tap (contiguous
 * channels). 64 channels at a time in registers, then 8 at a time (the
 * last masked). */
#define PYPOOL_LANE_SUMS(NAME, FLOAT, LOAD)                                           \
    static void NAME(double* acc_all, const FLOAT* x_all, int64_t rs, int64_t ts,   \
                     int64_t nh, int64_t nw, int64_t V) {                             \
        int64_t c = 0;                                                                \
        for (; c + 64 <= V; c += 64) {                                                \
            double* acc = acc_all + c;                                                \
            const FLOAT* x = x_all + c;                                               \
            const __mmask8 m = 0xFF;                                                  \
            PYPOOL_LANE_WINDOW_BODY(8, LOAD)                                          \
        }                                                                             \
        for (; c < V; c += 8) {                                                       \
            double* acc = acc_all + c;                                                \
            const FLOAT* x = x_all + c;                                               \
            const __mmask8 m = V - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (V - c)) - 1); \
            PYPOOL_LANE_WINDOW_BODY(1, LOAD)                                          \
        }                                                                             \
    }

PYPOOL_LANE_SUMS(pypool_lane_window_sums_f32_avx512, float, pypool_load8_f32)
PYPOOL_LANE_SUMS(pypool_lane_window_sums_f64_avx512, double, pypool_load8_f64)

#undef PYPOOL_LANE_SUMS
#undef PYPOOL_LANE_WINDOW_BODY

/* Columns c .. c + 15 of a row of W floats, zeros outside [0, W) (nothing
 * outside it is read). */
static inline __m512 pypool_row16_or_zeros(const float* row, int64_t W, int64_t c) {
    if (c >= 0 && c + 16 <= W)
        return _mm512_loadu_ps(row + c);
    __mmask16 in = (__mmask16)(pypool_lanes_below(W - c) & ~pypool_lanes_below(-c));
    return _mm512_maskz_loadu_ps(in, row + c);
}

/* A tap's term as a double: v (terms 0, averages), v * v (1, Lp p = 2) or
 * |v| (2, Lp p = 1), as forward.pxi's term(). */
static inline __m512d pypool_term8(__m256 v, int terms) {
    __m512d d = _mm512_cvtps_pd(v);
    return terms == 1 ? _mm512_mul_pd(d, d) : terms == 2 ? _mm512_abs_pd(d) : d;
}

/* hs[o] = (t[c0 + 2o] + t[c0 + 2o + 1]) + t[c0 + 2o + 2] in double, o < n,
 * t the taps' terms (pypool_term8) over one row of W floats, taps outside
 * the row counting as +0: the plane path's horizontal_row for 3-wide
 * stride-2 windows (which adds only the in-bounds taps; +0 added to a sum
 * changes at most the sign of a zero sum, which the average's final "+ 0.0"
 * makes +0, and terms 1 and 2 are never -0). The taps come from two loads
 * per 16 outputs picked apart by permutes, where horizontal_row first split
 * the row into its two stride phases with a scalar loop (1 thread,
 * (8,64,112,112): avg 3x3 s2 p1 2.35 -> 1.66 ms, Lp 3x3 s2 p = 2 5.2 -> 2.45 ms,
 * p = 1 4.4 -> 1.9 ms). */
static void pypool_row_sums3_s2_f32_avx512(const float* row, int64_t W, int64_t c0, double* hs,
                                           int64_t n, int terms) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                           16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    __m512 lo = pypool_row16_or_zeros(row, W, c0), hi, next;
    for (int64_t o = 0; o < n; o += 16) {
        hi = pypool_row16_or_zeros(row, W, c0 + 2 * o + 16);
        next = pypool_row16_or_zeros(row, W, c0 + 2 * o + 32);
        __m512 t0 = _mm512_permutex2var_ps(lo, even, hi);    /* columns c0 + 2o + 2i */
        __m512 t1 = _mm512_permutex2var_ps(lo, odd, hi);     /* ... + 1 */
        __m512 t2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next),
                                                            _mm512_castps_si512(t0), 1));
        __m512d s_lo = _mm512_add_pd(
            _mm512_add_pd(pypool_term8(_mm512_castps512_ps256(t0), terms),
                          pypool_term8(_mm512_castps512_ps256(t1), terms)),
            pypool_term8(_mm512_castps512_ps256(t2), terms));
        __m512d s_hi = _mm512_add_pd(_mm512_add_pd(pypool_term8(pypool_high8(t0), terms),
                                                   pypool_term8(pypool_high8(t1), terms)),
                                     pypool_term8(pypool_high8(t2), terms));
        __mmask16 out = (__mmask16)pypool_lanes_below(n - o);
        _mm512_mask_storeu_pd(hs + o, (__mmask8)out, s_lo);
        _mm512_mask_storeu_pd(hs + o + 8, (__mmask8)(out >> 8), s_hi);
        lo = next;
    }
}

/* 8 averages to y (float32 when f32, else double; the first m, m < 8, masked):
 * (s + 0.0) / d, as finish_plane_row rounds them. */
static inline void pypool_put_averages8(void* y, int f32, __m512d s, __m512d d, int64_t m) {
    __mmask8 k = m >= 8 ? (__mmask8)0xff : (__mmask8)((1u << m) - 1);
    __m512d q = _mm512_maskz_div_pd(k, _mm512_add_pd(s, _mm512_setzero_pd()), d);
    if (f32 && m >= 8)
        _mm256_storeu_ps((float*)y, _mm512_cvtpd_ps(q));
    else if (f32)
        _mm512_mask_storeu_ps((float*)y, (__mmask16)k, _mm512_castps256_ps512(_mm512_cvtpd_ps(q)));
    else if (m >= 8)
        _mm512_storeu_pd((double*)y, q);
    else
        _mm512_mask_storeu_pd((double*)y, k, q);
}

/* y[o] = (((rows[0][o] + rows[1][o]) + ... + rows[n-1][o]) + 0.0) / (dh * dw[o]),
 * o < OW (y float32 when f32, else double; n >= 1): a window's rows of
 * horizontal sums added in order and averaged, as vertical_rows and
 * finish_plane_row do (forward.pxi), in one pass. 32 outputs a step, their
 * sums kept in registers while the rows are added; the two passes went over
 * the row once per window row (avg 3x3x3 s1 on (8,32,32,64,64), 9 rows a
 * window, 1 thread: 130 ms). */
static void pypool_sum_rows_average_avx512(void* y, int f32, const double* const* rows,
                                           int64_t n, double dh, const double* dw,
                                           int64_t OW) {
    const __m512d vdh = _mm512_set1_pd(dh);
    int64_t o = 0, j, t, size = f32 ? 4 : 8;
    for (; o + 32 <= OW; o += 32) {
        __m512d a[4];
        for (t = 0; t < 4; t++)
            a[t] = _mm512_loadu_pd(rows[0] + o + 8 * t);
        for (j = 1; j < n; j++)
            for (t = 0; t < 4; t++)
                a[t] = _mm512_add_pd(a[t], _mm512_loadu_pd(rows[j] + o + 8 * t));
        for (t = 0; t < 4; t++)
            pypool_put_averages8((char*)y + (o + 8 * t) * size, f32, a[t],
                                 _mm512_mul_pd(vdh, _mm512_loadu_pd(dw + o + 8 * t)), 8);
    }
    for (; o < OW; o += 8) {
        int64_t m = OW - o < 8 ? OW - o : 8;
        __mmask8 k = (__mmask8)((1u << m) - 1);
        __m512d a = _mm512_maskz_loadu_pd(k, rows[0] + o);
        for (j = 1; j < n; j++)
            a = _mm512_add_pd(a, _mm512_maskz_loadu_pd(k, rows[j] + o));
        pypool_put_averages8((char*)y + o * size, f32, a,
                             _mm512_mul_pd(vdh, _mm512_maskz_loadu_pd(k, dw + o)), m);
    }
}

PYPOOL_AVX512_END

/* NAME(...): NAME_avx512(...) where the CPU has AVX-512, returning 1; else 0,
 * and the caller takes its own loops. */
#define PYPOOL_IF_AVX512(NAME, PARAMS, ARGS)                                          \
    static inline int NAME PARAMS {                                                   \
        if (!pypool_sums_avx512)                                                      \
            return 0;                                                                 \
        NAME##_avx512 ARGS;                                                           \
        return 1;                                                                     \
    }
#else
#define PYPOOL_IF_AVX512(NAME, PARAMS, ARGS) static inline int NAME PARAMS { return 0; }
#endif

PYPOOL_IF_AVX512(pypool_lane_window_sums_f32, (double* acc, const float* x, int64_t rs,
                 int64_t ts, int64_t nh, int64_t nw, int64_t V), (acc, x, rs, ts, nh, nw, V))
PYPOOL_IF_AVX512(pypool_lane_window_sums_f64, (double* acc, const double* x, int64_t rs,
                 int64_t ts, int64_t nh, int64_t nw, int64_t V), (acc, x, rs, ts, nh, nw, V))
PYPOOL_IF_AVX512(pypool_window_sums_f32, (double* acc, const float* const* rows, int64_t nrows,
                 int64_t s, int64_t k, int64_t n), (acc, rows, nrows, s, k, n))
PYPOOL_IF_AVX512(pypool_window_sums_f64, (double* acc, const double* const* rows,
                 int64_t nrows, int64_t s, int64_t k, int64_t n), (acc, rows, nrows, s, k, n))
PYPOOL_IF_AVX512(pypool_row_sums3_s2_f32, (const float* row, int64_t W, int64_t c0, double* hs,
                 int64_t n, int terms), (row, W, c0, hs, n, terms))
PYPOOL_IF_AVX512(pypool_sum_rows_average, (void* y, int f32, const double* const* rows, int64_t n,
                 double dh, const double* dw, int64_t OW), (y, f32, rows, n, dh, dw, OW))
#undef PYPOOL_IF_AVX512

#endif
