# Max pooling forward over the 5-D view (B, D, H, W, V) described in
# DESIGN.md: B = batch planes, D/H/W = spatial axes (size 1 when unused),
# V = lanes (channels of a channels_last input, else 1).

from libc.math cimport INFINITY
from libc.stdint cimport INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN


cdef inline real_t lowest(real_t dummy) noexcept nogil:
    """The value an empty window yields: -inf for floats, the minimum for ints."""
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
    """True when val is NaN and best is not: the first NaN of a window wins."""
    if real_t is float or real_t is double:
        return val != val and best == best
    else:
        return False


cdef void max_pool_generic(const real_t[:, :, :, :, :] x, real_t[:, :, :, :, :] y,
                           int64_t[:, :, :, :, :] ind, bint want_ind,
                           const pypool_axis* ax, int nthreads) noexcept nogil:
    """Any strides, any geometry: one output element at a time, taps in row-major order.

    Ties keep the first maximum (strict >), the first NaN wins over numbers
    and later NaNs, and an empty window gives lowest() with index -1.
    """
    cdef Py_ssize_t B = y.shape[0], OD = y.shape[1], OH = y.shape[2]
    cdef Py_ssize_t OW = y.shape[3], V = y.shape[4]
    cdef int64_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t rows = B * OD * OH, r, b, od, oh, ow, v
    cdef int64_t d0, h0, w0, kd, kh, kw, dlo, dhi, hlo, hhi, wlo, whi
    cdef int64_t i_d, i_h, i_w, best_i
    cdef real_t best, val
    cdef real_t empty = lowest(<real_t>0)
    for r in prange(rows, nogil=True, num_threads=nthreads, schedule="static",
                    use_threads_if=nthreads > 1):
        b = r // (OD * OH)
        od = (r // OH) % OD
        oh = r % OH
        d0 = od * ax[0].stride - ax[0].pad_begin
        h0 = oh * ax[1].stride - ax[1].pad_begin
        dlo = first_tap(d0, ax[0].dilation)
        dhi = end_tap(d0, ax[0].in_size, ax[0].kernel, ax[0].dilation)
        hlo = first_tap(h0, ax[1].dilation)
        hhi = end_tap(h0, H, ax[1].kernel, ax[1].dilation)
        for ow in range(OW):
            w0 = ow * ax[2].stride - ax[2].pad_begin
            wlo = first_tap(w0, ax[2].dilation)
            whi = end_tap(w0, W, ax[2].kernel, ax[2].dilation)
            for v in range(V):
                best = empty
                best_i = -1
                for kd in range(dlo, dhi):
                    i_d = d0 + kd * ax[0].dilation
                    for kh in range(hlo, hhi):
                        i_h = h0 + kh * ax[1].dilation
                        for kw in range(wlo, whi):
                            i_w = w0 + kw * ax[2].dilation
                            val = x[b, i_d, i_h, i_w, v]
                            if best_i < 0 or val > best or is_new_nan(val, best):
                                best = val
                                best_i = (i_d * H + i_h) * W + i_w
                y[b, od, oh, ow, v] = best
                if want_ind:
                    ind[b, od, oh, ow, v] = best_i


def max_pool_forward(const real_t[:, :, :, :, :] x, real_t[:, :, :, :, :] y,
                     int64_t[:, :, :, :, :] ind, bint want_ind, geom, int nthreads):
    """Run max pooling on 5-D views; ``geom`` holds 3 per-axis tuples (see fill_axes)."""
    cdef pypool_axis ax[3]
    fill_axes(ax, geom)
    with nogil:
        max_pool_generic(x, y, ind, want_ind, ax, nthreads)
