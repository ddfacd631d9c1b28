# Large 3-D windows: the depth axis first, then the 2-D window.
#
# A 3-D max or average is separable: pooling each (h, w, channel) column
# along the depth gives an intermediate of (batch, output depth, H, W,
# channels); a 2-D pooling of each of its planes over (kh, kw) finishes the
# job. Each stage is an ordinary call of the kernels below (the first one
# as a channels_last 1-D pooling whose lanes are a whole merged plane, so
# it runs on the running path when the depth window is large), so the cost
# per output no longer grows with the window. Averages keep float64 sums in
# the intermediate (divisor 1) and divide once, by the 3-D divisor, at the
# end; a sum's order is then depth first, then the 2-D order of its path.
# Max needs no such care (values only; indices keep the tap-by-tap paths).

cdef enum:
    DEPTH_FIRST_MAX_BYTES = 1 << 30   # largest intermediate (else the direct paths)


cdef inline bint merge_plane(const Strided5* s, int64_t* lanes, int64_t* stride) noexcept nogil:
    """Whether the (h, w, channel) axes of ``s`` are one strided run of elements;
    then its length and stride."""
    cdef int64_t n = 1, st = 0
    cdef int a
    cdef bint seen = False
    for a in range(4, 1, -1):
        if s.n[a] == 1:
            continue
        if not seen:
            st = s.s[a]
            seen = True
        elif s.s[a] != n * st:
            return False
        n *= s.n[a]
    lanes[0] = n
    stride[0] = st if seen else 1
    return True


cdef inline bint use_depth_first(const Strided5* xs, const Strided5* ys, const Windows* w,
                                 bint values, size_t itemsize) noexcept nogil:
    """3-D sliding windows, large on some axis, with a depth axis to pool and a
    plane that merges into one run of lanes, whose intermediate of ``itemsize``
    elements stays within DEPTH_FIRST_MAX_BYTES. ``values``: a max without
    indices or an average."""
    cdef int64_t lanes, stride
    if not (values and w.sliding and w.kernel[0] > 1 and w.kernel[1] * w.kernel[2] > 1
            and (herk_pays(w.kernel[0], w.stride[0]) or herk_pays(w.kernel[1], w.stride[1])
                 or herk_pays(w.kernel[2], w.stride[2]))
            and ys.n[1] * ys.n[2] * ys.n[3] * ys.n[4] > 0
            and merge_plane(xs, &lanes, &stride)):
        return False
    if lanes > DEPTH_FIRST_MAX_BYTES or ys.n[1] > DEPTH_FIRST_MAX_BYTES:
        return False    # (keeps the products below from overflowing)
    return ys.n[0] <= DEPTH_FIRST_MAX_BYTES // <int64_t>itemsize // lanes // ys.n[1]


cdef inline void set5(Strided5* v, int64_t n0, int64_t n1, int64_t n2, int64_t n3,
                      int64_t n4) noexcept nogil:
    """Sizes, and the strides of a C-contiguous array of them."""
    cdef int a
    v.n[0] = n0
    v.n[1] = n1
    v.n[2] = n2
    v.n[3] = n3
    v.n[4] = n4
    v.s[4] = 1
    for a in range(3, -1, -1):
        v.s[a] = v.s[a + 1] * v.n[a + 1]


cdef struct DepthFirst:
    # The two stages' views and windows.
    Strided5 x1, t1, x2     # input as (B, 1, D, 1, lanes); its result; that as (B, OD, H, W, V)
    Windows w1, w2
    int64_t unit_first[1]   # the tables of an axis of one unit window
    int64_t unit_count[1]
    double unit_divisor[1]


cdef int plan_depth_first(DepthFirst* df, const Strided5* xs, const Strided5* ys,
                          const Windows* w) noexcept nogil:
    """Views and windows of both stages (w2's identity depth table is malloc'ed:
    free df.w2.first[0]). Returns 1 when that allocation fails."""
    cdef int64_t lanes, stride, OD = ys.n[1], o
    cdef int a
    merge_plane(xs, &lanes, &stride)
    df.unit_first[0] = 0
    df.unit_count[0] = 1
    df.unit_divisor[0] = 1.0
    # Stage 1: a channels_last 1-D pooling along the depth (its "H" axis).
    set5(&df.x1, xs.n[0], 1, xs.n[1], 1, lanes)
    df.x1.s[0] = xs.s[0]
    df.x1.s[1] = xs.s[1] * xs.n[1]    # (size-1 axes: any stride)
    df.x1.s[2] = xs.s[1]
    df.x1.s[3] = stride * lanes
    df.x1.s[4] = stride
    set5(&df.t1, ys.n[0], 1, OD, 1, lanes)
    # Stage 2: the intermediate as (B, OD, H, W, V).
    set5(&df.x2, ys.n[0], OD, xs.n[2], xs.n[3], xs.n[4])
    df.w1 = w[0]
    df.w2 = w[0]
    df.w1.block = NULL
    df.w2.block = NULL
    for a in range(3):
        if a != 1:
            df.w1.out[a] = 1
            df.w1.kernel[a] = df.w1.stride[a] = df.w1.step[a] = 1
            df.w1.pad_begin[a] = 0
            df.w1.first[a] = df.unit_first
            df.w1.count[a] = df.unit_count
            df.w1.divisor[a] = df.unit_divisor
    df.w1.out[1] = w.out[0]
    df.w1.kernel[1] = w.kernel[0]
    df.w1.stride[1] = w.stride[0]
    df.w1.step[1] = w.step[0]
    df.w1.pad_begin[1] = w.pad_begin[0]
    df.w1.first[1] = w.first[0]
    df.w1.count[1] = w.count[0]
    df.w1.divisor[1] = w.divisor[0]
    # Stage 2's depth: output od reads intermediate depth od alone, and keeps
    # the depth factor of the divisor.
    df.w2.kernel[0] = df.w2.stride[0] = df.w2.step[0] = 1
    df.w2.pad_begin[0] = 0
    df.w2.first[0] = <int64_t*>malloc(<size_t>(2 * OD + 1) * sizeof(int64_t))
    if df.w2.first[0] == NULL:
        return 1
    df.w2.count[0] = df.w2.first[0] + OD
    for o in range(OD):
        df.w2.first[0][o] = o
        df.w2.count[0][o] = 1
    return 0


cdef int depth_first_max(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                         const Windows* w, int nthreads) noexcept nogil:
    """A 3-D max (values) in two stages; returns max_forward's failure count, or
    -1 when the intermediate cannot be allocated (nothing was written: the
    caller takes the direct paths, which need no such memory)."""
    cdef DepthFirst df
    cdef int failed
    cdef real_t* t
    if plan_depth_first(&df, xs, ys, w):
        return -1
    t = <real_t*>malloc(<size_t>(df.t1.n[0] * df.t1.n[2] * df.t1.n[4] + 1) * sizeof(real_t))
    if t == NULL:
        free(df.w2.first[0])
        return -1
    # (No indices: the result's view stands in for theirs, which paths read.)
    failed = max_forward(x, &df.x1, t, &df.t1, NULL, &df.t1, &df.w1, nthreads)
    if failed == 0:
        failed = max_forward(<const real_t*>t, &df.x2, y, ys, NULL, ys, &df.w2, nthreads)
    free(t)
    free(df.w2.first[0])
    return failed


cdef int depth_first_average(const real_t* x, const Strided5* xs, float_out_t* y,
                             const Strided5* ys, const Windows* w, int64_t divisor_override,
                             int nthreads) noexcept nogil:
    """A 3-D average in two stages (float64 depth sums, then the 2-D sums and
    the one division); returns reduce_forward's failure count, or -1 as
    depth_first_max."""
    cdef DepthFirst df
    cdef int failed
    cdef double* t
    if plan_depth_first(&df, xs, ys, w):
        return -1
    t = <double*>malloc(<size_t>(df.t1.n[0] * df.t1.n[2] * df.t1.n[4] + 1) * sizeof(double))
    if t == NULL:
        free(df.w2.first[0])
        return -1
    failed = reduce_forward(x, &df.x1, t, &df.t1, &df.w1, REDUCE_AVG, 1, 0.0, nthreads)
    if failed == 0:
        failed = reduce_forward(<const double*>t, &df.x2, y, ys, &df.w2, REDUCE_AVG,
                                divisor_override, 0.0, nthreads)
    free(t)
    free(df.w2.first[0])
    return failed
