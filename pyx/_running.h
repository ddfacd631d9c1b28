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
 * GCC vector extensions: AVX2 builds get 256-bit code, the others two SSE
 * halves, from the same source.
 */
#ifndef PYPOOL_RUNNING_H
#define PYPOOL_RUNNING_H

#include <stdint.h>
#include <string.h>

typedef float pypool_vf __attribute__((vector_size(32)));
typedef int32_t pypool_vfi __attribute__((vector_size(32)));
typedef double pypool_vd __attribute__((vector_size(32)));
typedef int64_t pypool_vdi __attribute__((vector_size(32)));

#define PYPOOL_LOAD(VT, p) ({ VT v_; memcpy(&v_, (p), sizeof(VT)); v_; })
#define PYPOOL_STORE(VT, p, v) do { VT v_ = (v); memcpy((p), &v_, sizeof(VT)); } while (0)

static inline pypool_vf pypool_vmax_f(pypool_vf m, pypool_vf v) {
    pypool_vfi take = (v > m) | (v != v);
    return (pypool_vf)((take & (pypool_vfi)v) | (~take & (pypool_vfi)m));
}
static inline pypool_vd pypool_vmax_d(pypool_vd m, pypool_vd v) {
    pypool_vdi take = (v > m) | (v != v);
    return (pypool_vd)((take & (pypool_vdi)v) | (~take & (pypool_vdi)m));
}
#define PYPOOL_VADD(m, v) ((m) + (v))

/* One chunk of W vectors at lane offset l0. */
#define PYPOOL_SWEEP_CHUNK(NAME, T, VT, W, OP)                                              \
static void NAME(const T* z, int64_t lanes, int64_t l0, int64_t first, int64_t s,          \
                 int64_t k, int64_t nout, T* scratch, T* out) {                             \
    enum { VL = sizeof(VT) / sizeof(T) };                                                  \
    int64_t a = first, o = 0, b0, j, grown, i;                                             \
    VT acc[W], pre[W];                                                                     \
    while (o < nout) {                                                                     \
        b0 = a - a % k;                                                                    \
        for (i = 0; i < W; i++) {                                                          \
            acc[i] = PYPOOL_LOAD(VT, z + (b0 + k - 1) * lanes + l0 + i * VL);              \
            PYPOOL_STORE(VT, scratch + ((k - 1) * W + i) * VL, acc[i]);                    \
        }                                                                                  \
        for (j = k - 2; j >= a - b0; j--)                                                  \
            for (i = 0; i < W; i++) {                                                      \
                acc[i] = OP(PYPOOL_LOAD(VT, z + (b0 + j) * lanes + l0 + i * VL), acc[i]);  \
                PYPOOL_STORE(VT, scratch + (j * W + i) * VL, acc[i]);                      \
            }                                                                              \
        grown = 0;    /* pre holds the next block's positions [b0 + k, b0 + k + grown) */ \
        while (o < nout && a < b0 + k) {                                                   \
            j = a - b0;                                                                    \
            if (j == 0) {                                                                  \
                for (i = 0; i < W; i++)                                                    \
                    PYPOOL_STORE(VT, out + o * lanes + l0 + i * VL,                        \
                                 PYPOOL_LOAD(VT, scratch + i * VL));                       \
            } else {                                                                       \
                if (grown == 0) {                                                          \
                    for (i = 0; i < W; i++)                                                \
                        pre[i] = PYPOOL_LOAD(VT, z + (b0 + k) * lanes + l0 + i * VL);      \
                    grown = 1;                                                             \
                }                                                                          \
                for (; grown < j; grown++)                                                 \
                    for (i = 0; i < W; i++)                                                \
                        pre[i] = OP(pre[i], PYPOOL_LOAD(VT, z + (b0 + k + grown) * lanes   \
                                                            + l0 + i * VL));               \
                for (i = 0; i < W; i++)                                                    \
                    PYPOOL_STORE(VT, out + o * lanes + l0 + i * VL,                        \
                                 OP(PYPOOL_LOAD(VT, scratch + (j * W + i) * VL), pre[i])); \
            }                                                                              \
            o++;                                                                           \
            a += s;                                                                        \
        }                                                                                  \
    }                                                                                      \
}

#define PYPOOL_SWEEP(NAME, T, VT, OP)                                                       \
PYPOOL_SWEEP_CHUNK(NAME##_4, T, VT, 4, OP)                                                  \
PYPOOL_SWEEP_CHUNK(NAME##_1, T, VT, 1, OP)                                                  \
static void NAME(const T* z, int64_t lanes, int64_t first, int64_t s, int64_t k,           \
                 int64_t nout, T* scratch, T* out) {                                        \
    enum { VL = sizeof(VT) / sizeof(T) };                                                  \
    int64_t l0 = 0;                                                                        \
    for (; l0 + 4 * VL <= lanes; l0 += 4 * VL)                                             \
        NAME##_4(z, lanes, l0, first, s, k, nout, scratch, out);                           \
    for (; l0 + VL <= lanes; l0 += VL)                                                     \
        NAME##_1(z, lanes, l0, first, s, k, nout, scratch, out);                           \
}

PYPOOL_SWEEP(pypool_sweep_max_f32, float, pypool_vf, pypool_vmax_f)
PYPOOL_SWEEP(pypool_sweep_max_f64, double, pypool_vd, pypool_vmax_d)
PYPOOL_SWEEP(pypool_sweep_sum_f64, double, pypool_vd, PYPOOL_VADD)

#endif
