/* Row stores that can bypass the cache (non-temporal "streaming" stores).
 *
 * A kernel whose output is much larger than the caches gains nothing from
 * keeping it there, and an ordinary store first reads the destination line
 * into the cache (read-for-ownership): the output's bytes cross the memory
 * bus twice. Streaming stores write whole lines without that read. Only the
 * aligned middle of a row streams; its ends use ordinary stores, so any
 * length, alignment and element type (only bytes move) works. Without SSE2
 * (non-x86 builds) everything is a plain memcpy.
 */
#ifndef PYPOOL_STREAM_H
#define PYPOOL_STREAM_H

#include <stdint.h>
#include <string.h>
#if defined(__AVX2__) || defined(__SSE2__)
#include <immintrin.h>
#endif

#define PYPOOL_LINE 64

static inline void pypool_store_row(void* dst, const void* src, int64_t nbytes, int stream) {
#if defined(__AVX2__) || defined(__SSE2__)
#ifdef __AVX2__
    const int64_t vec = 32;
#else
    const int64_t vec = 16;
#endif
    if (stream && nbytes >= 2 * PYPOOL_LINE) {
        /* Stream whole cache lines only: a partly written line would leave
         * the write-combining buffer half full, which is slow. */
        char* d = (char*)dst;
        const char* s = (const char*)src;
        int64_t head = (int64_t)((PYPOOL_LINE - ((uintptr_t)d & (PYPOOL_LINE - 1))) & (PYPOOL_LINE - 1));
        int64_t i, body;
        memcpy(d, s, (size_t)head);
        body = (nbytes - head) & ~(int64_t)(PYPOOL_LINE - 1);
        for (i = head; i < head + body; i += vec) {
#ifdef __AVX2__
            _mm256_stream_si256((__m256i*)(d + i), _mm256_loadu_si256((const __m256i*)(s + i)));
#else
            _mm_stream_si128((__m128i*)(d + i), _mm_loadu_si128((const __m128i*)(s + i)));
#endif
        }
        memcpy(d + head + body, s + head + body, (size_t)(nbytes - head - body));
        return;
    }
#else
    (void)stream;
#endif
    memcpy(dst, src, (size_t)nbytes);
}

/* Order a thread's streaming stores before whatever it does next (they are
 * weakly ordered); call once at the end of a task. */
static inline void pypool_store_fence(void) {
#if defined(__AVX2__) || defined(__SSE2__)
    _mm_sfence();
#endif
}

#endif /* PYPOOL_STREAM_H */
