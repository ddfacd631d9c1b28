# cython: language_level=3
"""Cython declarations of pypool's C API (include/pypool/pypool.h).

    from pypool.capi cimport *

    cdef const pypool_api* api = pypool_import()   # with the GIL; raises ImportError
    ...
    with nogil:
        status = api.max_pool(&params, &x, &out, NULL)

Compile with ``include_dirs=[pypool.get_include()]``; Cython finds this file
on ``sys.path`` (it sits in the installed ``pypool`` package). The table,
its slots, the structs and status codes are documented in the header.
pypool's own kernels are compiled against these declarations too.
"""

from libc.stdint cimport int32_t, int64_t, uint32_t

cdef extern from "pypool/pypool.h" nogil:
    enum:
        PYPOOL_ABI_VERSION
        PYPOOL_API_LEVEL
        PYPOOL_REQUIRED_API_LEVEL
        PYPOOL_MAX_NDIM
    const char* PYPOOL_CAPI_MODULE
    const char* PYPOOL_CAPI_ATTRIBUTE
    const char* PYPOOL_CAPI_CAPSULE

    ctypedef enum pypool_status:
        PYPOOL_OK
        PYPOOL_ERR_KERNEL
        PYPOOL_ERR_STRIDE
        PYPOOL_ERR_DILATION
        PYPOOL_ERR_PAD_NEGATIVE
        PYPOOL_ERR_PAD_TOO_LARGE
        PYPOOL_ERR_EMPTY_OUTPUT
        PYPOOL_ERR_OVERFLOW
        PYPOOL_ERR_SHAPE
        PYPOOL_ERR_NOMEM
        PYPOOL_ERR_INDEX
        PYPOOL_ERR_NULL
        PYPOOL_ERR_DTYPE
        PYPOOL_ERR_RANK
        PYPOOL_ERR_LAYOUT
        PYPOOL_ERR_ARGUMENT
        PYPOOL_ERR_OVERLAP

    ctypedef enum pypool_dtype:
        PYPOOL_BOOL
        PYPOOL_INT8
        PYPOOL_INT16
        PYPOOL_INT32
        PYPOOL_INT64
        PYPOOL_UINT8
        PYPOOL_UINT16
        PYPOOL_UINT32
        PYPOOL_UINT64
        PYPOOL_FLOAT16
        PYPOOL_FLOAT32
        PYPOOL_FLOAT64

    ctypedef enum pypool_layout:
        PYPOOL_CHANNELS_FIRST
        PYPOOL_CHANNELS_LAST

    ctypedef enum pypool_pad_mode:
        PYPOOL_PAD_EXPLICIT
        PYPOOL_PAD_SAME_UPPER
        PYPOOL_PAD_SAME_LOWER

    ctypedef struct pypool_axis:
        int64_t in_size
        int64_t out_size
        int64_t kernel
        int64_t stride
        int64_t dilation
        int64_t pad_begin
        int64_t pad_end

    ctypedef struct pypool_tensor:
        void* data
        int32_t dtype
        int32_t ndim
        const int64_t* shape
        const int64_t* strides

    ctypedef struct pypool_params:
        int32_t rank
        int32_t layout
        int64_t kernel_size[3]
        int64_t stride[3]
        int64_t dilation[3]
        int64_t pad_begin[3]
        int64_t pad_end[3]
        int32_t pad_mode
        int32_t ceil_mode
        int32_t count_include_pad
        int32_t num_threads
        int64_t divisor_override
        double norm_type

    void pypool_params_init(pypool_params* p, int32_t rank)

    ctypedef struct pypool_api:
        uint32_t abi_version
        uint32_t api_level
        const char* (*status_message)(int status) noexcept nogil
        const char* (*error_detail)() noexcept nogil
        int (*resolve_axis)(pypool_axis* axis, int32_t pad_mode, int32_t ceil_mode) noexcept nogil
        int (*pooled_shape)(const pypool_params* params, int32_t ndim, const int64_t* input_shape,
                            int64_t* output_shape) noexcept nogil
        int (*resolve_padding)(const pypool_params* params, int32_t ndim,
                               const int64_t* input_shape, int64_t* pad_begin,
                               int64_t* pad_end) noexcept nogil
        int (*unpooled_shape)(const pypool_params* params, int32_t ndim,
                              const int64_t* input_shape, int64_t* output_shape) noexcept nogil
        int (*max_pool)(const pypool_params* params, const pypool_tensor* x,
                        const pypool_tensor* out, const pypool_tensor* indices) noexcept nogil
        int (*avg_pool)(const pypool_params* params, const pypool_tensor* x,
                        const pypool_tensor* out) noexcept nogil
        int (*lp_pool)(const pypool_params* params, const pypool_tensor* x,
                       const pypool_tensor* out) noexcept nogil
        int (*adaptive_max_pool)(const pypool_params* params, const pypool_tensor* x,
                                 const pypool_tensor* out,
                                 const pypool_tensor* indices) noexcept nogil
        int (*adaptive_avg_pool)(const pypool_params* params, const pypool_tensor* x,
                                 const pypool_tensor* out) noexcept nogil
        int (*global_max_pool)(const pypool_params* params, const pypool_tensor* x,
                               const pypool_tensor* out, const pypool_tensor* indices) noexcept nogil
        int (*global_avg_pool)(const pypool_params* params, const pypool_tensor* x,
                               const pypool_tensor* out) noexcept nogil
        int (*max_unpool)(const pypool_params* params, const pypool_tensor* x,
                          const pypool_tensor* indices, const pypool_tensor* out) noexcept nogil
        int (*max_pool_backward)(const pypool_params* params, const pypool_tensor* grad_output,
                                 const pypool_tensor* indices,
                                 const pypool_tensor* grad_input) noexcept nogil
        int (*avg_pool_backward)(const pypool_params* params, const pypool_tensor* grad_output,
                                 const pypool_tensor* grad_input) noexcept nogil
        int (*lp_pool_backward)(const pypool_params* params, const pypool_tensor* grad_output,
                                const pypool_tensor* x,
                                const pypool_tensor* grad_input) noexcept nogil
        int (*adaptive_avg_pool_backward)(const pypool_params* params,
                                          const pypool_tensor* grad_output,
                                          const pypool_tensor* grad_input) noexcept nogil
        int (*global_avg_pool_backward)(const pypool_params* params,
                                        const pypool_tensor* grad_output,
                                        const pypool_tensor* grad_input) noexcept nogil

cdef extern from "pypool/pypool.h":
    # Needs the GIL: imports pypool, checks the table's versions, raises ImportError.
    const pypool_api* pypool_import() except NULL
