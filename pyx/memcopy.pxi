# A parallel copy with the same OpenMP team as the kernels: the benchmarks'
# memory roofline (bytes moved per second on this machine, this thread count).

from libc.string cimport memcpy


def parallel_copy(const unsigned char[::1] src, unsigned char[::1] dst, int nthreads):
    """Copy src into dst (same length) in nthreads contiguous chunks."""
    cdef Py_ssize_t n = src.shape[0], chunk, t, lo, hi
    if dst.shape[0] != n:
        raise ValueError("parallel_copy: src and dst differ in length")
    if n == 0:
        return
    nthreads = max(1, nthreads)
    chunk = (n + nthreads - 1) // nthreads
    with nogil:
        for t in prange(nthreads, num_threads=nthreads, schedule="static"):
            lo = t * chunk
            hi = min(n, lo + chunk)
            if hi > lo:
                memcpy(&dst[lo], &src[lo], <size_t>(hi - lo))
