/* Runtime CPU feature checks, so the AVX2 build of the kernels is only loaded
 * where it can run. */
#ifndef PYPOOL_CPU_H
#define PYPOOL_CPU_H
#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#include <intrin.h>
#include <immintrin.h>
#endif
static int pypool_cpu_has_avx2(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    /* MSVC has no __builtin_cpu_supports: CPUID leaf 7 reports AVX2, and the
     * OS must also save the YMM registers (OSXSAVE set, XCR0 bits 1 and 2). */
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7) return 0;
    __cpuid(r, 1);
    if (!(r[2] & (1 << 27)) || !(r[2] & (1 << 28))) return 0;
    if ((_xgetbv(0) & 6) != 6) return 0;
    __cpuidex(r, 7, 0);
    return (r[1] & (1 << 5)) != 0;
#else
    return 0;
#endif
}
#endif
