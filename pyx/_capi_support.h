/* Plain-C helpers of the C API (pyx/capi.pxi): a per-thread error detail,
 * float16 conversions, and the forked-child flag. */
#ifndef PYPOOL_CAPI_SUPPORT_H
#define PYPOOL_CAPI_SUPPORT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(_MSC_VER)
#define PYPOOL_THREAD_LOCAL __declspec(thread)
#else
#define PYPOOL_THREAD_LOCAL __thread
#endif

/* ------------------------------------------------------------ error detail
 * Each thread keeps the message of its last failed call, so concurrent
 * callers never see each other's errors. */

static PYPOOL_THREAD_LOCAL char pypool_detail_text[320];

static const char *pypool_detail(void) { return pypool_detail_text; }

static void pypool_clear_detail(void) { pypool_detail_text[0] = '\0'; }

/* Record a printf-style detail and return `status` (for `return fail(...)`). */
static int pypool_fail(int status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(pypool_detail_text, sizeof pypool_detail_text, fmt, args);
    va_end(args);
    return status;
}

/* "(2, 3, 4)" into buf (truncated with "..." when long). */
static const char *pypool_format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int i;
    used += (size_t)snprintf(buf, size, "(");
    for (i = 0; i < ndim && used + 24 < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld",
                                 (long long)shape[i]);
    if (i < ndim)
        snprintf(buf + used, size - used, ", ...)");
    else
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
    return buf;
}

/* ------------------------------------------------------------------ float16
 * IEEE binary16 <-> double, bit for bit as NumPy converts: widening is
 * exact, narrowing rounds to nearest even, NaN keeps its sign and top
 * payload bits. */

static inline double pypool_half_to_double(uint16_t h)
{
    uint64_t sign = (uint64_t)(h & 0x8000u) << 48;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint64_t man = h & 0x3ffu;
    uint64_t bits;
    double d;
    if (exp == 0x1f) {
        bits = sign | 0x7ff0000000000000ull | (man << 42);
    } else if (exp == 0) {
        /* zero or subnormal: man * 2**-24, exact in double */
        d = (double)man * (1.0 / 16777216.0);
        return sign ? -d : d;
    } else {
        bits = sign | ((uint64_t)(exp - 15 + 1023) << 52) | (man << 42);
    }
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* float32 <-> float16 on bit patterns (pypool_half_to_float_bits,
 * pypool_float_bits_to_half): _half.h, shared with the Python layer's
 * threaded conversions. Finite values convert exactly (widening) or with one
 * rounding to nearest even (narrowing), while NaNs keep their payload bit for
 * bit - a hardware float conversion would quiet a signaling NaN, and NumPy's
 * conversions do not. */
#include "_half.h"

/* float64 -> float16 bits, one rounding to nearest even (NumPy's rule):
 * the vectorizable conversion of _half.h, defined once for both users. */
static inline uint16_t pypool_double_to_half(double d)
{
    return pypool_double_bits_to_half(d);
}

/* ------------------------------------------------------------ forked child
 * libgomp cannot start threads in a child made by fork() once the parent
 * had an OpenMP team (GCC bug 60035): it waits forever. A handler run by
 * every fork() - Python's os.fork() or a C caller's - marks the child so
 * that every kernel there runs on one thread. */

static volatile int pypool_in_forked_child = 0;

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
static void pypool_mark_forked_child(void) { pypool_in_forked_child = 1; }
static int pypool_watch_fork(void) { return pthread_atfork(NULL, NULL, pypool_mark_forked_child); }
#else
static int pypool_watch_fork(void) { return 0; }
#endif

static int pypool_forked_child(void) { return pypool_in_forked_child; }

#endif /* PYPOOL_CAPI_SUPPORT_H */
