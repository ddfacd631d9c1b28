/* Converting row stores that can bypass the cache (non-temporal stores).
 *
 * An ordinary store first reads the destination's cache line
 * (read-for-ownership), so a large output that will not stay in the caches
 * crosses the memory bus twice. Streaming stores write whole lines without
 * that read. Only the line-aligned middle of a row streams; its ends use
 * ordinary stores, so any length and alignment works. The conversions round
 * exactly as C casts do; builds without AVX2 store plainly.
 */
#ifndef PYPOOL_STREAM_H
#define PYPOOL_STREAM_H

#include <stdint.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* dst[i] = (float)src[i], then src[i] = 0, i < n: hands an accumulator's row
 * out and leaves it zeroed for the next use, which then needs no memset pass. */
static inline void pypool_drain_f64_as_f32(float* dst, double* src, int64_t n, int stream) {
    int64_t i = 0;
#ifdef __AVX2__
    const __m256d zero = _mm256_setzero_pd();
    if (stream && n >= 32 && ((uintptr_t)dst & 3) == 0) {
        int64_t head = (int64_t)(((64 - ((uintptr_t)dst & 63)) & 63) / 4);
        int64_t end = head + ((n - head) & ~(int64_t)15);
        for (; i < head; i++) {
            dst[i] = (float)src[i];
            src[i] = 0.0;
        }
        /* 32-byte streaming stores: on an AMD EPYC (Zen 4) 16-byte ones took
         * 2.7 ms to drain 2048 planes of 112x112 floats, 32-byte ones 1.9 ms. */
        for (; i < end; i += 8) {
            __m128 lo = _mm256_cvtpd_ps(_mm256_loadu_pd(src + i));
            __m128 hi = _mm256_cvtpd_ps(_mm256_loadu_pd(src + i + 4));
            _mm256_stream_ps(dst + i, _mm256_set_m128(hi, lo));
            _mm256_storeu_pd(src + i, zero);
            _mm256_storeu_pd(src + i + 4, zero);
        }
    }
#else
    (void)stream;
#endif
    for (; i < n; i++) {
        dst[i] = (float)src[i];
        src[i] = 0.0;
    }
}

/* dst[i] = src[i], then src[i] = 0, i < n (doubles). */
static inline void pypool_drain_f64(double* dst, double* src, int64_t n, int stream) {
    int64_t i = 0;
#ifdef __AVX2__
    const __m256d zero = _mm256_setzero_pd();
    if (stream && n >= 16 && ((uintptr_t)dst & 7) == 0) {
        int64_t head = (int64_t)(((64 - ((uintptr_t)dst & 63)) & 63) / 8);
        int64_t end = head + ((n - head) & ~(int64_t)7);
        for (; i < head; i++) {
            dst[i] = src[i];
            src[i] = 0.0;
        }
        for (; i < end; i += 4) {
            _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
            _mm256_storeu_pd(src + i, zero);
        }
    }
#else
    (void)stream;
#endif
    for (; i < n; i++) {
        dst[i] = src[i];
        src[i] = 0.0;
    }
}

#ifdef __AVX2__
/* v's 8 floats to p (16-byte aligned) by streaming stores, in two 16-byte
 * halves: 32-byte ones need 32-byte alignment, which NumPy's arrays (16-byte
 * aligned) often lack. The caller fences (pypool_store_fence). */
static inline void pypool_stream_ps8(float* p, __m256 v) {
    _mm_stream_ps(p, _mm256_castps256_ps128(v));
    _mm_stream_ps(p + 4, _mm256_extractf128_ps(v, 1));
}

/* v's 8 floats to p: streamed when asked (p 16-byte aligned), else stored. */
static inline void pypool_put_ps8(float* p, __m256 v, int stream) {
    if (stream)
        pypool_stream_ps8(p, v);
    else
        _mm256_storeu_ps(p, v);
}
#endif

/* dst[2i] = dst[2i + 1] = (float)(src[i] + 0.0), i < n: each value twice,
 * as avg 2x2 stride 2's gradient spreads it (the + 0.0 turns -0 into +0).
 * Streams whole 16-byte pieces when asked and dst is 16-byte aligned. */
static inline void pypool_store_pairs_f64_as_f32(float* dst, const double* src, int64_t n,
                                                 int stream) {
    int64_t i = 0;
#ifdef __AVX2__
    if (stream && ((uintptr_t)dst & 15) == 0) {
        const __m256d zero = _mm256_setzero_pd();
        for (; i + 4 <= n; i += 4) {
            __m128 f = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_loadu_pd(src + i), zero));
            _mm_stream_ps(dst + 2 * i, _mm_unpacklo_ps(f, f));
            _mm_stream_ps(dst + 2 * i + 4, _mm_unpackhi_ps(f, f));
        }
    }
#else
    (void)stream;
#endif
    for (; i < n; i++)
        dst[2 * i] = dst[2 * i + 1] = (float)(src[i] + 0.0);
}

/* The same for double results. */
static inline void pypool_store_pairs_f64(double* dst, const double* src, int64_t n,
                                          int stream) {
    int64_t i = 0;
#ifdef __AVX2__
    if (stream && ((uintptr_t)dst & 15) == 0) {
        const __m128d zero = _mm_setzero_pd();
        for (; i + 2 <= n; i += 2) {
            __m128d d = _mm_add_pd(_mm_loadu_pd(src + i), zero);
            _mm_stream_pd(dst + 2 * i, _mm_unpacklo_pd(d, d));
            _mm_stream_pd(dst + 2 * i + 2, _mm_unpackhi_pd(d, d));
        }
    }
#else
    (void)stream;
#endif
    for (; i < n; i++)
        dst[2 * i] = dst[2 * i + 1] = src[i] + 0.0;
}

/* Order this thread's streaming stores before what follows (they are weakly
 * ordered); once at the end of a task. */
static inline void pypool_store_fence(void) {
#ifdef __AVX2__
    _mm_sfence();
#endif
}

#endif
