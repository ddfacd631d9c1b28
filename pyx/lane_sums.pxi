# Averages and Lp norms of small sliding windows on channels_last inputs.
#
# The plane path's scheme (forward.pxi, reduce_plane_rows) with channels as
# the vector lanes: each input row's window sums along its columns are
# computed once, as doubles, and kept in a slot while later output rows of
# the task still need them; an output row then adds its window's rows of
# sums and finishes, in one pass. Taps are added in the same order as on the
# plane path (each row's in-bounds taps left to right, then the rows top to
# bottom), so both layouts give the same bits.

cdef enum:
    LANE_SLOTS_BYTES = 4 << 20   # most scratch a task may use (else the running path)


cdef inline int64_t lane_slot_count(const Windows* w) noexcept nogil:
    """Slots for the row sums: the window's extent in rows, rounded up to a power
    of two (rows of one window never share a slot; h & (n - 1) picks one)."""
    return pow2_at_least((w.kernel[1] - 1) * w.step[1] + 1)


cdef inline bint use_lane_sums(const Strided5* xs, const Strided5* ys, const Windows* w,
                               int mode) noexcept nogil:
    """channels_last 1-D/2-D sliding windows too small for running windows,
    whose scratch (slots of row sums, a row of terms) stays within
    LANE_SLOTS_BYTES."""
    cdef int64_t nslots
    if not (ys.n[4] > 1 and w.sliding and w.kernel[0] == 1 and xs.n[1] == 1):
        return False
    nslots = lane_slot_count(w)
    if (nslots > ROW_SLOTS_MAX or ys.n[3] > LANE_SLOTS_BYTES or xs.n[3] > LANE_SLOTS_BYTES
            or ys.n[4] > LANE_SLOTS_BYTES):
        return False    # (also keeps the product below from overflowing)
    # Scratch: the slots and an accumulator (output rows), a row of terms (input).
    return ((nslots + 1) * ys.n[3] * ys.n[4] + xs.n[3] * xs.n[4]
            <= LANE_SLOTS_BYTES // <int64_t>sizeof(double))


cdef inline bint use_lane_direct(const Strided5* xs, const Strided5* ys,
                                 const Windows* w) noexcept nogil:
    """channels_last 1-D/2-D windows that share no input row with the next
    output row (their extent along H is at most the stride: non-overlapping
    windows such as 2x2 or 8x8 at their own stride, and every 1-D window).
    Row sums would never serve a second output row, so lane_direct_rows sums
    each window straight from the input: no slots and no row of terms, whose
    writes and re-reads made these calls 1.6-2.9x slower than PyTorch's."""
    return (ys.n[4] > 1 and w.sliding and w.kernel[0] == 1 and xs.n[1] == 1
            and (w.kernel[1] - 1) * w.step[1] + 1 <= w.stride[1])


cdef int lane_direct_rows(const real_t* x, const Strided5* xs, float_out_t* y,
                          const Strided5* ys, const Windows* w, int mode, double p,
                          int64_t divisor_override, int64_t r0, int64_t r1) noexcept nogil:
    """Output rows [r0, r1) (b, oh) of a channels_last average or Lp norm whose
    windows take each input row once (use_lane_direct), LANE_BLOCK channels
    at a time. The order is the lane-sums path's: a row's taps left to right
    (the first converted, the rest added), then the rows' sums top to bottom
    (added to +0, which changes at most a zero's sign, and finishing turns -0
    into +0), so the results are the same bits. Always returns 0 (without
    its scratch, a row of V doubles, it takes the loops that need none)."""
    cdef int64_t OH = ys.n[2], OW = ys.n[3], V = ys.n[4], xl = xs.s[4]
    cdef int64_t r, b, oh, ow, blk, l0, nl, jh, jw, nh, nw
    cdef bint is_max = mode == ACC_MAXABS
    cdef double divisor
    cdef double rowsum[LANE_BLOCK]
    cdef double acc[LANE_BLOCK]
    cdef const real_t* xrow
    cdef const real_t* tap
    cdef int done = 0
    # float32 / float64 sums of contiguous channels: _window_sums.h on AVX-512
    # CPUs, every channel of a window in one call (64 at a time in registers).
    cdef double* accv = NULL
    cdef bint whole = (real_t is float or real_t is double) and mode == ACC_SUM and xl == 1
    if whole:
        accv = <double*>malloc(<size_t>(V + 1) * sizeof(double))
        whole = accv != NULL    # (else the loops below, which need no scratch)
    for r in range(r0, r1):
        b = r // OH
        oh = r % OH
        nh = w.count[1][oh]
        for ow in range(OW):
            divisor = avg_divisor(w, 0, oh, ow, divisor_override)
            nw = w.count[2][ow]
            if whole and nh > 0 and nw > 0:
                xrow = x + b * xs.s[0] + w.first[1][oh] * xs.s[2] + w.first[2][ow] * xs.s[3]
                if real_t is float:
                    done = pypool_lane_window_sums_f32(accv, xrow, w.step[1] * xs.s[2],
                                                       w.step[2] * xs.s[3], nh, nw, V)
                elif real_t is double:
                    done = pypool_lane_window_sums_f64(accv, xrow, w.step[1] * xs.s[2],
                                                       w.step[2] * xs.s[3], nh, nw, V)
                if done:
                    finish_lanes(y + offset5(ys, b, 0, oh, ow, 0), ys.s[4], accv, V, mode, p,
                                 divisor)
                    continue
                whole = False    # (no AVX-512)
            for blk in range((V + LANE_BLOCK - 1) // LANE_BLOCK):
                l0 = blk * LANE_BLOCK
                nl = V - l0 if V - l0 < LANE_BLOCK else LANE_BLOCK
                fill(acc, 0.0, nl)
                for jh in range(nh):
                    if nw == 0:
                        break    # (only dilation leaves a row no tap: its sum is +0)
                    xrow = (x + b * xs.s[0] + (w.first[1][oh] + jh * w.step[1]) * xs.s[2]
                            + w.first[2][ow] * xs.s[3] + l0 * xl)
                    load_terms(rowsum, xrow, xl, nl, mode, p)
                    for jw in range(1, nw):
                        tap = xrow + jw * w.step[2] * xs.s[3]
                        if xl == 1:    # a literal unit stride vectorizes
                            accumulate(rowsum, tap, 1, nl, mode, p)
                        else:
                            accumulate(rowsum, tap, xl, nl, mode, p)
                    combine_into(acc, rowsum, nl, is_max)
                finish_lanes(y + offset5(ys, b, 0, oh, ow, l0), ys.s[4], acc, nl, mode, p,
                             divisor)
    free(accv)
    return 0


cdef void lane_row_sums(double* hs, double* terms, const real_t* row, const real_t* ahead,
                        const Strided5* xs, const Windows* w, int mode, double p,
                        bint is_max) noexcept nogil:
    """hs[o * V + c] = the taps of output column o's window in this input row,
    channel c, combined left to right (``terms`` holds the row's W * V terms).
    ``ahead`` (or NULL): a contiguous row to ask for meanwhile, column by column
    (the next one loaded; the hardware prefetcher alone leaves these rows
    waiting on memory)."""
    cdef int64_t W = xs.n[3], V = xs.n[4], OW = w.out[2], n
    cdef int64_t col, o
    for col in range(W):
        if ahead != NULL:
            pypool_prefetch_bytes(ahead + col * V, V * <int64_t>sizeof(real_t))
        load_terms(terms + col * V, row + col * xs.s[3], xs.s[4], V, mode, p)
    for o in range(OW):
        # The tap step in elements only when there are two taps (the dilation of a
        # one-tap window may be huge, and its product with V overflow).
        n = w.count[2][o]
        combine_taps(hs + o * V, terms + w.first[2][o] * V, w.step[2] * V if n > 1 else 0,
                     n, V, is_max)


cdef inline void finish_rows(float_out_t* y, int64_t ystride, double** rows, int64_t n,
                             int64_t V, double divisor, double* acc) noexcept nogil:
    """y[c * ystride] = ((rows[0][c] + rows[1][c]) + ...) + 0.0) / divisor: an
    average over 1 to 3 rows of sums in one pass (more go through ``acc``)."""
    cdef const double* r0 = rows[0]
    cdef const double* r1
    cdef const double* r2
    cdef int64_t c, j
    if n == 1 and ystride == 1:
        for c in range(V):
            y[c] = <float_out_t>((r0[c] + 0.0) / divisor)
    elif n == 2 and ystride == 1:
        r1 = rows[1]
        for c in range(V):
            y[c] = <float_out_t>(((r0[c] + r1[c]) + 0.0) / divisor)
    elif n == 3 and ystride == 1:
        r1 = rows[1]
        r2 = rows[2]
        for c in range(V):
            y[c] = <float_out_t>((((r0[c] + r1[c]) + r2[c]) + 0.0) / divisor)
    else:
        copy_lanes(acc, r0, V)
        for j in range(1, n):
            combine_into(acc, rows[j], V, False)
        finish_lanes(y, ystride, acc, V, ACC_SUM, 0.0, divisor)


cdef int lane_sum_rows(const real_t* x, const Strided5* xs, float_out_t* y, const Strided5* ys,
                       const Windows* w, int mode, double p, int64_t divisor_override,
                       int64_t r0, int64_t r1) noexcept nogil:
    """Output rows [r0, r1) (b, oh) of a channels_last average or Lp norm; 1 when
    scratch cannot be allocated, else 0."""
    cdef int64_t OH = ys.n[2], OW = ys.n[3], V = ys.n[4], H = xs.n[2]
    cdef int64_t nslots = lane_slot_count(w), row_len = OW * V
    cdef int64_t r, b = r0 // OH, oh = r0 % OH, jh, h, n, slot, tag, o
    cdef bint is_max = mode == ACC_MAXABS
    cdef double divisor
    cdef double* rows[ROW_SLOTS_MAX]     # the window's rows of sums, in order
    cdef double* at[ROW_SLOTS_MAX]       # the same at one output column
    cdef double* hs
    cdef const real_t* row
    cdef float_out_t* yrow
    cdef bint contiguous = xs.s[4] == 1 and xs.s[3] == V
    if (real_t is float and float_out_t is float and mode == ACC_SUM and divisor_override <= 0
            and contiguous and ys.s[4] == 1 and ys.s[3] == V and avg3_rows_high(xs, ys, w) == 3):
        # avg 3x3 stride 1 of float32 on AVX-512 CPUs: the same sums, by a kernel of
        # its own (_avg3_plane.h); without AVX-512 the loop below does them.
        if pypool_avg3_lanes_f32(x, xs.s[0], xs.s[2], H, xs.n[3], V, y, ys.s[0], ys.s[2], OH,
                                 OW, w.pad_begin[1], w.pad_begin[2], r0, r1, w.divisor[0][0],
                                 w.divisor[1], w.divisor[2], result_streams(ys, sizeof(float))):
            return 0
    # Slots of row sums, then an accumulator row, then one input row of terms.
    cdef double* scratch = <double*>malloc(
        <size_t>((nslots + 1) * row_len + xs.n[3] * V + 1) * sizeof(double))
    cdef double* acc = scratch + nslots * row_len
    cdef double* terms = acc + row_len
    cdef int64_t* tags = <int64_t*>malloc(<size_t>nslots * sizeof(int64_t))
    if scratch == NULL or tags == NULL:
        free(scratch)
        free(tags)
        return 1
    for slot in range(nslots):
        tags[slot] = -1
    for r in range(r0, r1):
        n = w.count[1][oh]
        for jh in range(n):
            h = w.first[1][oh] + jh * w.step[1]
            slot = h & (nslots - 1)
            hs = scratch + slot * row_len
            tag = b * H + h
            if tags[slot] != tag:
                row = x + b * xs.s[0] + h * xs.s[2]
                lane_row_sums(hs, terms, row, row + xs.s[2] if contiguous and h + 1 < H else NULL,
                              xs, w, mode, p, is_max)
                tags[slot] = tag
            rows[jh] = hs
        yrow = y + offset5(ys, b, 0, oh, 0, 0)
        for o in range(OW):
            divisor = avg_divisor(w, 0, oh, o, divisor_override)
            if n == 0:
                fill(acc, 0.0, V)
                finish_lanes(yrow + o * ys.s[3], ys.s[4], acc, V, mode, p, divisor)
            elif mode == ACC_SUM:
                for jh in range(n):
                    at[jh] = rows[jh] + o * V
                finish_rows(yrow + o * ys.s[3], ys.s[4], at, n, V, divisor, acc)
            else:
                copy_lanes(acc, rows[0] + o * V, V)
                for jh in range(1, n):
                    combine_into(acc, rows[jh] + o * V, V, is_max)
                finish_lanes(yrow + o * ys.s[3], ys.s[4], acc, V, mode, p, divisor)
        oh += 1
        if oh == OH:
            oh = 0
            b += 1
    free(scratch)
    free(tags)
    return 0
