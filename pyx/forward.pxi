# Forward pooling kernels: max, average and Lp over sliding or adaptive windows.
#
# Every op walks the output rows (b, od, oh) in parallel; a row function does
# all (ow, v) of one row, reading the window tables (see Windows) so that one
# kernel serves sliding windows (any stride, dilation, padding) and adaptive
# cells alike. Row functions keep their loop variables local, which makes
# them private to each OpenMP thread without relying on prange's rules.

from libc.math cimport INFINITY, fabs, pow, sqrt
from libc.stdint cimport INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN

# Reductions of reduce_forward.
cdef enum:
    REDUCE_AVG = 0
    REDUCE_LP = 1


cdef inline real_t lowest(real_t dummy) noexcept nogil:
    """The value of a window with no tap: -inf for floats, the minimum for ints."""
    if real_t is float or real_t is double:
        return -INFINITY
    elif real_t is int8_t:
        return INT8_MIN
    elif real_t is int16_t:
        return INT16_MIN
    elif real_t is int32_t:
        return INT32_MIN
    elif real_t is int64_t:
        return INT64_MIN
    else:
        return 0


cdef inline bint is_new_nan(real_t val, real_t best) noexcept nogil:
    """True when val is NaN and best is not: a window's first NaN wins."""
    if real_t is float or real_t is double:
        return val != val and best == best
    else:
        return False


cdef inline int64_t offset5(const Strided5* v, int64_t b, int64_t d, int64_t h, int64_t w,
                            int64_t c) noexcept nogil:
    return b * v.s[0] + d * v.s[1] + h * v.s[2] + w * v.s[3] + c * v.s[4]


cdef void max_row(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                  int64_t* ind, const Strided5* js, const Windows* w, int64_t r) noexcept nogil:
    """One output row of max pooling; ties keep the first maximum (strict >)."""
    cdef int64_t OD = ys.n[1], OH = ys.n[2], OW = ys.n[3], V = ys.n[4]
    cdef int64_t H = xs.n[2], W = xs.n[3]
    cdef int64_t b = r // (OD * OH), od = (r // OH) % OD, oh = r % OH
    cdef int64_t fd = w.first[0][od], cd = w.count[0][od]
    cdef int64_t fh = w.first[1][oh], ch = w.count[1][oh]
    cdef int64_t ow, v, fw, cw, jd, jh, jw, i_d, i_h, i_w, best_i
    cdef const real_t* p
    cdef real_t best, val, empty = lowest(<real_t>0)
    for ow in range(OW):
        fw = w.first[2][ow]
        cw = w.count[2][ow]
        for v in range(V):
            best = empty
            best_i = -1
            for jd in range(cd):
                i_d = fd + jd * w.step[0]
                for jh in range(ch):
                    i_h = fh + jh * w.step[1]
                    p = x + offset5(xs, b, i_d, i_h, 0, v)
                    for jw in range(cw):
                        i_w = fw + jw * w.step[2]
                        val = p[i_w * xs.s[3]]
                        if best_i < 0 or val > best or is_new_nan(val, best):
                            best = val
                            best_i = (i_d * H + i_h) * W + i_w
            y[offset5(ys, b, od, oh, ow, v)] = best
            if ind != NULL:
                ind[offset5(js, b, od, oh, ow, v)] = best_i


cdef void reduce_row(const real_t* x, const Strided5* xs, float_out_t* y, const Strided5* ys,
                     const Windows* w, int op, int64_t divisor_override, double p,
                     int64_t r) noexcept nogil:
    """One output row of an average or an Lp norm, accumulated in double.

    Average: sum / divisor (divisor_override if > 0, else the product of the
    per-axis divisor tables; 0/0 gives NaN for an empty window).
    Lp: (sum |x|**p) ** (1/p), or max |x| for p = inf (NaN propagates).
    """
    cdef int64_t OD = ys.n[1], OH = ys.n[2], OW = ys.n[3], V = ys.n[4]
    cdef int64_t b = r // (OD * OH), od = (r // OH) % OD, oh = r % OH
    cdef int64_t fd = w.first[0][od], cd = w.count[0][od]
    cdef int64_t fh = w.first[1][oh], ch = w.count[1][oh]
    cdef int64_t ow, v, fw, cw, jd, jh, jw
    cdef double acc, val, div_dh = <double>w.divisor[0][od] * <double>w.divisor[1][oh], divisor
    cdef const real_t* q
    cdef bint is_inf = p == INFINITY
    for ow in range(OW):
        fw = w.first[2][ow]
        cw = w.count[2][ow]
        if divisor_override > 0:
            divisor = <double>divisor_override
        else:
            divisor = div_dh * <double>w.divisor[2][ow]
        for v in range(V):
            acc = 0.0
            for jd in range(cd):
                for jh in range(ch):
                    q = x + offset5(xs, b, fd + jd * w.step[0], fh + jh * w.step[1], fw, v)
                    for jw in range(cw):
                        val = <double>q[jw * w.step[2] * xs.s[3]]
                        if op == REDUCE_AVG:
                            acc = acc + val
                        elif is_inf:
                            val = fabs(val)
                            if val > acc or val != val:
                                acc = val
                            if acc != acc:
                                break
                        elif p == 1.0:
                            acc = acc + fabs(val)
                        elif p == 2.0:
                            acc = acc + val * val
                        else:
                            acc = acc + pow(fabs(val), p)
            if op == REDUCE_AVG:
                acc = acc / divisor
            elif not is_inf:
                if p == 1.0:
                    pass
                elif p == 2.0:
                    acc = sqrt(acc)
                else:
                    acc = pow(acc, 1.0 / p)
            y[offset5(ys, b, od, oh, ow, v)] = <float_out_t>acc


cdef void max_forward(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                      int64_t* ind, const Strided5* js, const Windows* w,
                      int nthreads) noexcept nogil:
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2]
    for r in prange(rows, num_threads=nthreads, schedule="static", use_threads_if=nthreads > 1):
        max_row(x, xs, y, ys, ind, js, w, r)


cdef void reduce_forward(const real_t* x, const Strided5* xs, float_out_t* y, const Strided5* ys,
                         const Windows* w, int op, int64_t divisor_override, double p,
                         int nthreads) noexcept nogil:
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2]
    for r in prange(rows, num_threads=nthreads, schedule="static", use_threads_if=nthreads > 1):
        reduce_row(x, xs, y, ys, w, op, divisor_override, p, r)


# ----------------------------------------------------------------------------- Python entry points

def max_pool_forward(const real_t[:, :, :, :, :] x, real_t[:, :, :, :, :] y,
                     int64_t[:, :, :, :, :] ind, bint want_ind, geom, bint adaptive,
                     int nthreads):
    """Max over sliding (adaptive=False) or adaptive windows of 5-D views.

    ``geom`` holds 3 tuples (in_size, out_size, kernel, stride, dilation,
    pad_begin, pad_end); adaptive windows use only the sizes.
    """
    cdef Strided5 xs, ys, js
    cdef Windows w
    describe(&xs, x.shape, x.strides, sizeof(real_t))
    describe(&ys, y.shape, y.strides, sizeof(real_t))
    describe(&js, ind.shape, ind.strides, sizeof(int64_t))
    make_windows(&w, geom, adaptive, False)
    try:
        with nogil:
            max_forward(&x[0, 0, 0, 0, 0], &xs, &y[0, 0, 0, 0, 0], &ys,
                        &ind[0, 0, 0, 0, 0] if want_ind else NULL, &js, &w, nthreads)
    finally:
        free_windows(&w)


def reduce_pool_forward(int op, const real_t[:, :, :, :, :] x, float_out_t[:, :, :, :, :] y,
                        geom, bint adaptive, bint count_include_pad, int64_t divisor_override,
                        double p, int nthreads):
    """Average (op=0) or Lp norm (op=1, order p) over windows of 5-D views."""
    cdef Strided5 xs, ys
    cdef Windows w
    describe(&xs, x.shape, x.strides, sizeof(real_t))
    describe(&ys, y.shape, y.strides, sizeof(float_out_t))
    make_windows(&w, geom, adaptive, count_include_pad)
    try:
        with nogil:
            reduce_forward(&x[0, 0, 0, 0, 0], &xs, &y[0, 0, 0, 0, 0], &ys, &w, op,
                           divisor_override, p, nthreads)
    finally:
        free_windows(&w)
