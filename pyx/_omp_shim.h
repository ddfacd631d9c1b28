/* OpenMP calls that still compile when the build has no OpenMP (serial fallback). */
#ifndef PYPOOL_OMP_SHIM_H
#define PYPOOL_OMP_SHIM_H
#ifdef _OPENMP
#include <omp.h>
#define PYPOOL_HAVE_OPENMP 1
#define PYPOOL_OPENMP_VERSION _OPENMP
#else
#define PYPOOL_HAVE_OPENMP 0
#define PYPOOL_OPENMP_VERSION 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
#endif
#ifndef PYPOOL_COMPILER
#define PYPOOL_COMPILER "unknown"
#endif
#ifndef PYPOOL_CFLAGS
#define PYPOOL_CFLAGS ""
#endif
#if defined(__VERSION__)
#define PYPOOL_COMPILER_VERSION __VERSION__
#elif defined(_MSC_VER)
#define PYPOOL_COMPILER_VERSION "MSVC"
#else
#define PYPOOL_COMPILER_VERSION "unknown"
#endif
#endif
