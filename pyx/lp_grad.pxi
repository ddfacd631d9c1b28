# The gradient of Lp pooling, and the plane-parallel drivers of the scatter
# kernels, shared by the Python layer (lp_backward below) and the C API.
#
# lp_pool_backward is g * y**(1-p) * |x|**(p-1) * sign(x), summed over the
# windows that read each element (0 where y == 0 or x == 0); for p = inf the
# gradient goes to each window's first maximal |x|, times sign(x). Both are
# built from the forward kernels (the Lp norms y, or the max of |x| with
# indices) and the backward ones (the window-sum gather, or the max scatter),
# all in float64, so the result does not depend on the thread count.

from libc.math cimport INFINITY, fabs, pow, sqrt
from libc.stdlib cimport free, malloc


cdef int scatter_planes(const float_out_t* g, const Strided5* gs, const int64_t* ind,
                        const Strided5* js, float_out_t* dx, const Strided5* ds,
                        int nthreads) noexcept nogil:
    """Max backward of every plane (indices checked beforehand); returns failed allocations."""
    cdef int64_t r, planes = ds.n[0], chunks = chunk_count(ds.n[0], nthreads)
    cdef int failed = 0
    for r in prange(chunks, num_threads=nthreads, schedule="static", use_threads_if=nthreads > 1):
        failed += scatter_grad_planes(g, gs, ind, js, dx, ds, r * planes // chunks,
                                      (r + 1) * planes // chunks)
    return failed


cdef void unpool_planes(const real_t* x, const Strided5* xs, const int64_t* ind,
                        const Strided5* js, real_t* y, const Strided5* ys,
                        int nthreads) noexcept nogil:
    """Max-unpool every plane (indices checked beforehand)."""
    cdef int64_t b
    for b in prange(ys.n[0], num_threads=nthreads, schedule="static", use_threads_if=nthreads > 1):
        unpool_plane(x, xs, ind, js, y, ys, b)


cdef inline double power(double a, double e) noexcept nogil:
    """a**e, exact for the exponents Lp gradients meet most (p = 1, 2, 3)."""
    if e == 0.0:
        return 1.0
    if e == 1.0:
        return a
    if e == -1.0:
        return 1.0 / a
    if e == 2.0:
        return a * a
    return pow(a, e)


cdef inline double sign_of(double v) noexcept nogil:
    """-1, 0 or 1, and NaN for NaN (as numpy.sign)."""
    if v > 0:
        return 1.0
    if v < 0:
        return -1.0
    return v


cdef inline void contiguous_strides(Strided5* c, const Strided5* like) noexcept nogil:
    """C-contiguous strides for a 5-D array of like's sizes."""
    cdef int i
    c.n[4] = like.n[4]
    c.s[4] = 1
    for i in range(3, -1, -1):
        c.n[i] = like.n[i]
        c.s[i] = c.s[i + 1] * like.n[i + 1]


cdef void lp_weights(double* y, const Strided5* ys, const double* g, const Strided5* gs,
                     double p, int nthreads) noexcept nogil:
    """y = g * y**(1-p) in place, 0 where y == 0 (y C-contiguous, g any strides)."""
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2], i, v, b, d, h
    cdef double* yrow
    cdef double yv
    for r in prange(rows, num_threads=nthreads, schedule="static", use_threads_if=nthreads > 1):
        b = r // (ys.n[1] * ys.n[2])
        d = (r // ys.n[2]) % ys.n[1]
        h = r % ys.n[2]
        yrow = y + r * ys.s[2]
        for i in range(ys.n[3]):
            for v in range(ys.n[4]):
                yv = yrow[i * ys.s[3] + v]
                yrow[i * ys.s[3] + v] = (
                    0.0 if yv == 0.0 else g[offset5(gs, b, d, h, i, v)] * power(yv, 1.0 - p))


cdef void scale_by_x(double* dx, const Strided5* ds, const double* x, const Strided5* xs,
                     double p, int nthreads) noexcept nogil:
    """dx *= |x|**(p-1) * sign(x) (0 where x == 0); for p = inf, dx *= sign(x)."""
    cdef int64_t r, rows = ds.n[0] * ds.n[1] * ds.n[2], i, v, b, d, h, o
    cdef double xv, f
    for r in prange(rows, num_threads=nthreads, schedule="static", use_threads_if=nthreads > 1):
        b = r // (ds.n[1] * ds.n[2])
        d = (r // ds.n[2]) % ds.n[1]
        h = r % ds.n[2]
        for i in range(ds.n[3]):
            for v in range(ds.n[4]):
                xv = x[offset5(xs, b, d, h, i, v)]
                if p == INFINITY:
                    f = sign_of(xv)
                elif xv == 0.0:
                    f = 0.0
                else:
                    f = power(fabs(xv), p - 1.0) * sign_of(xv)
                o = offset5(ds, b, d, h, i, v)
                dx[o] = dx[o] * f


cdef pypool_status lp_backward_core(const double* g, const Strided5* gs, const double* x,
                                    const Strided5* xs, double* dx, const Strided5* ds,
                                    const pypool_axis* ax, double p, int nthreads) noexcept nogil:
    """Gradient of Lp pooling (axes of sliding windows) from g into dx, all float64.

    dx may have any strides; it is fully written. Returns PYPOOL_OK or
    PYPOOL_ERR_NOMEM (PYPOOL_ERR_OVERFLOW for absurdly many window taps).
    """
    cdef Windows w
    cdef Covers c
    cdef Strided5 ys, as_
    cdef int64_t ins[3]
    cdef int64_t i, v, r, rows, b, d, h
    cdef int failed = 0
    cdef pypool_status st
    cdef double* y = NULL
    cdef double* absx = NULL
    cdef int64_t* idx = NULL
    w.block = NULL
    c.block = NULL
    contiguous_strides(&ys, gs)
    st = sliding_windows(&w, ax, False)
    if st != PYPOOL_OK:
        free_windows(&w)
        return st
    y = <double*>malloc(<size_t>(ys.n[0] * ys.s[0] + 1) * sizeof(double))
    if y == NULL:
        free_windows(&w)
        return PYPOOL_ERR_NOMEM
    if p == INFINITY:
        # The first maximal |x| of each window takes the window's gradient.
        contiguous_strides(&as_, xs)
        absx = <double*>malloc(<size_t>(as_.n[0] * as_.s[0] + 1) * sizeof(double))
        idx = <int64_t*>malloc(<size_t>(ys.n[0] * ys.s[0] + 1) * sizeof(int64_t))
        if absx == NULL or idx == NULL:
            st = PYPOOL_ERR_NOMEM
        else:
            rows = as_.n[0] * as_.n[1] * as_.n[2]
            for r in prange(rows, num_threads=nthreads, schedule="static",
                            use_threads_if=nthreads > 1):
                b = r // (as_.n[1] * as_.n[2])
                d = (r // as_.n[2]) % as_.n[1]
                h = r % as_.n[2]
                for i in range(as_.n[3]):
                    for v in range(as_.n[4]):
                        absx[r * as_.s[2] + i * as_.s[3] + v] = fabs(x[offset5(xs, b, d, h, i, v)])
            failed = max_forward(<const double*>absx, &as_, y, &ys, idx, &ys, &w, nthreads)
            if not failed:
                failed = scatter_planes(g, gs, idx, &ys, dx, ds, nthreads)
    else:
        failed = reduce_forward(x, xs, y, &ys, &w, REDUCE_LP, 0, p, nthreads)
        if not failed:
            lp_weights(y, &ys, g, gs, p, nthreads)
            for i in range(3):
                ins[i] = ds.n[i + 1]
            st = build_covers(&c, &w, ins)
            if st == PYPOOL_OK:
                failed = gather_backward(<const double*>y, &ys, dx, ds, &w, &c, False, 0,
                                         nthreads)
            free_covers(&c)
    if st == PYPOOL_OK and failed:
        st = PYPOOL_ERR_NOMEM
    if st == PYPOOL_OK:
        scale_by_x(dx, ds, x, xs, p, nthreads)
    free(y)
    free(absx)
    free(idx)
    free_windows(&w)
    return st


def lp_backward(const double[:, :, :, :, :] g, const double[:, :, :, :, :] x,
                double[:, :, :, :, :] dx, geom, double p, int nthreads):
    """Gradient of Lp pooling from g into dx (float64 5-D views; geom as fill_axes)."""
    cdef Strided5 gs, xs, ds
    cdef pypool_axis ax[3]
    cdef pypool_status st
    fill_axes(ax, geom)
    describe(&gs, g.shape, g.strides, sizeof(double))
    describe(&xs, x.shape, x.strides, sizeof(double))
    describe(&ds, dx.shape, dx.strides, sizeof(double))
    with nogil:
        st = lp_backward_core(&g[0, 0, 0, 0, 0], &gs, &x[0, 0, 0, 0, 0], &xs,
                              &dx[0, 0, 0, 0, 0], &ds, ax, p, nthreads)
    if st == PYPOOL_ERR_NOMEM:
        raise MemoryError("pypool: cannot allocate lp_pool_backward scratch buffers")
    if st != PYPOOL_OK:
        raise ValueError(f"pypool: lp_pool_backward failed with status {int(st)}")
