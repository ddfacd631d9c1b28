# Average pooling forward over the 5-D view (B, D, H, W, V).


cdef void avg_pool_generic(const real_t[:, :, :, :, :] x, float_out_t[:, :, :, :, :] y,
                           const pypool_axis* ax, bint count_include_pad,
                           int64_t divisor_override, int nthreads) noexcept nogil:
    """Sum the in-bounds taps in double, divide once, round once to the output type.

    The divisor is divisor_override when > 0, else the taps inside the padded
    extent (count_include_pad) or the in-bounds taps; 0/0 gives NaN for a
    window with no tap.
    """
    cdef Py_ssize_t B = y.shape[0], OD = y.shape[1], OH = y.shape[2]
    cdef Py_ssize_t OW = y.shape[3], V = y.shape[4]
    cdef Py_ssize_t rows = B * OD * OH, r, b, od, oh, ow, v
    cdef int64_t d0, h0, w0, kd, kh, kw, dlo, dhi, hlo, hhi, wlo, whi
    cdef int64_t i_d, i_h, i_w
    cdef double acc, div_dh, divisor
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
        hhi = end_tap(h0, ax[1].in_size, ax[1].kernel, ax[1].dilation)
        if count_include_pad:
            div_dh = (<double>padded_taps(d0, ax[0].in_size, ax[0].pad_end, ax[0].kernel, ax[0].dilation)
                      * <double>padded_taps(h0, ax[1].in_size, ax[1].pad_end, ax[1].kernel, ax[1].dilation))
        else:
            div_dh = <double>(dhi - dlo) * <double>(hhi - hlo)
        for ow in range(OW):
            w0 = ow * ax[2].stride - ax[2].pad_begin
            wlo = first_tap(w0, ax[2].dilation)
            whi = end_tap(w0, ax[2].in_size, ax[2].kernel, ax[2].dilation)
            if divisor_override > 0:
                divisor = <double>divisor_override
            elif count_include_pad:
                divisor = div_dh * <double>padded_taps(w0, ax[2].in_size, ax[2].pad_end,
                                                       ax[2].kernel, ax[2].dilation)
            else:
                divisor = div_dh * <double>(whi - wlo)
            for v in range(V):
                acc = 0.0
                for kd in range(dlo, dhi):
                    i_d = d0 + kd * ax[0].dilation
                    for kh in range(hlo, hhi):
                        i_h = h0 + kh * ax[1].dilation
                        for kw in range(wlo, whi):
                            i_w = w0 + kw * ax[2].dilation
                            acc = acc + <double>x[b, i_d, i_h, i_w, v]
                y[b, od, oh, ow, v] = <float_out_t>(acc / divisor)


def avg_pool_forward(const real_t[:, :, :, :, :] x, float_out_t[:, :, :, :, :] y, geom,
                     bint count_include_pad, int64_t divisor_override, int nthreads):
    """Run average pooling on 5-D views; divisor_override <= 0 means none."""
    cdef pypool_axis ax[3]
    fill_axes(ax, geom)
    with nogil:
        avg_pool_generic(x, y, ax, count_include_pad, divisor_override, nthreads)
