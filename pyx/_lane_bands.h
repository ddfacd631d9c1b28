/* Channels_last sum bands (lane_bands.pxi): averages of large windows on
 * channels_last float and double input without copies or transposes.
 *
 * A task takes a group of G consecutive channels of a strip of columns. The
 * row pass sums the window's input rows in place, column by column (each
 * column's G channels are contiguous), with _running.h's sweeps, into band
 * rows that hold the columns' groups packed (position u at u * G). The
 * column pass then sums positions G apart by runs (as the channels_first sum
 * bands do along a row: runs of a positions, then b runs and the positions
 * left) and finishes the averages straight into the result.
 *
 * GCC vector extensions: 4 doubles a vector, or 8 on AVX-512 CPUs (the same
 * operands in the same order either way, so the same bits).
 */
#ifndef PYPOOL_LANE_BANDS_H
#define PYPOOL_LANE_BANDS_H

#include <stdint.h>
#include "_running.h"
#include "_prefetch.h"

/* Columns ahead whose rows the row pass asks for while it sums a column.
 * A column's group sits in rows a whole input row apart (32 KB for 64
 * columns of 128 channels), too many streams for the hardware prefetchers;
 * asking for the whole next task at its start instead gained nothing (it
 * overflowed L2). 1 to 8 columns ahead measured alike; avg 15x15 NHWC at one
 * thread 10-17% faster than without. */
#define PYPOOL_LANE_AHEAD 2

/* out[o * out_ld + c * G + l] = the sum of rows[first + o*s + j][c * cs + l],
 * j < k, for columns c < ncols and lanes l < G (G >= the vector width: a
 * group's last vector overlaps the one before it instead of running past
 * it). Running windows (rows first + o*s from a block boundary of k, scratch
 * of 8 vectors a block row) or direct ones, in order. Each column first asks
 * for the group of the column PYPOOL_LANE_AHEAD on in the same rows. With
 * WIDE (AVX-512: 32 vector registers), chunks of 8 vectors go by WIDE8, a
 * whole group of 64 channels in one sweep down the rows (each row's 4 lines
 * asked for together: avg 15x15 on 128 channels 7% faster at one thread
 * than two sweeps of 4 vectors). */
#define PYPOOL_LANE_ROWS(NAME, TIN, VT, SWEEP, LD, WIDE, WIDE8)                             \
static void NAME(const TIN** rows, int64_t ncols, int64_t cs, int64_t G, int64_t first,     \
                 int64_t s, int64_t k, int64_t nout, int running, double* scratch,          \
                 double* out, int64_t out_ld) {                                             \
    enum { VL = sizeof(VT) / sizeof(double) };                                              \
    int64_t c, l, at, o, j, nrows = (nout - 1) * s + k;                                     \
    for (c = 0; c < ncols; c++) {                                                           \
        if (c + PYPOOL_LANE_AHEAD < ncols)                                                  \
            for (j = 0; j < nrows; j++)                                                     \
                pypool_prefetch_bytes(rows[first + j] + (c + PYPOOL_LANE_AHEAD) * cs,       \
                                      G * (int64_t)sizeof(TIN));                            \
        if (running) {                                                                      \
            for (l = 0; WIDE && l + 8 * VL <= G; l += 8 * VL)                               \
                WIDE8(rows, c * cs + l, c * G + l, first, s, k, nout, scratch, out, out_ld);\
            for (; l + 4 * VL <= G; l += 4 * VL)                                            \
                SWEEP##_4(rows, c * cs + l, c * G + l, first, s, k, nout, scratch, out,     \
                          out_ld);                                                          \
            for (; l < G; l += VL) {                                                        \
                at = l + VL <= G ? l : G - VL;                                              \
                SWEEP##_1(rows, c * cs + at, c * G + at, first, s, k, nout, scratch, out,   \
                          out_ld);                                                          \
            }                                                                               \
            continue;                                                                       \
        }                                                                                   \
        for (o = 0; o < nout; o++) {                                                        \
            const TIN** r = rows + first + o * s;                                           \
            for (l = 0; l < G; l += VL) {                                                   \
                at = c * cs + (l + VL <= G ? l : G - VL);                                   \
                VT acc = LD(VT, r[0] + at);                                                 \
                for (j = 1; j < k; j++)                                                     \
                    acc += LD(VT, r[j] + at);                                               \
                PYPOOL_STORE(VT, out + o * out_ld + at - c * cs + c * G, acc);              \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

/* Averages along the band rows: row r of nrows at src + r * ld, position u
 * at u * G (G lanes). y[r * y_ld + o * y_cs + l] = (sum + 0.0) / (dh[r] * dw[o])
 * (dw NULL: / dh[r]) for lanes l < G and outputs o < nout, whose windows are
 * positions first + o*s + j, j < k: b = k / a runs of a positions (each run
 * summed left to right, into tmp), then the k - a*b positions left.
 * Rows must have a vector of readable slack past their last position; tmp
 * holds a row. FINISH(p, v, d, rd, stream) stores the vector v of sums
 * divided by d (rd = 1 / d) at p (by streaming stores where it can, with
 * stream). */
#define PYPOOL_LANE_AVERAGES(NAME, VT, TOUT, FINISH)                                        \
static void NAME(const double* src, int64_t ld, int64_t nrows, int64_t G, int64_t first,    \
                 int64_t s, int64_t k, int64_t a, int64_t nout, double* tmp, TOUT* y,       \
                 int64_t y_ld, int64_t y_cs, const double* dh, const double* dw,            \
                 int stream) {                                                              \
    enum { VL = sizeof(VT) / sizeof(double) };                                              \
    int64_t b = k / a, rest = k - a * b, r, o, l, at, i, j;                                 \
    int64_t nruns = ((nout - 1) * s + k - a + 1) * G;    /* run sums a row needs */         \
    for (r = 0; r < nrows; r++) {                                                           \
        const double* row = src + r * ld + first * G;                                       \
        const double* run = row;                                                            \
        if (a > 1) {                                                                        \
            for (i = 0; i < nruns; i += VL) {                                               \
                VT v = PYPOOL_LOAD(VT, row + i);                                            \
                for (j = 1; j < a; j++)                                                     \
                    v += PYPOOL_LOAD(VT, row + i + j * G);                                  \
                PYPOOL_STORE(VT, tmp + i, v);                                               \
            }                                                                               \
            run = tmp;                                                                      \
        }                                                                                   \
        for (o = 0; o < nout; o++) {                                                        \
            const double* rp = run + o * s * G;                                             \
            const double* left = row + (o * s + a * b) * G;                                 \
            double d = dw ? dh[r] * dw[o] : dh[r], rd = 1.0 / d;                            \
            (void)rd;    /* (the finishes that divide do not use it, ...) */                \
            (void)stream;    /* (... nor those that store plainly: stream) */               \
            TOUT* yp = y + r * y_ld + o * y_cs;                                             \
            for (l = 0; l + 4 * VL <= G; l += 4 * VL) {    /* 4 independent sums */         \
                VT v[4];                                                                    \
                for (i = 0; i < 4; i++)                                                     \
                    v[i] = PYPOOL_LOAD(VT, rp + l + i * VL);                                \
                for (j = 1; j < b; j++)                                                     \
                    for (i = 0; i < 4; i++)                                                 \
                        v[i] += PYPOOL_LOAD(VT, rp + l + i * VL + j * a * G);               \
                for (j = 0; j < rest; j++)                                                  \
                    for (i = 0; i < 4; i++)                                                 \
                        v[i] += PYPOOL_LOAD(VT, left + l + i * VL + j * G);                 \
                for (i = 0; i < 4; i++)                                                     \
                    FINISH(yp + l + i * VL, v[i], d, rd, stream);                           \
            }                                                                               \
            for (; l < G; l += VL) {                                                        \
                at = l + VL <= G ? l : G - VL;                                              \
                VT v = PYPOOL_LOAD(VT, rp + at);                                            \
                for (j = 1; j < b; j++)                                                     \
                    v += PYPOOL_LOAD(VT, rp + at + j * a * G);                              \
                for (j = 0; j < rest; j++)                                                  \
                    v += PYPOOL_LOAD(VT, left + at + j * G);                                \
                FINISH(yp + at, v, d, rd, stream);                                          \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
}

/* The portable finish: finish_lanes' (sum + 0.0) / divisor, lane by lane. */
#define PYPOOL_LANE_DIVIDE_F64(p, v, d, rd, stream)                                         \
    PYPOOL_STORE(pypool_vd, (p), ((v) + 0.0) / (d))
#define PYPOOL_LANE_DIVIDE_F32(p, v, d, rd, stream)                                         \
    PYPOOL_STORE(pypool_vf4, (p), __builtin_convertvector(((v) + 0.0) / (d), pypool_vf4))

PYPOOL_LANE_ROWS(pypool_lane_rows_f32_v4, float, pypool_vd, pypool_rows_running_sum_f32_v4,
                 PYPOOL_LOAD_WIDENED, 0, pypool_rows_running_sum_f32_v4_4)
PYPOOL_LANE_ROWS(pypool_lane_rows_f64_v4, double, pypool_vd, pypool_rows_running_sum_f64_v4,
                 PYPOOL_LOAD, 0, pypool_rows_running_sum_f64_v4_4)
PYPOOL_LANE_AVERAGES(pypool_lane_averages_f32_v4, pypool_vd, float, PYPOOL_LANE_DIVIDE_F32)
PYPOOL_LANE_AVERAGES(pypool_lane_averages_f64_v4, pypool_vd, double, PYPOOL_LANE_DIVIDE_F64)

#ifdef PYPOOL_SUMS_HAVE_AVX512
PYPOOL_AVX512_BEGIN
/* float32 results: the Markstein quotient (pypool_quotient8: correctly
 * rounded, as the division, for the float32 sums' quotients, which are never
 * subnormal doubles) with the position's reciprocal, streamed when asked
 * (every store 16-byte aligned; the caller fences); float64 results divide. */
#define PYPOOL_LANE_QUOTIENT_F32(p, v, d, rd, stream)                                       \
    pypool_put_ps8((p), _mm512_cvtpd_ps(pypool_quotient8((__m512d)(v), _mm512_set1_pd(d),   \
                                                         _mm512_set1_pd(rd))), (stream))
#define PYPOOL_LANE_DIVIDE8_F64(p, v, d, rd, stream)                                        \
    _mm512_storeu_pd((p), _mm512_div_pd(_mm512_add_pd((__m512d)(v), _mm512_setzero_pd()),   \
                                        _mm512_set1_pd(d)))
PYPOOL_SWEEP_CHUNK(pypool_lane_sweep_f32_v8_8, double, pypool_vd8, 8, PYPOOL_VADD,
                   PYPOOL_SRC_FLOAT_ROWS, PYPOOL_AT_ROWS, PYPOOL_LOAD_WIDENED8)
PYPOOL_SWEEP_CHUNK(pypool_lane_sweep_f64_v8_8, double, pypool_vd8, 8, PYPOOL_VADD,
                   PYPOOL_SRC_ROWS, PYPOOL_AT_ROWS, PYPOOL_LOAD)
PYPOOL_LANE_ROWS(pypool_lane_rows_f32_v8, float, pypool_vd8, pypool_rows_running_sum_f32_v8,
                 PYPOOL_LOAD_WIDENED8, 1, pypool_lane_sweep_f32_v8_8)
PYPOOL_LANE_ROWS(pypool_lane_rows_f64_v8, double, pypool_vd8, pypool_rows_running_sum_f64_v8,
                 PYPOOL_LOAD, 1, pypool_lane_sweep_f64_v8_8)
PYPOOL_LANE_AVERAGES(pypool_lane_averages_f32_v8, pypool_vd8, float,
                     PYPOOL_LANE_QUOTIENT_F32)
PYPOOL_LANE_AVERAGES(pypool_lane_averages_f64_v8, pypool_vd8, double,
                     PYPOOL_LANE_DIVIDE8_F64)
PYPOOL_AVX512_END
#define PYPOOL_LANE_PICK(NAME, ...)                                                         \
    (pypool_sums_avx512 ? NAME##_v8(__VA_ARGS__) : NAME##_v4(__VA_ARGS__))
#else
#define PYPOOL_LANE_PICK(NAME, ...) NAME##_v4(__VA_ARGS__)
#endif

static void pypool_lane_rows_f32(const float** rows, int64_t ncols, int64_t cs, int64_t G,
                                 int64_t first, int64_t s, int64_t k, int64_t nout,
                                 int running, double* scratch, double* out, int64_t out_ld) {
    PYPOOL_LANE_PICK(pypool_lane_rows_f32, rows, ncols, cs, G, first, s, k, nout, running,
                     scratch, out, out_ld);
}

static void pypool_lane_rows_f64(const double** rows, int64_t ncols, int64_t cs, int64_t G,
                                 int64_t first, int64_t s, int64_t k, int64_t nout,
                                 int running, double* scratch, double* out, int64_t out_ld) {
    PYPOOL_LANE_PICK(pypool_lane_rows_f64, rows, ncols, cs, G, first, s, k, nout, running,
                     scratch, out, out_ld);
}

static void pypool_lane_averages_f32(const double* src, int64_t ld, int64_t nrows, int64_t G,
                                     int64_t first, int64_t s, int64_t k, int64_t a,
                                     int64_t nout, double* tmp, float* y, int64_t y_ld,
                                     int64_t y_cs, const double* dh, const double* dw,
                                     int stream) {
    PYPOOL_LANE_PICK(pypool_lane_averages_f32, src, ld, nrows, G, first, s, k, a, nout, tmp,
                     y, y_ld, y_cs, dh, dw, stream);
}

static void pypool_lane_averages_f64(const double* src, int64_t ld, int64_t nrows, int64_t G,
                                     int64_t first, int64_t s, int64_t k, int64_t a,
                                     int64_t nout, double* tmp, double* y, int64_t y_ld,
                                     int64_t y_cs, const double* dh, const double* dw,
                                     int stream) {
    PYPOOL_LANE_PICK(pypool_lane_averages_f64, src, ld, nrows, G, first, s, k, a, nout, tmp,
                     y, y_ld, y_cs, dh, dw, stream);
}

#endif
