# Shared declarations of the kernels: the public C header, the OpenMP shim
# and the fused dtypes each kernel is specialised for.

from libc.stdint cimport (int8_t, int16_t, int32_t, int64_t,
                          uint8_t, uint16_t, uint32_t, uint64_t)

cdef extern from "pypool/pypool.h":
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

cdef extern from "_omp_shim.h":
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int PYPOOL_HAVE_OPENMP
    int PYPOOL_OPENMP_VERSION
    const char* PYPOOL_COMPILER
    const char* PYPOOL_COMPILER_VERSION
    const char* PYPOOL_CFLAGS

# Every dtype the kernels see. bool arrives as uint8 and float16 as float32
# (both exact conversions done by the Python layer).
ctypedef fused real_t:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t
    float
    double

# Result dtypes of averaging ops (sums are always accumulated in double).
ctypedef fused float_out_t:
    float
    double

# A strided 5-D view (B, D, H, W, V) of raw memory: sizes and element strides.
# Kernels take a pointer plus one of these, so the same code serves typed
# memoryviews (Python layer) and raw buffers (C API), without the GIL.
cdef struct Strided5:
    int64_t n[5]
    int64_t s[5]

# Per-axis window tables of a pooling op: for output position o on axis a the
# in-bounds taps are first[a][o] + j * step[a], j < count[a][o]; divisor[a][o]
# is that axis's factor of an average's divisor.
cdef struct Windows:
    int64_t out[3]
    int64_t step[3]
    # Sliding windows also keep their regular form: output o's tap j sits at
    # o * stride - pad_begin + j * step (bounds not applied); adaptive ones don't.
    bint sliding
    int64_t kernel[3]
    int64_t stride[3]
    int64_t pad_begin[3]
    int64_t* first[3]
    int64_t* count[3]
    double* divisor[3]     # as double: divisions vectorize, no int64 -> double conversions
    void* block

# The inverse tables: for input position i on axis a, the outputs whose
# window reads i are outs[a][offset[a][i] : offset[a][i + 1]] (ascending).
cdef struct Covers:
    int64_t* offset[3]
    int64_t* outs[3]
    void* block
