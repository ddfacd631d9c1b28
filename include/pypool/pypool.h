/*
 * pypool public C header: the C-level API of pypool.
 *
 * Other C extensions (and Cython modules, through pypool/capi.pxd) call
 * pypool's kernels directly on raw buffers, without Python objects and
 * without the GIL:
 *
 *     #include <Python.h>            // first, so that pypool_import() exists
 *     #include <pypool/pypool.h>     // directory: pypool.get_include()
 *
 *     const pypool_api *api = pypool_import();   // once, with the GIL held
 *     if (api == NULL) return NULL;               // ImportError is set
 *     ...
 *     int status = api->max_pool(&params, &x, &y, NULL);   // any thread, no GIL
 *     if (status != PYPOOL_OK) puts(api->status_message(status));
 *
 * pypool_import() fetches a table of function pointers (pypool_api) from the
 * capsule PYPOOL_CAPI_CAPSULE, attribute PYPOOL_CAPI_ATTRIBUTE of module
 * PYPOOL_CAPI_MODULE, and checks its versions: the ABI version must equal
 * the one of this header, the API level must be at least
 * PYPOOL_REQUIRED_API_LEVEL. Table slots are only ever appended (each new
 * slot raises the API level); any change to an existing slot, struct or enum
 * value raises the ABI version.
 *
 * Every entry returns a pypool_status (0 on success, negative on error),
 * never aborts and writes nothing when it fails on bad arguments. After an
 * error, api->error_detail() describes it (naming the argument) for the
 * calling thread. Semantics are those of the Python functions of the same
 * name (README, SPEC.md); the sections below say how arguments map.
 */
#ifndef PYPOOL_PYPOOL_H
#define PYPOOL_PYPOOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- versions */

/* Raised on any incompatible change: a slot, struct layout or enum value. */
#define PYPOOL_ABI_VERSION 1
/* Raised whenever slots are appended to pypool_api. */
#define PYPOOL_API_LEVEL 1
/* The API level a consumer needs. Define it lower before including this
 * header to run against older pypool releases (then use only their slots). */
#ifndef PYPOOL_REQUIRED_API_LEVEL
#define PYPOOL_REQUIRED_API_LEVEL PYPOOL_API_LEVEL
#endif

/* Where the table lives: module, attribute, and the capsule's name. */
#define PYPOOL_CAPI_MODULE "pypool._native"
#define PYPOOL_CAPI_ATTRIBUTE "_C_API"
#define PYPOOL_CAPI_CAPSULE "pypool._native._C_API"

/* Most axes a tensor may have (NumPy's limit). */
#define PYPOOL_MAX_NDIM 64

/* ------------------------------------------------------------ status codes */

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
    PYPOOL_ERR_INDEX = -10,          /* an index outside its plane */
    PYPOOL_ERR_NULL = -11,           /* a required pointer is NULL */
    PYPOOL_ERR_DTYPE = -12,          /* a dtype the operation does not take */
    PYPOOL_ERR_RANK = -13,           /* spatial rank out of range */
    PYPOOL_ERR_LAYOUT = -14,         /* unknown layout */
    PYPOOL_ERR_ARGUMENT = -15,       /* another parameter out of range */
    PYPOOL_ERR_OVERLAP = -16         /* an output overlaps an input, another output or itself */
} pypool_status;

/* ------------------------------------------------------------------ enums */

/* Element types. bool is one byte holding 0 or 1; float16 is IEEE binary16. */
typedef enum {
    PYPOOL_BOOL = 0,
    PYPOOL_INT8 = 1,
    PYPOOL_INT16 = 2,
    PYPOOL_INT32 = 3,
    PYPOOL_INT64 = 4,
    PYPOOL_UINT8 = 5,
    PYPOOL_UINT16 = 6,
    PYPOOL_UINT32 = 7,
    PYPOOL_UINT64 = 8,
    PYPOOL_FLOAT16 = 9,
    PYPOOL_FLOAT32 = 10,
    PYPOOL_FLOAT64 = 11
} pypool_dtype;

/* Where the spatial axes are: (*lead, *spatial) or (*lead, *spatial, C). */
typedef enum {
    PYPOOL_CHANNELS_FIRST = 0,
    PYPOOL_CHANNELS_LAST = 1
} pypool_layout;

/* How the pads of an axis are chosen. */
typedef enum {
    PYPOOL_PAD_EXPLICIT = 0,   /* pad_begin / pad_end as given */
    PYPOOL_PAD_SAME_UPPER = 1, /* output = ceil(L / stride), odd pad at the end */
    PYPOOL_PAD_SAME_LOWER = 2  /* same, odd pad at the beginning */
} pypool_pad_mode;

/* ---------------------------------------------------------------- structs */

/* The window geometry of one spatial axis (see api->resolve_axis). */
typedef struct {
    int64_t in_size;
    int64_t out_size;
    int64_t kernel;
    int64_t stride;
    int64_t dilation;
    int64_t pad_begin;
    int64_t pad_end;
} pypool_axis;

/* A strided array of raw memory (like DLPack's DLTensor).
 *
 * Strides count ELEMENTS, not bytes, and may be negative or zero for
 * inputs; strides == NULL means C-contiguous. data points at element
 * (0, ..., 0), aligned to the element size, and may be NULL only when some
 * size is 0. Inputs are never written. Outputs need a distinct place for
 * every element, and the memory an output spans (from its lowest to its
 * highest byte) must not intersect the span of an input or of the other
 * output, else the call returns PYPOOL_ERR_OVERLAP. */
typedef struct {
    void *data;
    int32_t dtype;            /* pypool_dtype */
    int32_t ndim;             /* 0 .. PYPOOL_MAX_NDIM */
    const int64_t *shape;     /* ndim sizes >= 0 */
    const int64_t *strides;   /* ndim element strides, or NULL */
} pypool_tensor;

/* Parameters of a call. Start from pypool_params_init(), which sets the
 * Python defaults, then fill in what the operation uses; other fields are
 * ignored. Per-axis arrays use their first `rank` entries.
 *   every entry:            layout, num_threads
 *   windowed ops and their  rank, kernel_size, stride, dilation, pad_mode,
 *   backward, pooled_shape,   pad_begin, pad_end, ceil_mode
 *   resolve_padding:        (+ count_include_pad, divisor_override for avg;
 *                              norm_type for Lp)
 *   adaptive ops, max_unpool, max_pool_backward: rank
 *   unpooled_shape:         rank, kernel_size, stride, pad_begin, pad_end
 *   global ops:             nothing more (the spatial axes are all but N, C)
 * num_threads caps the OpenMP threads of a call like Python's num_threads;
 * small calls run on one thread, and so does every call in a child made by
 * fork() (libgomp would hang there starting threads). */
typedef struct {
    int32_t rank;               /* spatial axes: 1..3 (max_pool_backward: 1..ndim) */
    int32_t layout;             /* pypool_layout */
    int64_t kernel_size[3];     /* >= 1 */
    int64_t stride[3];          /* >= 1, or 0 for "same as kernel_size" (stride=None) */
    int64_t dilation[3];        /* >= 1 */
    int64_t pad_begin[3];       /* >= 0 and < (kernel_size-1)*dilation+1; PYPOOL_PAD_EXPLICIT only */
    int64_t pad_end[3];
    int32_t pad_mode;           /* pypool_pad_mode */
    int32_t ceil_mode;          /* 0 or 1 */
    int32_t count_include_pad;  /* avg_pool(_backward): 0 or 1 (Python default 1) */
    int32_t num_threads;        /* 0: OpenMP default; n >= 1 caps the call (as num_threads=n) */
    int64_t divisor_override;   /* avg_pool(_backward): 0 for none, else >= 1 */
    double norm_type;           /* lp_pool(_backward): p > 0, or INFINITY */
} pypool_params;

/* The Python defaults for a pool of this spatial rank; kernel_size (and
 * norm_type for Lp) are left 0 for the caller to set. */
static inline void pypool_params_init(pypool_params *p, int32_t rank)
{
    int i;
    p->rank = rank;
    p->layout = PYPOOL_CHANNELS_FIRST;
    for (i = 0; i < 3; i++) {
        p->kernel_size[i] = 0;
        p->stride[i] = 0;
        p->dilation[i] = 1;
        p->pad_begin[i] = 0;
        p->pad_end[i] = 0;
    }
    p->pad_mode = PYPOOL_PAD_EXPLICIT;
    p->ceil_mode = 0;
    p->count_include_pad = 1;
    p->num_threads = 0;
    p->divisor_override = 0;
    p->norm_type = 0.0;
}

/* ----------------------------------------------------------- the table
 *
 * Shapes follow the Python API. For a pool of spatial rank k:
 *   channels_first  x: (*lead, *spatial)      out: (*lead, *out_spatial)
 *   channels_last   x: (*lead, *spatial, C)   out: (*lead, *out_spatial, C)
 * Global pooling: x is (N, C, *spatial) / (N, *spatial, C) with ndim >= 3;
 * out is (N, C) or keeps the spatial axes as size 1 (keepdims), as its
 * ndim says. Adaptive pooling and max_unpool read the output size from
 * out's spatial axes. Output tensors must have exactly the result's shape.
 *
 * Dtypes (as in Python):
 *   max_pool, adaptive_max_pool, global_max_pool, max_unpool: every dtype;
 *     out has x's dtype; indices are PYPOOL_INT64, flattened row-major over
 *     the input's spatial axes of each plane (max_unpool's over out's); the
 *     forward ops take indices == NULL for "no indices".
 *   avg_pool, lp_pool, adaptive_avg_pool, global_avg_pool: x any dtype,
 *     out FLOAT16/32/64 (the Python dtype= choice).
 *   backward: grad_output any dtype; grad_input FLOAT16/32/64 keeping
 *     grad_output's float dtype, FLOAT64 for integer or bool gradients
 *     (lp_pool_backward: x's float dtype, FLOAT64 for integer x).
 */
typedef struct pypool_api {
    /* Never moved: checked before anything else is read. */
    uint32_t abi_version;
    uint32_t api_level;

    /* ---- API level 1 ---- */

    /* A static message for a status code (never NULL). */
    const char *(*status_message)(int status);
    /* What went wrong in the last failed call of this thread ("" after success). */
    const char *(*error_detail)(void);

    /* Geometry helpers (the code the Python layer uses). resolve_axis fills
     * axis->out_size (and the pads for "same" modes) from in_size, kernel,
     * stride, dilation and, for PYPOOL_PAD_EXPLICIT, pad_begin/pad_end. */
    int (*resolve_axis)(pypool_axis *axis, int32_t pad_mode, int32_t ceil_mode);
    /* Output shape (ndim entries) of a windowed pool of input_shape. */
    int (*pooled_shape)(const pypool_params *params, int32_t ndim, const int64_t *input_shape,
                        int64_t *output_shape);
    /* The explicit pads a call uses: params->rank entries each. */
    int (*resolve_padding)(const pypool_params *params, int32_t ndim, const int64_t *input_shape,
                           int64_t *pad_begin, int64_t *pad_end);
    /* Default output shape of max_unpool: (L-1)*stride - pad_begin - pad_end + kernel_size. */
    int (*unpooled_shape)(const pypool_params *params, int32_t ndim, const int64_t *input_shape,
                          int64_t *output_shape);

    /* Forward operations. */
    int (*max_pool)(const pypool_params *params, const pypool_tensor *x, const pypool_tensor *out,
                    const pypool_tensor *indices);
    int (*avg_pool)(const pypool_params *params, const pypool_tensor *x, const pypool_tensor *out);
    int (*lp_pool)(const pypool_params *params, const pypool_tensor *x, const pypool_tensor *out);
    int (*adaptive_max_pool)(const pypool_params *params, const pypool_tensor *x,
                             const pypool_tensor *out, const pypool_tensor *indices);
    int (*adaptive_avg_pool)(const pypool_params *params, const pypool_tensor *x,
                             const pypool_tensor *out);
    int (*global_max_pool)(const pypool_params *params, const pypool_tensor *x,
                           const pypool_tensor *out, const pypool_tensor *indices);
    int (*global_avg_pool)(const pypool_params *params, const pypool_tensor *x,
                           const pypool_tensor *out);
    int (*max_unpool)(const pypool_params *params, const pypool_tensor *x,
                      const pypool_tensor *indices, const pypool_tensor *out);

    /* Backward operations: grad_input has the forward input's shape. */
    int (*max_pool_backward)(const pypool_params *params, const pypool_tensor *grad_output,
                             const pypool_tensor *indices, const pypool_tensor *grad_input);
    int (*avg_pool_backward)(const pypool_params *params, const pypool_tensor *grad_output,
                             const pypool_tensor *grad_input);
    int (*lp_pool_backward)(const pypool_params *params, const pypool_tensor *grad_output,
                            const pypool_tensor *x, const pypool_tensor *grad_input);
    int (*adaptive_avg_pool_backward)(const pypool_params *params,
                                      const pypool_tensor *grad_output,
                                      const pypool_tensor *grad_input);
    int (*global_avg_pool_backward)(const pypool_params *params, const pypool_tensor *grad_output,
                                    const pypool_tensor *grad_input);
} pypool_api;

/* ------------------------------------------------------------ the import
 * Defined when Python.h was included first. Call it with the GIL held; it
 * returns NULL with ImportError set when pypool cannot be imported or its
 * table does not match this header. The table stays valid for the life of
 * the process. */
#ifdef Py_PYTHON_H
static inline const pypool_api *pypool_import(void)
{
    PyObject *module, *capsule;
    const pypool_api *api;

    module = PyImport_ImportModule(PYPOOL_CAPI_MODULE);
    if (module == NULL)
        return NULL;
    capsule = PyObject_GetAttrString(module, PYPOOL_CAPI_ATTRIBUTE);
    Py_DECREF(module);
    if (capsule == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ImportError,
                        "pypool C API: " PYPOOL_CAPI_MODULE " has no " PYPOOL_CAPI_ATTRIBUTE
                        " (pypool is older than this header or its install is broken)");
        return NULL;
    }
    if (!PyCapsule_IsValid(capsule, PYPOOL_CAPI_CAPSULE)) {
        Py_DECREF(capsule);
        PyErr_SetString(PyExc_ImportError,
                        "pypool C API: " PYPOOL_CAPI_MODULE "." PYPOOL_CAPI_ATTRIBUTE
                        " is not a capsule named \"" PYPOOL_CAPI_CAPSULE "\"");
        return NULL;
    }
    api = (const pypool_api *)PyCapsule_GetPointer(capsule, PYPOOL_CAPI_CAPSULE);
    Py_DECREF(capsule);   /* the table is static data of a module that is never unloaded */
    if (api == NULL)
        return NULL;
    if (api->abi_version != PYPOOL_ABI_VERSION) {
        PyErr_Format(PyExc_ImportError,
                     "pypool C API ABI version mismatch: this module was compiled against "
                     "ABI version %u, the installed pypool provides ABI version %u; rebuild "
                     "it with the headers of the installed pypool (pypool.get_include())",
                     (unsigned)PYPOOL_ABI_VERSION, (unsigned)api->abi_version);
        return NULL;
    }
    if (api->api_level < PYPOOL_REQUIRED_API_LEVEL) {
        PyErr_Format(PyExc_ImportError,
                     "pypool C API level too old: this module needs API level %u, the "
                     "installed pypool provides API level %u; upgrade pypool",
                     (unsigned)PYPOOL_REQUIRED_API_LEVEL, (unsigned)api->api_level);
        return NULL;
    }
    return api;
}
#endif /* Py_PYTHON_H */

#ifdef __cplusplus
}
#endif

#endif /* PYPOOL_PYPOOL_H */
