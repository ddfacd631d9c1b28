# Channels_last sum bands: averages of large windows on channels_last float32
# and float64 input, the channels_first sum bands' scheme (running.pxi,
# band_sum_task) with each column's channels as lanes (_lane_bands.h).
#
# A task is a group of at most LANE_GROUP channels (groups split the
# channels evenly) of a block of output rows and a strip of output columns.
# The row pass reads the input in place, each column's group of channels
# contiguous, and writes band rows holding the columns' groups packed; the
# column pass sums their positions by runs and finishes the averages into
# the result. The scratch is bounded whatever the number of channels
# (LANE_BAND_WIDTH): the running path's channels_last tasks
# (lanes_reduce_task) held every channel of a strip, 1.9 and 2.8 MB a task
# for 128 channels, and past RUN_SCRATCH_MAX (512 channels of avg 15x15)
# gave the call to the direct lanes path, 50-100x slower. (1 thread, avg
# 15x15: (8,64,64,128) 6.4 -> 5.4 ms, (2,64,64,512) 78 -> 5.4 ms, with the
# streaming stores of large float32 results; the row pass reads each
# column's group from rows 32 KB apart and waits on those loads more than the
# channels_first bands do, less since it asks for the columns ahead:
# groups of 32 channels were slower, of 128 no faster. README, Performance.)
#
# The order of each window's adds is the sum bands' (columns' sums down the
# rows, then runs along the row), not lanes_reduce_task's; both are float64
# sums of the same terms, and neither depends on how tasks are split.

cdef extern from "_lane_bands.h":
    void pypool_lane_rows_f32(const float** rows, int64_t ncols, int64_t cs, int64_t G,
                              int64_t first, int64_t s, int64_t k, int64_t nout, int running,
                              double* scratch, double* out, int64_t out_ld) noexcept nogil
    void pypool_lane_rows_f64(const double** rows, int64_t ncols, int64_t cs, int64_t G,
                              int64_t first, int64_t s, int64_t k, int64_t nout, int running,
                              double* scratch, double* out, int64_t out_ld) noexcept nogil
    void pypool_lane_averages_f32(const double* src, int64_t ld, int64_t nrows, int64_t G,
                                  int64_t first, int64_t s, int64_t k, int64_t a, int64_t nout,
                                  double* tmp, float* y, int64_t y_ld, int64_t y_cs,
                                  const double* dh, const double* dw, int stream) noexcept nogil
    void pypool_lane_averages_f64(const double* src, int64_t ld, int64_t nrows, int64_t G,
                                  int64_t first, int64_t s, int64_t k, int64_t a, int64_t nout,
                                  double* tmp, double* y, int64_t y_ld, int64_t y_cs,
                                  const double* dh, const double* dw, int stream) noexcept nogil


cdef enum:
    LANE_GROUP = 64          # channels a task takes, at most
    LANE_BAND_WIDTH = 8192   # doubles of a band row, at most (a strip's columns x a group),
                             # unless one window's columns need more (2048 and 4096: no
                             # faster, 128 channels)
    LANE_LINES = 32          # output rows per task (8: slower at 2 threads; 32: 4-8%
                             # faster than 16 at one thread and two, fewer rows read twice)
    LANE_LINES_MIN = 8       # ... at least, where fewer make more tasks for the threads
    LANE_ROW_MAX = 1 << 16   # doubles of a band row (one window's columns), and ...
    LANE_BAND_MAX = 1 << 20  # ... elements of the zero row or padded rows of a task, at
                             # most: past these, the call takes the other paths


cdef struct LanePlan:
    RunPlan rp               # the tasks' rows and strips; rp.V = G, rp.run_w False (the
                             # column pass sums runs: its strips need no block alignment)
    int64_t V                # channels
    int64_t G                # channels of a group (the last may have fewer)
    int64_t cgroups          # groups: tasks = rp.groups * rp.strips * cgroups
    int64_t seg_lines        # output rows of a segment, at most (min(rp.lines, rows of a
                             # plane): segments stay in one plane), which the scratch holds
    int64_t zeros            # elements of the zero row that stands for padding rows


cdef inline int64_t lane_group(int64_t V) noexcept nogil:
    """Channels per group: V up to LANE_GROUP, else V split evenly into groups
    of at most LANE_GROUP (each then has more than LANE_GROUP / 2)."""
    cdef int64_t n = (V + LANE_GROUP - 1) // LANE_GROUP
    return (V + n - 1) // n


cdef inline int64_t lane_strip(int64_t OW, int64_t kw, int64_t sw, int64_t G) noexcept nogil:
    """Output columns per task: as many as keep a band row within
    LANE_BAND_WIDTH (at least 1), then evened out between the strips."""
    cdef int64_t cols = LANE_BAND_WIDTH // G, strip, strips
    strip = (cols - kw) // sw + 1 if cols >= kw else 1
    if strip >= OW:
        return OW
    strips = (OW + strip - 1) // strip
    return (OW + strips - 1) // strips


cdef inline bint use_lane_bands(const Strided5* xs, const Strided5* ys, const Windows* w,
                                int mode, bint float_input) noexcept nogil:
    """Does a channels_last average take the lane bands? float32 or float64
    input with at least 8 channels, contiguous in the input and the result;
    1-D/2-D sliding windows (dilation 1) for which running windows pay on
    one axis, as for use_running_path; columns at a stride >= 0; scratch
    within LANE_ROW_MAX and LANE_BAND_MAX."""
    cdef int64_t V = ys.n[4], kh = w.kernel[1], kw = w.kernel[2], G
    if not (mode == ACC_SUM and float_input and V >= 8 and xs.s[4] == 1 and ys.s[4] == 1
            and xs.s[3] >= 0 and w.sliding and w.kernel[0] == 1 and w.step[1] == 1
            and w.step[2] == 1 and ys.n[3] >= 1
            and ((herk_pays(kh, w.stride[1]) and ys.n[2] > 1)
                 or (herk_pays(kw, w.stride[2]) and ys.n[3] > 1))):
        return False
    if (kh > LANE_BAND_MAX or kw > LANE_BAND_MAX or w.stride[1] > LANE_BAND_MAX
            or w.stride[2] > LANE_BAND_MAX or xs.n[3] > LANE_BAND_MAX
            or xs.s[3] > LANE_BAND_MAX):
        return False    # (keeps the products below from overflowing)
    G = lane_group(V)
    return (kw * G <= LANE_ROW_MAX
            and (xs.n[3] - 1) * xs.s[3] + G <= LANE_BAND_MAX
            and (LANE_LINES - 1) * w.stride[1] + 2 * kh <= LANE_BAND_MAX)


cdef void plan_lane_bands(LanePlan* lp, const Strided5* xs, const Strided5* ys,
                          const Windows* w, int nthreads) noexcept nogil:
    """Tasks of LANE_LINES output rows, or fewer (down to LANE_LINES_MIN)
    while that leaves fewer than two tasks a thread."""
    cdef RunPlan* rp = &lp.rp
    cdef int64_t lines = ys.n[0] * ys.n[1] * ys.n[2]
    lp.V = ys.n[4]
    lp.G = lane_group(lp.V)
    lp.cgroups = (lp.V + lp.G - 1) // lp.G
    lp.zeros = (xs.n[3] - 1) * xs.s[3] + lp.G if xs.n[3] > 0 else lp.G
    rp.stream = lines * ys.n[3] * lp.V * <int64_t>sizeof(float) >= STREAM_MIN_BYTES
    rp.run_h = herk_pays(w.kernel[1], w.stride[1])
    rp.run_w = False
    rp.V = lp.G
    rp.strip = lane_strip(ys.n[3], w.kernel[2], w.stride[2], lp.G)
    rp.strips = (ys.n[3] + rp.strip - 1) // rp.strip
    rp.scratch = 0
    rp.lines = LANE_LINES
    rp.groups = (lines + rp.lines - 1) // rp.lines
    while (rp.lines > LANE_LINES_MIN
           and rp.groups * rp.strips * lp.cgroups < 2 * <int64_t>nthreads):
        rp.lines //= 2
        rp.groups = (lines + rp.lines - 1) // rp.lines
    lp.seg_lines = rp.lines if rp.lines < ys.n[2] else ys.n[2]


cdef struct LaneScratch:
    void* block
    void** rows          # a segment's padded rows, at the task's first channel
    void* zeros          # the zero row, for padding rows
    double* sweep        # the running row pass's block suffixes
    double* lines        # the chunk's band rows, and a row of slack
    double* runs         # the column pass's run sums of one row
    double* dh           # the chunk's rows' divisors
    int64_t width        # doubles of each band row (vector slack included)
    int64_t border[3]    # the band rows' zero border columns are set for this
                         # (G, lead, right) (-1: none yet)


cdef int lane_alloc(LaneScratch* ls, const LanePlan* lp, const Windows* w,
                    size_t itemsize) noexcept nogil:
    """Buffers for any task of the plan, zeroed. 1 on no memory."""
    cdef const RunPlan* rp = &lp.rp
    cdef int64_t nrows = (lp.seg_lines - 1) * w.stride[1] + 2 * w.kernel[1]
    cdef int64_t width = ((rp.strip - 1) * w.stride[2] + w.kernel[2]) * lp.G
    cdef size_t nbytes
    cdef char* p
    width = (width + 8 + 7) // 8 * 8    # (a vector of slack: the runs read past a row)
    nbytes = (<size_t>nrows * sizeof(void*) + <size_t>(lp.zeros + 8) * itemsize
              + <size_t>(64 * w.kernel[1] + (lp.seg_lines + 2) * width + lp.seg_lines)
              * sizeof(double) + 6 * 64)
    ls.block = calloc(nbytes, 1)
    if ls.block == NULL:
        return 1
    p = <char*>ls.block
    ls.rows = <void**>p
    p = line_up(p + <size_t>nrows * sizeof(void*))
    ls.zeros = <void*>p
    p = line_up(p + <size_t>(lp.zeros + 8) * itemsize)
    ls.sweep = <double*>p
    p = line_up(p + <size_t>(64 * w.kernel[1]) * sizeof(double))
    ls.lines = <double*>p
    p = line_up(p + <size_t>((lp.seg_lines + 1) * width) * sizeof(double))
    ls.runs = <double*>p
    p = line_up(p + <size_t>width * sizeof(double))
    ls.dh = <double*>p
    ls.width = width
    ls.border[0] = -1
    return 0


cdef inline char* line_up(char* p) noexcept nogil:
    """p rounded up to a 64-byte line."""
    return p + (64 - (<size_t>p) % 64) % 64


cdef void lane_borders(LaneScratch* ls, const RunTask* t, int64_t G,
                       int64_t nrows) noexcept nogil:
    """Zeros in the band rows' columns outside the task's inside ones, rows
    [0, nrows): the row pass writes only inside columns, so tasks of one
    geometry set them once."""
    cdef int64_t i, right = t.lead + t.ninside
    cdef double* line
    if ls.border[0] == G and ls.border[1] == t.lead and ls.border[2] == right:
        return
    for i in range(nrows):
        line = ls.lines + i * ls.width
        memset(line, 0, <size_t>(t.lead * G) * sizeof(double))
        memset(line + right * G, 0, <size_t>((t.ncols - right) * G) * sizeof(double))
    ls.border[0] = G
    ls.border[1] = t.lead
    ls.border[2] = right


cdef void lane_band_task(const real_t* x, const Strided5* xs, float_out_t* y,
                         const Strided5* ys, const Windows* w, const LanePlan* lp,
                         int64_t task, LaneScratch* ls, int64_t divisor_override) noexcept nogil:
    """One task: a channel group of a block of rows by a strip of columns."""
    cdef const RunPlan* rp = &lp.rp
    cdef RunTask t
    cdef Segment sg
    cdef int64_t g = 0, v, h, i, i0, n, first_h, first_w
    cdef int64_t kh = w.kernel[1], sh = w.stride[1], run_a = pypool_sum_run_length(w.kernel[2])
    cdef int64_t c0 = (task % lp.cgroups) * lp.G
    cdef int64_t G = lp.V - c0 if lp.V - c0 < lp.G else lp.G
    cdef const real_t** rows = <const real_t**>ls.rows
    cdef const real_t* top
    cdef const double* dw = NULL
    # float32 results of STREAM_MIN_BYTES or more go by streaming stores where
    # every store is 16-byte aligned (no reads of the result's lines first)
    cdef bint stream = (rp.stream and G % 4 == 0 and (<size_t>(y + c0)) % 16 == 0
                        and (ys.s[0] * sizeof(float_out_t)) % 16 == 0
                        and (ys.s[1] * sizeof(float_out_t)) % 16 == 0
                        and (ys.s[2] * sizeof(float_out_t)) % 16 == 0
                        and (ys.s[3] * sizeof(float_out_t)) % 16 == 0)
    plan_task(&t, xs, ys, w, rp, task // lp.cgroups)
    first_w = t.ow0 * w.stride[2] - t.u0
    if divisor_override <= 0:
        dw = w.divisor[2] + t.ow0
    lane_borders(ls, &t, G, lp.seg_lines + 1)
    while g < t.nl:
        segment_at(&sg, &t, ys, w, rp, g)
        top = segment_row(x, xs, w, &sg, &t, w.pad_begin[1])   # input row 0, or NULL
        for v in range(sg.v1 - sg.v0):
            h = sg.v0 + v - w.pad_begin[1]
            if top == NULL or h < 0 or h >= xs.n[2]:
                rows[v] = <const real_t*>ls.zeros
            else:
                rows[v] = top + h * xs.s[2] + c0
        i0 = 0
        while i0 < sg.n:
            n = band_chunk(&sg, i0, sh, kh, rp.run_h)
            first_h = (sg.oh + i0) * sh - sg.v0
            # the columns' sums down the chunk's window rows, at the inside columns
            if real_t is float:
                pypool_lane_rows_f32(rows, t.ninside, xs.s[3], G, first_h, sh, kh, n,
                                     rp.run_h, ls.sweep, ls.lines + t.lead * G, ls.width)
            elif real_t is double:
                pypool_lane_rows_f64(rows, t.ninside, xs.s[3], G, first_h, sh, kh, n,
                                     rp.run_h, ls.sweep, ls.lines + t.lead * G, ls.width)
            for i in range(n):
                ls.dh[i] = (<double>divisor_override if divisor_override > 0 else
                            <double>w.divisor[0][sg.od] * <double>w.divisor[1][sg.oh + i0 + i])
            # ... summed along the row and finished into the result
            if float_out_t is float:
                pypool_lane_averages_f32(ls.lines, ls.width, n, G, first_w, w.stride[2],
                                         w.kernel[2], run_a, t.nout, ls.runs,
                                         y + offset5(ys, sg.b, sg.od, sg.oh + i0, t.ow0, c0),
                                         ys.s[2], ys.s[3], ls.dh, dw, stream)
            else:
                pypool_lane_averages_f64(ls.lines, ls.width, n, G, first_w, w.stride[2],
                                         w.kernel[2], run_a, t.nout, ls.runs,
                                         y + offset5(ys, sg.b, sg.od, sg.oh + i0, t.ow0, c0),
                                         ys.s[2], ys.s[3], ls.dh, dw, False)
            i0 += n
        g += sg.n


cdef int lane_band_tasks(const real_t* x, const Strided5* xs, float_out_t* y,
                         const Strided5* ys, const Windows* w, const LanePlan* lp,
                         int64_t divisor_override, int64_t t0, int64_t t1) noexcept nogil:
    """Tasks [t0, t1) of a lane band average; 1 when scratch cannot be allocated."""
    cdef LaneScratch ls
    cdef int64_t task
    if lane_alloc(&ls, lp, w, sizeof(real_t)):
        return 1
    for task in range(t0, t1):    # (the row pass asks for its input itself: _lane_bands.h)
        lane_band_task(x, xs, y, ys, w, lp, task, &ls, divisor_override)
    if lp.rp.stream:
        pypool_store_fence()
    free(ls.block)
    return 0
