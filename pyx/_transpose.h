/* Matrix transposes for the running-window kernels (running.pxi).
 *
 * dst[c * dst_ld + r] = src[r * src_ld + c] for the whole T x T tiles of the
 * matrix (T = 8 for 32-bit, 4 for 64-bit elements) when built with AVX2; the
 * functions return T, or 0 (nothing done) without AVX2. The caller's loop
 * does the rest. Only bits are moved, so the 32-bit version serves float,
 * int32 and uint32 alike (and 64-bit: double, int64, uint64).
 */
#ifndef PYPOOL_TRANSPOSE_H
#define PYPOOL_TRANSPOSE_H

#include <stdint.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

static inline int pypool_transpose32_tiles(const void* src, int64_t rows, int64_t cols,
                                           int64_t src_ld, void* dst, int64_t dst_ld) {
#ifdef __AVX2__
    int64_t r, c, r8 = rows - rows % 8, c8 = cols - cols % 8;
    for (r = 0; r < r8; r += 8) {
        for (c = 0; c < c8; c += 8) {
            const float* s = (const float*)src + r * src_ld + c;
            __m256 a0 = _mm256_loadu_ps(s), a1 = _mm256_loadu_ps(s + src_ld),
                   a2 = _mm256_loadu_ps(s + 2 * src_ld), a3 = _mm256_loadu_ps(s + 3 * src_ld),
                   a4 = _mm256_loadu_ps(s + 4 * src_ld), a5 = _mm256_loadu_ps(s + 5 * src_ld),
                   a6 = _mm256_loadu_ps(s + 6 * src_ld), a7 = _mm256_loadu_ps(s + 7 * src_ld);
            __m256 b0 = _mm256_unpacklo_ps(a0, a1), b1 = _mm256_unpackhi_ps(a0, a1),
                   b2 = _mm256_unpacklo_ps(a2, a3), b3 = _mm256_unpackhi_ps(a2, a3),
                   b4 = _mm256_unpacklo_ps(a4, a5), b5 = _mm256_unpackhi_ps(a4, a5),
                   b6 = _mm256_unpacklo_ps(a6, a7), b7 = _mm256_unpackhi_ps(a6, a7);
            __m256 c0 = _mm256_shuffle_ps(b0, b2, 0x44), c1 = _mm256_shuffle_ps(b0, b2, 0xEE),
                   c2 = _mm256_shuffle_ps(b1, b3, 0x44), c3 = _mm256_shuffle_ps(b1, b3, 0xEE),
                   c4 = _mm256_shuffle_ps(b4, b6, 0x44), c5 = _mm256_shuffle_ps(b4, b6, 0xEE),
                   c6 = _mm256_shuffle_ps(b5, b7, 0x44), c7 = _mm256_shuffle_ps(b5, b7, 0xEE);
            float* d = (float*)dst + c * dst_ld + r;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(c0, c4, 0x20));
            _mm256_storeu_ps(d + dst_ld, _mm256_permute2f128_ps(c1, c5, 0x20));
            _mm256_storeu_ps(d + 2 * dst_ld, _mm256_permute2f128_ps(c2, c6, 0x20));
            _mm256_storeu_ps(d + 3 * dst_ld, _mm256_permute2f128_ps(c3, c7, 0x20));
            _mm256_storeu_ps(d + 4 * dst_ld, _mm256_permute2f128_ps(c0, c4, 0x31));
            _mm256_storeu_ps(d + 5 * dst_ld, _mm256_permute2f128_ps(c1, c5, 0x31));
            _mm256_storeu_ps(d + 6 * dst_ld, _mm256_permute2f128_ps(c2, c6, 0x31));
            _mm256_storeu_ps(d + 7 * dst_ld, _mm256_permute2f128_ps(c3, c7, 0x31));
        }
    }
    return 8;
#else
    (void)src; (void)rows; (void)cols; (void)src_ld; (void)dst; (void)dst_ld;
    return 0;
#endif
}

static inline int pypool_transpose64_tiles(const void* src, int64_t rows, int64_t cols,
                                           int64_t src_ld, void* dst, int64_t dst_ld) {
#ifdef __AVX2__
    int64_t r, c, r4 = rows - rows % 4, c4 = cols - cols % 4;
    for (r = 0; r < r4; r += 4) {
        for (c = 0; c < c4; c += 4) {
            const double* s = (const double*)src + r * src_ld + c;
            __m256d a0 = _mm256_loadu_pd(s), a1 = _mm256_loadu_pd(s + src_ld),
                    a2 = _mm256_loadu_pd(s + 2 * src_ld), a3 = _mm256_loadu_pd(s + 3 * src_ld);
            __m256d b0 = _mm256_unpacklo_pd(a0, a1), b1 = _mm256_unpackhi_pd(a0, a1),
                    b2 = _mm256_unpacklo_pd(a2, a3), b3 = _mm256_unpackhi_pd(a2, a3);
            double* d = (double*)dst + c * dst_ld + r;
            _mm256_storeu_pd(d, _mm256_permute2f128_pd(b0, b2, 0x20));
            _mm256_storeu_pd(d + dst_ld, _mm256_permute2f128_pd(b1, b3, 0x20));
            _mm256_storeu_pd(d + 2 * dst_ld, _mm256_permute2f128_pd(b0, b2, 0x31));
            _mm256_storeu_pd(d + 3 * dst_ld, _mm256_permute2f128_pd(b1, b3, 0x31));
        }
    }
    return 4;
#else
    (void)src; (void)rows; (void)cols; (void)src_ld; (void)dst; (void)dst_ld;
    return 0;
#endif
}

#endif
