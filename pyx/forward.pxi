# Forward pooling kernels: max, average and Lp over sliding or adaptive windows.
#
# Two loop shapes serve every op, both reading the window tables (Windows):
#
# * plane path — sliding windows on channels_first data whose W axis is
#   contiguous. One task is an output row (b, od, oh). For each in-bounds
#   input row of the window and each kernel column jw, the loop runs over
#   the outputs ow that this tap reaches, so the innermost loop is long,
#   branch-free and vectorizable (outputs are processed in blocks of
#   PLANE_BLOCK held on the stack).
# * lanes path — everything else. One task is an output position for a block
#   of up to LANE_BLOCK "lanes" that share the geometry: the channels of a
#   channels_last input, or consecutive batch planes of a channels_first one.
#   The innermost loop runs over lanes (contiguous for channels_last).
#
# Every output is accumulated over its taps in row-major tap order, in the
# same order on both paths, so results are bit-identical whatever the path,
# the strides or the thread count. Task functions keep their variables
# local, so they are private to each OpenMP thread.

from libc.math cimport INFINITY, fabs, pow, sqrt
from libc.stdint cimport INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN

# Reductions of reduce_pool_forward (the Python layer passes these numbers).
cdef enum:
    REDUCE_AVG = 0
    REDUCE_LP = 1

# How a reduction accumulates its taps.
cdef enum:
    ACC_SUM = 0      # average
    ACC_ABS = 1      # Lp, p = 1
    ACC_SQUARE = 2   # Lp, p = 2
    ACC_POW = 3      # Lp, other finite p
    ACC_MAXABS = 4   # Lp, p = inf

cdef enum:
    PLANE_BLOCK = 512   # outputs of one row handled at once on the plane path
    LANE_BLOCK = 64     # lanes handled at once on the lanes path


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


cdef inline bint is_nan(real_t v) noexcept nogil:
    if real_t is float or real_t is double:
        return v != v
    else:
        return False


cdef inline real_t max_nan(real_t m, real_t v) noexcept nogil:
    """max that propagates NaN (values only: which NaN does not matter)."""
    return v if (v > m or is_nan(v)) else m


cdef inline bint takes_over(real_t v, real_t best, int64_t best_i) noexcept nogil:
    """Does tap value v replace the best so far? First tap, strictly greater, or first NaN."""
    return best_i < 0 or v > best or (is_nan(v) and not is_nan(best))


cdef inline int64_t offset5(const Strided5* v, int64_t b, int64_t d, int64_t h, int64_t w,
                            int64_t c) noexcept nogil:
    return b * v.s[0] + d * v.s[1] + h * v.s[2] + w * v.s[3] + c * v.s[4]


cdef inline int64_t span_lo(int64_t t, int64_t s) noexcept nogil:
    """First output o with t + o*s >= 0."""
    return 0 if t >= 0 else (-t + s - 1) // s


cdef inline int64_t span_hi(int64_t t, int64_t s, int64_t L, int64_t n) noexcept nogil:
    """First output o (capped at n) with t + o*s >= L."""
    cdef int64_t o
    if t >= L:
        return 0
    o = (L - t + s - 1) // s
    return o if o < n else n


cdef inline int acc_mode(int op, double p) noexcept nogil:
    if op == REDUCE_AVG:
        return ACC_SUM
    if p == INFINITY:
        return ACC_MAXABS
    if p == 1.0:
        return ACC_ABS
    if p == 2.0:
        return ACC_SQUARE
    return ACC_POW


cdef inline double acc_step(double acc, double v, int mode, double p) noexcept nogil:
    """Add one tap to an accumulator (mode is loop-invariant, so loops get unswitched)."""
    cdef double a
    if mode == ACC_SUM:
        return acc + v
    elif mode == ACC_ABS:
        return acc + fabs(v)
    elif mode == ACC_SQUARE:
        return acc + v * v
    elif mode == ACC_POW:
        return acc + pow(fabs(v), p)
    a = fabs(v)
    return a if (a > acc or a != a) else acc


cdef inline double acc_final(double acc, int mode, double p, double divisor) noexcept nogil:
    """Average: acc / divisor (0/0 gives NaN). Lp: the p-th root."""
    if mode == ACC_SUM:
        return acc / divisor
    elif mode == ACC_SQUARE:
        return sqrt(acc)
    elif mode == ACC_POW:
        return pow(acc, 1.0 / p)
    return acc


cdef inline double avg_divisor(const Windows* w, int64_t od, int64_t oh, int64_t ow,
                               int64_t divisor_override) noexcept nogil:
    if divisor_override > 0:
        return <double>divisor_override
    return <double>w.divisor[0][od] * <double>w.divisor[1][oh] * <double>w.divisor[2][ow]


# ----------------------------------------------------------------------------- plane path

cdef void max_plane_task(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                         int64_t* ind, const Strided5* js, const Windows* w,
                         int64_t r) noexcept nogil:
    """Output row r = (b, od, oh) of max pooling, channels_first, contiguous W."""
    cdef int64_t OD = ys.n[1], OH = ys.n[2], OW = ys.n[3], H = xs.n[2], W = xs.n[3]
    cdef int64_t b = r // (OD * OH), od = (r // OH) % OD, oh = r % OH
    cdef int64_t kw = w.kernel[2], sw = w.stride[2], dw = w.step[2], pw = w.pad_begin[2]
    cdef int64_t blk, ow0, nb, jd, jh, jw, i_d, i_h, t, lo, hi, o, base
    cdef const real_t* row
    cdef real_t v
    cdef real_t empty = lowest(<real_t>0)
    cdef real_t accv[PLANE_BLOCK]
    cdef int64_t acci[PLANE_BLOCK]
    for blk in range((OW + PLANE_BLOCK - 1) // PLANE_BLOCK):
        ow0 = blk * PLANE_BLOCK
        nb = OW - ow0 if OW - ow0 < PLANE_BLOCK else PLANE_BLOCK
        for o in range(nb):
            accv[o] = empty
            acci[o] = -1
        for jd in range(w.count[0][od]):
            i_d = w.first[0][od] + jd * w.step[0]
            for jh in range(w.count[1][oh]):
                i_h = w.first[1][oh] + jh * w.step[1]
                row = x + b * xs.s[0] + i_d * xs.s[1] + i_h * xs.s[2]
                base = (i_d * H + i_h) * W
                for jw in range(kw):
                    # Tap jw of output ow0 + o reads column t + o*sw.
                    t = ow0 * sw + jw * dw - pw
                    lo = span_lo(t, sw)
                    hi = span_hi(t, sw, W, nb)
                    if ind == NULL:
                        for o in range(lo, hi):
                            accv[o] = max_nan(accv[o], row[t + o * sw])
                    else:
                        for o in range(lo, hi):
                            v = row[t + o * sw]
                            if takes_over(v, accv[o], acci[o]):
                                accv[o] = v
                                acci[o] = base + t + o * sw
        for o in range(nb):
            y[offset5(ys, b, od, oh, ow0 + o, 0)] = accv[o]
        if ind != NULL:
            for o in range(nb):
                ind[offset5(js, b, od, oh, ow0 + o, 0)] = acci[o]


cdef void reduce_plane_task(const real_t* x, const Strided5* xs, float_out_t* y,
                            const Strided5* ys, const Windows* w, int mode, double p,
                            int64_t divisor_override, int64_t r) noexcept nogil:
    """Output row r = (b, od, oh) of an average or Lp norm, channels_first, contiguous W."""
    cdef int64_t OD = ys.n[1], OH = ys.n[2], OW = ys.n[3], W = xs.n[3]
    cdef int64_t b = r // (OD * OH), od = (r // OH) % OD, oh = r % OH
    cdef int64_t kw = w.kernel[2], sw = w.stride[2], dw = w.step[2], pw = w.pad_begin[2]
    cdef int64_t blk, ow0, nb, jd, jh, jw, i_d, i_h, t, lo, hi, o
    cdef const real_t* row
    cdef double acc[PLANE_BLOCK]
    for blk in range((OW + PLANE_BLOCK - 1) // PLANE_BLOCK):
        ow0 = blk * PLANE_BLOCK
        nb = OW - ow0 if OW - ow0 < PLANE_BLOCK else PLANE_BLOCK
        for o in range(nb):
            acc[o] = 0.0
        for jd in range(w.count[0][od]):
            i_d = w.first[0][od] + jd * w.step[0]
            for jh in range(w.count[1][oh]):
                i_h = w.first[1][oh] + jh * w.step[1]
                row = x + b * xs.s[0] + i_d * xs.s[1] + i_h * xs.s[2]
                for jw in range(kw):
                    t = ow0 * sw + jw * dw - pw
                    lo = span_lo(t, sw)
                    hi = span_hi(t, sw, W, nb)
                    for o in range(lo, hi):
                        acc[o] = acc_step(acc[o], <double>row[t + o * sw], mode, p)
        for o in range(nb):
            y[offset5(ys, b, od, oh, ow0 + o, 0)] = <float_out_t>acc_final(
                acc[o], mode, p, avg_divisor(w, od, oh, ow0 + o, divisor_override))


# ----------------------------------------------------------------------------- lanes path

cdef inline bint lanes_are_channels(const Strided5* ys) noexcept nogil:
    """Lanes are the V axis when there is one, else consecutive batch planes."""
    return ys.n[4] > 1


cdef inline int64_t lane_tasks(const Strided5* ys) noexcept nogil:
    """Tasks of the lanes path: output positions times blocks of lanes."""
    cdef int64_t positions = ys.n[1] * ys.n[2] * ys.n[3]
    if lanes_are_channels(ys):
        return ys.n[0] * positions * ((ys.n[4] + LANE_BLOCK - 1) // LANE_BLOCK)
    return positions * ((ys.n[0] + LANE_BLOCK - 1) // LANE_BLOCK)


cdef inline void decode_lane_task(const Strided5* ys, int64_t task, int64_t* pos,
                                  int64_t* b, int64_t* l0, int64_t* nl,
                                  int* lane_axis) noexcept nogil:
    """Task -> output position (od*OH + oh)*OW + ow, batch b, first lane l0 and lane count."""
    cdef int64_t positions = ys.n[1] * ys.n[2] * ys.n[3], nlanes, blocks, blk
    if lanes_are_channels(ys):
        nlanes = ys.n[4]
        lane_axis[0] = 4
    else:
        nlanes = ys.n[0]
        lane_axis[0] = 0
    blocks = (nlanes + LANE_BLOCK - 1) // LANE_BLOCK
    blk = task % blocks
    pos[0] = (task // blocks) % positions
    b[0] = task // (blocks * positions) if lane_axis[0] == 4 else 0
    l0[0] = blk * LANE_BLOCK
    nl[0] = nlanes - l0[0] if nlanes - l0[0] < LANE_BLOCK else LANE_BLOCK


cdef void max_lane_task(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                        int64_t* ind, const Strided5* js, const Windows* w,
                        int64_t task) noexcept nogil:
    """One output position of max pooling for a block of lanes."""
    cdef int64_t pos, b, l0, nl, od, oh, ow, jd, jh, jw, i_d, i_h, i_w, l, flat
    cdef int lane_axis
    cdef int64_t H = xs.n[2], W = xs.n[3]
    decode_lane_task(ys, task, &pos, &b, &l0, &nl, &lane_axis)
    od = pos // (ys.n[2] * ys.n[3])
    oh = (pos // ys.n[3]) % ys.n[2]
    ow = pos % ys.n[3]
    cdef int64_t xl = xs.s[lane_axis], yl = ys.s[lane_axis], il = js.s[lane_axis]
    cdef const real_t* p
    cdef real_t v
    cdef real_t empty = lowest(<real_t>0)
    cdef real_t accv[LANE_BLOCK]
    cdef int64_t acci[LANE_BLOCK]
    for l in range(nl):
        accv[l] = empty
        acci[l] = -1
    for jd in range(w.count[0][od]):
        i_d = w.first[0][od] + jd * w.step[0]
        for jh in range(w.count[1][oh]):
            i_h = w.first[1][oh] + jh * w.step[1]
            for jw in range(w.count[2][ow]):
                i_w = w.first[2][ow] + jw * w.step[2]
                p = x + offset5(xs, b, i_d, i_h, i_w, 0) + l0 * xl
                if ind == NULL:
                    for l in range(nl):
                        accv[l] = max_nan(accv[l], p[l * xl])
                else:
                    flat = (i_d * H + i_h) * W + i_w
                    for l in range(nl):
                        v = p[l * xl]
                        if takes_over(v, accv[l], acci[l]):
                            accv[l] = v
                            acci[l] = flat
    for l in range(nl):
        y[offset5(ys, b, od, oh, ow, 0) + (l0 + l) * yl] = accv[l]
    if ind != NULL:
        for l in range(nl):
            ind[offset5(js, b, od, oh, ow, 0) + (l0 + l) * il] = acci[l]


cdef void reduce_lane_task(const real_t* x, const Strided5* xs, float_out_t* y,
                           const Strided5* ys, const Windows* w, int mode, double p,
                           int64_t divisor_override, int64_t task) noexcept nogil:
    """One output position of an average or Lp norm for a block of lanes."""
    cdef int64_t pos, b, l0, nl, od, oh, ow, jd, jh, jw, i_d, i_h, i_w, l
    cdef int lane_axis
    decode_lane_task(ys, task, &pos, &b, &l0, &nl, &lane_axis)
    od = pos // (ys.n[2] * ys.n[3])
    oh = (pos // ys.n[3]) % ys.n[2]
    ow = pos % ys.n[3]
    cdef int64_t xl = xs.s[lane_axis], yl = ys.s[lane_axis]
    cdef const real_t* q
    cdef double divisor = avg_divisor(w, od, oh, ow, divisor_override)
    cdef double acc[LANE_BLOCK]
    for l in range(nl):
        acc[l] = 0.0
    for jd in range(w.count[0][od]):
        i_d = w.first[0][od] + jd * w.step[0]
        for jh in range(w.count[1][oh]):
            i_h = w.first[1][oh] + jh * w.step[1]
            for jw in range(w.count[2][ow]):
                i_w = w.first[2][ow] + jw * w.step[2]
                q = x + offset5(xs, b, i_d, i_h, i_w, 0) + l0 * xl
                for l in range(nl):
                    acc[l] = acc_step(acc[l], <double>q[l * xl], mode, p)
    for l in range(nl):
        y[offset5(ys, b, od, oh, ow, 0) + (l0 + l) * yl] = <float_out_t>acc_final(
            acc[l], mode, p, divisor)


# ----------------------------------------------------------------------------- drivers

cdef inline bint use_plane_path(const Strided5* xs, const Strided5* ys,
                                const Windows* w) noexcept nogil:
    """Plane path: sliding windows, no lanes, contiguous W and rows long enough to vectorize."""
    return w.sliding and ys.n[4] == 1 and xs.s[3] == 1 and ys.n[3] >= 4


cdef void max_forward(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                      int64_t* ind, const Strided5* js, const Windows* w,
                      int nthreads) noexcept nogil:
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2], tasks
    if use_plane_path(xs, ys, w):
        for r in prange(rows, num_threads=nthreads, schedule="static",
                        use_threads_if=nthreads > 1):
            max_plane_task(x, xs, y, ys, ind, js, w, r)
    else:
        tasks = lane_tasks(ys)
        for r in prange(tasks, num_threads=nthreads, schedule="static",
                        use_threads_if=nthreads > 1):
            max_lane_task(x, xs, y, ys, ind, js, w, r)


cdef void reduce_forward(const real_t* x, const Strided5* xs, float_out_t* y, const Strided5* ys,
                         const Windows* w, int op, int64_t divisor_override, double p,
                         int nthreads) noexcept nogil:
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2], tasks
    cdef int mode = acc_mode(op, p)
    if use_plane_path(xs, ys, w):
        for r in prange(rows, num_threads=nthreads, schedule="static",
                        use_threads_if=nthreads > 1):
            reduce_plane_task(x, xs, y, ys, w, mode, p, divisor_override, r)
    else:
        tasks = lane_tasks(ys)
        for r in prange(tasks, num_threads=nthreads, schedule="static",
                        use_threads_if=nthreads > 1):
            reduce_lane_task(x, xs, y, ys, w, mode, p, divisor_override, r)


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
