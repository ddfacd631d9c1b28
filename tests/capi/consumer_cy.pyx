# cython: language_level=3
"""A Cython module that uses pypool's C API through ``cimport pypool.capi``.

tests/test_capi.py cythonizes and compiles it at test time against the
installed pypool and compares its results with the Python API. ``run``
takes NumPy arrays of any dtype and strides; ``max_pool2d_nchw`` is the
typed-memoryview example of the README.
"""

from libc.stdint cimport int64_t

import numpy as np

from pypool.capi cimport *

# Once, at import: the table of the pypool build that Python loaded.
cdef const pypool_api* api = pypool_import()

DTYPES = {
    "bool": PYPOOL_BOOL, "int8": PYPOOL_INT8, "int16": PYPOOL_INT16, "int32": PYPOOL_INT32,
    "int64": PYPOOL_INT64, "uint8": PYPOOL_UINT8, "uint16": PYPOOL_UINT16,
    "uint32": PYPOOL_UINT32, "uint64": PYPOOL_UINT64, "float16": PYPOOL_FLOAT16,
    "float32": PYPOOL_FLOAT32, "float64": PYPOOL_FLOAT64,
}


cdef struct Arg:
    pypool_tensor tensor
    int64_t shape[PYPOOL_MAX_NDIM]
    int64_t strides[PYPOOL_MAX_NDIM]
    bint null


cdef int describe(Arg* a, arr) except -1:
    """Point a tensor at a NumPy array's memory (element strides)."""
    cdef int i
    a.null = arr is None
    if a.null:
        return 0
    if not arr.dtype.isnative:
        raise ValueError("pypool takes native byte order")
    a.tensor.data = <void*><size_t>arr.__array_interface__["data"][0]
    a.tensor.dtype = DTYPES[arr.dtype.name]
    a.tensor.ndim = arr.ndim
    for i in range(arr.ndim):
        a.shape[i] = arr.shape[i]
        a.strides[i] = arr.strides[i] // arr.itemsize
    a.tensor.shape = a.shape
    a.tensor.strides = a.strides
    return 0


cdef void axes(int64_t* dst, values):
    for i, v in enumerate(values):
        dst[i] = v


cdef pypool_params make_params(dict d) except *:
    cdef pypool_params p
    pypool_params_init(&p, d.get("rank", 2))
    p.layout = d.get("layout", p.layout)
    axes(p.kernel_size, d.get("kernel_size", ()))
    axes(p.stride, d.get("stride", ()))
    axes(p.dilation, d.get("dilation", ()))
    axes(p.pad_begin, d.get("pad_begin", ()))
    axes(p.pad_end, d.get("pad_end", ()))
    p.pad_mode = d.get("pad_mode", p.pad_mode)
    p.ceil_mode = d.get("ceil_mode", p.ceil_mode)
    p.count_include_pad = d.get("count_include_pad", p.count_include_pad)
    p.num_threads = d.get("num_threads", p.num_threads)
    p.divisor_override = d.get("divisor_override", p.divisor_override)
    p.norm_type = d.get("norm_type", p.norm_type)
    return p


OPS = ("max_pool", "adaptive_max_pool", "global_max_pool", "avg_pool", "lp_pool",
       "adaptive_avg_pool", "global_avg_pool", "max_unpool", "max_pool_backward",
       "avg_pool_backward", "lp_pool_backward", "adaptive_avg_pool_backward",
       "global_avg_pool_backward")


def run(str op, dict params, tuple arrays):
    """Run one C API entry on NumPy arrays (missing trailing arrays: NULL); returns the status."""
    cdef pypool_params p = make_params(params)
    cdef Arg args[3]
    cdef const pypool_tensor* t[3]
    cdef int status = 0, i
    cdef int which = OPS.index(op)
    for i in range(3):
        describe(&args[i], arrays[i] if i < len(arrays) else None)
        t[i] = NULL if args[i].null else &args[i].tensor
    with nogil:
        if which == 0:
            status = api.max_pool(&p, t[0], t[1], t[2])
        elif which == 1:
            status = api.adaptive_max_pool(&p, t[0], t[1], t[2])
        elif which == 2:
            status = api.global_max_pool(&p, t[0], t[1], t[2])
        elif which == 3:
            status = api.avg_pool(&p, t[0], t[1])
        elif which == 4:
            status = api.lp_pool(&p, t[0], t[1])
        elif which == 5:
            status = api.adaptive_avg_pool(&p, t[0], t[1])
        elif which == 6:
            status = api.global_avg_pool(&p, t[0], t[1])
        elif which == 7:
            status = api.max_unpool(&p, t[0], t[1], t[2])
        elif which == 8:
            status = api.max_pool_backward(&p, t[0], t[1], t[2])
        elif which == 9:
            status = api.avg_pool_backward(&p, t[0], t[1])
        elif which == 10:
            status = api.lp_pool_backward(&p, t[0], t[1], t[2])
        elif which == 11:
            status = api.adaptive_avg_pool_backward(&p, t[0], t[1])
        else:
            status = api.global_avg_pool_backward(&p, t[0], t[1])
    return status


def message(int status):
    return api.status_message(status).decode()


def detail():
    return api.error_detail().decode()


def versions():
    return (api.abi_version, api.api_level), (PYPOOL_ABI_VERSION, PYPOOL_API_LEVEL)


def pooled_shape(dict params, shape):
    """(status, output shape or None) from api.pooled_shape."""
    cdef pypool_params p = make_params(params)
    cdef int64_t inp[PYPOOL_MAX_NDIM]
    cdef int64_t out[PYPOOL_MAX_NDIM]
    cdef int n = len(shape)
    axes(inp, shape)
    status = api.pooled_shape(&p, n, inp, out)
    return status, (tuple(out[i] for i in range(n)) if status == PYPOOL_OK else None)


def max_pool2d_nchw(const float[:, :, :, ::1] x, int k):
    """k x k max pooling (stride k) of a C-contiguous float32 (N, C, H, W) array."""
    cdef pypool_params p
    cdef int64_t in_shape[4]
    cdef int64_t out_shape[4]
    cdef pypool_tensor tx, ty
    cdef int status, i
    pypool_params_init(&p, 2)
    p.kernel_size[0] = k
    p.kernel_size[1] = k
    for i in range(4):
        in_shape[i] = x.shape[i]
    status = api.pooled_shape(&p, 4, in_shape, out_shape)
    if status != PYPOOL_OK:
        raise ValueError(api.error_detail().decode())
    y_arr = np.empty([out_shape[i] for i in range(4)], dtype=np.float32)
    cdef float[:, :, :, ::1] y = y_arr
    tx.data = <void*>&x[0, 0, 0, 0]
    tx.dtype = PYPOOL_FLOAT32
    tx.ndim = 4
    tx.shape = in_shape
    tx.strides = NULL           # C-contiguous
    ty.data = &y[0, 0, 0, 0]
    ty.dtype = PYPOOL_FLOAT32
    ty.ndim = 4
    ty.shape = out_shape
    ty.strides = NULL
    with nogil:
        status = api.max_pool(&p, &tx, &ty, NULL)
    if status != PYPOOL_OK:
        raise ValueError(api.error_detail().decode())
    return y_arr
