/* Asking for memory ahead of its use (software prefetch into all cache levels).
 *
 * On x86 with GCC or clang this is a volatile asm, not __builtin_prefetch: GCC
 * treats the builtin as free of side effects, so a (non-inlined) function
 * whose only work is prefetching is found "const" and every call to it is
 * deleted. Elsewhere the builtin (or nothing) stands in; prefetches are hints,
 * never faults, so the address need not be valid.
 */
#ifndef PYPOOL_PREFETCH_H
#define PYPOOL_PREFETCH_H

#include <stdint.h>
#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#endif

static inline void pypool_prefetch_line(const void* p) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __asm__ volatile("prefetcht0 (%0)" : : "r"(p));
#elif defined(__GNUC__)
    __builtin_prefetch(p, 0, 3);
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    _mm_prefetch((const char*)p, _MM_HINT_T0);
#else
    (void)p;
#endif
}

/* Every cache line holding some of the nbytes at p (from p's line on, so a
 * span that does not start on a line boundary gets its last line too). */
static inline void pypool_prefetch_bytes(const void* p, int64_t nbytes) {
    uintptr_t line = (uintptr_t)p & ~(uintptr_t)63, end = (uintptr_t)p + (uintptr_t)nbytes;
    for (; nbytes > 0 && line < end; line += 64)
        pypool_prefetch_line((const void*)line);
}

#endif
