/* Runtime CPU feature checks, so the AVX2 build of the kernels is only loaded
 * where it can run. */
#ifndef PYPOOL_CPU_H
#define PYPOOL_CPU_H
static int pypool_cpu_has_avx2(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
#else
    return 0;
#endif
}
#endif
