# Shared declarations of the kernels: the public C header, the OpenMP shim
# and the fused dtypes each kernel is specialised for.

from libc.stdint cimport (int8_t, int16_t, int32_t, int64_t,
                          uint8_t, uint16_t, uint32_t, uint64_t)

# The public C header's types (status codes, pypool_axis, the C API table),
# declared once in the package's .pxd that Cython users cimport too.
from pypool.capi cimport *

cdef extern from "_omp_shim.h":
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int PYPOOL_HAVE_OPENMP
    int PYPOOL_OPENMP_VERSION
    const char* PYPOOL_COMPILER
    const char* PYPOOL_COMPILER_VERSION
    const char* PYPOOL_CFLAGS

# Plain-C helpers of the C API: per-thread error detail, float16, fork flag.
cdef extern from "_capi_support.h" nogil:
    const char* pypool_detail()
    void pypool_clear_detail()
    int pypool_fail(int status, const char* fmt, ...)
    const char* pypool_format_shape(char* buf, size_t size, int ndim, const int64_t* shape)
    double pypool_half_to_double(uint16_t h)
    uint16_t pypool_double_to_half(double d)
    uint32_t pypool_half_to_float_bits(uint16_t h)
    uint16_t pypool_float_bits_to_half(uint32_t bits)
    int pypool_watch_fork()
    int pypool_forked_child()

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
