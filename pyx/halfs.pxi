# float16 inputs and results: the kernels pool float16 as float32 (exactly);
# these convert whole contiguous arrays on the kernels' threads, with NumPy's
# bits (_half.h), where NumPy's casts would take one thread
# (pypool/_dispatch.py: kernel_input, put_result).

cdef extern from "_half.h":
    # at a level: 0 the portable loops, 1 F16C, 2 F16C and AVX-512, at most
    # pypool_half_hw (what this CPU runs, set at import)
    int pypool_half_hw
    void pypool_halfs_to_floats_at(const uint16_t* src, float* dst, int64_t n,
                                   int level) noexcept nogil
    void pypool_floats_to_halfs_at(const float* src, uint16_t* dst, int64_t n,
                                   int level) noexcept nogil
    void pypool_doubles_to_halfs_at(const double* src, uint16_t* dst, int64_t n,
                                    int level) noexcept nogil
    int pypool_half_enable_hw(int allow_avx512) noexcept nogil


cdef enum:
    HALF_CHUNK = 1 << 16    # elements per task


def halfs_to_floats(const uint16_t[::1] src, float[::1] dst, int nthreads, int level=-1):
    """dst[i] = float32(src[i]), src holding float16 bits (same lengths); level
    (tests) picks the loops, -1 the fastest this CPU runs."""
    cdef int64_t n = src.shape[0], chunks = (n + HALF_CHUNK - 1) // HALF_CHUNK, c, lo
    if dst.shape[0] != n:
        raise ValueError(f"halfs_to_floats: {dst.shape[0]} results for {n} values")
    level = pypool_half_hw if level < 0 else min(level, pypool_half_hw)
    if n == 0:
        return
    with nogil:
        if nthreads > 1:
            for c in prange(chunks, num_threads=nthreads, schedule="static"):
                lo = c * HALF_CHUNK
                pypool_halfs_to_floats_at(&src[lo], &dst[lo], min(<int64_t>HALF_CHUNK, n - lo),
                                          level)
        else:
            pypool_halfs_to_floats_at(&src[0], &dst[0], n, level)


def floats_to_halfs(const float[::1] src, uint16_t[::1] dst, int nthreads, int level=-1):
    """dst[i] = the float16 bits of src[i], rounded to nearest even (same
    lengths); level as in halfs_to_floats."""
    cdef int64_t n = src.shape[0], chunks = (n + HALF_CHUNK - 1) // HALF_CHUNK, c, lo
    if dst.shape[0] != n:
        raise ValueError(f"floats_to_halfs: {dst.shape[0]} results for {n} values")
    level = pypool_half_hw if level < 0 else min(level, pypool_half_hw)
    if n == 0:
        return
    with nogil:
        if nthreads > 1:
            for c in prange(chunks, num_threads=nthreads, schedule="static"):
                lo = c * HALF_CHUNK
                pypool_floats_to_halfs_at(&src[lo], &dst[lo], min(<int64_t>HALF_CHUNK, n - lo),
                                          level)
        else:
            pypool_floats_to_halfs_at(&src[0], &dst[0], n, level)


def doubles_to_halfs(const double[::1] src, uint16_t[::1] dst, int nthreads, int level=-1):
    """dst[i] = the float16 bits of src[i], rounded once to nearest even (the
    float16 results of averages and Lp norms, computed in float64); level as
    in halfs_to_floats."""
    cdef int64_t n = src.shape[0], chunks = (n + HALF_CHUNK - 1) // HALF_CHUNK, c, lo
    if dst.shape[0] != n:
        raise ValueError(f"doubles_to_halfs: {dst.shape[0]} results for {n} values")
    level = pypool_half_hw if level < 0 else min(level, pypool_half_hw)
    if n == 0:
        return
    with nogil:
        if nthreads > 1:
            for c in prange(chunks, num_threads=nthreads, schedule="static"):
                lo = c * HALF_CHUNK
                pypool_doubles_to_halfs_at(&src[lo], &dst[lo], min(<int64_t>HALF_CHUNK, n - lo),
                                          level)
        else:
            pypool_doubles_to_halfs_at(&src[0], &dst[0], n, level)
