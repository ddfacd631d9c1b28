/*
 * pypool public C header.
 *
 * This first version holds what the Python layer and the kernels already share:
 * status codes and the per-axis window geometry. The versioned function table
 * for C extensions is appended here as the C API grows (SPEC section 6).
 */
#ifndef PYPOOL_PYPOOL_H
#define PYPOOL_PYPOOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every entry point returns one of these; 0 is success, errors are negative. */
typedef enum {
    PYPOOL_OK = 0,
    PYPOOL_ERR_KERNEL = -1,          /* kernel size < 1 */
    PYPOOL_ERR_STRIDE = -2,          /* stride < 1 */
    PYPOOL_ERR_DILATION = -3,        /* dilation < 1 */
    PYPOOL_ERR_PAD_NEGATIVE = -4,    /* a pad below 0 */
    PYPOOL_ERR_PAD_TOO_LARGE = -5,   /* a pad >= effective kernel extent */
    PYPOOL_ERR_EMPTY_OUTPUT = -6,    /* output size below 1 */
    PYPOOL_ERR_OVERFLOW = -7,        /* a size does not fit in 64 bits */
    PYPOOL_ERR_SHAPE = -8,           /* negative or inconsistent size */
    PYPOOL_ERR_NOMEM = -9,           /* a scratch allocation failed */
    PYPOOL_ERR_INDEX = -10           /* an index outside its plane */
} pypool_status;

/* How the pads of an axis are chosen. */
typedef enum {
    PYPOOL_PAD_EXPLICIT = 0,   /* pad_begin / pad_end as given */
    PYPOOL_PAD_SAME_UPPER = 1, /* output = ceil(L / stride), odd pad at the end */
    PYPOOL_PAD_SAME_LOWER = 2  /* same, odd pad at the beginning */
} pypool_pad_mode;

/* The window geometry of one spatial axis. */
typedef struct {
    int64_t in_size;
    int64_t out_size;
    int64_t kernel;
    int64_t stride;
    int64_t dilation;
    int64_t pad_begin;
    int64_t pad_end;
} pypool_axis;

#ifdef __cplusplus
}
#endif

#endif /* PYPOOL_PYPOOL_H */
