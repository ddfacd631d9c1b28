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

/* dst[i] = (float)src[i], i < n. */
static inline void pypool_store_f64_as_f32(float* dst, const double* src, int64_t n, int stream) {
    int64_t i = 0;
#ifdef __AVX2__
    if (stream && n >= 32 && ((uintptr_t)dst & 3) == 0) {
        int64_t head = (int64_t)(((64 - ((uintptr_t)dst & 63)) & 63) / 4);
        int64_t end = head + ((n - head) & ~(int64_t)15);
        for (; i < head; i++)
            dst[i] = (float)src[i];
        for (; i < end; i += 4)
            _mm_stream_ps(dst + i, _mm256_cvtpd_ps(_mm256_loadu_pd(src + i)));
    }
#else
    (void)stream;
#endif
    for (; i < n; i++)
        dst[i] = (float)src[i];
}

/* dst[i] = src[i], i < n (doubles). */
static inline void pypool_store_f64(double* dst, const double* src, int64_t n, int stream) {
    int64_t i = 0;
#ifdef __AVX2__
    if (stream && n >= 16 && ((uintptr_t)dst & 7) == 0) {
        int64_t head = (int64_t)(((64 - ((uintptr_t)dst & 63)) & 63) / 8);
        int64_t end = head + ((n - head) & ~(int64_t)7);
        for (; i < head; i++)
            dst[i] = src[i];
        for (; i < end; i += 4)
            _mm256_stream_pd(dst + i, _mm256_loadu_pd(src + i));
    }
#else
    (void)stream;
#endif
    for (; i < n; i++)
        dst[i] = src[i];
}

#ifdef __AVX2__
/* v's 8 floats to p (16-byte aligned) by streaming stores, in two 16-byte
 * halves: 32-byte ones need 32-byte alignment, which NumPy's arrays (16-byte
 * aligned) often lack. The caller fences (pypool_store_fence). */
static inline void pypool_stream_ps8(float* p, __m256 v) {
    _mm_stream_ps(p, _mm256_castps256_ps128(v));
    _mm_stream_ps(p + 4, _mm256_extractf128_ps(v, 1));
}
#endif

/* Order this thread's streaming stores before what follows (they are weakly
 * ordered); once at the end of a task. */
static inline void pypool_store_fence(void) {
#ifdef __AVX2__
    _mm_sfence();
#endif
}

#endif
