/* Running (van Herk / Gil-Werman) windows for float and double: the sweep of
 * running.pxi's run_windows, with the lanes cut into chunks of 1 or 4
 * vectors whose running suffix and prefix stay in registers.
 *
 * Layout: position u of the axis is z[u * lanes : (u + 1) * lanes]; position
 * 0 starts a block of k. out[o * lanes + l] combines positions first + o*s + j
 * (j < k) of lane l. lanes must be a multiple of the vector width (8 floats,
 * 4 doubles; the caller pads its rows). scratch holds k * 4 vectors.
 *
 * Per block holding a window start: the block's suffixes right to left
 * (x_j op S_{j+1}, into scratch), then the next block's prefix left to
 * right (P op x), each window taking S_j op P, the whole block taking S_0.
 * These are run_windows' operands in run_windows' order, so both give the
 * same bits. The max is max_nan's: v > m ? v : m, then v where v is NaN.
 *
 * The band path (running.pxi's band_max_task) uses the same sweep with
 * positions given by row pointers (the input rows in place), a direct
 * version for short windows, and pools along rows by doubling
 * (PYPOOL_ROWS_DOUBLING), 16 lanes at a time for float on AVX-512 CPUs. The
 * sum band path of averages (band_sum_task) sums float and double rows in
 * double with the same sweeps, then sums along rows by runs
 * (PYPOOL_ROWS_WINDOW_SUMS).
 *
 * GCC vector extensions: AVX2 builds get 256-bit code, the others two SSE
 * halves, from the same source.
 */
#ifndef PYPOOL_RUNNING_H
#define PYPOOL_RUNNING_H

#include <stdint.h>
#include <string.h>
#include "_sums.h"    /* pypool_sums_avx512: the AVX-512 switch */
#include "_stream.h"  /* pypool_put_ps8: streamed rows of averages */

typedef float pypool_vf __attribute__((vector_size(32)));
typedef int32_t pypool_vfi __attribute__((vector_size(32)));
typedef double pypool_vd __attribute__((vector_size(32)));
typedef int64_t pypool_vdi __attribute__((vector_size(32)));

#define PYPOOL_LOAD(VT, p) ({ VT v_; memcpy(&v_, (p), sizeof(VT)); v_; })
#define PYPOOL_STORE(VT, p, v) do { VT v_ = (v); memcpy((p), &v_, sizeof(VT)); } while (0)

/* max_nan on vectors: take v where v > m or v is NaN (ties and a NaN in m
 * keep m). AVX builds: one MAXPS (exactly v > m ? v : m) and a NaN select, 3
 * operations instead of the 4 of the portable form. */
#ifdef __AVX__
#include <immintrin.h>
static inline pypool_vf pypool_vmax_f(pypool_vf m, pypool_vf v) {
    __m256 r = _mm256_max_ps((__m256)v, (__m256)m);
    __m256 nan = _mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q);
    return (pypool_vf)_mm256_blendv_ps(r, (__m256)v, nan);
}
static inline pypool_vd pypool_vmax_d(pypool_vd m, pypool_vd v) {
    __m256d r = _mm256_max_pd((__m256d)v, (__m256d)m);
    __m256d nan = _mm256_cmp_pd((__m256d)v, (__m256d)v, _CMP_UNORD_Q);
    return (pypool_vd)_mm256_blendv_pd(r, (__m256d)v, nan);
}
#else
static inline pypool_vf pypool_vmax_f(pypool_vf m, pypool_vf v) {
    pypool_vfi take = (v > m) | (v != v);
    return (pypool_vf)((take & (pypool_vfi)v) | (~take & (pypool_vfi)m));
}
static inline pypool_vd pypool_vmax_d(pypool_vd m, pypool_vd v) {
    pypool_vdi take = (v > m) | (v != v);
    return (pypool_vd)((take & (pypool_vdi)v) | (~take & (pypool_vdi)m));
}
#endif
#define PYPOOL_VADD(m, v) ((m) + (v))

/* One chunk of W vectors, read at offset src0 of each position and written
 * at lane offset l0 of each output (the same offset but for the channels_last
 * bands, which write each column's group of channels packed: lane_bands.pxi).
 * SRC(T) declares where positions come from and AT(u) is position u's first
 * lane: one array of positions `lanes` apart (the scratch rows of
 * run_windows), or an array of row pointers (the band paths reading the input
 * in place). LD(VT, p) loads the vector of lanes at p (float rows of a
 * float64 sum: converted). Output o's lanes start at out + o * out_ld. */
#define PYPOOL_SWEEP_CHUNK(NAME, T, VT, W, OP, SRC, AT, LD)                                 \
static void NAME(SRC(T), int64_t src0, int64_t l0, int64_t first, int64_t s, int64_t k,     \
                 int64_t nout, T* scratch, T* out, int64_t out_ld) {                        \
    enum { VL = sizeof(VT) / sizeof(T) };                                                   \
    int64_t a = first, o = 0, b0, j, grown, i;                                              \
    VT acc[W], pre[W];                                                                      \
    while (o < nout) {                                                                      \
        b0 = a - a % k;                                                                     \
        for (i = 0; i < W; i++) {                                                           \
            acc[i] = LD(VT, AT(b0 + k - 1) + src0 + i * VL);                                \
            PYPOOL_STORE(VT, scratch + ((k - 1) * W + i) * VL, acc[i]);                     \
        }                                                                                   \
        for (j = k - 2; j >= a - b0; j--)                                                   \
            for (i = 0; i < W; i++) {                                                       \
                acc[i] = OP(LD(VT, AT(b0 + j) + src0 + i * VL), acc[i]);                    \
                PYPOOL_STORE(VT, scratch + (j * W + i) * VL, acc[i]);                       \
            }                                                                               \
        grown = 0;    /* pre holds the next block's positions [b0 + k, b0 + k + grown) */   \
        while (o < nout && a < b0 + k) {                                                    \
            j = a - b0;                                                                     \
            if (j == 0) {                                                                   \
                for (i = 0; i < W; i++)                                                     \
                    PYPOOL_STORE(VT, out + o * out_ld + l0 + i * VL,                        \
                                 PYPOOL_LOAD(VT, scratch + i * VL));                        \
            } else {                                                                        \
                if (grown == 0) {                                                           \
                    for (i = 0; i < W; i++)                                                 \
                        pre[i] = LD(VT, AT(b0 + k) + src0 + i * VL);                        \
                    grown = 1;                                                              \
                }                                                                           \
                for (; grown < j; grown++)                                                  \
                    for (i = 0; i < W; i++)                                                 \
                        pre[i] = OP(pre[i], LD(VT, AT(b0 + k + grown) + src0                \
                                                            + i * VL));                     \
                for (i = 0; i < W; i++)                                                     \
                    PYPOOL_STORE(VT, out + o * out_ld + l0 + i * VL,                        \
                                 OP(PYPOOL_LOAD(VT, scratch + (j * W + i) * VL), pre[i]));  \
            }                                                                               \
            o++;                                                                            \
            a += s;                                                                         \
        }                                                                                   \
    }                                                                                       \
}

#define PYPOOL_SRC_LANES(T) const T* z, int64_t lanes
#define PYPOOL_AT_LANES(u) (z + (u) * lanes)
#define PYPOOL_SRC_ROWS(T) const T** rows
#define PYPOOL_SRC_FLOAT_ROWS(T) const float** rows
#define PYPOOL_AT_ROWS(u) (rows[u])

/* 4 floats at p as a vector of 4 doubles (the lanes of one pypool_vd). */
typedef float pypool_vf4 __attribute__((vector_size(16)));
#define PYPOOL_LOAD_WIDENED(VT, p) __builtin_convertvector(PYPOOL_LOAD(pypool_vf4, (p)), VT)

/* Positions `lanes` apart in z; lanes a multiple of the vector width. */
#define PYPOOL_SWEEP(NAME, T, VT, OP)                                                       \
PYPOOL_SWEEP_CHUNK(NAME##_4, T, VT, 4, OP, PYPOOL_SRC_LANES, PYPOOL_AT_LANES, PYPOOL_LOAD)  \
PYPOOL_SWEEP_CHUNK(NAME##_1, T, VT, 1, OP, PYPOOL_SRC_LANES, PYPOOL_AT_LANES, PYPOOL_LOAD)  \
static void NAME(const T* z, int64_t lanes, int64_t first, int64_t s, int64_t k,            \
                 int64_t nout, T* scratch, T* out) {                                        \
    enum { VL = sizeof(VT) / sizeof(T) };                                                   \
    int64_t l0 = 0;                                                                         \
    for (; l0 + 4 * VL <= lanes; l0 += 4 * VL)                                              \
        NAME##_4(z, lanes, l0, l0, first, s, k, nout, scratch, out, lanes);                 \
    for (; l0 + VL <= lanes; l0 += VL)                                                      \
        NAME##_1(z, lanes, l0, l0, first, s, k, nout, scratch, out, lanes);                 \
}

/* Positions at row pointers (rows of TIN: T, or float widened by LD); any
 * lanes >= the vector width: the last chunk overlaps the one before it (the
 * same lanes computed twice, the same bits) instead of running past the row. */
#define PYPOOL_SWEEP_ROWS(NAME, TIN, T, VT, OP, SRC, LD)                                    \
PYPOOL_SWEEP_CHUNK(NAME##_4, T, VT, 4, OP, SRC, PYPOOL_AT_ROWS, LD)                         \
PYPOOL_SWEEP_CHUNK(NAME##_1, T, VT, 1, OP, SRC, PYPOOL_AT_ROWS, LD)                         \
static void NAME(const TIN** rows, int64_t lanes, int64_t first, int64_t s, int64_t k,      \
                 int64_t nout, T* scratch, T* out, int64_t out_ld) {                        \
    enum { VL = sizeof(VT) / sizeof(T) };                                                   \
    int64_t l0 = 0;                                                                         \
    for (; l0 + 4 * VL <= lanes; l0 += 4 * VL)                                              \
        NAME##_4(rows, l0, l0, first, s, k, nout, scratch, out, out_ld);                    \
    for (; l0 + VL <= lanes; l0 += VL)                                                      \
        NAME##_1(rows, l0, l0, first, s, k, nout, scratch, out, out_ld);                    \
    if (l0 < lanes)                                                                         \
        NAME##_1(rows, lanes - VL, lanes - VL, first, s, k, nout, scratch, out, out_ld);    \
}

/* out[o * out_ld + l] = rows[first + o*s] op ... op rows[first + o*s + k - 1]
 * lane by lane (direct windows, in order), lanes >= the vector width. */
#define PYPOOL_ROWS_DIRECT(NAME, TIN, T, VT, OP, LD)                                        \
static void NAME(const TIN** rows, int64_t lanes, int64_t first, int64_t s, int64_t k,      \
                 int64_t nout, T* out, int64_t out_ld) {                                    \
    enum { VL = sizeof(VT) / sizeof(T) };                                                   \
    int64_t o, j, l0, l;                                                                    \
    for (o = 0; o < nout; o++) {                                                            \
        const TIN** r = rows + first + o * s;                                               \
        for (l0 = 0; l0 < lanes; l0 += VL) {                                                \
            l = l0 + VL <= lanes ? l0 : lanes - VL;                                         \
            VT acc = LD(VT, r[0] + l);                                                      \
            for (j = 1; j < k; j++)                                                         \
                acc = OP(acc, LD(VT, r[j] + l));                                            \
            PYPOOL_STORE(VT, out + o * out_ld + l, acc);                                    \
        }                                                                                   \
    }                                                                                       \
}

/* Windows along rows by doubling: level p holds the combination of
 * positions [i, i + p); level 2p combines level p at i and i + p, and the
 * k-wide window combines level p at i and i + k - p (overlapping: fine for a
 * max, whose ties keep the earlier operand, so the result is the window's
 * first maximum, as a left-to-right scan gives). About log2(k) vector
 * operations per output, no transpose.
 *
 * Row r of the nrows rows starts at src + r * ld and must hold
 * first + (nout - 1) * s + k values, with a vector of readable slack after the
 * last row; b1 and b2 hold as much as src. out[r * out_ld + o] = the window
 * at first + o*s of row r, o < nout. Each level runs over all rows as one
 * array (positions whose window crosses into the next row are computed but
 * never used), so a level's loads read stores made long before: on one
 * short row at a time, the unaligned loads of the level just stored waited
 * on store forwarding. */
#define PYPOOL_ROWS_DOUBLING(NAME, T, VT, OP, SOP, LAST)                                    \
static void NAME(const T* src, int64_t ld, int64_t nrows, int64_t first, int64_t s,         \
                 int64_t k, int64_t nout, T* b1, T* b2, T* out, int64_t out_ld,             \
                 int stream) {                                                              \
    enum { VL = sizeof(VT) / sizeof(T) };                                                   \
    int64_t n = (nout - 1) * s + k, p = 1, i, o, r, row;                                    \
    const T* cur = src + first;                                                             \
    const T* at;                                                                            \
    T* dst = b1;                                                                            \
    T* y;                                                                                   \
    while (2 * p <= k) {                                                                    \
        int64_t total = (nrows - 1) * ld + n - 2 * p + 1;                                   \
        for (i = 0; i < total; i += VL)                                                     \
            PYPOOL_STORE(VT, dst + i, OP(PYPOOL_LOAD(VT, cur + i),                          \
                                         PYPOOL_LOAD(VT, cur + i + p)));                    \
        cur = dst;                                                                          \
        dst = dst == b1 ? b2 : b1;                                                          \
        p *= 2;                                                                             \
    }                                                                                       \
    r = k - p;                                                                              \
    if (stream && s == 1 && out_ld == nout && LAST(cur, ld, nrows, r, nout, out))           \
        return;                                                                             \
    for (row = 0; row < nrows; row++) {                                                     \
        at = cur + row * ld;                                                                \
        y = out + row * out_ld;                                                             \
        o = 0;                                                                              \
        if (s == 1)                                                                         \
            for (; o + VL <= nout; o += VL)                                                 \
                PYPOOL_STORE(VT, y + o, r ? OP(PYPOOL_LOAD(VT, at + o),                     \
                                               PYPOOL_LOAD(VT, at + o + r))                 \
                                          : PYPOOL_LOAD(VT, at + o));                       \
        for (; o < nout; o++)                                                               \
            y[o] = r ? SOP(at[o * s], at[o * s + r]) : at[o * s];                           \
    }                                                                                       \
}

static inline float pypool_smax_f(float m, float v) { return v != v ? v : (v > m ? v : m); }
static inline double pypool_smax_d(double m, double v) { return v != v ? v : (v > m ? v : m); }

PYPOOL_SWEEP(pypool_sweep_max_f32, float, pypool_vf, pypool_vmax_f)
PYPOOL_SWEEP(pypool_sweep_max_f64, double, pypool_vd, pypool_vmax_d)
PYPOOL_SWEEP(pypool_sweep_sum_f64, double, pypool_vd, PYPOOL_VADD)
PYPOOL_SWEEP_ROWS(pypool_rows_running_max_f32_v8, float, float, pypool_vf, pypool_vmax_f,
                  PYPOOL_SRC_ROWS, PYPOOL_LOAD)
/* ... on 16 lanes where the CPU has AVX-512 and a row has a vector of them
 * (1 thread, max 13x13 on (8,128,64,64): 3.79 -> 3.37 ms, 3 alternating runs,
 * once the band buffers were each 64-byte aligned; before, it measured no
 * faster). The scratch then holds 4 vectors of 16 floats per block row. */
#ifdef PYPOOL_SUMS_HAVE_AVX512
PYPOOL_AVX512_BEGIN
typedef float pypool_vf16 __attribute__((vector_size(64)));
static inline pypool_vf16 pypool_vmax_f16(pypool_vf16 m, pypool_vf16 v) {
    return (pypool_vf16)pypool_max_nan16((__m512)m, (__m512)v);
}
PYPOOL_SWEEP_ROWS(pypool_rows_running_max_f32_v16, float, float, pypool_vf16, pypool_vmax_f16,
                  PYPOOL_SRC_ROWS, PYPOOL_LOAD)
PYPOOL_AVX512_END
#endif
static void pypool_rows_running_max_f32(const float** rows, int64_t lanes, int64_t first,
                                        int64_t s, int64_t k, int64_t nout, float* scratch,
                                        float* out, int64_t out_ld) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512 && lanes >= 16) {
        pypool_rows_running_max_f32_v16(rows, lanes, first, s, k, nout, scratch, out, out_ld);
        return;
    }
#endif
    pypool_rows_running_max_f32_v8(rows, lanes, first, s, k, nout, scratch, out, out_ld);
}
PYPOOL_SWEEP_ROWS(pypool_rows_running_max_f64, double, double, pypool_vd, pypool_vmax_d,
                  PYPOOL_SRC_ROWS, PYPOOL_LOAD)
PYPOOL_ROWS_DIRECT(pypool_rows_direct_max_f32, float, float, pypool_vf, pypool_vmax_f, PYPOOL_LOAD)
PYPOOL_ROWS_DIRECT(pypool_rows_direct_max_f64, double, double, pypool_vd, pypool_vmax_d,
                   PYPOOL_LOAD)
/* float32 and float64 rows summed in float64 (the sum band path of
 * averages; float32 widened as it is loaded); on CPUs with AVX-512 8 doubles
 * a vector (1 thread, avg 15x15 on (8,128,64,64) float32: 4.5 -> 4.1 ms,
 * before the fused finish). TERM sq sums the squares instead (Lp norms of
 * p = 2: each value squared in float64 as it is loaded, exact for float32). */
#define PYPOOL_SQUARED(LD, VT, p) ({ VT t_ = LD(VT, p); t_ * t_; })
#define PYPOOL_LOAD_SQ(VT, p) PYPOOL_SQUARED(PYPOOL_LOAD, VT, p)
#define PYPOOL_LOAD_WIDENED_SQ(VT, p) PYPOOL_SQUARED(PYPOOL_LOAD_WIDENED, VT, p)
#define PYPOOL_TERM_SWEEPS(TERM, V, VT, WIDEN, LOAD)                                        \
PYPOOL_SWEEP_ROWS(pypool_rows_running_##TERM##_f32_##V, float, double, VT, PYPOOL_VADD,     \
                  PYPOOL_SRC_FLOAT_ROWS, WIDEN)                                             \
PYPOOL_ROWS_DIRECT(pypool_rows_direct_##TERM##_f32_##V, float, double, VT, PYPOOL_VADD,     \
                   WIDEN)                                                                   \
PYPOOL_SWEEP_ROWS(pypool_rows_running_##TERM##_f64_##V, double, double, VT, PYPOOL_VADD,    \
                  PYPOOL_SRC_ROWS, LOAD)                                                    \
PYPOOL_ROWS_DIRECT(pypool_rows_direct_##TERM##_f64_##V, double, double, VT, PYPOOL_VADD,    \
                   LOAD)
PYPOOL_TERM_SWEEPS(sum, v4, pypool_vd, PYPOOL_LOAD_WIDENED, PYPOOL_LOAD)
PYPOOL_TERM_SWEEPS(sq, v4, pypool_vd, PYPOOL_LOAD_WIDENED_SQ, PYPOOL_LOAD_SQ)
#ifdef PYPOOL_SUMS_HAVE_AVX512
PYPOOL_AVX512_BEGIN
typedef double pypool_vd8 __attribute__((vector_size(64)));
/* (the intrinsic: GCC 12 widens a vector extension's 8 floats in two halves) */
#define PYPOOL_LOAD_WIDENED8(VT, p) ((VT)_mm512_cvtps_pd(_mm256_loadu_ps(p)))
#define PYPOOL_LOAD_WIDENED8_SQ(VT, p) PYPOOL_SQUARED(PYPOOL_LOAD_WIDENED8, VT, p)
PYPOOL_TERM_SWEEPS(sum, v8, pypool_vd8, PYPOOL_LOAD_WIDENED8, PYPOOL_LOAD)
PYPOOL_TERM_SWEEPS(sq, v8, pypool_vd8, PYPOOL_LOAD_WIDENED8_SQ, PYPOOL_LOAD_SQ)
PYPOOL_AVX512_END
#endif

/* pypool_rows_{running,direct}_{sum,sq}_{f32,f64}: the 8-lane sweeps where
 * the CPU has AVX-512 and a row has a vector of lanes, else the 4-lane ones. */
#ifdef PYPOOL_SUMS_HAVE_AVX512
#define PYPOOL_V8_OR_V4(NAME, ...)                                                          \
    (pypool_sums_avx512 && lanes >= 8 ? NAME##_v8(__VA_ARGS__) : NAME##_v4(__VA_ARGS__))
#else
#define PYPOOL_V8_OR_V4(NAME, ...) NAME##_v4(__VA_ARGS__)
#endif
#define PYPOOL_TERM_ROWS(TERM, SUFFIX, TIN)                                                 \
static void pypool_rows_running_##TERM##_##SUFFIX(const TIN** rows, int64_t lanes,          \
                                                  int64_t first, int64_t s, int64_t k,      \
                                                  int64_t nout, double* scratch,            \
                                                  double* out, int64_t out_ld) {            \
    PYPOOL_V8_OR_V4(pypool_rows_running_##TERM##_##SUFFIX, rows, lanes, first, s, k, nout,  \
                    scratch, out, out_ld);                                                  \
}                                                                                           \
static void pypool_rows_direct_##TERM##_##SUFFIX(const TIN** rows, int64_t lanes,           \
                                                 int64_t first, int64_t s, int64_t k,       \
                                                 int64_t nout, double* out,                 \
                                                 int64_t out_ld) {                          \
    PYPOOL_V8_OR_V4(pypool_rows_direct_##TERM##_##SUFFIX, rows, lanes, first, s, k, nout,   \
                    out, out_ld);                                                           \
}
PYPOOL_TERM_ROWS(sum, f32, float)
PYPOOL_TERM_ROWS(sum, f64, double)
PYPOOL_TERM_ROWS(sq, f32, float)
PYPOOL_TERM_ROWS(sq, f64, double)

/* One output of the doubling's last step at (*row, *o) of the rows taken as
 * one array (nout each), which then moves on by one: the streamed last steps'
 * scalar head and tail. */
#define PYPOOL_DOUBLING_LAST1(NAME, T, SOP)                                                 \
static inline T NAME(const T* cur, int64_t ld, int64_t r, int64_t nout, int64_t* row,       \
                     int64_t* o) {                                                          \
    const T* at = cur + *row * ld + *o;                                                     \
    if (++*o == nout) {                                                                     \
        *o = 0;                                                                             \
        ++*row;                                                                             \
    }                                                                                       \
    return r ? SOP(at[0], at[r]) : at[0];                                                   \
}
PYPOOL_DOUBLING_LAST1(pypool_doubling_last1, float, pypool_smax_f)
PYPOOL_DOUBLING_LAST1(pypool_doubling_last1_d, double, pypool_smax_d)

/* The last doubling step of float64 rows that follow each other, written
 * with streaming stores: pypool_doubling_last_streamed's scheme (below) with
 * AVX2 vectors of 4, two to a 64-byte line. 1 thread, max 13x13 on
 * (8,128,64,64) float64: 6.2 -> 5.0-5.5 ms. Returns 0 (nothing written) where it
 * does not apply: no AVX2, rows under 4 outputs, or a misaligned result. */
static inline int pypool_doubling_last_streamed_f64(const double* cur, int64_t ld,
                                                    int64_t nrows, int64_t r, int64_t nout,
                                                    double* out) {
#ifdef __AVX2__
    int64_t total = nrows * nout, i = 0, row = 0, o = 0;
    int64_t head = (int64_t)(((64 - ((uintptr_t)out & 63)) & 63) / sizeof(double));
    const __m256i lane = _mm256_set_epi64x(3, 2, 1, 0);
    if (nout < 4 || ((uintptr_t)out & 7))
        return 0;
    for (; i < head && i < total; i++)     /* up to the first line boundary */
        out[i] = pypool_doubling_last1_d(cur, ld, r, nout, &row, &o);
    for (; i + 4 <= total; i += 4) {         /* nout >= 4: at most one row change */
        const double* at = cur + row * ld + o;
        pypool_vd v = PYPOOL_LOAD(pypool_vd, at);
        if (r)
            v = pypool_vmax_d(v, PYPOOL_LOAD(pypool_vd, at + r));
        if (o + 4 > nout) {
            /* lanes j >= nout - o are the next row's positions o + j - nout */
            const double* nx = cur + (row + 1) * ld + o - nout;
            pypool_vd w = PYPOOL_LOAD(pypool_vd, nx);
            if (r)
                w = pypool_vmax_d(w, PYPOOL_LOAD(pypool_vd, nx + r));
            __m256i next = _mm256_cmpgt_epi64(lane, _mm256_set1_epi64x(nout - o - 1));
            v = (pypool_vd)_mm256_blendv_pd((__m256d)v, (__m256d)w, _mm256_castsi256_pd(next));
        }
        _mm256_stream_pd(out + i, (__m256d)v);
        o += 4;
        if (o >= nout) {
            o -= nout;
            row++;
        }
    }
    for (; i < total; i++)                   /* the rest of the last line */
        out[i] = pypool_doubling_last1_d(cur, ld, r, nout, &row, &o);
    _mm_sfence();
    return 1;
#else
    (void)cur; (void)ld; (void)nrows; (void)r; (void)nout; (void)out;
    return 0;
#endif
}

#define PYPOOL_LAST_PLAIN(cur, ld, nrows, r, nout, out) 0

PYPOOL_ROWS_DOUBLING(pypool_rows_doubling_max_f32_v8, float, pypool_vf, pypool_vmax_f,
                     pypool_smax_f, PYPOOL_LAST_PLAIN)
PYPOOL_ROWS_DOUBLING(pypool_rows_doubling_max_f64, double, pypool_vd, pypool_vmax_d, pypool_smax_d,
                     pypool_doubling_last_streamed_f64)

/* float32 doubling on CPUs with AVX-512: the same operations on 16 lanes. */
#ifdef PYPOOL_SUMS_HAVE_AVX512
/* The last step's 16 outputs from at. */
PYPOOL_AVX512 static inline __m512 pypool_doubling_last16(const float* at, int64_t r) {
    __m512 v = _mm512_loadu_ps(at);
    return r ? pypool_max_nan16(v, _mm512_loadu_ps(at + r)) : v;
}

/* The last step of pypool_rows_doubling_max_f32_v16 at stride 1 into rows that
 * follow each other (out_ld == nout >= 16), written with streaming stores:
 * the output rows as one array, whose 64-byte lines are each one vector (a
 * vector that crosses from one row into the next takes its lanes from both),
 * so every line but the array's first and last is written whole, without
 * being read first. A task writes its outputs in one burst at its end; a
 * large result that does not stay in the caches otherwise waits on reading
 * each line (1 thread, max 13x13 on (8,128,64,64): 2.5 -> 2.1 ms). */
PYPOOL_AVX512 static void pypool_doubling_last_streamed(const float* cur, int64_t ld,
                                                        int64_t nrows, int64_t r, int64_t nout,
                                                        float* out) {
    int64_t total = nrows * nout, i = 0, row = 0, o = 0;
    int64_t head = (int64_t)(((64 - ((uintptr_t)out & 63)) & 63) / sizeof(float));
    for (; i < head && i < total; i++)     /* up to the first line boundary */
        out[i] = pypool_doubling_last1(cur, ld, r, nout, &row, &o);
    for (; i + 16 <= total; i += 16) {       /* whole lines; nout >= 16: at most one row change */
        __m512 v = pypool_doubling_last16(cur + row * ld + o, r);
        if (o + 16 > nout) {
            /* lanes j >= nout - o are the next row's positions o + j - nout */
            __mmask16 next = (__mmask16)(0xffffu << (nout - o));
            v = _mm512_mask_mov_ps(v, next,
                                   pypool_doubling_last16(cur + (row + 1) * ld + o - nout, r));
        }
        _mm512_stream_ps(out + i, v);
        o += 16;
        if (o >= nout) {
            o -= nout;
            row++;
        }
    }
    for (; i < total; i++)                   /* the rest of the last line */
        out[i] = pypool_doubling_last1(cur, ld, r, nout, &row, &o);
    _mm_sfence();    /* streaming stores are weakly ordered: done before returning */
}

PYPOOL_AVX512 static void pypool_rows_doubling_max_f32_v16(
        const float* src, int64_t ld, int64_t nrows, int64_t first, int64_t s, int64_t k,
        int64_t nout, float* b1, float* b2, float* out, int64_t out_ld, int stream) {
    int64_t n = (nout - 1) * s + k, p = 1, i, o, r, row;
    const float* cur = src + first;
    const float* at;
    float* dst = b1;
    float* y;
    __m512 v;
    while (2 * p <= k) {
        int64_t total = (nrows - 1) * ld + n - 2 * p + 1;
        for (i = 0; i < total; i += 16)
            _mm512_storeu_ps(dst + i, pypool_max_nan16(_mm512_loadu_ps(cur + i),
                                                    _mm512_loadu_ps(cur + i + p)));
        cur = dst;
        dst = dst == b1 ? b2 : b1;
        p *= 2;
    }
    r = k - p;
    if (stream && s == 1 && out_ld == nout && nout >= 16 && ((uintptr_t)out & 3) == 0) {
        pypool_doubling_last_streamed(cur, ld, nrows, r, nout, out);
        return;
    }
    for (row = 0; row < nrows; row++) {
        at = cur + row * ld;
        y = out + row * out_ld;
        if (s != 1) {
            for (o = 0; o < nout; o++)
                y[o] = r ? pypool_smax_f(at[o * s], at[o * s + r]) : at[o * s];
            continue;
        }
        for (o = 0; o < nout; o += 16) {
            v = _mm512_loadu_ps(at + o);
            if (r)
                v = pypool_max_nan16(v, _mm512_loadu_ps(at + o + r));
            if (o + 16 <= nout)
                _mm512_storeu_ps(y + o, v);
            else
                _mm512_mask_storeu_ps(y + o, (__mmask16)((1u << (nout - o)) - 1), v);
        }
    }
}
#endif

/* Sums of k consecutive positions along rows (the sum band path of
 * averages): window o of row r sums src[r * ld + o] .. src[r * ld + o + k - 1]
 * in double, o < nout, r < nrows. Cut into runs of a: tmp[i] = src[i] + ... +
 * src[i + a - 1] (every position of all rows, as one array, like the doubling
 * above), then each window adds its b = k / a runs, a apart, and the k - a*b
 * positions left, one by one, always in that order. a is the run length
 * with the fewest adds per output, (a - 1) + (b - 1) + (k - a*b): 6 for
 * k = 15 (runs of 3), where a running window along a row would need a
 * transpose. Row r must hold nout + k - 1 positions and be followed by 4
 * vectors of readable slack (+ a); tmp holds as much as src. U vectors go
 * at a time, so that their chains of adds overlap. */
static inline int64_t pypool_sum_run_length(int64_t k) {
    int64_t a, best = 1, cost, best_cost = k - 1;
    for (a = 2; a <= k && a - 1 < best_cost; a++) {
        cost = (a - 1) + (k / a - 1) + k % a;
        if (cost < best_cost) {
            best = a;
            best_cost = cost;
        }
    }
    return best;
}

/* The runs (tmp), or src itself when a is 1. */
#define PYPOOL_SUM_RUNS(NAME, VT)                                                           \
static const double* NAME(const double* src, int64_t ld, int64_t nrows, int64_t k,          \
                          int64_t nout, int64_t a, double* tmp) {                           \
    enum { VL = sizeof(VT) / sizeof(double) };                                              \
    int64_t total = (nrows - 1) * ld + nout + k - a, i, j, u;                               \
    VT v[4];                                                                                \
    if (a == 1)                                                                             \
        return src;                                                                         \
    for (i = 0; i < total; i += 4 * VL) {                                                   \
        for (u = 0; u < 4; u++)                                                             \
            v[u] = PYPOOL_LOAD(VT, src + i + u * VL);                                       \
        for (j = 1; j < a; j++)                                                             \
            for (u = 0; u < 4; u++)                                                         \
                v[u] += PYPOOL_LOAD(VT, src + i + u * VL + j);                              \
        for (u = 0; u < 4; u++)                                                             \
            PYPOOL_STORE(VT, tmp + i + u * VL, v[u]);                                       \
    }                                                                                       \
    return tmp;                                                                             \
}

/* v[0 .. U) = the window sums at o, o + VL, ... of one row (run, left: that
 * row's runs and its positions from a*b on). */
#define PYPOOL_WINDOW_SUMS_AT(VT, U, v, run, left, o, a, b, rest)                           \
    do {                                                                                    \
        int64_t j_, u_;                                                                     \
        for (u_ = 0; u_ < (U); u_++)                                                        \
            v[u_] = PYPOOL_LOAD(VT, (run) + (o) + u_ * VL);                                 \
        for (j_ = 1; j_ < (b); j_++)                                                        \
            for (u_ = 0; u_ < (U); u_++)                                                    \
                v[u_] += PYPOOL_LOAD(VT, (run) + (o) + u_ * VL + j_ * (a));                 \
        for (j_ = 0; j_ < (rest); j_++)                                                     \
            for (u_ = 0; u_ < (U); u_++)                                                    \
                v[u_] += PYPOOL_LOAD(VT, (left) + (o) + u_ * VL + j_);                      \
    } while (0)

/* The same, one output. */
static inline double pypool_window_sum1(const double* run, const double* left, int64_t o,
                                        int64_t a, int64_t b, int64_t rest) {
    double d = run[o];
    int64_t j;
    for (j = 1; j < b; j++)
        d += run[o + j * a];
    for (j = 0; j < rest; j++)
        d += left[o + j];
    return d;
}

/* out[r * out_ld + o] = the window sums. */
#define PYPOOL_ROWS_WINDOW_SUMS(NAME, VT, RUNS)                                             \
static void NAME(const double* src, int64_t ld, int64_t nrows, int64_t k, int64_t a,        \
                 int64_t nout, double* tmp, double* out, int64_t out_ld) {                  \
    enum { VL = sizeof(VT) / sizeof(double) };                                              \
    int64_t b = k / a, rest = k - a * b, r, o, u;                                           \
    const double* runs = RUNS(src, ld, nrows, k, nout, a, tmp);                             \
    VT v[4];                                                                                \
    for (r = 0; r < nrows; r++) {                                                           \
        const double* run = runs + r * ld;                                                  \
        const double* left = src + r * ld + a * b;                                          \
        double* y = out + r * out_ld;                                                       \
        for (o = 0; o + 4 * VL <= nout; o += 4 * VL) {                                      \
            PYPOOL_WINDOW_SUMS_AT(VT, 4, v, run, left, o, a, b, rest);                      \
            for (u = 0; u < 4; u++)                                                         \
                PYPOOL_STORE(VT, y + o + u * VL, v[u]);                                     \
        }                                                                                   \
        for (; o < nout; o++)                                                               \
            y[o] = pypool_window_sum1(run, left, o, a, b, rest);                            \
    }                                                                                       \
}

PYPOOL_SUM_RUNS(pypool_sum_runs_v4, pypool_vd)
PYPOOL_ROWS_WINDOW_SUMS(pypool_rows_window_sums_v4, pypool_vd, pypool_sum_runs_v4)

#ifdef PYPOOL_SUMS_HAVE_AVX512
PYPOOL_AVX512_BEGIN
PYPOOL_SUM_RUNS(pypool_sum_runs_loads_v8, pypool_vd8)

/* The same runs for a <= 8, each vector of the rows loaded once: a run's
 * later terms are picked from it and the next vector by permutes (Zen 4 loads
 * one 512-bit vector a cycle, and the loads were what limited this pass).
 * Inlined with a constant a, so the loop over a run's terms unrolls. */
static inline __attribute__((always_inline)) void
pypool_sum_runs_picked(const double* src, int64_t total, const int64_t a, double* tmp) {
    int64_t i, j;
    __m512i pick[8];
    __m512d cur = _mm512_loadu_pd(src), next, v;
    for (j = 1; j < a; j++)
        pick[j] = _mm512_add_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                                   _mm512_set1_epi64(j));
    for (i = 0; i < total; i += 8) {
        next = _mm512_loadu_pd(src + i + 8);
        v = cur;
        for (j = 1; j < a; j++)    /* in order: the same adds as the loads version */
            v = _mm512_add_pd(v, _mm512_permutex2var_pd(cur, pick[j], next));
        _mm512_storeu_pd(tmp + i, v);
        cur = next;
    }
}

static const double* pypool_sum_runs_v8(const double* src, int64_t ld, int64_t nrows,
                                        int64_t k, int64_t nout, int64_t a, double* tmp) {
    int64_t total = (nrows - 1) * ld + nout + k - a;
    switch (a) {
    case 1: return src;
    case 2: pypool_sum_runs_picked(src, total, 2, tmp); return tmp;
    case 3: pypool_sum_runs_picked(src, total, 3, tmp); return tmp;
    case 4: pypool_sum_runs_picked(src, total, 4, tmp); return tmp;
    case 5: pypool_sum_runs_picked(src, total, 5, tmp); return tmp;
    case 6: pypool_sum_runs_picked(src, total, 6, tmp); return tmp;
    case 7: pypool_sum_runs_picked(src, total, 7, tmp); return tmp;
    case 8: pypool_sum_runs_picked(src, total, 8, tmp); return tmp;
    default: return pypool_sum_runs_loads_v8(src, ld, nrows, k, nout, a, tmp);
    }
}
PYPOOL_ROWS_WINDOW_SUMS(pypool_rows_window_sums_v8, pypool_vd8, pypool_sum_runs_v8)

/* 8 window sums finished: (float)((s + 0.0) / divisor) lane by lane, as the
 * product (s + 0.0) * recip where that rounds the same (pypool_rounding_risk8;
 * recip = rdh * rdw[o], each rounded: within a few units of the quotient),
 * else the quotient (rows with one divisor take pypool_quotient8 instead). A 512-bit division costs as much as all the loads and
 * adds of a window. The product is fma(s, recip, +0): the exact product plus
 * +0 rounded once, which is s * recip but +0 for s = -0 (one operation, not
 * an add and a multiply); the lanes divided are never zeros, for which
 * "+ 0.0" changes nothing. */
static inline __m256 pypool_finish8(__m512d s, __m512d divisor, __m512d recip) {
    __m512d q = _mm512_fmadd_pd(s, recip, _mm512_setzero_pd());
    __mmask8 risk = pypool_rounding_risk8(q);
    if (risk)
        q = _mm512_mask_div_pd(q, risk, s, divisor);
    return _mm512_cvtpd_ps(q);
}

/* pypool_finish8 where recip is 1 / divisor correctly rounded (one divisor
 * for the row): the product corrected by one Newton step, q + (s - q*d) * r,
 * each with one rounding, is then the correctly rounded quotient
 * (Markstein's theorem: r within half an ulp of 1/d, q within one ulp of
 * s/d; s - q*d is exact), so no lane needs the division and no branch
 * decides it. Non-finite s: the residual is NaN, and q (inf or NaN) stays. */
static inline __m512d pypool_quotient8(__m512d s, __m512d divisor, __m512d recip) {
    __m512d q = _mm512_fmadd_pd(s, recip, _mm512_setzero_pd());
    __m512d e = _mm512_fnmadd_pd(q, divisor, s);
    return _mm512_mask3_fmadd_pd(e, recip, q, _mm512_cmp_pd_mask(e, e, _CMP_ORD_Q));
}

/* pypool_finish8 of two vectors, their risks tested together. */
static inline void pypool_finish16(__m512d s0, __m512d s1, __m512d d0, __m512d d1,
                                   __m512d r0, __m512d r1, __m256* f0, __m256* f1) {
    __m512d q0 = _mm512_fmadd_pd(s0, r0, _mm512_setzero_pd());
    __m512d q1 = _mm512_fmadd_pd(s1, r1, _mm512_setzero_pd());
    __mmask16 risk = pypool_rounding_risk16(q0, q1);
    if (risk) {
        q0 = _mm512_mask_div_pd(q0, (__mmask8)risk, s0, d0);
        q1 = _mm512_mask_div_pd(q1, (__mmask8)(risk >> 8), s1, d1);
    }
    *f0 = _mm512_cvtpd_ps(q0);
    *f1 = _mm512_cvtpd_ps(q1);
}

/* The window sums finished as float32 averages, straight into the result:
 * y[r * y_ld + o] = (float)((sum + 0.0) / (dh[r] * dw[o])) (dw NULL: "/ dh[r]"),
 * as finish_plane_row computes them (dw NULL: pypool_quotient8, else the
 * rounding test of pypool_finish16); rdw[o] = 1 / dw[o]. With stream (y and
 * its rows 16-byte aligned) whole vectors go by streaming stores; the caller
 * fences. */
static void pypool_rows_window_averages_v8(const double* src, int64_t ld, int64_t nrows,
                                           int64_t k, int64_t a, int64_t nout, double* tmp,
                                           float* y, int64_t y_ld, const double* dh,
                                           const double* dw, const double* rdw, int stream) {
    enum { VL = 8 };
    int64_t b = k / a, rest = k - a * b, r, o, u;
    pypool_vd8 v[4];
    const double* runs = pypool_sum_runs_v8(src, ld, nrows, k, nout, a, tmp);
    for (r = 0; r < nrows; r++) {
        const double* run = runs + r * ld;
        const double* left = src + r * ld + a * b;
        float* yr = y + r * y_ld;
        __m512d d = _mm512_set1_pd(dh[r]), rd = _mm512_set1_pd(1.0 / dh[r]);
        for (o = 0; o + 4 * VL <= nout; o += 4 * VL) {
            PYPOOL_WINDOW_SUMS_AT(pypool_vd8, 4, v, run, left, o, a, b, rest);
            for (u = 0; u < 4; u += 2) {
                __m256 f0, f1;
                if (dw) {
                    __m512d d0 = _mm512_mul_pd(d, _mm512_loadu_pd(dw + o + u * VL));
                    __m512d d1 = _mm512_mul_pd(d, _mm512_loadu_pd(dw + o + (u + 1) * VL));
                    __m512d r0 = _mm512_mul_pd(rd, _mm512_loadu_pd(rdw + o + u * VL));
                    __m512d r1 = _mm512_mul_pd(rd, _mm512_loadu_pd(rdw + o + (u + 1) * VL));
                    pypool_finish16((__m512d)v[u], (__m512d)v[u + 1], d0, d1, r0, r1, &f0, &f1);
                } else {
                    f0 = _mm512_cvtpd_ps(pypool_quotient8((__m512d)v[u], d, rd));
                    f1 = _mm512_cvtpd_ps(pypool_quotient8((__m512d)v[u + 1], d, rd));
                }
                pypool_put_ps8(yr + o + u * VL, f0, stream);
                pypool_put_ps8(yr + o + (u + 1) * VL, f1, stream);
            }
        }
        for (; o + VL <= nout; o += VL) {
            PYPOOL_WINDOW_SUMS_AT(pypool_vd8, 1, v, run, left, o, a, b, rest);
            __m256 f = dw ? pypool_finish8((__m512d)v[0], _mm512_mul_pd(d, _mm512_loadu_pd(dw + o)),
                                           _mm512_mul_pd(rd, _mm512_loadu_pd(rdw + o)))
                          : _mm512_cvtpd_ps(pypool_quotient8((__m512d)v[0], d, rd));
            pypool_put_ps8(yr + o, f, stream);
        }
        for (; o < nout; o++)
            yr[o] = (float)((pypool_window_sum1(run, left, o, a, b, rest) + 0.0)
                            / (dw ? dh[r] * dw[o] : dh[r]));
    }
}
PYPOOL_AVX512_END
#endif

/* a: pypool_sum_run_length(k), which the caller finds once (its divisions
 * took a tenth of a task's bookkeeping when made for every chunk). */
static void pypool_rows_window_sums(const double* src, int64_t ld, int64_t nrows, int64_t k,
                                    int64_t a, int64_t nout, double* tmp, double* out,
                                    int64_t out_ld) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512) {
        pypool_rows_window_sums_v8(src, ld, nrows, k, a, nout, tmp, out, out_ld);
        return;
    }
#endif
    pypool_rows_window_sums_v4(src, ld, nrows, k, a, nout, tmp, out, out_ld);
}

/* Returns 1 when done (AVX-512 CPUs), else 0: the caller then sums and finishes. */
static int pypool_rows_window_averages_f32(const double* src, int64_t ld, int64_t nrows,
                                           int64_t k, int64_t a, int64_t nout, double* tmp,
                                           float* y, int64_t y_ld, const double* dh,
                                           const double* dw, const double* rdw, int stream) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512) {
        pypool_rows_window_averages_v8(src, ld, nrows, k, a, nout, tmp, y, y_ld, dh, dw, rdw,
                                       stream);
        return 1;
    }
#endif
    (void)src; (void)ld; (void)nrows; (void)k; (void)a; (void)nout; (void)tmp; (void)y;
    (void)y_ld;
    (void)dh; (void)dw; (void)rdw; (void)stream;
    return 0;
}

/* stream: write a result of rows that follow each other with streaming stores
 * (AVX-512 CPUs; see pypool_doubling_last_streamed). */
static void pypool_rows_doubling_max_f32(const float* src, int64_t ld, int64_t nrows,
                                         int64_t first, int64_t s, int64_t k, int64_t nout,
                                         float* b1, float* b2, float* out, int64_t out_ld,
                                         int stream) {
#ifdef PYPOOL_SUMS_HAVE_AVX512
    if (pypool_sums_avx512) {
        pypool_rows_doubling_max_f32_v16(src, ld, nrows, first, s, k, nout, b1, b2, out, out_ld,
                                         stream);
        return;
    }
#endif
    pypool_rows_doubling_max_f32_v8(src, ld, nrows, first, s, k, nout, b1, b2, out, out_ld, 0);
}

#endif
