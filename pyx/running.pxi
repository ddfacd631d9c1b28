# Large sliding windows: running (van Herk / Gil-Werman) windows.
#
# Along one axis, cut the padded positions into blocks of k (the kernel
# size; dilation 1) aligned at padded position 0. A window of k consecutive
# positions is either one whole block or the suffix of one block plus the
# prefix of the next. With every block's running prefixes and suffixes
# computed (two passes), each output costs one combine, whatever k is. Each
# output still combines exactly its own taps — nothing is subtracted — so a
# sum stays an exact-order float64 sum (no cancellation against values that
# left the window) and a NaN reaches only the windows that hold it.
#
# The 2-D window is separable: a row pass combines the window's input rows
# for each output row of a task (vectors along the columns), then, a group
# of COLUMN_BYTES of lines at a time, the result is transposed, a column pass
# combines the kernel columns (vectors along the group's lines) and the
# outputs are transposed back (channels_first float max and averages go by
# bands instead, without copies or transposes: see band_max_task and
# band_sum_task). Both passes pick running or direct windows per axis, so a
# large kernel on one axis only is fine too. Tasks and groups
# are small so that a pass's working set stays in L1/L2 (A/B on this
# machine: 64-line tasks without groups were 25% slower for float32 max and
# 80% for float64 sums; with groups, sums gain from 64 lines, max does not),
# and the next task's input rows are prefetched. (Timings of these cases
# move by up to 20% between processes with where their arrays land in
# memory: compare builds alternately, one case per process.)
#
# Blocks are aligned to the padded axis, not to a task, so results do not
# depend on how the work is split between threads.

cdef enum:
    RUN_LINES = 32     # output rows per task of a max (the row pass's block)
    RUN_LINES_SUMS = 64  # ... of an average or Lp norm (A/B, 1 thread: avg 15x15 NCHW
                         # 8.1 -> 7.4 ms, NHWC 9.5 -> 8.9 ms; max 13x13 is not faster)
    COLUMN_BYTES = 128 # the column pass takes a task's lines this many bytes of lanes at a
                       # time (32 floats, 16 doubles), so its working set stays in L1
    RUN_STRIP = 128    # output columns per task (keeps the scratch within L2)
    STRIP_LANES = 2048 # channels_last: about this many input lanes per task row
    FEW_LANES = 16     # channels_last rows of fewer lanes pool flattened (few_lane_windows)


cdef inline bint herk_pays(int64_t k, int64_t s) noexcept nogil:
    """Running windows cost about 2*s + 1 operations per output, direct ones k."""
    return k >= 2 * s + 3


# A task's scratch buffers hold the input block that feeds its outputs, which
# grows with kernels and strides; past this many elements per buffer (4 per
# task: 64 MiB of doubles) a call takes the other paths instead. Without the
# cap, kernels and strides in the thousands asked for gigabytes, and huge
# ones (possible on broadcast views) overflowed the size computation.
cdef int64_t RUN_SCRATCH_MAX = 1 << 21


cdef inline int64_t whole_vectors(int64_t n) noexcept nogil:
    """n rounded up to 8 lanes: scratch rows of whole vectors for run_windows."""
    return (n + 7) // 8 * 8


cdef inline int64_t run_strip(const Strided5* ys, const Windows* w) noexcept nogil:
    """Output columns per task. channels_last rows carry every channel of a
    column, so their strips are narrower: about STRIP_LANES lanes of input,
    but at least 2 * kw outputs, so that the kw - 1 columns of overlap and
    block alignment a strip reads on each side do not dominate its cost."""
    cdef int64_t V = ys.n[4], kw = w.kernel[2], sw = w.stride[2], strip = RUN_STRIP
    if V > 1:
        strip = (STRIP_LANES // V - 2 * kw + 1) // sw + 1 if STRIP_LANES // V >= 2 * kw else 1
        if strip < 2 * kw:
            strip = 2 * kw
    if strip > ys.n[3]:
        strip = ys.n[3]
    return strip if strip > 1 else 1


cdef inline int64_t running_scratch(const Strided5* ys, const Windows* w,
                                    int64_t lines=RUN_LINES_SUMS) noexcept nogil:
    """Elements of each of a task's 4 scratch buffers for tasks of ``lines`` output
    rows, or -1 above RUN_SCRATCH_MAX (the default, the larger task, is what
    picking the path checks)."""
    cdef int64_t kh = w.kernel[1], kw = w.kernel[2], sh = w.stride[1], sw = w.stride[2]
    cdef int64_t V = ys.n[4], strip, rows, cols
    if (kh > RUN_SCRATCH_MAX or kw > RUN_SCRATCH_MAX or sh > RUN_SCRATCH_MAX
            or sw > RUN_SCRATCH_MAX or V > RUN_SCRATCH_MAX):
        return -1    # (also keeps the products below far from overflowing)
    strip = run_strip(ys, w)
    # Positions of one task, with up to k - 1 of block alignment in front.
    rows = (lines - 1) * sh + 2 * kh - 1
    cols = (strip - 1) * sw + 2 * kw - 1
    if cols > RUN_SCRATCH_MAX // V:
        return -1
    cols = whole_vectors(cols * V)    # a task's width, at most
    if rows < lines:
        rows = lines
    if rows > RUN_SCRATCH_MAX // cols:
        return -1
    return rows * cols


cdef inline bint use_running_path(const Strided5* xs, const Strided5* ys, const Windows* w,
                                  bint want_ind) noexcept nogil:
    """Sliding 1-D/2-D windows (no depth taps; either layout), dilation 1, one axis wide enough and
    with several outputs (a single window, as in global pooling, gains nothing), and
    scratch of a bounded size."""
    return (w.sliding and not want_ind and ys.n[3] >= 1
            and w.kernel[0] == 1 and w.step[1] == 1 and w.step[2] == 1
            and ((herk_pays(w.kernel[1], w.stride[1]) and ys.n[2] > 1)
                 or (herk_pays(w.kernel[2], w.stride[2]) and ys.n[3] > 1))
            and running_scratch(ys, w) > 0)


cdef inline bint use_separable_lanes(const Strided5* xs, const Strided5* ys, const Windows* w,
                                     int mode) noexcept nogil:
    """Averages and Lp norms of channels_last 1-D/2-D windows too small for
    running windows: the running path's tasks with direct windows on both
    axes (each input row's sums along its columns, then across rows, channels
    as lanes) instead of the lanes path's k*k taps per output. Sums then
    follow the channels_first plane path's order (row sums, then rows)."""
    return (mode != ACC_MAXABS and ys.n[4] > 1 and w.sliding and w.kernel[0] == 1
            and w.step[1] == 1 and w.step[2] == 1 and w.kernel[1] * w.kernel[2] > 1
            and running_scratch(ys, w) > 0)


cdef inline bint use_few_lane_rows(const Strided5* xs, const Strided5* ys, const Windows* w,
                                   bint want_ind) noexcept nogil:
    """channels_last max (values) of 2-D windows over fewer than FEW_LANES
    channels: the running path's tasks with direct windows (few_lane_windows
    along the rows, then across them) instead of the lanes path's k*k taps per
    output, a loop of a few lanes each."""
    return (not want_ind and 1 < ys.n[4] < FEW_LANES and w.sliding and w.kernel[0] == 1
            and w.step[1] == 1 and w.step[2] == 1 and w.kernel[1] * w.kernel[2] > 1
            and running_scratch(ys, w) > 0)


cdef extern from "_running.h":
    void pypool_sweep_max_f32(const float* z, int64_t lanes, int64_t first, int64_t s,
                              int64_t k, int64_t nout, float* scratch, float* out) noexcept nogil
    void pypool_sweep_max_f64(const double* z, int64_t lanes, int64_t first, int64_t s,
                              int64_t k, int64_t nout, double* scratch, double* out) noexcept nogil
    void pypool_sweep_sum_f64(const double* z, int64_t lanes, int64_t first, int64_t s,
                              int64_t k, int64_t nout, double* scratch, double* out) noexcept nogil
    void pypool_rows_running_max_f32(const float** rows, int64_t lanes, int64_t first,
                                     int64_t s, int64_t k, int64_t nout, float* scratch,
                                     float* out, int64_t out_ld) noexcept nogil
    void pypool_rows_running_max_f64(const double** rows, int64_t lanes, int64_t first,
                                     int64_t s, int64_t k, int64_t nout, double* scratch,
                                     double* out, int64_t out_ld) noexcept nogil
    void pypool_rows_direct_max_f32(const float** rows, int64_t lanes, int64_t first,
                                    int64_t s, int64_t k, int64_t nout, float* out,
                                    int64_t out_ld) noexcept nogil
    void pypool_rows_direct_max_f64(const double** rows, int64_t lanes, int64_t first,
                                    int64_t s, int64_t k, int64_t nout, double* out,
                                    int64_t out_ld) noexcept nogil
    void pypool_rows_doubling_max_f32(const float* src, int64_t ld, int64_t nrows,
                                      int64_t first, int64_t s, int64_t k, int64_t nout,
                                      float* b1, float* b2, float* out,
                                      int64_t out_ld, int stream) noexcept nogil
    void pypool_rows_doubling_max_f64(const double* src, int64_t ld, int64_t nrows,
                                      int64_t first, int64_t s, int64_t k, int64_t nout,
                                      double* b1, double* b2, double* out,
                                      int64_t out_ld, int stream) noexcept nogil
    void pypool_rows_running_sum_f32(const float** rows, int64_t lanes, int64_t first,
                                     int64_t s, int64_t k, int64_t nout, double* scratch,
                                     double* out, int64_t out_ld) noexcept nogil
    void pypool_rows_direct_sum_f32(const float** rows, int64_t lanes, int64_t first,
                                    int64_t s, int64_t k, int64_t nout, double* out,
                                    int64_t out_ld) noexcept nogil
    void pypool_rows_running_sum_f64(const double** rows, int64_t lanes, int64_t first,
                                     int64_t s, int64_t k, int64_t nout, double* scratch,
                                     double* out, int64_t out_ld) noexcept nogil
    void pypool_rows_direct_sum_f64(const double** rows, int64_t lanes, int64_t first,
                                    int64_t s, int64_t k, int64_t nout, double* out,
                                    int64_t out_ld) noexcept nogil
    void pypool_rows_running_sq_f32(const float** rows, int64_t lanes, int64_t first,
                                    int64_t s, int64_t k, int64_t nout, double* scratch,
                                    double* out, int64_t out_ld) noexcept nogil
    void pypool_rows_direct_sq_f32(const float** rows, int64_t lanes, int64_t first,
                                   int64_t s, int64_t k, int64_t nout, double* out,
                                   int64_t out_ld) noexcept nogil
    void pypool_rows_running_sq_f64(const double** rows, int64_t lanes, int64_t first,
                                    int64_t s, int64_t k, int64_t nout, double* scratch,
                                    double* out, int64_t out_ld) noexcept nogil
    void pypool_rows_direct_sq_f64(const double** rows, int64_t lanes, int64_t first,
                                   int64_t s, int64_t k, int64_t nout, double* out,
                                   int64_t out_ld) noexcept nogil
    int64_t pypool_sum_run_length(int64_t k) noexcept nogil
    void pypool_rows_window_sums(const double* src, int64_t ld, int64_t nrows, int64_t k,
                                 int64_t a, int64_t nout, double* tmp, double* out,
                                 int64_t out_ld) noexcept nogil
    int pypool_rows_window_averages_f32(const double* src, int64_t ld, int64_t nrows,
                                        int64_t k, int64_t a, int64_t nout, double* tmp, float* y,
                                        int64_t y_ld, const double* dh,
                                        const double* dw, const double* rdw,
                                        int stream) noexcept nogil


cdef inline void combine3(real_t* dst, const real_t* a, const real_t* b, const real_t* c,
                          int64_t n, bint is_max) noexcept nogil:
    """dst[i] = (a[i] (+ or max) b[i]) (+ or max) c[i]: combine_to then combine_into."""
    cdef int64_t i
    if is_max:
        for i in range(n):
            dst[i] = max_nan(max_nan(a[i], b[i]), c[i])
    else:
        for i in range(n):
            dst[i] = (a[i] + b[i]) + c[i]


cdef inline void combine_taps(real_t* out, const real_t* base, int64_t step, int64_t n,
                              int64_t lanes, bint is_max) noexcept nogil:
    """out = base[0] (+ or max) base[step] ... (n taps, in order) lane by lane; the
    first two or three in one pass, then one more each; no taps give zeros."""
    cdef int64_t j
    if n == 0:
        fill(out, <real_t>0, lanes)
    elif n == 1:
        copy_lanes(out, base, lanes)
    elif n == 2:
        combine_to(out, base, base + step, lanes, is_max)
    else:
        combine3(out, base, base + step, base + 2 * step, lanes, is_max)
        for j in range(3, n):
            combine_into(out, base + j * step, lanes, is_max)


cdef void run_windows(real_t* z, real_t* scratch, int64_t lanes, int64_t first, int64_t s,
                      int64_t k, int64_t nout, bint running, bint is_max,
                      real_t* out) noexcept nogil:
    """Windows along the positions of z (position u = z[u*lanes : (u+1)*lanes]).

    out[o] = combination of positions first + o*s + j, j < k, for o < nout,
    lane by lane. Padding positions must already hold the identity (0 or
    lowest). With ``running``, position 0 must start a block of k, and
    ``scratch`` holds (k + 1) * lanes and 32 * k elements. float and double
    with whole vectors of lanes take _running.h's register-blocked sweeps
    (the same operands in the same order).

    Running windows go block by block, in one sweep: the suffixes of the
    block holding the next window start (right to left into scratch), then
    the next block's prefix, grown one position at a time (the last lanes of
    scratch), each window combining its block suffix with that prefix. The
    working set is k + 1 positions, not the whole axis, so it stays in L1.
    """
    cdef int64_t a = first, o = 0, b0, j, grown
    cdef real_t* suffix = scratch
    cdef real_t* prefix = scratch + k * lanes
    if running and lanes % 8 == 0:
        if real_t is float and is_max:
            pypool_sweep_max_f32(z, lanes, first, s, k, nout, scratch, out)
            return
        if real_t is double:
            if is_max:
                pypool_sweep_max_f64(z, lanes, first, s, k, nout, scratch, out)
            else:
                pypool_sweep_sum_f64(z, lanes, first, s, k, nout, scratch, out)
            return
    if not running:
        for o in range(nout):
            combine_taps(out + o * lanes, z + (first + o * s) * lanes, lanes, k, lanes, is_max)
        return
    while o < nout:
        b0 = a - a % k
        # suffix + j*lanes: positions [b0 + j, b0 + k), for every j a window uses
        copy_lanes(suffix + (k - 1) * lanes, z + (b0 + k - 1) * lanes, lanes)
        for j in range(k - 2, a - b0 - 1, -1):
            combine_to(suffix + j * lanes, z + (b0 + j) * lanes, suffix + (j + 1) * lanes,
                       lanes, is_max)
        grown = 0    # prefix holds positions [b0 + k, b0 + k + grown)
        while o < nout and a < b0 + k:
            j = a - b0
            if j == 0:    # the whole block
                copy_lanes(out + o * lanes, suffix, lanes)
            else:
                if grown == 0:
                    copy_lanes(prefix, z + (b0 + k) * lanes, lanes)
                    grown = 1
                while grown < j:
                    combine_into(prefix, z + (b0 + k + grown) * lanes, lanes, is_max)
                    grown += 1
                combine_to(out + o * lanes, suffix + j * lanes, prefix, lanes, is_max)
            o += 1
            a += s


cdef inline void load_terms(double* dst, const real_t* src, int64_t stride, int64_t n, int mode,
                            double p) noexcept nogil:
    """dst[i] = the double term src[i*stride] adds to a sum (x, |x|, x*x, |x|**p),
    or |x| for the p = inf norm."""
    cdef int64_t i
    cdef double a
    if mode == ACC_SUM:
        if stride == 1:
            for i in range(n):
                dst[i] = <double>src[i]
        else:
            for i in range(n):
                dst[i] = <double>src[i * stride]
    elif mode == ACC_ABS or mode == ACC_MAXABS:
        for i in range(n):
            dst[i] = fabs(<double>src[i * stride])
    elif mode == ACC_SQUARE:
        for i in range(n):
            a = <double>src[i * stride]
            dst[i] = a * a
    else:
        for i in range(n):
            dst[i] = pow_term(<double>src[i * stride], p)


cdef inline void load_values(real_t* dst, const real_t* src, int64_t stride,
                             int64_t n) noexcept nogil:
    cdef int64_t i
    if stride == 1:
        copy_lanes(dst, src, n)
    else:
        for i in range(n):
            dst[i] = src[i * stride]


cdef inline void fill(real_t* dst, real_t value, int64_t n) noexcept nogil:
    cdef int64_t i
    for i in range(n):
        dst[i] = value


cdef struct RunPlan:
    # What every task of a running-window call shares.
    int64_t groups, strips             # tasks = groups * strips
    int64_t scratch                    # elements of each of a task's 4 scratch buffers
    int64_t strip                      # output columns per task
    int64_t V                          # lanes per column (channels_last: the channels)
    int64_t lines                      # output rows per task
    bint run_h, run_w                  # running (True) or direct windows per axis
    bint stream                        # a result large enough for streaming stores (the
                                       # band path's rows: _running.h)


cdef void plan_running(RunPlan* rp, const Strided5* ys, const Windows* w,
                       bint sums, size_t itemsize) noexcept nogil:
    cdef int64_t lines = ys.n[0] * ys.n[1] * ys.n[2]
    rp.stream = lines * ys.n[3] * ys.n[4] * <int64_t>itemsize >= STREAM_MIN_BYTES
    rp.lines = RUN_LINES_SUMS if sums else RUN_LINES
    rp.run_h = herk_pays(w.kernel[1], w.stride[1])
    rp.run_w = herk_pays(w.kernel[2], w.stride[2])
    rp.groups = (lines + rp.lines - 1) // rp.lines
    rp.V = ys.n[4]
    rp.strip = run_strip(ys, w)
    rp.strips = (ys.n[3] + rp.strip - 1) // rp.strip
    # > 0: use_running_path checked it for RUN_LINES_SUMS >= rp.lines lines
    rp.scratch = running_scratch(ys, w, rp.lines)


cdef struct RunTask:
    # One task: output lines (rows (b, od, oh) in row-major order) [g0, g0 + nl)
    # by output columns [ow0, ow0 + nout).
    int64_t g0, nl, ow0, nout
    int64_t u0, ncols          # padded columns [u0, u0 + ncols) feed the strip
    int64_t width              # ncols * V rounded up to 8: scratch rows hold whole vectors,
                               # so the lane loops have no scalar tails (extra lanes: identity)
    int64_t lead, ninside      # of which [lead, lead + ninside) are inside the input
    int64_t c_lo               # input column at position lead


cdef void plan_task(RunTask* t, const Strided5* xs, const Strided5* ys, const Windows* w,
                    const RunPlan* rp, int64_t task) noexcept nogil:
    cdef int64_t lines = ys.n[0] * ys.n[1] * ys.n[2], kw = w.kernel[2], sw = w.stride[2]
    cdef int64_t c_hi, u1
    t.g0 = (task // rp.strips) * rp.lines
    t.ow0 = (task % rp.strips) * rp.strip
    t.nl = lines - t.g0 if lines - t.g0 < rp.lines else rp.lines
    t.nout = ys.n[3] - t.ow0 if ys.n[3] - t.ow0 < rp.strip else rp.strip
    t.u0 = t.ow0 * sw
    if rp.run_w:
        t.u0 -= t.u0 % kw     # start on a block boundary of the padded axis
    u1 = (t.ow0 + t.nout - 1) * sw + kw
    t.ncols = u1 - t.u0
    t.width = whole_vectors(t.ncols * rp.V)
    t.c_lo = t.u0 - w.pad_begin[2]
    c_hi = u1 - w.pad_begin[2]
    if t.c_lo < 0:
        t.c_lo = 0
    if c_hi > xs.n[3]:
        c_hi = xs.n[3]
    t.lead = t.c_lo - (t.u0 - w.pad_begin[2])
    t.ninside = c_hi - t.c_lo if c_hi > t.c_lo else 0


cdef struct Segment:
    # Consecutive lines of one plane (b, od): output rows [oh, oh + n), whose
    # windows read padded rows [v0, v1) (v0 on a block boundary when running).
    int64_t b, od, oh, n, v0, v1


cdef inline void segment_at(Segment* sg, const RunTask* t, const Strided5* ys, const Windows* w,
                            const RunPlan* rp, int64_t g) noexcept nogil:
    cdef int64_t OD = ys.n[1], OH = ys.n[2], line = t.g0 + g
    sg.b = line // (OD * OH)
    sg.od = (line // OH) % OD
    sg.oh = line % OH
    sg.n = OH - sg.oh if OH - sg.oh < t.nl - g else t.nl - g
    sg.v0 = sg.oh * w.stride[1]
    if rp.run_h:
        sg.v0 -= sg.v0 % w.kernel[1]
    sg.v1 = (sg.oh + sg.n - 1) * w.stride[1] + w.kernel[1]


cdef inline const real_t* segment_row(const real_t* x, const Strided5* xs, const Windows* w,
                                      const Segment* sg, const RunTask* t,
                                      int64_t v) noexcept nogil:
    """Input row of padded row v (first inside column), or NULL for a padding row."""
    cdef int64_t h = v - w.pad_begin[1]
    if h < 0 or h >= xs.n[2] or t.ninside == 0:
        return NULL
    return x + sg.b * xs.s[0] + w.first[0][sg.od] * xs.s[1] + h * xs.s[2] + t.c_lo * xs.s[3]


cdef inline bint columns_contiguous(const Strided5* xs, const RunPlan* rp) noexcept nogil:
    """Is a row's run of columns (with all their channels) one contiguous block?"""
    return xs.s[3] == 1 if rp.V == 1 else (xs.s[4] == 1 and xs.s[3] == rp.V)


cdef void load_row(real_t* dst, const real_t* row, const Strided5* xs, const RunPlan* rp,
                   const RunTask* t, real_t ident) noexcept nogil:
    """A scratch row: the task's padded columns (each with its V lanes) from an
    input row (NULL: a padding row), identity outside the input."""
    cdef int64_t V = rp.V, c
    if row == NULL:
        fill(dst, ident, t.width)
        return
    fill(dst, ident, t.lead * V)
    if columns_contiguous(xs, rp):
        load_values(dst + t.lead * V, row, 1, t.ninside * V)
    elif V == 1:
        load_values(dst + t.lead, row, xs.s[3], t.ninside)
    else:
        for c in range(t.ninside):
            load_values(dst + (t.lead + c) * V, row + c * xs.s[3], xs.s[4], V)
    fill(dst + (t.lead + t.ninside) * V, ident, t.width - (t.lead + t.ninside) * V)


cdef void load_row_terms(double* dst, const real_t* row, const Strided5* xs, const RunPlan* rp,
                         const RunTask* t, int mode, double p) noexcept nogil:
    """load_row for sums: the terms (x, |x|, x*x, |x|**p) as doubles, 0 outside
    the input (|x| >= 0, so 0 is also the inf-norm's identity)."""
    cdef int64_t V = rp.V, c
    if row == NULL:
        fill(dst, 0.0, t.width)
        return
    fill(dst, 0.0, t.lead * V)
    if columns_contiguous(xs, rp):
        load_terms(dst + t.lead * V, row, 1, t.ninside * V, mode, p)
    elif V == 1:
        load_terms(dst + t.lead, row, xs.s[3], t.ninside, mode, p)
    else:
        for c in range(t.ninside):
            load_terms(dst + (t.lead + c) * V, row + c * xs.s[3], xs.s[4], V, mode, p)
    fill(dst + (t.lead + t.ninside) * V, 0.0, t.width - (t.lead + t.ninside) * V)


cdef void prefetch_task(const real_t* x, const Strided5* xs, const Strided5* ys,
                        const Windows* w, const RunPlan* rp, int64_t task) noexcept nogil:
    """Ask for a task's input rows ahead of time (into L2), so that loading them
    does not wait on memory: a task reads its rows once, and the hardware
    prefetcher does not run far enough ahead of this access pattern."""
    cdef RunTask t
    cdef Segment sg
    cdef int64_t g = 0, v, nbytes
    cdef const char* row
    cdef bint spaced = (rp.V == 1 and 1 < xs.s[3]
                        and xs.s[3] * <int64_t>sizeof(real_t) <= 64)
    if not (columns_contiguous(xs, rp) or spaced):
        return    # (columns a line or more apart, or backwards: not asked for)
    plan_task(&t, xs, ys, w, rp, task)
    # the row's span: its columns, or every line between its first and last column
    nbytes = (t.ninside * rp.V if not spaced else (t.ninside - 1) * xs.s[3] + 1
              ) * <int64_t>sizeof(real_t)
    while g < t.nl:
        segment_at(&sg, &t, ys, w, rp, g)
        for v in range(sg.v0, sg.v1):
            row = <const char*>segment_row(x, xs, w, &sg, &t, v)
            if row != NULL:
                pypool_prefetch_bytes(row, nbytes)
        g += sg.n


cdef inline void prefetch_row_columns(const real_t* x, const Strided5* xs, const Windows* w,
                                      const Segment* sg, const RunTask* t, const RunPlan* rp,
                                      int64_t v) noexcept nogil:
    """Ask for a channels_last task's columns of the segment's padded row v
    (nothing past the segment or for a padding row). The lanes tasks ask for
    their next row while they pool one: a whole next task asked for at its
    start (prefetch_task) overflowed L2 (max 13x13 on (8,128,128,32): 17%
    faster at one thread; on 128 channels, 3-6%)."""
    cdef int64_t c, nbytes = rp.V * <int64_t>sizeof(real_t)
    cdef const real_t* row
    if v >= sg.v1:
        return
    row = segment_row(x, xs, w, sg, t, v)
    if row == NULL:
        return
    if columns_contiguous(xs, rp):
        pypool_prefetch_bytes(row, t.ninside * nbytes)
    elif xs.s[4] == 1:
        for c in range(t.ninside):
            pypool_prefetch_bytes(row + c * xs.s[3], nbytes)


cdef extern from "_transpose.h":
    int pypool_transpose32_tiles(const void* src, int64_t rows, int64_t cols, int64_t src_ld,
                                 void* dst, int64_t dst_ld) noexcept nogil
    int pypool_transpose64_tiles(const void* src, int64_t rows, int64_t cols, int64_t src_ld,
                                 void* dst, int64_t dst_ld) noexcept nogil


cdef void transpose(const real_t* src, int64_t rows, int64_t cols, int64_t src_ld,
                    real_t* dst, int64_t dst_ld) noexcept nogil:
    """dst[c * dst_ld + r] = src[r * src_ld + c]: register tiles (4- and 8-byte types,
    AVX2 builds) for the bulk, this loop for the edges and everything else."""
    cdef int64_t r, c, r_done = 0, c_done = 0
    cdef int tile = 0
    if sizeof(real_t) == 4:
        tile = pypool_transpose32_tiles(src, rows, cols, src_ld, dst, dst_ld)
    elif sizeof(real_t) == 8:
        tile = pypool_transpose64_tiles(src, rows, cols, src_ld, dst, dst_ld)
    if tile:
        r_done = rows - rows % tile
        c_done = cols - cols % tile
    for r in range(r_done):
        for c in range(c_done, cols):
            dst[c * dst_ld + r] = src[r * src_ld + c]
    for r in range(r_done, rows):
        for c in range(cols):
            dst[c * dst_ld + r] = src[r * src_ld + c]


cdef inline int64_t column_group(int64_t itemsize) noexcept nogil:
    return COLUMN_BYTES // itemsize


cdef void column_pass(real_t* za, real_t* zb, real_t* zc, real_t* zd, const RunTask* t,
                      const Windows* w, const RunPlan* rp, bint is_max, int64_t g0,
                      int64_t n) noexcept nogil:
    """Lines [g0, g0 + n) of zc (lines x width, the row pass's result) -> za
    (n x outputs, row-major).

    The lines are transposed into rows padded to whole vectors with zeros
    (lanes no output reads), pooled along the columns into zd (outputs x
    lanes), and transposed back."""
    cdef int64_t nw = whole_vectors(n), u
    transpose(zc + g0 * t.width, n, t.width, t.width, za, nw)
    if nw > n:
        for u in range(t.width):
            fill(za + u * nw + n, <real_t>0, nw - n)
    run_windows(za, zb, nw, t.ow0 * w.stride[2] - t.u0, w.stride[2], w.kernel[2], t.nout,
                rp.run_w, is_max, zd)
    transpose(zd, t.nout, n, nw, za, t.nout)


# Bands: channels_first float and double max without copies or transposes.
# The row pass reads the input rows in place (a table of row pointers, one
# row of the identity standing for padding rows) and writes each output
# row's column maxima into a scratch row; the column pass then pools those
# rows by doubling (_running.h), about log2(kw) vector operations per output,
# straight into the result (a result of at least STREAM_MIN_BYTES whose rows
# follow each other is written with streaming stores, float32 on AVX-512
# CPUs and float64 with AVX2: a task's outputs come in one burst at its end). Rows first, then
# columns, as on the path above, so ties between +0 and -0 resolve the same
# way (the column-major first).

cdef enum:
    BAND_MAX_KW = 64    # wider: log2(kw) doublings cost more than transposing (1 thread, 13 rows
                        # by 33 / 63 columns: 3.4 / 3.7 ms; transposing 33 / 65: 3.9 / 4.3 ms)


cdef inline bint use_bands(const Strided5* xs, const Windows* w, const RunPlan* rp,
                           size_t itemsize) noexcept nogil:
    """Does a running max take the band path? float or double, at most
    BAND_MAX_KW columns and a column stride of at most 2: stride 2 computes
    every position's window and keeps every other one, and still beats
    transposing (1 thread, (8,128,64,64) float32, stride (1, 2): 13x13 3.1 ->
    2.5 ms, 13x7 2.8 -> 2.3 ms). Rows with contiguous columns are read in
    place, others packed first (band_rows)."""
    return (rp.V == 1 and (itemsize == 4 or itemsize == 8)
            and w.kernel[2] <= BAND_MAX_KW and w.stride[2] <= 2)


cdef struct BandScratch:
    void* block
    void** rows          # a segment's padded rows
    void* ident          # a row of the identity, for padding rows
    void* sweep          # the running row pass's block suffixes
    void* lines          # the segment's output rows' column maxima, one row of slack
    void* b1             # the column pass's doubling levels (as large as lines)
    void* b2
    void* staged         # the segment's output rows, when the result's columns are strided
    void* packed         # the segment's input rows, packed when the input's columns are
                         # strided (NULL when they are contiguous)
    int64_t width        # elements of each row (vector slack included)
    int64_t border[4]    # the lines' border columns hold the identity for this
                         # (task width, lead, right, ncols): see band_borders
    int64_t fold_ow0     # the strip (first output column) last tested, -1 for none:
    double fold_dw       # its column divisors are all fold_dw (0: they differ, or
                         # are all 0, and are not folded)


cdef void band_borders(BandScratch* bs, const RunTask* t, real_t identity,
                       int64_t nrows) noexcept nogil:
    """The identity in the lines' columns outside the task's inside ones (the
    padding the column pass reads), rows [0, nrows). The row pass writes only
    inside columns, so tasks of one geometry (all of a call, but for strips of
    other widths) set them once: per chunk this took 8% of avg 15x15 on 64 x 64
    planes."""
    cdef int64_t i, right = t.lead + t.ninside
    cdef real_t* line
    if (bs.border[0] == t.width and bs.border[1] == t.lead and bs.border[2] == right
            and bs.border[3] == t.ncols):
        return
    for i in range(nrows):
        line = <real_t*>bs.lines + i * t.width
        fill(line, identity, t.lead)
        fill(line + right, identity, t.ncols - right)
    bs.border[0] = t.width
    bs.border[1] = t.lead
    bs.border[2] = right
    bs.border[3] = t.ncols


cdef inline void band_rows(const real_t** rows, const real_t* x, const Strided5* xs,
                           const Windows* w, const Segment* sg, const RunTask* t,
                           const real_t* ident, const BandScratch* bs) noexcept nogil:
    """rows[v] = the segment's padded row sg.v0 + v, as segment_row gives it
    (ident for a padding row), a multiply a row instead of segment_row's five.
    Input columns that are not contiguous are first packed into bs.packed
    (each row once a segment: strided columns took the transposing path,
    3-4x slower on avg 15x15)."""
    cdef int64_t v, h, c, step = xs.s[3]
    cdef const real_t* top = segment_row(x, xs, w, sg, t, w.pad_begin[1])   # input row 0
    cdef const real_t* src
    cdef real_t* dst
    for v in range(sg.v1 - sg.v0):
        h = sg.v0 + v - w.pad_begin[1]
        if top == NULL or h < 0 or h >= xs.n[2]:
            rows[v] = ident
        elif bs.packed == NULL:
            rows[v] = top + h * xs.s[2]
        else:
            src = top + h * xs.s[2]
            dst = <real_t*>bs.packed + v * bs.width
            if step == 2:    # (a constant stride: the compiler's vector loads and shuffles)
                for c in range(t.ninside):
                    dst[c] = src[c * 2]
            else:
                for c in range(t.ninside):
                    dst[c] = src[c * step]
            rows[v] = dst


cdef int band_alloc(BandScratch* bs, const Windows* w, const RunPlan* rp,
                    size_t itemsize, bint packed) noexcept nogil:
    """Buffers for any task of the plan, every element set once (the column
    pass's vector loads read a little past what a row uses: up to 4 vectors of
    8 doubles past the last row, into the row of slack). 1 on no memory."""
    cdef int64_t nrows = (rp.lines - 1) * w.stride[1] + 2 * w.kernel[1]
    # (16 elements: whole 64-byte lines of floats, so every buffer below starts on one)
    cdef int64_t width = (whole_vectors((rp.strip - 1) * w.stride[2] + 2 * w.kernel[2]) + 40
                          + 15) // 16 * 16
    # 4 vectors per block row, of up to 16 lanes (float32 max on AVX-512, _running.h)
    cdef int64_t sweep = 4 * 16 * w.kernel[1]
    cdef int64_t rows_size = (rp.lines + 1) * width   # a segment's rows and a row of slack
    cdef size_t pointers = (<size_t>(nrows * sizeof(void*)) + 63) // 64 * 64
    cdef size_t nbytes = (pointers + <size_t>(sweep + width + 4 * rows_size) * itemsize
                          + (<size_t>(nrows * width) * itemsize if packed else 0))
    cdef char* start
    bs.block = calloc(nbytes + 64, 1)
    if bs.block == NULL:
        return 1
    # Every buffer starts on a 64-byte line (all sizes are whole lines: sweep is
    # 64 elements a kernel row, the rest multiples of width), so rows of doubles
    # are aligned and fewer of the column pass's loads split lines, and the
    # doubling passes' 64-byte stores into b1 and b2 never do (1 thread, max 13x13
    # on (8,128,64,64): 3.9 -> 3.8 ms, 3 alternating runs; b2 started mid-line).
    start = <char*>bs.block + (64 - (<size_t>bs.block) % 64) % 64
    bs.width = width
    bs.border[0] = -1    # (no borders set yet)
    bs.fold_ow0 = -1
    bs.sweep = <void*>start
    bs.ident = <void*>(<char*>bs.sweep + sweep * itemsize)
    bs.lines = <void*>(<char*>bs.ident + width * itemsize)
    bs.b1 = <void*>(<char*>bs.lines + rows_size * itemsize)
    bs.b2 = <void*>(<char*>bs.b1 + rows_size * itemsize)
    bs.staged = <void*>(<char*>bs.b2 + rows_size * itemsize)
    bs.rows = <void**>(<char*>bs.staged + rows_size * itemsize)
    bs.packed = <void*>(<char*>bs.rows + pointers) if packed else NULL
    return 0


cdef bint band_max_task(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                        const Windows* w, const RunPlan* rp, const RunTask* t,
                        BandScratch* bs) noexcept nogil:
    """One task by bands; False (nothing written) when its inside columns are
    fewer than a vector, for the transposing path to take."""
    cdef Segment sg
    cdef int64_t g = 0, v, i, o, out_ld, first_w = t.ow0 * w.stride[2] - t.u0
    cdef int64_t kh = w.kernel[1], sh = w.stride[1]
    cdef const real_t** rows = <const real_t**>bs.rows
    cdef real_t* lines = <real_t*>bs.lines
    cdef real_t* ident = <real_t*>bs.ident
    cdef real_t* yrow
    cdef real_t* target
    if not (real_t is float or real_t is double) or t.ninside * sizeof(real_t) < 32:
        return False
    fill(ident, lowest(<real_t>0), t.ninside)
    band_borders(bs, t, lowest(<real_t>0), rp.lines)
    while g < t.nl:
        segment_at(&sg, t, ys, w, rp, g)
        band_rows(rows, x, xs, w, &sg, t, ident, bs)
        # the column maxima of the segment's output rows, at their inside columns
        if rp.run_h:
            if real_t is float:
                pypool_rows_running_max_f32(rows, t.ninside, sg.oh * sh - sg.v0, sh, kh, sg.n,
                                            <float*>bs.sweep, lines + t.lead, t.width)
            elif real_t is double:
                pypool_rows_running_max_f64(rows, t.ninside, sg.oh * sh - sg.v0, sh, kh, sg.n,
                                            <double*>bs.sweep, lines + t.lead, t.width)
        else:
            if real_t is float:
                pypool_rows_direct_max_f32(rows, t.ninside, sg.oh * sh - sg.v0, sh, kh, sg.n,
                                           lines + t.lead, t.width)
            elif real_t is double:
                pypool_rows_direct_max_f64(rows, t.ninside, sg.oh * sh - sg.v0, sh, kh, sg.n,
                                           lines + t.lead, t.width)
        # ... pooled along the columns, into the result's rows (consecutive in a plane)
        yrow = y + offset5(ys, sg.b, sg.od, sg.oh, t.ow0, 0)
        target = yrow if ys.s[3] == 1 else <real_t*>bs.staged
        out_ld = ys.s[2] if ys.s[3] == 1 else t.nout
        if real_t is float:
            pypool_rows_doubling_max_f32(lines, t.width, sg.n, first_w, w.stride[2], w.kernel[2],
                                         t.nout, <float*>bs.b1, <float*>bs.b2, target, out_ld,
                                         rp.stream and target == yrow)   # (not the staged copy)
        elif real_t is double:
            pypool_rows_doubling_max_f64(lines, t.width, sg.n, first_w, w.stride[2], w.kernel[2],
                                         t.nout, <double*>bs.b1, <double*>bs.b2, target, out_ld,
                                         rp.stream and target == yrow)
        if ys.s[3] != 1:
            for i in range(sg.n):
                for o in range(t.nout):
                    yrow[i * ys.s[2] + o * ys.s[3]] = target[i * t.nout + o]
        g += sg.n
    return True


# Sum bands: channels_first float32 and float64 averages the same way, in
# float64. The row pass reads the input rows in place (float32 widened as it
# is loaded) and writes each output row's column sums; the column pass sums
# runs of columns (pypool_rows_window_sums: runs of a, then b of them and
# the positions left, about 2 * sqrt(k) adds per output) instead of
# transposing. float32 results are finished in the same pass on AVX-512 CPUs
# (pypool_rows_window_averages_f32), others by finish_plane_row. The order of
# each window's adds differs from the transposing path's; both are float64
# sums of the same terms (the contract asks for a float64 sum rounded once,
# not an order). Lp norms of p = 2 go the same way, their row pass summing
# squares and finish_plane_row taking the root (Lp 13x13 on (8,128,64,64)
# float32, one thread: 7.9 -> 4.4 ms, with finish_plane_row's square roots
# in a loop of their own).

cdef inline bint use_sum_bands(const Strided5* xs, const Windows* w, const RunPlan* rp,
                               int mode, bint float_input) noexcept nogil:
    """Does a running average or Lp norm of p = 2 take the sum band path?
    float32 or float64 input and a column stride of 1 (rows with contiguous
    columns are read in place, others packed first: band_rows)."""
    return ((mode == ACC_SUM or mode == ACC_SQUARE) and float_input and rp.V == 1
            and w.stride[2] == 1)


cdef enum:
    BAND_CHUNK = 16    # output rows a sum band task pools at a time (direct rows) ...
    BAND_CHUNK_MIN = 8 # ... and its bounds with running rows, whose chunks end on a
    BAND_CHUNK_MAX = 32  # block of kh rows


cdef inline int64_t band_chunk(const Segment* sg, int64_t i0, int64_t sh, int64_t kh,
                               bint run_h) noexcept nogil:
    """Output rows of the segment's chunk from i0: the row pass writes their
    column sums and the column pass reads them back while they are in L1 (a
    task's 64 rows of sums, 70 KB for 64 outputs a row, went through L2). With
    running rows a chunk ends where a block of kh padded rows starts, so no
    block's suffix sums are made twice; where none starts within
    BAND_CHUNK_MAX rows, the rest of the segment is one chunk."""
    cdef int64_t i, rest = sg.n - i0, at, step = sh % kh
    if not run_h:
        return rest if rest < BAND_CHUNK else BAND_CHUNK
    i = i0 + BAND_CHUNK_MIN
    at = ((sg.oh + i) * sh - sg.v0) % kh    # row i's first padded row, within its block
    while i < min(sg.n, i0 + BAND_CHUNK_MAX + 1):    # (one division, not one a row)
        if at == 0:
            return i - i0
        at += step
        if at >= kh:
            at -= kh
        i += 1
    return rest


cdef bint band_sum_task(const real_t* x, const Strided5* xs, float_out_t* y,
                        const Strided5* ys, const Windows* w, const RunPlan* rp,
                        const RunTask* t, BandScratch* bs, int mode, int64_t divisor_override,
                        const double* recw) noexcept nogil:
    """One task of an average (mode ACC_SUM) or Lp norm of p = 2 (ACC_SQUARE)
    by sum bands; False (nothing written) when its inside columns are fewer
    than a vector, for the transposing path to take."""
    cdef Segment sg
    cdef int64_t g = 0, v, i, i0, n, first_h, first_w = t.ow0 * w.stride[2] - t.u0
    cdef bint done
    cdef int64_t kh = w.kernel[1], sh = w.stride[1]
    cdef int64_t run_a = pypool_sum_run_length(w.kernel[2])   # the row pass's runs
    cdef const real_t** rows = <const real_t**>bs.rows
    cdef real_t* ident = <real_t*>bs.ident
    cdef double* lines = <double*>bs.lines
    cdef double* sums = <double*>bs.staged
    cdef double divisors[RUN_LINES_SUMS]    # a segment's rows' divisors (dh)
    cdef double recw_task[RUN_STRIP]        # 1 / the task's column divisors (dw)
    cdef const double* dw = NULL            # the task's column divisors, NULL when one
    cdef double dw_all = 1.0                # ... value serves them all
    # streaming stores need 16-byte aligned rows (whole vectors of 8 from each start),
    # and rows of whole vectors: a row's last outputs go by plain stores, and a
    # plain store into a line that streaming stores are filling (the next
    # row's start) cost as much as the rest of the row on the Zen 4 here (avg
    # 15x15 on (8,128,68,68), 1 thread: 27 ms, 5 ms for 64x64); strips are a
    # multiple of 8 outputs (RUN_STRIP) but the last
    cdef bint stream = (rp.stream and (<size_t>y) % 16 == 0
                        and (ys.s[2] * <int64_t>sizeof(float_out_t)) % 16 == 0
                        and ys.n[3] % 8 == 0)
    if not (real_t is float or real_t is double) or t.ninside < 4:
        return False
    memset(ident, 0, <size_t>t.ninside * sizeof(real_t))
    band_borders[double](bs, t, 0.0, rp.lines)
    while g < t.nl:
        segment_at(&sg, t, ys, w, rp, g)
        band_rows(rows, x, xs, w, &sg, t, ident, bs)
        if float_out_t is float and ys.s[3] == 1 and g == 0 and mode == ACC_SUM:
            # (per task: tasks are a strip of columns) a column divisor the same
            # for all of them (count_include_pad away from a ceil_mode edge) joins
            # the row divisors, which saves two loads and two products a vector
            # (with divisor_override dw stays NULL and dw_all 1); the test is
            # made once per strip
            if divisor_override <= 0:
                dw = w.divisor[2] + t.ow0
                if bs.fold_ow0 != t.ow0:
                    bs.fold_ow0 = t.ow0
                    bs.fold_dw = dw[0]
                    for i in range(t.nout):
                        if dw[i] != dw[0]:
                            bs.fold_dw = 0.0
                            break
                if bs.fold_dw != 0.0:
                    dw_all = bs.fold_dw
                    dw = NULL
            if dw != NULL:
                for i in range(t.nout):
                    recw_task[i] = 1.0 / dw[i]
        i0 = 0
        while i0 < sg.n:
            n = band_chunk(&sg, i0, sh, kh, rp.run_h)
            first_h = (sg.oh + i0) * sh - sg.v0
            # the column sums of the chunk's output rows, at their inside columns
            if real_t is float:
                if rp.run_h and mode == ACC_SUM:
                    pypool_rows_running_sum_f32(rows, t.ninside, first_h, sh, kh, n,
                                                <double*>bs.sweep, lines + t.lead, t.width)
                elif rp.run_h:
                    pypool_rows_running_sq_f32(rows, t.ninside, first_h, sh, kh, n,
                                               <double*>bs.sweep, lines + t.lead, t.width)
                elif mode == ACC_SUM:
                    pypool_rows_direct_sum_f32(rows, t.ninside, first_h, sh, kh, n,
                                               lines + t.lead, t.width)
                else:
                    pypool_rows_direct_sq_f32(rows, t.ninside, first_h, sh, kh, n,
                                              lines + t.lead, t.width)
            elif real_t is double:
                if rp.run_h and mode == ACC_SUM:
                    pypool_rows_running_sum_f64(rows, t.ninside, first_h, sh, kh, n,
                                                <double*>bs.sweep, lines + t.lead, t.width)
                elif rp.run_h:
                    pypool_rows_running_sq_f64(rows, t.ninside, first_h, sh, kh, n,
                                               <double*>bs.sweep, lines + t.lead, t.width)
                elif mode == ACC_SUM:
                    pypool_rows_direct_sum_f64(rows, t.ninside, first_h, sh, kh, n,
                                               lines + t.lead, t.width)
                else:
                    pypool_rows_direct_sq_f64(rows, t.ninside, first_h, sh, kh, n,
                                              lines + t.lead, t.width)
            # ... summed along the columns and finished into the result's rows: float32
            # rows in one pass where the CPU has AVX-512, else sums, then finish_plane_row
            done = False
            if float_out_t is float and ys.s[3] == 1 and mode == ACC_SUM:
                for i in range(n):
                    divisors[i] = (<double>divisor_override if divisor_override > 0 else
                                   w.divisor[0][sg.od] * w.divisor[1][sg.oh + i0 + i])
                    if dw == NULL:    # (as finish_plane_row's product)
                        divisors[i] = divisors[i] * dw_all
                done = pypool_rows_window_averages_f32(
                    lines + first_w, t.width, n, w.kernel[2], run_a, t.nout, <double*>bs.b1,
                    y + offset5(ys, sg.b, sg.od, sg.oh + i0, t.ow0, 0), ys.s[2], divisors,
                    dw, recw_task, stream)
            if not done:
                pypool_rows_window_sums(lines + first_w, t.width, n, w.kernel[2], run_a,
                                        t.nout, <double*>bs.b1, sums, t.nout)
                for i in range(n):
                    finish_plane_row(y + offset5(ys, sg.b, sg.od, sg.oh + i0 + i, t.ow0, 0),
                                     ys.s[3], sums + i * t.nout, t.nout, mode, 2.0, w, sg.od,
                                     sg.oh + i0 + i, divisor_override, t.ow0, recw)
            i0 += n
        g += sg.n
    if stream:
        pypool_store_fence()
    return True


cdef int running_max_task(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                          const Windows* w, const RunPlan* rp, int64_t task, real_t** scratch,
                          BandScratch* bs) noexcept nogil:
    """Max pooling (values only) of one task; bs, unless NULL, the band path's
    buffers; *scratch, 4 buffers of rp.scratch elements for the other paths,
    allocated when first needed (NULL until then). 1 when it cannot be."""
    cdef RunTask t
    cdef Segment sg
    cdef int64_t g = 0, v, o, g0, n, group = column_group(sizeof(real_t)), V = rp.V
    cdef real_t* yrow
    cdef real_t* line
    plan_task(&t, xs, ys, w, rp, task)
    if V == 1 and bs != NULL and band_max_task(x, xs, y, ys, w, rp, &t, bs):
        return 0
    if scratch[0] == NULL:
        scratch[0] = <real_t*>malloc(<size_t>(4 * rp.scratch) * sizeof(real_t))
        if scratch[0] == NULL:
            return 1
    cdef real_t* za = scratch[0]
    cdef real_t* zb = za + rp.scratch
    cdef real_t* zc = za + 2 * rp.scratch
    cdef real_t* zd = za + 3 * rp.scratch
    if V > 1:
        lanes_max_task(x, xs, y, ys, w, rp, &t, za, zb, zc, zd)
        return 0
    while g < t.nl:
        segment_at(&sg, &t, ys, w, rp, g)
        for v in range(sg.v1 - sg.v0):
            load_row(za + v * t.width, segment_row(x, xs, w, &sg, &t, sg.v0 + v), xs, rp, &t,
                     lowest(<real_t>0))
        run_windows(za, zb, t.width, sg.oh * w.stride[1] - sg.v0, w.stride[1], w.kernel[1], sg.n,
                    rp.run_h, True, zc + g * t.width)
        g += sg.n
    g0 = 0
    while g0 < t.nl:
        n = t.nl - g0 if t.nl - g0 < group else group
        column_pass(za, zb, zc, zd, &t, w, rp, True, g0, n)
        for g in range(n):
            segment_at(&sg, &t, ys, w, rp, g0 + g)
            yrow = y + offset5(ys, sg.b, sg.od, sg.oh, t.ow0, 0)
            line = za + g * t.nout
            if ys.s[3] == 1:
                memcpy(yrow, line, <size_t>t.nout * sizeof(real_t))
            else:
                for o in range(t.nout):
                    yrow[o * ys.s[3]] = line[o]
        g0 += n
    return 0


cdef void few_lane_windows(const real_t* z, real_t* tmp, int64_t lanes, int64_t first,
                           int64_t s, int64_t k, int64_t nout, bint is_max,
                           real_t* out) noexcept nogil:
    """run_windows' direct windows for rows of few lanes (channels_last with few
    channels), with the row's positions and lanes flattened: each tap is then
    one long vector loop, where a loop of ``lanes`` iterations per position
    does not vectorize (max 3x3 s2 on (32,112,112,3) took 50x the copy). At
    stride s > 1 the windows of every position in between are made too (into
    tmp, room for ((nout - 1) * s + 1) * lanes) and every s-th kept. The same
    taps in the same order per lane, so the same results."""
    cdef int64_t o, l, n = (nout - 1) * s + 1
    if s == 1:
        combine_taps(out, z + first * lanes, lanes, k, nout * lanes, is_max)
        return
    combine_taps(tmp, z + first * lanes, lanes, k, n * lanes, is_max)
    for o in range(nout):
        for l in range(lanes):
            out[o * lanes + l] = tmp[o * s * lanes + l]


# channels_last: a row's columns are already positions of V contiguous lanes,
# so neither pass needs a transpose. The row pass comes first here (each
# input row's windows along its columns, lanes = channels), then the column
# pass combines those rows (lanes = the strip's outputs x channels). Taken
# in that order, a max's ties resolve to the row-major first maximum, as on
# the lanes path these layouts would otherwise take.

cdef void lanes_max_task(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                         const Windows* w, const RunPlan* rp, const RunTask* t, real_t* za,
                         real_t* zb, real_t* zc, real_t* zd) noexcept nogil:
    cdef Segment sg
    cdef int64_t g = 0, v, i, o, c, V = rp.V, row_len = whole_vectors(t.nout * V)
    cdef const real_t* row
    cdef real_t* hrow
    cdef real_t* yrow
    cdef real_t ident = lowest(<real_t>0)
    while g < t.nl:
        segment_at(&sg, t, ys, w, rp, g)
        prefetch_row_columns(x, xs, w, &sg, t, rp, sg.v0)
        for v in range(sg.v1 - sg.v0):
            prefetch_row_columns(x, xs, w, &sg, t, rp, sg.v0 + v + 1)
            row = segment_row(x, xs, w, &sg, t, sg.v0 + v)
            hrow = zc + v * row_len
            if row == NULL:
                fill(hrow, ident, row_len)
                continue
            load_row(za, row, xs, rp, t, ident)
            if V < FEW_LANES and not rp.run_w:
                few_lane_windows(za, zb, V, t.ow0 * w.stride[2] - t.u0, w.stride[2], w.kernel[2],
                                 t.nout, True, hrow)
            else:
                run_windows(za, zb, V, t.ow0 * w.stride[2] - t.u0, w.stride[2], w.kernel[2],
                            t.nout, rp.run_w, True, hrow)
            fill(hrow + t.nout * V, ident, row_len - t.nout * V)
        run_windows(zc, zb, row_len, sg.oh * w.stride[1] - sg.v0, w.stride[1], w.kernel[1],
                    sg.n, rp.run_h, True, zd)
        for i in range(sg.n):
            yrow = y + offset5(ys, sg.b, sg.od, sg.oh + i, t.ow0, 0)
            if ys.s[4] == 1 and ys.s[3] == V:
                memcpy(yrow, zd + i * row_len, <size_t>(t.nout * V) * sizeof(real_t))
            else:
                for o in range(t.nout):
                    for c in range(V):
                        yrow[o * ys.s[3] + c * ys.s[4]] = zd[i * row_len + o * V + c]
        g += sg.n


cdef int running_reduce_task(const real_t* x, const Strided5* xs, float_out_t* y,
                             const Strided5* ys, const Windows* w, const RunPlan* rp,
                             int mode, double p, int64_t divisor_override, const double* recw,
                             int64_t task, double** scratch, BandScratch* bs) noexcept nogil:
    """Average or Lp norm of one task; bs, unless NULL, the sum band path's
    buffers; *scratch as for running_max_task (doubles). 1 on no memory."""
    cdef RunTask t
    cdef Segment sg
    cdef int64_t g = 0, v, g0, n, group = column_group(sizeof(double))
    cdef bint is_max = mode == ACC_MAXABS
    plan_task(&t, xs, ys, w, rp, task)
    if (rp.V == 1 and bs != NULL
            and band_sum_task(x, xs, y, ys, w, rp, &t, bs, mode, divisor_override, recw)):
        return 0
    if scratch[0] == NULL:
        scratch[0] = <double*>malloc(<size_t>(4 * rp.scratch) * sizeof(double))
        if scratch[0] == NULL:
            return 1
    cdef double* za = scratch[0]
    cdef double* zb = za + rp.scratch
    cdef double* zc = za + 2 * rp.scratch
    cdef double* zd = za + 3 * rp.scratch
    if rp.V > 1:
        lanes_reduce_task(x, xs, y, ys, w, rp, &t, mode, p, divisor_override, za, zb, zc, zd)
        return 0
    while g < t.nl:
        segment_at(&sg, &t, ys, w, rp, g)
        for v in range(sg.v1 - sg.v0):
            load_row_terms(za + v * t.width, segment_row(x, xs, w, &sg, &t, sg.v0 + v), xs, rp,
                           &t, mode, p)
        run_windows(za, zb, t.width, sg.oh * w.stride[1] - sg.v0, w.stride[1], w.kernel[1], sg.n,
                    rp.run_h, is_max, zc + g * t.width)
        g += sg.n
    g0 = 0
    while g0 < t.nl:
        n = t.nl - g0 if t.nl - g0 < group else group
        column_pass(za, zb, zc, zd, &t, w, rp, is_max, g0, n)
        for g in range(n):
            segment_at(&sg, &t, ys, w, rp, g0 + g)
            finish_plane_row(y + offset5(ys, sg.b, sg.od, sg.oh, t.ow0, 0), ys.s[3],
                             za + g * t.nout, t.nout, mode, p, w, sg.od, sg.oh,
                             divisor_override, t.ow0, recw)
        g0 += n
    return 0


cdef void lanes_reduce_task(const real_t* x, const Strided5* xs, float_out_t* y,
                            const Strided5* ys, const Windows* w, const RunPlan* rp,
                            const RunTask* t, int mode, double p, int64_t divisor_override,
                            double* za, double* zb, double* zc, double* zd) noexcept nogil:
    """lanes_max_task's order for averages and Lp norms (channels_last)."""
    cdef Segment sg
    cdef int64_t g = 0, v, i, o, V = rp.V, row_len = whole_vectors(t.nout * V)
    cdef bint is_max = mode == ACC_MAXABS
    cdef const real_t* row
    cdef double* hrow
    cdef float_out_t* yrow
    while g < t.nl:
        segment_at(&sg, t, ys, w, rp, g)
        prefetch_row_columns(x, xs, w, &sg, t, rp, sg.v0)
        for v in range(sg.v1 - sg.v0):
            prefetch_row_columns(x, xs, w, &sg, t, rp, sg.v0 + v + 1)
            row = segment_row(x, xs, w, &sg, t, sg.v0 + v)
            hrow = zc + v * row_len
            if row == NULL:
                fill(hrow, 0.0, row_len)
                continue
            load_row_terms(za, row, xs, rp, t, mode, p)
            if V < FEW_LANES and not rp.run_w:
                few_lane_windows(za, zb, V, t.ow0 * w.stride[2] - t.u0, w.stride[2], w.kernel[2],
                                 t.nout, is_max, hrow)
            else:
                run_windows(za, zb, V, t.ow0 * w.stride[2] - t.u0, w.stride[2], w.kernel[2],
                            t.nout, rp.run_w, is_max, hrow)
            fill(hrow + t.nout * V, 0.0, row_len - t.nout * V)
        run_windows(zc, zb, row_len, sg.oh * w.stride[1] - sg.v0, w.stride[1], w.kernel[1],
                    sg.n, rp.run_h, is_max, zd)
        for i in range(sg.n):
            yrow = y + offset5(ys, sg.b, sg.od, sg.oh + i, t.ow0, 0)
            for o in range(t.nout):
                finish_lanes(yrow + o * ys.s[3], ys.s[4], zd + i * row_len + o * V, V, mode, p,
                             avg_divisor(w, sg.od, sg.oh + i, t.ow0 + o, divisor_override))
        g += sg.n



cdef int running_max_tasks(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                           const Windows* w, const RunPlan* rp, int64_t t0,
                           int64_t t1) noexcept nogil:
    """Tasks [t0, t1) of a running max; 1 when scratch cannot be allocated, else 0.
    The scratch of the paths other than the band path is allocated only if one
    of them runs: a call's fresh scratch costs page faults (and as much time as
    the pooling on 64 x 64 planes of a few channels)."""
    cdef int64_t task
    cdef BandScratch bands
    cdef BandScratch* bs = NULL
    cdef real_t* scratch = NULL
    cdef int failed = 0
    if use_bands(xs, w, rp, sizeof(real_t)):
        if band_alloc(&bands, w, rp, sizeof(real_t), xs.s[3] != 1):
            return 1
        bs = &bands
    for task in range(t0, t1):
        if task + 1 < t1 and rp.V == 1:    # (channels_last tasks ask row by row)
            prefetch_task(x, xs, ys, w, rp, task + 1)
        if running_max_task(x, xs, y, ys, w, rp, task, &scratch, bs):
            failed = 1
            break
    if bs != NULL:
        free(bands.block)
    free(scratch)
    return failed


cdef int running_reduce_tasks(const real_t* x, const Strided5* xs, float_out_t* y,
                              const Strided5* ys, const Windows* w, const RunPlan* rp, int mode,
                              double p, int64_t divisor_override, const double* recw, int64_t t0,
                              int64_t t1) noexcept nogil:
    """Tasks [t0, t1) of a running average / Lp norm; 1 when scratch cannot be
    allocated. Scratch as in running_max_tasks."""
    cdef int64_t task
    cdef BandScratch bands
    cdef BandScratch* bs = NULL
    cdef double* scratch = NULL
    cdef int failed = 0
    if use_sum_bands(xs, w, rp, mode, real_t is float or real_t is double):
        if band_alloc(&bands, w, rp, sizeof(double), xs.s[3] != 1):
            return 1
        bs = &bands
    for task in range(t0, t1):
        if task + 1 < t1 and rp.V == 1:    # (channels_last tasks ask row by row)
            prefetch_task(x, xs, ys, w, rp, task + 1)
        if running_reduce_task(x, xs, y, ys, w, rp, mode, p, divisor_override, recw, task,
                               &scratch, bs):
            failed = 1
            break
    if bs != NULL:
        free(bands.block)
    free(scratch)
    return failed
