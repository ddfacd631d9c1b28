# Forward pooling kernels: max, average and Lp over sliding or adaptive windows.
#
# Loop shapes, all reading the window tables (Windows):
#
# * plane path — sliding windows on channels_first data whose W axis is
#   contiguous. Threads take chunks of output rows (b, od, oh).
#   - max is separable: the window's input rows are folded into column
#     maxima (split by stride phase so later loads are contiguous), then each
#     output takes the max over its kernel columns; the index tie rule keeps
#     the row-major first maximum, so this equals the tap-by-tap definition
#     (values alone: of a +0 / -0 tie, the column-major first; README, Max).
#     Windows 2 wide at stride 2 (2x2, 2x2x2) and one-row windows 3 wide at
#     stride 2 (max1d k3 s2) skip the column scratch: rows go straight into
#     the output row.
#   - averages and Lp are separable too: each input row's horizontal sums
#     (computed once, from a zero-padded double copy of the row at stride 1)
#     are kept while overlapping windows need them, and an output row adds
#     its window's rows; common shapes fuse that with the division and store.
# * global sums — a global average sums a contiguous channels_first plane
#   with 8 interleaved partial sums, or walks a channels_last input in
#   memory order with a block of channels side by side.
# * channels_last averages and Lp norms of 1-D/2-D sliding windows: the plane
#   path's scheme with channels as lanes (lane_sums.pxi), or the running
#   path (running.pxi) for large windows, and for small ones whose rows are
#   too long for lane_sums' scratch (its direct windows: row sums along the
#   columns, then across rows, as well).
# * 3-D windows large on some axis (max values, averages): a depth pooling,
#   then a 2-D pooling of its result (depth_first.pxi), each by the paths here.
# * lanes path — everything else. One task is an output row (od, oh) for a
#   set of "lanes" that share the geometry: the channels of one batch of a
#   channels_last input, or a block of consecutive batch planes of a
#   channels_first one. The innermost loop runs over up to LANE_BLOCK lanes
#   (contiguous for channels_last); float32 max keeps 16-32 lanes in
#   registers across all of an output's taps (_lanes_max.h, AVX2 builds).
#
# Sums are accumulated in double, in an order fixed by the geometry alone
# (row-major taps on the plane and lanes paths, blocks on the running path,
# 8 partial sums for a global plane), never by the thread count or by how
# the work is split, so results are bit-identical for every num_threads.
# Task functions keep their variables local, so they are private to each
# OpenMP thread. With one thread the drivers loop plainly instead of entering
# an OpenMP region: even a region that runs on one thread costs libgomp two
# futex system calls, about a microsecond that every small call would pay.

from libc.math cimport INFINITY, fabs, frexp, pow, sqrt
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from libc.stdint cimport int32_t
from libc.stdint cimport INT8_MIN, INT16_MIN, INT32_MAX, INT32_MIN, INT64_MIN

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
    """max that propagates NaN (values only: which NaN does not matter).

    Written as a plain max (v > m ? v : m, one MAXPS: a NaN already in m
    stays) followed by a NaN select, which compiles to 3 vector operations
    instead of 4.
    """
    cdef real_t r = v if v > m else m
    return v if is_nan(v) else r


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


cdef inline double pow_term(double a, double p) noexcept nogil:
    """|a| ** p, the term of an Lp norm's sum: p = 3 and 4 by products, which
    cost a few cycles where pow costs tens of nanoseconds (Lp 13x13, p = 3, 64x
    the roofline copy). For float32 input a * a is exact, so |a|**3 and
    |a|**4 round once, as pow does; float64 ones round twice (within 1.5
    units in the last place; the contract asks for no more)."""
    cdef double b
    a = fabs(a)
    if p == 3.0:
        return a * a * a
    if p == 4.0:
        b = a * a
        return b * b
    return pow(a, p)


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


cdef inline void accumulate(double* acc, const real_t* src, int64_t stride, int64_t n,
                            int mode, double p) noexcept nogil:
    """Add src[i*stride] to acc[i] (i < n) the way ``mode`` says; one simple loop per mode."""
    cdef int64_t i
    cdef double a
    if mode == ACC_SUM:
        for i in range(n):
            acc[i] = acc[i] + <double>src[i * stride]
    elif mode == ACC_ABS:
        for i in range(n):
            acc[i] = acc[i] + fabs(<double>src[i * stride])
    elif mode == ACC_SQUARE:
        for i in range(n):
            a = <double>src[i * stride]
            acc[i] = acc[i] + a * a
    elif mode == ACC_POW:
        for i in range(n):
            acc[i] = acc[i] + pow_term(<double>src[i * stride], p)
    else:
        for i in range(n):
            a = fabs(<double>src[i * stride])
            acc[i] = a if (a > acc[i] or a != a) else acc[i]


cdef inline void max_values(real_t* best, const real_t* src, int64_t stride,
                            int64_t n) noexcept nogil:
    """best[i] = max(best[i], src[i*stride]), NaN-propagating."""
    cdef int64_t i
    for i in range(n):
        best[i] = max_nan(best[i], src[i * stride])


cdef inline void max_values_indices(real_t* best, int64_t* where, const real_t* src,
                                    int64_t stride, int64_t n, int64_t tag) noexcept nogil:
    """Keep the first maximum (and the first NaN) of each lane, recording ``tag`` for it.

    The tag is the same for every lane of one call (a tap), so the update is
    a pure bitwise select: data-dependent branches would mispredict half the
    time, while selects let the compiler vectorize. Lanes whose values all
    equal lowest() keep their initial tag; callers map that to the first tap.
    """
    cdef int64_t i, mask
    cdef real_t v, b
    for i in range(n):
        v = src[i * stride]
        b = best[i]
        mask = -<int64_t>((v > b) | (is_nan(v) & (b == b)))
        best[i] = max_nan(b, v)
        where[i] = (where[i] & ~mask) | (tag & mask)


cdef extern from "_roots.h":
    void pypool_float_roots(const double* s, int64_t n, double q, float* y,
                            int64_t ystride) noexcept nogil


cdef inline bint fast_roots(int mode, double p) noexcept nogil:
    """Whether float32 Lp results take their p-th roots from _roots.h (the
    same bits as pow, without a libm call per output)."""
    return mode == ACC_POW and p >= 1.0 and p != INFINITY


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


cdef inline void combine_into(real_t* acc, const real_t* v, int64_t n, bint is_max) noexcept nogil:
    """acc[i] = acc[i] (+ or NaN-propagating max) v[i]."""
    cdef int64_t i
    if is_max:
        for i in range(n):
            acc[i] = max_nan(acc[i], v[i])
    else:
        for i in range(n):
            acc[i] = acc[i] + v[i]


cdef inline void combine_to(real_t* dst, const real_t* a, const real_t* b, int64_t n,
                            bint is_max) noexcept nogil:
    """dst[i] = a[i] (+ or max) b[i]."""
    cdef int64_t i
    if is_max:
        for i in range(n):
            dst[i] = max_nan(a[i], b[i])
    else:
        for i in range(n):
            dst[i] = a[i] + b[i]


cdef inline void copy_lanes(real_t* dst, const real_t* src, int64_t n) noexcept nogil:
    cdef int64_t i
    for i in range(n):
        dst[i] = src[i]


# ----------------------------------------------------------------------------- plane path

cdef inline void deinterleave(const real_t* row, int64_t W, int64_t s, int64_t plen,
                              real_t* phases) noexcept nogil:
    """Split a row into s phases: phases[p*plen + i] = row[p + i*s].

    After this every tap of a strided window reads its outputs' columns
    contiguously. Stride 2 gets its own loop so the compiler sees a
    constant-stride interleaved access and vectorizes it.
    """
    cdef int64_t i, p, half
    if s == 2:
        half = W // 2
        for i in range(half):
            phases[i] = row[2 * i]
            phases[plen + i] = row[2 * i + 1]
        if W % 2:
            phases[half] = row[W - 1]
    else:
        for p in range(s):
            for i in range((W - p + s - 1) // s):
                phases[p * plen + i] = row[p + i * s]


cdef struct ColumnTaps:
    # The horizontal taps of the plane path, the same for every output row:
    # tap jw reaches outputs [lo, hi); output lo reads column col (= t + lo*s),
    # found at offset src of the stride-phase-split row. Computed once per call
    # so no row pays for the divisions.
    int64_t* lo
    int64_t* hi
    int64_t* col
    int64_t* src
    int64_t plen


cdef int plan_columns(ColumnTaps* ct, const Windows* w, int64_t W, int64_t OW) noexcept nogil:
    cdef int64_t kw = w.kernel[2], s = w.stride[2], jw, t, ph
    ct.plen = (W + s - 1) // s
    ct.lo = <int64_t*>malloc(<size_t>(4 * kw + 1) * sizeof(int64_t))
    if ct.lo == NULL:
        return 1
    ct.hi = ct.lo + kw
    ct.col = ct.lo + 2 * kw
    ct.src = ct.lo + 3 * kw
    for jw in range(kw):
        t = jw * w.step[2] - w.pad_begin[2]
        ct.lo[jw] = span_lo(t, s)
        ct.hi[jw] = span_hi(t, s, W, OW)
        ct.col[jw] = t + ct.lo[jw] * s
        ph = t % s
        if ph < 0:
            ph += s
        ct.src[jw] = ph * ct.plen + (t - ph) // s + ct.lo[jw]
    return 0


cdef inline bint taps_span_row(const ColumnTaps* ct, int64_t kw, int64_t OW) noexcept nogil:
    """Does every kernel column reach every output of the row (no padding or
    overhang along W)? Then output o's first tap is column ct.col[0] + o * stride."""
    cdef int64_t jw
    for jw in range(kw):
        if ct.lo[jw] != 0 or ct.hi[jw] != OW:
            return False
    return True


cdef inline void inside_outputs(const ColumnTaps* ct, int64_t kw, int64_t OW, int64_t* a,
                                int64_t* b) noexcept nogil:
    """[a, b): the outputs every kernel column reaches (no padding or overhang
    to skip); a = b = OW when there are none."""
    cdef int64_t jw
    a[0] = 0
    b[0] = OW
    for jw in range(kw):
        a[0] = ct.lo[jw] if ct.lo[jw] > a[0] else a[0]
        b[0] = ct.hi[jw] if ct.hi[jw] < b[0] else b[0]
    if a[0] >= b[0]:
        a[0] = b[0] = OW


cdef inline void next_row(int64_t* b, int64_t* od, int64_t* oh, int64_t OD, int64_t OH) noexcept nogil:
    """Advance (b, od, oh) to the next output row in row-major order."""
    oh[0] += 1
    if oh[0] == OH:
        oh[0] = 0
        od[0] += 1
        if od[0] == OD:
            od[0] = 0
            b[0] += 1


cdef inline void fold_phase(real_t* cv, int32_t* ct, const real_t* src, int64_t stride,
                            int64_t n, int32_t tag, bint first) noexcept nogil:
    """Fold src[i*stride] (i < n) into column maxima cv (and their row tags ct).

    Inlined with a literal stride at each call site, so every case becomes a
    simple loop the compiler vectorizes; the branches are loop-invariant.
    """
    cdef int64_t i
    cdef int32_t mask
    cdef real_t v, b
    if first:
        for i in range(n):
            cv[i] = src[i * stride]
        if ct != NULL:
            for i in range(n):
                ct[i] = tag
    elif ct == NULL:
        for i in range(n):
            cv[i] = max_nan(cv[i], src[i * stride])
    else:
        for i in range(n):
            v = src[i * stride]
            b = cv[i]
            mask = -<int32_t>((v > b) | (is_nan(v) & (b == b)))
            cv[i] = max_nan(b, v)
            ct[i] = (ct[i] & ~mask) | (tag & mask)


cdef inline void fold_row(real_t* colv, int32_t* colt, const real_t* row, int64_t W,
                          int64_t s, int64_t plen, int32_t tag, bint first) noexcept nogil:
    """Vertical step of separable max: fold one input row into the column maxima.

    Columns are stored split by stride phase (column c at (c % s) * plen + c // s)
    so the horizontal step reads contiguously. With ``colt`` non-NULL the
    winning row's tag is kept too (first maximum, first NaN: rows arrive in
    row-major order). Tags are int32 (the plane path only runs on planes
    below 2**31 elements) so masks match float32 lanes and vectorize on
    plain SSE2.
    """
    cdef int64_t p, i, half = W // 2
    cdef int32_t* ct = NULL
    cdef int32_t m0, m1
    cdef real_t v0, v1, b0, b1
    if s == 1:
        fold_phase(colv, colt, row, 1, W, tag, first)
    elif s == 2 and not first:
        # Both phases in one pass: the compiler sees one interleaved stride-2
        # access (load pairs, shuffle) instead of two half-wasted passes.
        if colt == NULL:
            for i in range(half):
                colv[i] = max_nan(colv[i], row[2 * i])
                colv[plen + i] = max_nan(colv[plen + i], row[2 * i + 1])
        else:
            for i in range(half):
                v0 = row[2 * i]
                v1 = row[2 * i + 1]
                b0 = colv[i]
                b1 = colv[plen + i]
                m0 = -<int32_t>((v0 > b0) | (is_nan(v0) & (b0 == b0)))
                m1 = -<int32_t>((v1 > b1) | (is_nan(v1) & (b1 == b1)))
                colv[i] = max_nan(b0, v0)
                colv[plen + i] = max_nan(b1, v1)
                colt[i] = (colt[i] & ~m0) | (tag & m0)
                colt[plen + i] = (colt[plen + i] & ~m1) | (tag & m1)
        if W % 2:
            fold_phase(colv + half, NULL if colt == NULL else colt + half, row + W - 1, 1, 1,
                       tag, False)
    elif s == 2:
        for i in range(half):
            colv[i] = row[2 * i]
            colv[plen + i] = row[2 * i + 1]
        if W % 2:
            colv[half] = row[W - 1]
        if colt != NULL:
            for i in range(2 * plen):
                colt[i] = tag
    else:
        for p in range(s):
            if colt != NULL:
                ct = colt + p * plen
            fold_phase(colv + p * plen, ct, row + p, s, (W - p + s - 1) // s, tag, first)


cdef inline void max_columns_flat(real_t* best, int32_t* where, const real_t* src,
                                  const int32_t* tags, int64_t n, int32_t first_col,
                                  int32_t col_step, int64_t stride) noexcept nogil:
    """Horizontal step with indices: candidate i (src[i*stride], tags[i*stride])
    has flat index tags[i*stride] + first_col + i*col_step.

    Candidates come from different rows, so equal values (and NaNs) are
    settled by the smaller flat index: the window's first maximum in
    row-major order. Bitwise selects keep the loop branch-free.
    """
    cdef int64_t i
    cdef int32_t f, fb, mask
    cdef real_t v, b
    for i in range(n):
        v = src[i * stride]
        b = best[i]
        f = tags[i * stride] + first_col + <int32_t>i * col_step
        fb = where[i]
        mask = -<int32_t>((v > b) | ((v == b) & (f < fb))
                          | (is_nan(v) & ((b == b) | (f < fb))))
        # The value follows the index (so a zero's sign is the chosen tap's).
        best[i] = v if mask != 0 else b
        where[i] = (fb & ~mask) | (f & mask)


cdef void edge_max(real_t* best, const real_t* colv, const ColumnTaps* ct, int64_t o0,
                   int64_t o1, int64_t kw) noexcept nogil:
    """horizontal_max for outputs [o0, o1), tap by tap with bounds checks."""
    cdef int64_t o, jw, lo
    for o in range(o0, o1):
        best[o] = lowest(<real_t>0)
        for jw in range(kw):
            lo = ct.lo[jw]
            if lo <= o < ct.hi[jw]:
                best[o] = max_nan(best[o], colv[ct.src[jw] + o - lo])


cdef void horizontal_max(real_t* best, const real_t* colv, const ColumnTaps* ct, int64_t kw,
                         int64_t OW) noexcept nogil:
    """best[o] = max over output o's kernel columns of the column maxima (values only).

    As horizontal_row does for sums: the outputs whose windows lie inside the
    row take up to 3 columns in one fused loop, the edges tap by tap.
    """
    cdef int64_t jw, o, lo, a, b
    cdef real_t empty = lowest(<real_t>0)
    cdef const real_t* p0
    cdef const real_t* p1
    cdef const real_t* p2
    inside_outputs(ct, kw, OW, &a, &b)
    edge_max(best, colv, ct, 0, a, kw)
    edge_max(best, colv, ct, b, OW, kw)
    if a >= b:
        return
    # Tap jw of output o is colv[src + o - lo].
    p0 = colv + ct.src[0] + (a - ct.lo[0])
    if kw == 1:
        copy_lanes(best + a, p0, b - a)
        return
    p1 = colv + ct.src[1] + (a - ct.lo[1])
    if kw == 2:
        for o in range(b - a):
            best[a + o] = max_nan(p0[o], p1[o])
        return
    p2 = colv + ct.src[2] + (a - ct.lo[2])
    for o in range(b - a):
        best[a + o] = max_nan(max_nan(p0[o], p1[o]), p2[o])
    for jw in range(3, kw):
        max_values(best + a, colv + ct.src[jw] + (a - ct.lo[jw]), 1, b - a)


cdef void strided_edge_max(real_t* best, const real_t* colv, const ColumnTaps* ct, int64_t kw,
                           int64_t s, int64_t o0, int64_t o1) noexcept nogil:
    """strided_max for outputs [o0, o1), tap by tap with bounds checks."""
    cdef int64_t o, jw, lo
    for o in range(o0, o1):
        best[o] = lowest(<real_t>0)
        for jw in range(kw):
            lo = ct.lo[jw]
            if lo <= o < ct.hi[jw]:
                best[o] = max_nan(best[o], colv[ct.col[jw] + (o - lo) * s])


cdef void strided_max(real_t* best, const real_t* colv, const ColumnTaps* ct, int64_t kw,
                      int64_t s, int64_t OW) noexcept nogil:
    """horizontal_max from column maxima left in row order (colv[c] for column
    c, not split by stride phase): tap jw of output o is column
    ct.col[jw] + (o - ct.lo[jw]) * s. Same taps in the same order."""
    cdef int64_t jw, o, a, b
    cdef const real_t* p
    inside_outputs(ct, kw, OW, &a, &b)
    strided_edge_max(best, colv, ct, kw, s, 0, a)
    strided_edge_max(best, colv, ct, kw, s, b, OW)
    if a >= b:
        return
    p = colv + ct.col[0] + (a - ct.lo[0]) * s
    for o in range(b - a):
        best[a + o] = p[o * s]
    for jw in range(1, kw):
        max_values(best + a, colv + ct.col[jw] + (a - ct.lo[jw]) * s, s, b - a)


cdef enum:
    PREFETCH_BYTES_AHEAD = 8192   # how far ahead (in input bytes) the pairs and column-maxima rows are asked for
    PREFETCH_ROWS_MAX = 32
    INLINE_PREFETCH_BYTES = 4096  # how far ahead a row loop that prefetches as it goes asks

cdef extern from "_prefetch.h":
    void pypool_prefetch_bytes(const void* p, int64_t nbytes) noexcept nogil


cdef inline int64_t pair_prefetch_distance(const Strided5* xs, const Windows* w,
                                           int64_t itemsize,
                                           int64_t min_row_bytes) noexcept nogil:
    """How many output rows ahead the pairs path (pair_max_row) and the
    column-maxima path (column_triples_row) ask for their input rows; 0: not
    at all. Their passes read 2 to 4 rows side by side, and
    when those lie far apart (rows of two depth slices, or rows over 256
    bytes) the hardware prefetcher leaves them waiting on memory. 1 thread,
    float32, max 2x2 s2: (32,64,112,112) 10.0 -> 3.6 ms, (16,64,160,160)
    8.9 -> 3.9 ms, 2x2x2 (8,32,32,64,64) 8.5 -> 4.4 ms; but shorter 2-D rows
    stream well alone, and there the prefetches cost time ((128,64,32,32)
    1.5 -> 2.2 ms), as they do on the other plane paths (max with indices,
    averages). Windows one row high (1-D) read one row per output row, in
    order, which the hardware prefetcher follows: there the next row asked
    for in one burst cost time (1 thread, (64,256,4096) max1d k2 s2 32 -> 26
    ms without it; the k3 s2 loop prefetches as it goes, see max_plane_rows).
    Rows of min_row_bytes or fewer are left to the hardware: 256 for the
    pairs path, 96 for the column maxima, which with short rows still waited
    (max 3x3 s2 p1, float32, 1 / 2 threads, A/B: (16,256,56,56) 4.4 -> 2.5 ms
    and 2.7-4.3 -> 1.4 ms; (128,64,32,32) 4.1 -> 2.5 ms and 2.5-4.3 -> 1.3 ms;
    (32,64,112,112) unchanged)."""
    cdef int64_t row_bytes = xs.n[3] * itemsize
    cdef int64_t per_row = row_bytes * w.stride[1] * w.kernel[0]
    if (xs.s[3] != 1 or per_row <= 0
            or (w.kernel[0] == 1 and (row_bytes <= min_row_bytes or w.kernel[1] == 1))):
        return 0
    return max(1, min(<int64_t>PREFETCH_ROWS_MAX, PREFETCH_BYTES_AHEAD // per_row))


cdef inline int64_t first_new_row(const Windows* w, int64_t nh) noexcept nogil:
    """The first of a window's nh rows (along height) that the window above it
    does not read: its last stride / step rows when windows slide by a
    multiple of their row step (dilation), else 0 (all)."""
    cdef int64_t fresh = w.stride[1] // w.step[1]
    if w.sliding and w.stride[1] % w.step[1] == 0 and nh > fresh:
        return nh - fresh
    return 0


cdef struct RowsAhead:
    int64_t ahead          # output rows ahead (0: no prefetch)
    int64_t b, od, oh      # the output row whose input rows are asked for next


cdef inline void start_rows_ahead(RowsAhead* pa, int64_t ahead, int64_t r0, int64_t OD,
                                  int64_t OH) noexcept nogil:
    """A prefetch cursor, ahead output rows ahead of rows r0, r0 + 1, ...
    (counted over batch, depth and height)."""
    cdef int64_t r = r0 + ahead
    pa.ahead = ahead
    pa.b = r // (OD * OH)
    pa.od = (r // OH) % OD
    pa.oh = r % OH


cdef inline void prefetch_rows_ahead(RowsAhead* pa, const real_t* x, const Strided5* xs,
                                     const Windows* w, int64_t r, int64_t r1, int64_t OD,
                                     int64_t OH) noexcept nogil:
    """Called once per output row r, in order: asks for the input rows that
    output row r + ahead adds to its predecessor's (all its rows when the rows
    are dilated or the windows adaptive)."""
    cdef int64_t jd, jh, nh, jh0
    cdef int64_t nbytes = xs.n[3] * <int64_t>sizeof(real_t)
    cdef const real_t* base
    if pa.ahead == 0 or r + pa.ahead >= r1:
        return
    base = x + pa.b * xs.s[0]
    nh = w.count[1][pa.oh]
    jh0 = first_new_row(w, nh)
    for jd in range(w.count[0][pa.od]):
        for jh in range(jh0, nh):
            pypool_prefetch_bytes(base + (w.first[0][pa.od] + jd * w.step[0]) * xs.s[1]
                                  + (w.first[1][pa.oh] + jh * w.step[1]) * xs.s[2], nbytes)
    next_row(&pa.b, &pa.od, &pa.oh, OD, OH)


cdef inline const real_t* window_row(const real_t* xb, const Strided5* xs, const Windows* w,
                                     int64_t od, int64_t oh, int64_t j) noexcept nogil:
    """Input row j (row-major over depth and height) of window (od, oh) of the
    plane at xb."""
    cdef int64_t nh = w.count[1][oh]
    return (xb + (w.first[0][od] + (j // nh) * w.step[0]) * xs.s[1]
            + (w.first[1][oh] + (j % nh) * w.step[1]) * xs.s[2])


cdef void pair_max_row(const real_t* xb, const Strided5* xs, real_t* yrow, const Windows* w,
                       int64_t od, int64_t oh, int64_t OW) noexcept nogil:
    """Values of one output row whose windows are 2 columns wide at stride 2, wholly
    inside the row, over the window's input rows (at least one), two rows per
    pass straight into the (contiguous) output row. Each max keeps the earlier
    value on ties and every pass runs in row-major order, so the result is the
    window's first maximum in row-major order (a zero's sign included); NaN
    propagates."""
    cdef int64_t nd = w.count[0][od], nh = w.count[1][oh], n = nd * nh, j, o
    cdef const real_t* ra
    cdef const real_t* rb
    cdef const real_t* rc
    cdef const real_t* rd
    if n == 4:
        # 2x2x2 windows: all four rows in one pass.
        ra = xb + w.first[0][od] * xs.s[1] + w.first[1][oh] * xs.s[2]
        rb = ra + w.step[1] * xs.s[2]
        rc = ra + w.step[0] * xs.s[1]
        rd = rc + w.step[1] * xs.s[2]
        if nh == 1:   # 4 depth rows of 1-high windows
            rb = ra + w.step[0] * xs.s[1]
            rc = rb + w.step[0] * xs.s[1]
            rd = rc + w.step[0] * xs.s[1]
        elif nd == 1:   # 4 rows of one depth slice
            rc = rb + w.step[1] * xs.s[2]
            rd = rc + w.step[1] * xs.s[2]
        for o in range(OW):
            yrow[o] = max_nan(max_nan(max_nan(ra[2 * o], ra[2 * o + 1]),
                                      max_nan(rb[2 * o], rb[2 * o + 1])),
                              max_nan(max_nan(rc[2 * o], rc[2 * o + 1]),
                                      max_nan(rd[2 * o], rd[2 * o + 1])))
        return
    for j in range(0, n, 2):
        ra = window_row(xb, xs, w, od, oh, j)
        if j + 1 < n:
            rb = window_row(xb, xs, w, od, oh, j + 1)
            if j == 0:
                for o in range(OW):
                    yrow[o] = max_nan(max_nan(ra[2 * o], ra[2 * o + 1]),
                                      max_nan(rb[2 * o], rb[2 * o + 1]))
            else:
                for o in range(OW):
                    yrow[o] = max_nan(yrow[o], max_nan(max_nan(ra[2 * o], ra[2 * o + 1]),
                                                       max_nan(rb[2 * o], rb[2 * o + 1])))
        elif j == 0:
            for o in range(OW):
                yrow[o] = max_nan(ra[2 * o], ra[2 * o + 1])
        else:
            for o in range(OW):
                yrow[o] = max_nan(yrow[o], max_nan(ra[2 * o], ra[2 * o + 1]))


cdef extern from "_row_max.h":
    int64_t pypool_max3_s2_row_f32(const float* row, float* y, int64_t n,
                                   int64_t ahead, int stream) noexcept nogil
    int64_t pypool_max3_rows_f32(const float* r0, const float* r1, const float* r2, int64_t W,
                                 int64_t c0, int64_t stride, float* y, int64_t n) noexcept nogil
    int64_t pypool_max3_s2_many_rows_f32(const float* const* rows, int64_t nrows, int64_t W,
                                         int64_t c0, float* y, int64_t n) noexcept nogil


cdef enum:
    MANY_ROWS_MAX = 64   # window rows column_triples_row lists on the stack


cdef void triple_edges(real_t* yrow, const real_t* colmax, const ColumnTaps* ct, int64_t o0,
                       int64_t o1) noexcept nogil:
    """column_triples_row's outputs [o0, o1) that reach past the row, tap by tap."""
    cdef int64_t o, jw
    cdef real_t best
    for o in range(o0, o1):
        best = lowest(<real_t>0)
        for jw in range(3):
            if ct.lo[jw] <= o < ct.hi[jw]:
                best = max_nan(best, colmax[ct.col[jw] + 2 * (o - ct.lo[jw])])
        yrow[o] = best


cdef void column_triples_row(real_t* yrow, real_t* colmax, const real_t* xb, const Strided5* xs,
                             const Windows* w, const ColumnTaps* ct, int64_t od, int64_t oh,
                             int64_t W, int64_t OW) noexcept nogil:
    """Values of one output row of 3-wide stride-2 windows (max 3x3 s2, any
    padding) over two or more input rows: the rows' column maxima first (one
    contiguous pass, rows in order), then each output's three columns read
    straight from them. The same order as the general plane path (columns
    first, then taps left to right, the earlier kept on ties), without its
    stride-phase split. 1 thread, float32, out=: (32,64,112,112) pad 1
    5.9 -> 5.2 ms, (64,64,56,56) no padding 4.0 -> 2.9 ms."""
    cdef int64_t n = w.count[0][od] * w.count[1][oh], j, o, c, a, b, done, step
    cdef const real_t* r0
    cdef const real_t* r1
    cdef const real_t* r2
    cdef const real_t* p
    if real_t is float and n <= 3 and w.sliding and w.count[0][od] == 1:
        # float32 on AVX-512 CPUs: the whole row, column maxima kept in registers
        # and padding read as -inf (_row_max.h)
        r0 = xb + w.first[0][od] * xs.s[1] + w.first[1][oh] * xs.s[2]
        step = w.step[1] * xs.s[2]
        if pypool_max3_rows_f32(<const float*>r0, <const float*>(r0 + step),
                                <const float*>(r0 + 2 * step) if n == 3 else NULL,
                                W, -w.pad_begin[2], 2, <float*>yrow, OW):
            return
    cdef const float* rows[MANY_ROWS_MAX]
    if real_t is float and 2 <= n <= MANY_ROWS_MAX and w.sliding:
        # ... and windows of more rows (3-D): the same, the rows listed
        for j in range(n):
            rows[j] = <const float*>window_row(xb, xs, w, od, oh, j)
        if pypool_max3_s2_many_rows_f32(rows, n, W, -w.pad_begin[2], <float*>yrow, OW):
            return
    r0 = window_row(xb, xs, w, od, oh, 0)
    r1 = window_row(xb, xs, w, od, oh, 1)
    inside_outputs(ct, 3, OW, &a, &b)
    # The first two or three rows in one pass, then one more each.
    if n >= 3:
        r2 = window_row(xb, xs, w, od, oh, 2)
        for c in range(W):
            colmax[c] = max_nan(max_nan(r0[c], r1[c]), r2[c])
    else:
        for c in range(W):
            colmax[c] = max_nan(r0[c], r1[c])
    for j in range(3, n):
        r0 = window_row(xb, xs, w, od, oh, j)
        for c in range(W):
            colmax[c] = max_nan(colmax[c], r0[c])
    if b > a:
        p = colmax + ct.col[0] + 2 * (a - ct.lo[0])
        done = 0
        if real_t is float:
            # float32 on AVX-512 CPUs: _row_max.h, then the loop below for the last outputs
            done = pypool_max3_s2_row_f32(<const float*>p, <float*>yrow + a, b - a, 0, 0)
        for o in range(done, b - a):
            yrow[a + o] = max_nan(max_nan(p[2 * o], p[2 * o + 1]), p[2 * o + 2])
    triple_edges(yrow, colmax, ct, 0, a)
    triple_edges(yrow, colmax, ct, b, OW)


cdef extern from "_argmax_plane.h":
    int pypool_argmax_plane_f32(const float* x, int64_t xplane, int64_t xrow, int64_t W,
                                float* y, int64_t yplane, int64_t yrow, int64_t* ind,
                                int64_t iplane, int64_t irow, int64_t OH, int64_t OW, int64_t kw,
                                int64_t sh, int64_t sw, int64_t pw, const int64_t* first_h,
                                const int64_t* count_h, const int64_t* first_w,
                                const int64_t* count_w, int64_t r0, int64_t r1) noexcept nogil


cdef inline bint argmax_applies(const Strided5* xs, const Strided5* ys, const Strided5* js,
                                const Windows* w) noexcept nogil:
    """Whether the max-with-indices kernel (_argmax_plane.h) can take these
    output rows of the plane path: 2-D windows without dilation, a column
    stride of 1 or 2, contiguous output and index rows."""
    return (w.sliding and xs.n[1] == 1 and ys.n[1] == 1 and w.kernel[0] == 1
            and w.step[1] == 1 and w.step[2] == 1 and (w.stride[2] == 1 or w.stride[2] == 2)
            and ys.s[3] == 1 and js.s[3] == 1)


cdef int max_plane_rows(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                        int64_t* ind, const Strided5* js, const Windows* w,
                        const ColumnTaps* ct, int64_t r0, int64_t r1) noexcept nogil:
    """Output rows [r0, r1) of max pooling, channels_first with contiguous W.

    Separable: the window's input rows are first folded into column maxima
    (vertical), then each output takes the max of its columns (horizontal).
    Max is exact in any order, and the tie rule keeps the row-major first
    maximum, so this equals the tap-by-tap definition. Returns 1 when a
    scratch buffer cannot be allocated, else 0.
    """
    cdef int64_t OD = ys.n[1], OH = ys.n[2], OW = ys.n[3], H = xs.n[2], W = xs.n[3]
    cdef int64_t kw = w.kernel[2], sw = w.stride[2], plen = ct.plen
    cdef int64_t r, jd, jh, jw, lo, n, o, o0, done
    cdef int64_t b = r0 // (OD * OH), od = (r0 // OH) % OD, oh = r0 % OH
    cdef int32_t tag
    cdef bint first
    cdef const real_t* row
    cdef real_t* yrow
    cdef real_t* dst
    cdef int64_t* irow
    cdef real_t empty = lowest(<real_t>0)
    if real_t is float and ind != NULL and argmax_applies(xs, ys, js, w):
        # float32 with indices on AVX-512 CPUs: the same rule, by a kernel of its
        # own (_argmax_plane.h); without AVX-512 the loop below does them.
        if pypool_argmax_plane_f32(x, xs.s[0], xs.s[2], W, y, ys.s[0], ys.s[2], ind, js.s[0],
                                   js.s[2], OH, OW, kw, w.stride[1], sw, w.pad_begin[2],
                                   w.first[1], w.count[1], w.first[2], w.count[2], r0, r1):
            return 0
    cdef real_t* accv = <real_t*>malloc(<size_t>(OW + 1) * sizeof(real_t))
    cdef real_t* colv = <real_t*>malloc(<size_t>(sw * plen + 1) * sizeof(real_t))
    cdef int32_t* acci = NULL
    cdef int32_t* colt = NULL
    # Values of 2-wide stride-2 windows inside the row (max 2x2 s2, 2x2x2 s2):
    # pair_max_row, no column scratch.
    cdef bint pairs = (ind == NULL and ys.s[3] == 1 and kw == 2 and sw == 2 and w.step[2] == 1
                       and ct.col[0] == 0 and taps_span_row(ct, kw, OW))
    cdef bint triples = (ind == NULL and ys.s[3] == 1 and kw == 3 and sw == 2
                         and w.step[2] == 1 and taps_span_row(ct, kw, OW))
    # ... whose result, too large for the caches, bypasses them (_row_max.h)
    cdef bint stream = triples and result_streams(ys, sizeof(real_t))
    # Values of 3-wide stride-2 windows over several rows (max 3x3 s2):
    # column_triples_row, with colv (at least W long) for the column maxima.
    cdef bint col_triples = (ind == NULL and ys.s[3] == 1 and kw == 3 and sw == 2
                             and w.step[2] == 1)
    # Column strides of 3 and more: each row is folded whole (one contiguous
    # vector loop, where splitting it into stride phases took a strided loop
    # per phase and row) and the taps read at the stride once per output row
    # (strided_max; max_columns_flat with indices). max 4x4 s4 was 6.5x the copy.
    cdef bint flat_cols = sw >= 3
    # float32 values of 3-wide stride-1 windows over 2 or 3 rows (max 3x3 s1):
    # the whole row in registers on AVX-512 CPUs (_row_max.h).
    cdef bint col_triples_s1 = (real_t is float and ind == NULL and ys.s[3] == 1 and kw == 3
                                and sw == 1 and w.sliding and w.step[2] == 1)
    cdef int64_t nrows
    if ind != NULL:
        acci = <int32_t*>malloc(<size_t>(OW + 1) * sizeof(int32_t))
        colt = <int32_t*>malloc(<size_t>(sw * plen + 1) * sizeof(int32_t))
    if accv == NULL or colv == NULL or (ind != NULL and (acci == NULL or colt == NULL)):
        free(accv)
        free(colv)
        free(acci)
        free(colt)
        return 1
    cdef RowsAhead pa
    # Dilated rows too: the hardware prefetcher did not follow rows read every
    # other one (max 3x3 s2 dilation 2 on (32,64,112,112), 1 thread: 20 -> 6.4 ms).
    start_rows_ahead(&pa, pair_prefetch_distance(xs, w, sizeof(real_t), 256) if pairs
                     else pair_prefetch_distance(xs, w, sizeof(real_t), 96)
                     if col_triples or (ind == NULL and w.step[1] > 1) else 0, r0, OD, OH)
    for r in range(r0, r1):
        prefetch_rows_ahead(&pa, x, xs, w, r, r1, OD, OH)
        if pairs and w.count[0][od] * w.count[1][oh] > 0:
            pair_max_row(x + b * xs.s[0], xs, y + offset5(ys, b, od, oh, 0, 0), w, od, oh, OW)
            next_row(&b, &od, &oh, OD, OH)
            continue
        if col_triples and w.count[0][od] * w.count[1][oh] >= 2:
            column_triples_row(y + offset5(ys, b, od, oh, 0, 0), colv, x + b * xs.s[0], xs, w, ct,
                               od, oh, W, OW)
            next_row(&b, &od, &oh, OD, OH)
            continue
        nrows = w.count[0][od] * w.count[1][oh]
        if col_triples_s1 and w.count[0][od] == 1 and 2 <= nrows <= 3:
            row = x + b * xs.s[0] + w.first[0][od] * xs.s[1] + w.first[1][oh] * xs.s[2]
            yrow = y + offset5(ys, b, od, oh, 0, 0)
            if pypool_max3_rows_f32(<const float*>row, <const float*>(row + w.step[1] * xs.s[2]),
                                    <const float*>(row + 2 * w.step[1] * xs.s[2])
                                    if nrows == 3 else NULL, W, -w.pad_begin[2], 1,
                                    <float*>yrow, OW):
                next_row(&b, &od, &oh, OD, OH)
                continue
        if triples and w.count[0][od] * w.count[1][oh] == 1:
            # One input row (1-D, or 1-high windows) of 3-wide stride-2 windows inside
            # it: straight from the row, first maximum kept on ties.
            row = (x + b * xs.s[0] + w.first[0][od] * xs.s[1] + w.first[1][oh] * xs.s[2]
                   + ct.col[0])
            yrow = y + offset5(ys, b, od, oh, 0, 0)
            # Prefetches a few KB ahead, between 32-output pieces: alone, the
            # hardware prefetcher left one thread waiting on its loads (1 thread,
            # float32, (64,256,4096) k3 s2: 32 -> 25 ms). float32 on AVX-512
            # CPUs: _row_max.h, then the loop below for the last outputs.
            done = 0
            if real_t is float:
                done = pypool_max3_s2_row_f32(row, yrow, OW, INLINE_PREFETCH_BYTES, stream)
            for o0 in range(done, OW, 32):
                pypool_prefetch_bytes(<const char*>(row + 2 * o0) + INLINE_PREFETCH_BYTES,
                                      64 * sizeof(real_t))
                for o in range(o0, min(o0 + 32, OW)):
                    yrow[o] = max_nan(max_nan(row[2 * o], row[2 * o + 1]), row[2 * o + 2])
            next_row(&b, &od, &oh, OD, OH)
            continue
        if ind != NULL:
            for o in range(OW):
                accv[o] = empty
                acci[o] = INT32_MAX    # "no candidate yet": loses every index comparison
        first = True
        for jd in range(w.count[0][od]):
            for jh in range(w.count[1][oh]):
                row = (x + b * xs.s[0] + (w.first[0][od] + jd * w.step[0]) * xs.s[1]
                       + (w.first[1][oh] + jh * w.step[1]) * xs.s[2])
                tag = <int32_t>(((w.first[0][od] + jd * w.step[0]) * H
                                 + w.first[1][oh] + jh * w.step[1]) * W)
                if flat_cols:
                    fold_phase(colv, colt, row, 1, W, tag, first)
                else:
                    fold_row(colv, colt, row, W, sw, plen, tag, first)
                first = False
        yrow = y + offset5(ys, b, od, oh, 0, 0)
        if ind == NULL:
            # Values only: reduce the columns straight into a contiguous output row.
            dst = yrow if ys.s[3] == 1 else accv
            if first:   # the window has no input rows
                for o in range(OW):
                    dst[o] = empty
            elif flat_cols:
                strided_max(dst, colv, ct, kw, sw, OW)
            else:
                horizontal_max(dst, colv, ct, kw, OW)
            if ys.s[3] != 1:
                for o in range(OW):
                    yrow[o * ys.s[3]] = accv[o]
        elif not first:   # the window has input rows: reduce its columns
            for jw in range(kw):
                lo = ct.lo[jw]
                n = ct.hi[jw] - lo
                if n > 0:
                    if flat_cols:
                        max_columns_flat(accv + lo, acci + lo, colv + ct.col[jw],
                                         colt + ct.col[jw], n, <int32_t>ct.col[jw],
                                         <int32_t>sw, sw)
                    else:
                        max_columns_flat(accv + lo, acci + lo, colv + ct.src[jw],
                                         colt + ct.src[jw], n, <int32_t>ct.col[jw],
                                         <int32_t>sw, 1)
        if ind != NULL:
            if ys.s[3] == 1:
                copy_lanes(yrow, accv, OW)
            else:
                for o in range(OW):
                    yrow[o * ys.s[3]] = accv[o]
            irow = ind + offset5(js, b, od, oh, 0, 0)
            # Widen to int64 on store; INT32_MAX marks an empty window.
            if js.s[3] == 1:
                for o in range(OW):
                    irow[o] = -1 if acci[o] == INT32_MAX else <int64_t>acci[o]
            else:
                for o in range(OW):
                    irow[o * js.s[3]] = -1 if acci[o] == INT32_MAX else <int64_t>acci[o]
        next_row(&b, &od, &oh, OD, OH)
    if stream:
        pypool_store_fence()
    free(accv)
    free(colv)
    free(acci)
    free(colt)
    return 0


cdef extern from "_rounding.h":
    int pypool_float_rounding_risk(double q) noexcept nogil


cdef inline bint is_pow2(double v) noexcept nogil:
    cdef int e
    return v > 0.0 and frexp(v, &e) == 0.5


cdef double* pow2_reciprocals(const Windows* w, int64_t divisor_override) noexcept nogil:
    """1 / divisor[2][o] for every output column, when dividing by any of the
    call's divisors equals multiplying by its reciprocal: all are powers of two
    (then the reciprocal and the product are exact). NULL otherwise (or if the
    table cannot be allocated: the caller then divides)."""
    cdef int64_t a, o
    cdef double* rec
    if divisor_override > 0:
        return NULL
    for a in range(3):
        for o in range(w.out[a]):
            if not is_pow2(w.divisor[a][o]):
                return NULL
    rec = <double*>malloc(<size_t>(w.out[2] + 1) * sizeof(double))
    if rec != NULL:
        for o in range(w.out[2]):
            rec[o] = 1.0 / w.divisor[2][o]
    return rec


cdef inline void finish_plane_row(float_out_t* yrow, int64_t ystride, double* acc, int64_t n,
                                  int mode, double p, const Windows* w, int64_t od, int64_t oh,
                                  int64_t divisor_override, int64_t ow0,
                                  const double* recw) noexcept nogil:
    """Write outputs [ow0, ow0 + n) of a row of finished averages / norms (yrow points
    at output ow0); the common cases are plain loops.

    Averages divide (on current x86 cores a vectorized division is not what
    limits these loops: a reciprocal with an exact FMA correction, tried,
    was slower), except by powers of two: ``recw`` (see pow2_reciprocals)
    turns those into exact multiplications.
    """
    cdef int64_t o
    cdef double div_dh = <double>w.divisor[0][od] * <double>w.divisor[1][oh]
    cdef double rec_dh = 1.0 / div_dh if recw != NULL else 1.0
    cdef const double* divw = w.divisor[2] + ow0
    # "+ 0.0": a sum starts from +0, so a window of -0 values averages to +0.
    if ystride == 1 and mode == ACC_SUM:
        # Finish and store in one loop (the common case).
        if divisor_override > 0:
            for o in range(n):
                yrow[o] = <float_out_t>((acc[o] + 0.0) / <double>divisor_override)
        elif recw != NULL:
            recw = recw + ow0
            for o in range(n):
                yrow[o] = <float_out_t>((acc[o] + 0.0) * (rec_dh * recw[o]))
        else:
            for o in range(n):
                yrow[o] = <float_out_t>((acc[o] + 0.0) / (div_dh * divw[o]))
        return
    if float_out_t is float:
        if fast_roots(mode, p):
            pypool_float_roots(acc, n, 1.0 / p, yrow, ystride)
            return
    # Otherwise finish in place (contiguous, so divisions vectorize), then store.
    if mode == ACC_SUM and divisor_override > 0:
        for o in range(n):
            acc[o] = (acc[o] + 0.0) / <double>divisor_override
    elif mode == ACC_SUM and recw != NULL:
        recw = recw + ow0
        for o in range(n):
            acc[o] = (acc[o] + 0.0) * (rec_dh * recw[o])
    elif mode == ACC_SUM:
        for o in range(n):
            acc[o] = (acc[o] + 0.0) / (div_dh * divw[o])
    elif mode == ACC_SQUARE:
        for o in range(n):    # (a loop of its own vectorizes: through acc_final's
                              # switch the roots took half of Lp 13x13's time)
            acc[o] = sqrt(acc[o])
    else:
        for o in range(n):
            acc[o] = acc_final(acc[o], mode, p, 1.0)
    if ystride == 1:
        for o in range(n):
            yrow[o] = <float_out_t>acc[o]
    else:
        for o in range(n):
            yrow[o * ystride] = <float_out_t>acc[o]


cdef enum:
    ROW_SLOTS_MAX = 64   # input rows whose horizontal sums a plane-path task keeps
    PADDED_ROW_MAX = 1 << 20   # longest zero-padded row copy (load_padded_row)
    SLICE_SLOTS_BYTES = 262144 # slots for whole depth slices' row sums (reduce_plane_rows)


cdef inline int64_t pow2_at_least(int64_t n) noexcept nogil:
    cdef int64_t q = 1
    while q < n and q <= ROW_SLOTS_MAX:
        q *= 2
    return q


cdef inline double term(real_t v, int mode, double p) noexcept nogil:
    """What one tap contributes to a sum (x, |x|, x*x, |x|**p) or to an inf-norm (|x|)."""
    cdef double a = <double>v
    if mode == ACC_SUM:
        return a
    elif mode == ACC_SQUARE:
        return a * a
    elif mode == ACC_POW:
        return pow_term(a, p)
    return fabs(a)


cdef inline double combine(double a, double b, bint is_max) noexcept nogil:
    if is_max:
        return b if (b > a or b != b) else a
    return a + b


cdef inline const real_t* tap_values(const real_t* row, const real_t* phases,
                                     const ColumnTaps* ct, int64_t sw, int64_t jw) noexcept nogil:
    """Where kernel column jw's values start (at output ct.lo[jw]), consecutively for
    consecutive outputs: the row itself at stride 1, its stride-phase split otherwise."""
    return (row + ct.col[jw]) if sw == 1 else (phases + ct.src[jw])


cdef void edge_taps(double* hs, const real_t* row, const real_t* phases, const ColumnTaps* ct,
                    int64_t o0, int64_t o1, int64_t kw, int64_t sw, int mode,
                    double p) noexcept nogil:
    """horizontal_row for outputs [o0, o1), tap by tap with bounds checks."""
    cdef bint is_max = mode == ACC_MAXABS
    cdef int64_t o, jw, lo
    cdef const real_t* base
    for o in range(o0, o1):
        hs[o] = 0.0
        for jw in range(kw):
            lo = ct.lo[jw]
            if lo <= o < ct.hi[jw]:
                # Tap jw of output o is base[o - lo].
                base = tap_values(row, phases, ct, sw, jw)
                hs[o] = combine(hs[o], term(base[o - lo], mode, p), is_max)


cdef void horizontal_row(double* hs, const real_t* row, real_t* phases, const ColumnTaps* ct,
                         int64_t W, int64_t OW, int64_t kw, int64_t sw, int mode,
                         double p) noexcept nogil:
    """hs[o] = the in-bounds taps of one input row in output column o's window,
    combined left to right (kernel column order).

    Outputs whose windows have every column inside the row (the interior)
    run as one fused loop for 1-3 kernel columns; the few edge outputs, and
    wider kernels, take the taps one at a time.
    """
    cdef bint is_max = mode == ACC_MAXABS
    cdef int64_t jw, o, lo, a, b
    cdef const real_t* base
    cdef const real_t* p0
    cdef const real_t* p1
    cdef const real_t* p2
    if (real_t is float and (mode == ACC_SUM or mode == ACC_SQUARE or mode == ACC_ABS)
            and kw == 3 and sw == 2
            and ct.col[1] - ct.lo[1] * 2 == ct.col[0] - ct.lo[0] * 2 + 1
            and ct.col[2] - ct.lo[2] * 2 == ct.col[0] - ct.lo[0] * 2 + 2
            and pypool_row_sums3_s2_f32(<const float*>row, W, ct.col[0] - ct.lo[0] * 2, hs, OW,
                                        0 if mode == ACC_SUM else 1 if mode == ACC_SQUARE else 2)):
        return    # (float32 3-wide stride-2 sums on AVX-512 CPUs: _window_sums.h)
    if sw > 1:
        deinterleave(row, W, sw, ct.plen, phases)
    inside_outputs(ct, kw, OW, &a, &b)
    if a > 0:
        edge_taps(hs, row, phases, ct, 0, a, kw, sw, mode, p)
    if b < OW:
        edge_taps(hs, row, phases, ct, b, OW, kw, sw, mode, p)
    if a >= b:
        return
    p0 = tap_values(row, phases, ct, sw, 0) + (a - ct.lo[0])
    p1 = p2 = p0
    if kw > 1:
        p1 = tap_values(row, phases, ct, sw, 1) + (a - ct.lo[1])
    if kw > 2:
        p2 = tap_values(row, phases, ct, sw, 2) + (a - ct.lo[2])
    # One plain loop per case (mode and kernel width are loop-invariant), so
    # each vectorizes.
    if mode == ACC_SUM and kw == 1:
        for o in range(b - a):
            hs[a + o] = <double>p0[o]
    elif mode == ACC_SUM and kw == 2:
        for o in range(b - a):
            hs[a + o] = <double>p0[o] + <double>p1[o]
    elif mode == ACC_SUM:
        for o in range(b - a):
            hs[a + o] = (<double>p0[o] + <double>p1[o]) + <double>p2[o]
    elif kw == 1:
        for o in range(b - a):
            hs[a + o] = term(p0[o], mode, p)
    elif is_max:
        for o in range(b - a):
            hs[a + o] = combine(term(p0[o], mode, p), term(p1[o], mode, p), True)
    else:
        for o in range(b - a):
            hs[a + o] = term(p0[o], mode, p) + term(p1[o], mode, p)
    if kw <= 2 or (mode == ACC_SUM and kw == 3):
        return
    for jw in range(3 if mode == ACC_SUM else 2, kw):
        base = tap_values(row, phases, ct, sw, jw) + (a - ct.lo[jw])
        if mode == ACC_SUM:
            for o in range(b - a):
                hs[a + o] = hs[a + o] + <double>base[o]
        elif is_max:
            for o in range(b - a):
                hs[a + o] = combine(hs[a + o], term(base[o], mode, p), True)
        else:
            for o in range(b - a):
                hs[a + o] = hs[a + o] + term(base[o], mode, p)


cdef inline void load_padded_row(double* padded, const real_t* row, int64_t W, int64_t pad,
                                 int mode, double p) noexcept nogil:
    """Copy one input row's terms, as doubles, to padded[pad : pad + W] (the rest
    of ``padded`` stays zero), for sum_padded_taps."""
    cdef double* dst = padded + pad
    cdef int64_t c
    if mode == ACC_SUM:
        for c in range(W):
            dst[c] = <double>row[c]
    else:
        for c in range(W):
            dst[c] = term(row[c], mode, p)


cdef void sum_padded_taps(double* hs, const double* padded, int64_t OW, int64_t kw,
                          int64_t step, bint is_max) noexcept nogil:
    """horizontal_row for stride 1, with no edge cases: it reads a row copied by
    load_padded_row, whose zeros stand for the padding, so every output's
    window is in bounds.

    A zero tap leaves a sum's value (at most the sign of a zero sum changes,
    and finishing turns -0 into +0), a sum of squares or powers and an
    inf-norm unchanged, so the results equal horizontal_row's.
    """
    cdef const double* p1 = padded + step
    cdef const double* p2 = padded + 2 * step
    cdef const double* base
    cdef int64_t o, jw
    if kw == 1:
        for o in range(OW):
            hs[o] = padded[o]
    elif is_max and kw == 2:
        for o in range(OW):
            hs[o] = combine(padded[o], p1[o], True)
    elif is_max:
        for o in range(OW):
            hs[o] = combine(combine(padded[o], p1[o], True), p2[o], True)
    elif kw == 2:
        for o in range(OW):
            hs[o] = padded[o] + p1[o]
    else:
        for o in range(OW):
            hs[o] = (padded[o] + p1[o]) + p2[o]
    for jw in range(3, kw):
        base = padded + jw * step
        if is_max:
            for o in range(OW):
                hs[o] = combine(hs[o], base[o], True)
        else:
            for o in range(OW):
                hs[o] = hs[o] + base[o]


cdef inline void sum_rows_finish(float_out_t* yrow, double** rows, int64_t n, double div_dh,
                                 const double* divw, int64_t OW) noexcept nogil:
    """yrow[o] = average of column o over n >= 2 rows of horizontal sums: the sum of
    vertical_rows, then finish_plane_row's division, in one pass (on AVX-512
    CPUs 32 outputs at a time, _window_sums.h)."""
    cdef const double* r0 = rows[0]
    cdef const double* r1 = rows[1]
    cdef const double* r2
    cdef int64_t o, j
    cdef double s
    if pypool_sum_rows_average(<void*>yrow, float_out_t is float, <const double* const*>rows, n,
                               div_dh, divw, OW):
        return
    if n == 2:
        for o in range(OW):
            yrow[o] = <float_out_t>(((r0[o] + r1[o]) + 0.0) / (div_dh * divw[o]))
    elif n == 3:
        r2 = rows[2]
        for o in range(OW):
            yrow[o] = <float_out_t>((((r0[o] + r1[o]) + r2[o]) + 0.0) / (div_dh * divw[o]))
    else:
        for o in range(OW):
            s = r0[o]
            for j in range(1, n):
                s = s + rows[j][o]
            yrow[o] = <float_out_t>((s + 0.0) / (div_dh * divw[o]))


cdef inline void pair_average_row(float_out_t* yrow, const real_t* row0, const real_t* row1,
                                  double rec_dh, const double* recw, int64_t OW) noexcept nogil:
    """One output row of avg 2x2 stride 2 whose divisors are powers of two: the
    sums of the general path, times the exact reciprocals, in one pass."""
    cdef int64_t o
    if real_t is float and float_out_t is float:
        if pypool_pair_average_row_f32(yrow, row0, row1, rec_dh, recw, OW):
            return    # (AVX-512: the same operations, 8 outputs at a time)
    for o in range(OW):
        yrow[o] = <float_out_t>((((<double>row0[2 * o] + <double>row0[2 * o + 1])
                                  + (<double>row1[2 * o] + <double>row1[2 * o + 1])) + 0.0)
                                * (rec_dh * recw[o]))


cdef void average_row_fused(float_out_t* yrow, double* hnew, const double* padded,
                            const double* r0, const double* r1, int64_t step, double div_dh,
                            const double* divw, int64_t OW) noexcept nogil:
    """One output row of a 3-column average whose last window row is new: that
    row's horizontal sums (as sum_padded_taps, kept in ``hnew`` for later rows),
    the vertical sum (r0 + r1) + new (r1 all zeros for 2-row windows: adding
    +0 changes at most a zero's sign, which the average drops) and the
    average, in one pass."""
    cdef const double* p1 = padded + step
    cdef const double* p2 = padded + 2 * step
    cdef double h
    cdef int64_t o
    for o in range(OW):
        h = (padded[o] + p1[o]) + p2[o]
        hnew[o] = h
        yrow[o] = <float_out_t>((((r0[o] + r1[o]) + h) + 0.0) / (div_dh * divw[o]))


cdef inline void vertical_rows(double* acc, double** rows, int64_t n, int64_t OW,
                               bint is_max) noexcept nogil:
    """acc = rows[0] (+ or max) rows[1] ... in order; 2 and 3 rows in one fused loop."""
    cdef int64_t o, j
    cdef double* r0 = rows[0]
    cdef double* r1
    cdef double* r2
    if n == 1:
        copy_lanes(acc, r0, OW)
        return
    r1 = rows[1]
    if n == 3:
        r2 = rows[2]
        if is_max:
            for o in range(OW):
                acc[o] = combine(combine(r0[o], r1[o], True), r2[o], True)
        else:
            for o in range(OW):
                acc[o] = (r0[o] + r1[o]) + r2[o]
        return
    combine_to(acc, r0, r1, OW, is_max)
    for j in range(2, n):
        combine_into(acc, rows[j], OW, is_max)


cdef extern from "_avg3_plane.h":
    int pypool_avg3_plane_f32(const float* x, int64_t xplane, int64_t xrow, int64_t H,
                              int64_t W, float* y, int64_t yplane, int64_t yrow, int64_t OH,
                              int64_t OW, int64_t kh, int64_t sh, int64_t ph, int64_t pw,
                              int64_t r0, int64_t r1, double div_d, const double* divh,
                              const double* divw, int stream) noexcept nogil
    int pypool_avg3_lanes_f32(const float* x, int64_t xitem, int64_t xrow, int64_t H, int64_t W,
                              int64_t V, float* y, int64_t yitem, int64_t yrow, int64_t OH,
                              int64_t OW, int64_t ph, int64_t pw, int64_t r0, int64_t r1,
                              double div_d, const double* divh, const double* divw,
                              int stream) noexcept nogil


cdef extern from "_stream.h":
    void pypool_drain_f64_as_f32(float* dst, double* src, int64_t n, int stream) noexcept nogil
    void pypool_drain_f64(double* dst, double* src, int64_t n, int stream) noexcept nogil
    void pypool_store_fence() noexcept nogil
    void pypool_store_pairs_f64_as_f32(float* dst, const double* src, int64_t n,
                                       int stream) noexcept nogil
    void pypool_store_pairs_f64(double* dst, const double* src, int64_t n, int stream) noexcept nogil


# Results at least this large are written with streaming stores (_stream.h)
# where a kernel can: gradients (backward.pxi), max results of the band path
# (running.pxi), avg 3x3 results (_avg3_plane.h), channels_last float32 max
# results and indices (_lanes_max.h) and float32 max 3-wide stride-2 rows
# (_row_max.h).
cdef int64_t STREAM_MIN_BYTES = 16 << 20


cdef inline bint result_streams(const Strided5* ys, int64_t itemsize) noexcept nogil:
    """Whether a result is large enough (STREAM_MIN_BYTES) that kernels writing
    it should bypass the caches: it cannot stay in them anyway, and streaming
    stores spare the read of each line before it is written."""
    cdef int64_t nbytes = itemsize, a
    for a in range(5):
        nbytes *= ys.n[a]
    return nbytes >= STREAM_MIN_BYTES


cdef inline int64_t avg3_rows_high(const Strided5* xs, const Strided5* ys,
                                   const Windows* w) noexcept nogil:
    """The window height (3 or 1) with which the avg 3x3 kernels (_avg3_plane.h)
    can take these output rows, as far as the geometry goes, else 0: windows 3
    wide at stride 1 without dilation, padding 0 or 1 along the row, either
    3x3 at stride 1 with padding 0 or 1 and at least two input rows (so every
    window adds two or three rows, as the general paths do), or 1 high
    without padding (1-D windows, or 1x3) at any row stride. Callers check
    the memory layout."""
    cdef int a
    if not w.sliding or xs.n[1] != 1 or ys.n[1] != 1 or w.kernel[0] != 1 or w.pad_begin[0] != 0:
        return 0
    for a in range(1, 3):
        if a == 1 and w.kernel[1] == 1:
            if w.pad_begin[1] != 0 or (ys.n[2] - 1) * w.stride[1] >= xs.n[2]:
                return 0
            continue
        if (w.kernel[a] != 3 or w.stride[a] != 1 or w.step[a] != 1 or w.pad_begin[a] < 0
                or w.pad_begin[a] > 1 or ys.n[a + 1] != xs.n[a + 1] + 2 * w.pad_begin[a] - 2):
            return 0
    if w.kernel[1] == 1:
        return 1
    return 3 if xs.n[2] >= 2 else 0


cdef extern from "_window_sums.h":
    int pypool_row_sums3_s2_f32(const float* row, int64_t W, int64_t c0, double* hs,
                                int64_t n, int terms) noexcept nogil
    int pypool_window_sums_f32(double* acc, const float** rows, int64_t nrows, int64_t s,
                               int64_t k, int64_t n) noexcept nogil
    int pypool_window_sums_f64(double* acc, const double** rows, int64_t nrows, int64_t s,
                               int64_t k, int64_t n) noexcept nogil
    int pypool_lane_window_sums_f32(double* acc, const float* x, int64_t rs, int64_t ts,
                                    int64_t nh, int64_t nw, int64_t V) noexcept nogil
    int pypool_lane_window_sums_f64(double* acc, const double* x, int64_t rs, int64_t ts,
                                    int64_t nh, int64_t nw, int64_t V) noexcept nogil
    int pypool_sum_rows_average(void* y, int f32, const double* const* rows, int64_t n,
                                double dh, const double* dw, int64_t OW) noexcept nogil


cdef inline bint window_sums_apply(const Windows* w, int mode) noexcept nogil:
    """Sums the plane path may take from _window_sums.h: no dilation along the
    row, a column stride of 2 or more, and windows that share no input row
    with the next output row (so row sums kept in slots would never be used
    twice)."""
    return (mode == ACC_SUM and w.stride[2] >= 2 and w.step[2] == 1
            and (w.kernel[1] - 1) * w.step[1] + 1 <= w.stride[1]
            and (w.kernel[0] - 1) * w.step[0] + 1 <= w.stride[0])


cdef bint window_sums_row(double* acc, const real_t** rowp, const real_t* x, const Strided5* xs,
                       const Windows* w, const ColumnTaps* ct, int64_t b, int64_t od,
                       int64_t oh, int64_t OW) noexcept nogil:
    """acc[o] = output o's window sum, for one output row of the plane path, in
    its order: each row's in-bounds taps left to right, then the rows in
    order. The interior (every tap in bounds) by _window_sums.h's transposes,
    the edges here. False (nothing done) when that kernel is not available.
    ``rowp`` holds kernel[0] * kernel[1] pointers."""
    cdef int64_t kw = w.kernel[2], s = w.stride[2], n = 0, jd, jh, jw, o, a, e, shift, r
    cdef int done = 1
    cdef double h
    for jd in range(w.count[0][od]):
        for jh in range(w.count[1][oh]):
            rowp[n] = (x + b * xs.s[0] + (w.first[0][od] + jd * w.step[0]) * xs.s[1]
                       + (w.first[1][oh] + jh * w.step[1]) * xs.s[2])
            n += 1
    if n == 0:
        for o in range(OW):
            acc[o] = 0.0
        return True
    inside_outputs(ct, kw, OW, &a, &e)
    if a < e:
        shift = ct.col[0] + (a - ct.lo[0]) * s    # output a's first tap
        for r in range(n):
            rowp[r] = rowp[r] + shift
        if real_t is float:
            done = pypool_window_sums_f32(acc + a, rowp, n, s, kw, e - a)
        elif real_t is double:
            done = pypool_window_sums_f64(acc + a, rowp, n, s, kw, e - a)
        else:
            done = 0
        for r in range(n):
            rowp[r] = rowp[r] - shift
        if not done:
            return False
    for o in range(OW):
        if a <= o < e:
            continue
        for r in range(n):
            h = 0.0
            for jw in range(kw):
                if ct.lo[jw] <= o < ct.hi[jw]:
                    h = h + <double>rowp[r][ct.col[jw] + (o - ct.lo[jw]) * s]
            acc[o] = h if r == 0 else acc[o] + h
    return True


cdef int reduce_plane_rows(const real_t* x, const Strided5* xs, float_out_t* y,
                           const Strided5* ys, const Windows* w, const ColumnTaps* ct,
                           int mode, double p, int64_t divisor_override, const double* recw,
                           int64_t r0, int64_t r1) noexcept nogil:
    """Output rows [r0, r1) of an average or Lp norm, channels_first with contiguous W.

    Separable: each input row's horizontal sums (one per output column) are
    computed once and kept while later output rows still need them (windows
    overlap when the stride is below the kernel); an output row then adds
    its window's rows of sums, in row-major order. The order is fixed by the
    geometry, not by how rows are split between threads.
    """
    cdef int64_t OD = ys.n[1], OH = ys.n[2], OW = ys.n[3], H = xs.n[2], W = xs.n[3]
    cdef int64_t kw = w.kernel[2], sw = w.stride[2], plen = ct.plen
    cdef int64_t kh3 = 0
    if (real_t is float and float_out_t is float and mode == ACC_SUM and divisor_override <= 0
            and xs.s[3] == 1 and ys.s[3] == 1):
        kh3 = avg3_rows_high(xs, ys, w)
        # avg 3x3 stride 1 (and 3-wide windows one row high, as avg1d k3 s1) of
        # float32 on AVX-512 CPUs: the same sums, by a kernel of its own
        # (_avg3_plane.h); without AVX-512 the loop below does them.
        if kh3 > 0 and pypool_avg3_plane_f32(
                x, xs.s[0], xs.s[2], H, W, y, ys.s[0], ys.s[2], OH, OW, kh3, w.stride[1],
                w.pad_begin[1], w.pad_begin[2], r0, r1, w.divisor[0][0], w.divisor[1],
                w.divisor[2], ys.s[2] == OW and result_streams(ys, sizeof(float))):
            return 0
    # Slots: (d mod ext_d, h mod ext_h) with the window's extents rounded up to
    # powers of two (masks, not divisions, on this per-row path).
    cdef int64_t ext_d = pow2_at_least((w.kernel[0] - 1) * w.step[0] + 1)
    cdef int64_t ext_h = pow2_at_least((w.kernel[1] - 1) * w.step[1] + 1)
    cdef bint keep = ext_d * ext_h <= ROW_SLOTS_MAX
    # 3-D windows: a depth slice's rows of sums serve ext_d depth windows, but
    # slots for ext_h of its rows were overwritten while the task swept down
    # the rows of one depth window, before the next came back to them, so
    # every row's sums were made again for each depth window (3 times for
    # 3x3x3). Slots for whole slices keep them while they fit in the L2.
    if (keep and ext_d > 1 and pow2_at_least(H) >= H
            and ext_d * pow2_at_least(H) * (OW + 1) * <int64_t>sizeof(double) <= SLICE_SLOTS_BYTES):
        ext_h = pow2_at_least(H)
    cdef int64_t nslots = ext_d * ext_h if keep else 1
    cdef int64_t r, jd, jh, d, h, n, slot, tag, o
    cdef int64_t b = r0 // (OD * OH), od = (r0 // OH) % OD, oh = r0 % OH
    cdef bint is_max = mode == ACC_MAXABS
    cdef bint pairs = (mode == ACC_SUM and kw == 2 and sw == 2 and w.step[2] == 1
                       and ct.col[0] == 0 and taps_span_row(ct, kw, OW))
    cdef bint by_windows = ((real_t is float or real_t is double) and not pairs
                         and window_sums_apply(w, mode))
    cdef const real_t** window_rows = NULL
    cdef const real_t* row0
    cdef const real_t* row1
    cdef double* hs
    # acc: the accumulated row, then one row per slot, then a row of zeros.
    cdef double* acc = <double*>malloc(<size_t>((nslots + 2) * (OW + 1)) * sizeof(double))
    cdef int64_t* tags = <int64_t*>malloc(<size_t>nslots * sizeof(int64_t))
    cdef double** rows = <double**>malloc(<size_t>(ROW_SLOTS_MAX + 1) * sizeof(double*))
    cdef real_t* phases = <real_t*>malloc(<size_t>(sw * plen + 1) * sizeof(real_t))
    # Stride 1 reads zero-padded copies of the rows (sum_padded_taps), two of
    # them: the next row is copied one step ahead, so its stores have left the
    # store buffer when the taps read it (a load straddling two stores still
    # in flight waits for them).
    cdef int64_t padded_len = OW + (kw - 1) * w.step[2]
    cdef double* padded = NULL
    cdef double* pbuf[2]
    cdef int64_t ptag[2]
    cdef int i
    cdef bint use_padded = sw == 1 and padded_len <= PADDED_ROW_MAX
    if use_padded:
        padded = <double*>malloc(<size_t>(2 * padded_len + 2) * sizeof(double))
    pbuf[0] = padded
    pbuf[1] = padded + padded_len + 1 if padded != NULL else NULL
    ptag[0] = ptag[1] = -1
    if by_windows:
        window_rows = <const real_t**>malloc(<size_t>(w.kernel[0] * w.kernel[1] + 1)
                                             * sizeof(real_t*))
    if (acc == NULL or tags == NULL or rows == NULL or phases == NULL
            or (use_padded and padded == NULL) or (by_windows and window_rows == NULL)):
        free(window_rows)
        free(acc)
        free(tags)
        free(rows)
        free(phases)
        free(padded)
        return 1
    if padded != NULL:
        for o in range(2 * padded_len + 2):
            padded[o] = 0.0
    # average_row_fused: 3-column averages on padded rows, dividing as they store.
    cdef bint finish_fused = (mode == ACC_SUM and keep and recw == NULL
                              and divisor_override <= 0 and ys.s[3] == 1)
    cdef bint fuse = finish_fused and padded != NULL and kw == 3
    cdef double* zeros = acc + (nslots + 1) * (OW + 1)
    cdef double* pending
    if fuse:
        for o in range(OW):
            zeros[o] = 0.0
    for slot in range(nslots):
        tags[slot] = -1
    for r in range(r0, r1):
        if pairs and w.count[0][od] == 1 and w.count[1][oh] == 2:
            # 2x2 windows at stride 2 wholly inside the rows (avg 2x2 s2): one fused
            # loop, the same additions in the same order as the general path below.
            row0 = x + b * xs.s[0] + w.first[0][od] * xs.s[1] + w.first[1][oh] * xs.s[2]
            row1 = row0 + w.step[1] * xs.s[2]
            if recw != NULL and ys.s[3] == 1:
                # Powers-of-two divisors (always, without padding): average as it stores.
                pair_average_row(y + offset5(ys, b, od, oh, 0, 0), row0, row1,
                                 1.0 / (<double>w.divisor[0][od] * <double>w.divisor[1][oh]),
                                 recw, OW)
                next_row(&b, &od, &oh, OD, OH)
                continue
            for o in range(OW):
                acc[o] = ((<double>row0[2 * o] + <double>row0[2 * o + 1])
                          + (<double>row1[2 * o] + <double>row1[2 * o + 1]))
            finish_plane_row(y + offset5(ys, b, od, oh, 0, 0), ys.s[3], acc, OW, mode, p, w,
                             od, oh, divisor_override, 0, recw)
            next_row(&b, &od, &oh, OD, OH)
            continue
        if by_windows:
            if window_sums_row(acc, window_rows, x, xs, w, ct, b, od, oh, OW):
                finish_plane_row(y + offset5(ys, b, od, oh, 0, 0), ys.s[3], acc, OW, mode, p, w,
                                 od, oh, divisor_override, 0, recw)
                next_row(&b, &od, &oh, OD, OH)
                continue
            by_windows = False    # (no AVX-512: the loop below, from now on)
        n = 0
        pending = NULL
        for jd in range(w.count[0][od]):
            d = w.first[0][od] + jd * w.step[0]
            for jh in range(w.count[1][oh]):
                h = w.first[1][oh] + jh * w.step[1]
                # Rows of one window never share a slot (they lie within ext_d x ext_h).
                slot = (d & (ext_d - 1)) * ext_h + (h & (ext_h - 1)) if keep else 0
                hs = acc + (slot + 1) * (OW + 1)
                tag = (b * xs.n[1] + d) * H + h
                if tags[slot] != tag and padded != NULL:
                    row0 = x + b * xs.s[0] + d * xs.s[1] + h * xs.s[2]
                    i = 0 if ptag[0] == tag else 1
                    if ptag[i] != tag:
                        load_padded_row(pbuf[i], row0, W, w.pad_begin[2], mode, p)
                        ptag[i] = tag
                    if h + 1 < H and ptag[1 - i] != tag + 1:
                        load_padded_row(pbuf[1 - i], row0 + xs.s[2], W, w.pad_begin[2], mode, p)
                        ptag[1 - i] = tag + 1
                    if (fuse and jd == w.count[0][od] - 1 and jh == w.count[1][oh] - 1
                            and (n == 1 or n == 2)):
                        pending = pbuf[i]    # the window's last row: see below
                    else:
                        sum_padded_taps(hs, pbuf[i], OW, kw, w.step[2], is_max)
                    tags[slot] = tag if keep else -1
                elif tags[slot] != tag:
                    horizontal_row(hs, x + b * xs.s[0] + d * xs.s[1] + h * xs.s[2], phases, ct,
                                   W, OW, kw, sw, mode, p)
                    tags[slot] = tag if keep else -1
                if keep:
                    rows[n] = hs
                elif n == 0:
                    copy_lanes(acc, hs, OW)
                else:
                    combine_into(acc, hs, OW, is_max)
                n += 1
        if pending != NULL:
            # The last row is new: add its taps, the rows and finish in one pass.
            average_row_fused(y + offset5(ys, b, od, oh, 0, 0), rows[n - 1], pending, rows[0],
                              rows[1] if n == 3 else zeros, w.step[2],
                              <double>w.divisor[0][od] * <double>w.divisor[1][oh], w.divisor[2], OW)
            next_row(&b, &od, &oh, OD, OH)
            continue
        if finish_fused and n >= 2:
            # Add the rows and finish in one pass (the common average).
            sum_rows_finish(y + offset5(ys, b, od, oh, 0, 0), rows, n,
                            <double>w.divisor[0][od] * <double>w.divisor[1][oh], w.divisor[2], OW)
            next_row(&b, &od, &oh, OD, OH)
            continue
        if n == 0:
            for o in range(OW):
                acc[o] = 0.0
        elif keep:
            vertical_rows(acc, rows, n, OW, is_max)
        finish_plane_row(y + offset5(ys, b, od, oh, 0, 0), ys.s[3], acc, OW, mode, p, w, od, oh,
                         divisor_override, 0, recw)
        next_row(&b, &od, &oh, OD, OH)
    free(window_rows)
    free(acc)
    free(tags)
    free(rows)
    free(phases)
    free(padded)
    return 0


# ----------------------------------------------------------------------------- lanes path

cdef inline bint lanes_are_channels(const Strided5* ys) noexcept nogil:
    """Lanes are the V axis when there is one, else consecutive batch planes."""
    return ys.n[4] > 1


cdef inline int64_t lane_rows(const Strided5* ys) noexcept nogil:
    """Tasks of the lanes path: output rows (od, oh) of each batch or block of planes."""
    cdef int64_t groups = ys.n[0] if lanes_are_channels(ys) else (ys.n[0] + LANE_BLOCK - 1) // LANE_BLOCK
    return groups * ys.n[1] * ys.n[2]


cdef struct LaneRow:
    int64_t b, od, oh     # batch (0 when lanes are planes), output row
    int64_t lane0, nlanes # lanes [lane0, lane0 + nlanes) of this task
    int64_t xl, yl, il    # lane strides of input, output, indices


cdef inline LaneRow decode_lane_row(const Strided5* xs, const Strided5* ys, const Strided5* js,
                                    int64_t task) noexcept nogil:
    cdef LaneRow t
    cdef int axis = 4 if lanes_are_channels(ys) else 0
    cdef int64_t group = task // (ys.n[1] * ys.n[2])
    t.od = (task // ys.n[2]) % ys.n[1]
    t.oh = task % ys.n[2]
    if axis == 4:
        t.b, t.lane0, t.nlanes = group, 0, ys.n[4]
    else:
        t.b, t.lane0 = 0, group * LANE_BLOCK
        t.nlanes = ys.n[0] - t.lane0 if ys.n[0] - t.lane0 < LANE_BLOCK else LANE_BLOCK
    t.xl, t.yl, t.il = xs.s[axis], ys.s[axis], js.s[axis]
    return t


cdef void max_lane_taps(const real_t* x, const Strided5* xs, real_t* accv, int64_t* acci,
                        int32_t* acci32, bint want_ind, bint small_plane, const Windows* w,
                        const LaneRow* t, int64_t od, int64_t oh, int64_t ow, int64_t l0,
                        int64_t nl) noexcept nogil:
    """Fold the taps of output (od, oh, ow) into lanes [l0, l0 + nl) one tap at a time:
    values and, with ``want_ind``, first-maximum indices (int32 on small planes)."""
    cdef int64_t H = xs.n[2], W = xs.n[3], jd, jh, jw, i_d, i_h, i_w, l
    cdef const real_t* xrow
    cdef const real_t* src
    for l in range(nl):
        accv[l] = lowest(<real_t>0)
    if want_ind:
        for l in range(nl):
            acci[l] = -1    # flat indices are >= 0, so -1 marks "no tap taken"
            acci32[l] = -1
    for jd in range(w.count[0][od]):
        i_d = w.first[0][od] + jd * w.step[0]
        for jh in range(w.count[1][oh]):
            i_h = w.first[1][oh] + jh * w.step[1]
            xrow = x + offset5(xs, t.b, i_d, i_h, 0, 0) + l0 * t.xl
            for jw in range(w.count[2][ow]):
                i_w = w.first[2][ow] + jw * w.step[2]
                src = xrow + i_w * xs.s[3]
                # Literal unit strides let the compiler vectorize over lanes.
                if not want_ind and t.xl == 1:
                    max_values(accv, src, 1, nl)
                elif not want_ind:
                    max_values(accv, src, t.xl, nl)
                elif small_plane and t.xl == 1:
                    fold_phase(accv, acci32, src, 1, nl,
                               <int32_t>((i_d * H + i_h) * W + i_w), False)
                elif small_plane:
                    fold_phase(accv, acci32, src, t.xl, nl,
                               <int32_t>((i_d * H + i_h) * W + i_w), False)
                else:
                    max_values_indices(accv, acci, src, t.xl, nl, (i_d * H + i_h) * W + i_w)


cdef extern from "_lanes_max.h":
    enum: PYPOOL_LANE_ROWS_MAX
    ctypedef struct pypool_lane_taps:
        int64_t rows[PYPOOL_LANE_ROWS_MAX]
        int32_t flats[PYPOOL_LANE_ROWS_MAX]
        int64_t nrows, ncols, col_step, flat0, flat_step
    int64_t pypool_lanes_max_f32(const float* base, const pypool_lane_taps* taps, int64_t nl,
                                 float* out, int stream) noexcept nogil
    int64_t pypool_lanes_max_idx_f32(const float* base, const pypool_lane_taps* taps,
                                     int64_t nl, float* out, int64_t* where,
                                     int stream) noexcept nogil


cdef bint plan_lane_taps(pypool_lane_taps* taps, const Strided5* xs, const Windows* w,
                         const LaneRow* t) noexcept nogil:
    """The window rows of output row t (their offsets from column 0 and their flat
    indices), for lanes_max_registers; False when there are none or too many."""
    cdef int64_t jd, jh, i_d, i_h
    taps.nrows = w.count[0][t.od] * w.count[1][t.oh]
    if taps.nrows == 0 or taps.nrows > PYPOOL_LANE_ROWS_MAX:
        return False
    taps.nrows = 0
    for jd in range(w.count[0][t.od]):
        i_d = w.first[0][t.od] + jd * w.step[0]
        for jh in range(w.count[1][t.oh]):
            i_h = w.first[1][t.oh] + jh * w.step[1]
            taps.rows[taps.nrows] = offset5(xs, t.b, i_d, i_h, 0, 0)
            taps.flats[taps.nrows] = <int32_t>((i_d * xs.n[2] + i_h) * xs.n[3])
            taps.nrows += 1
    taps.col_step = w.step[2] * xs.s[3]
    taps.flat_step = w.step[2]
    return True


cdef int64_t lanes_max_registers(const real_t* x, const Strided5* xs, real_t* yrow,
                                 int64_t* irow, const Windows* w, const LaneRow* t,
                                 pypool_lane_taps* taps, int64_t ow, bint stream) noexcept nogil:
    """Values (and, with ``irow``, int64 indices on a plane below 2**31 elements) of
    output column ow for the leading lanes of a float32 row with contiguous lanes,
    through pypool_lanes_max_f32 / _idx_f32 (taps: plan_lane_taps); returns how
    many lanes it did (0 when it does not apply). stream: with streaming stores
    (_lanes_max.h)."""
    cdef const float* base
    taps.ncols = w.count[2][ow]
    if real_t is not float or taps.ncols == 0:
        return 0
    taps.flat0 = w.first[2][ow]
    base = <const float*>x + t.lane0 + w.first[2][ow] * xs.s[3]
    if irow != NULL:
        return pypool_lanes_max_idx_f32(base, taps, t.nlanes, <float*>yrow + t.lane0,
                                        irow + t.lane0, stream)
    return pypool_lanes_max_f32(base, taps, t.nlanes, <float*>yrow + t.lane0, stream)


cdef enum:
    LANE_PREFETCH_ROWS_MAX = 8
    LANE_PREFETCH_BYTES_MAX = 262144   # at most this much of the next row ahead (L2 keeps it)

cdef struct LanePrefetch:
    const char* rows[LANE_PREFETCH_ROWS_MAX]   # the input rows the next task adds
    int64_t nrows, nbytes, chunk                # nrows 0: no prefetch


cdef void plan_lane_prefetch(LanePrefetch* lp, const real_t* x, const Strided5* xs,
                             const Strided5* ys, const Windows* w, int64_t task) noexcept nogil:
    """The lanes path (channels_last) asks, while it pools an output row, for the
    input rows the next output row adds, a chunk per output column: its taps
    hop between the window's rows, and the hardware prefetcher alone leaves
    them waiting on memory (max 3x3 s2 p1 (32,112,112,64) float32, 1 thread:
    12.0 -> 6.0 ms, with indices 19.0 -> 11 ms). Only whole contiguous
    (W, channels) rows, and at most LANE_PREFETCH_BYTES_MAX of them."""
    cdef LaneRow t
    cdef int64_t jd, jh, jh0, nh
    lp.nrows = lp.nbytes = lp.chunk = 0
    if (task + 1 >= lane_rows(ys) or not lanes_are_channels(ys) or xs.s[4] != 1
            or xs.s[3] != xs.n[4] or ys.n[3] == 0):
        return
    t = decode_lane_row(xs, ys, ys, task + 1)
    lp.nbytes = xs.n[3] * xs.n[4] * <int64_t>sizeof(real_t)
    nh = w.count[1][t.oh]
    jh0 = first_new_row(w, nh)
    if (w.count[0][t.od] * (nh - jh0) > LANE_PREFETCH_ROWS_MAX
            or w.count[0][t.od] * (nh - jh0) * lp.nbytes > LANE_PREFETCH_BYTES_MAX):
        return
    for jd in range(w.count[0][t.od]):
        for jh in range(jh0, nh):
            lp.rows[lp.nrows] = <const char*>(x + offset5(xs, t.b, w.first[0][t.od] + jd * w.step[0],
                                                          w.first[1][t.oh] + jh * w.step[1], 0, 0))
            lp.nrows += 1
    lp.chunk = (((lp.nbytes + ys.n[3] - 1) // ys.n[3]) + 63) & ~(<int64_t>63)


cdef inline void lane_prefetch_step(const LanePrefetch* lp, int64_t ow) noexcept nogil:
    """Output column ow's share of the next row's prefetch."""
    cdef int64_t i, off
    if lp.nrows == 0:
        return
    off = ow * lp.chunk
    if off >= lp.nbytes:
        return
    for i in range(lp.nrows):
        pypool_prefetch_bytes(lp.rows[i] + off, min(lp.chunk, lp.nbytes - off))


cdef void max_lane_row(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                       int64_t* ind, const Strided5* js, const Windows* w,
                       int64_t task) noexcept nogil:
    """One output row of max pooling, LANE_BLOCK lanes at a time."""
    cdef LaneRow t = decode_lane_row(xs, ys, js, task)
    cdef int64_t H = xs.n[2], W = xs.n[3], od = t.od, oh = t.oh
    cdef int64_t ow, blk, l0, nl, l, flat
    cdef bint empty_window
    cdef real_t* yrow
    cdef int64_t* irow
    cdef real_t accv[LANE_BLOCK]
    cdef int64_t acci[LANE_BLOCK]
    cdef int32_t acci32[LANE_BLOCK]
    # int32 indices (masks as wide as float32 lanes) whenever the plane allows.
    cdef bint small_plane = xs.n[1] * H * W < INT32_MAX
    cdef int64_t done = 0
    cdef LanePrefetch lp
    cdef pypool_lane_taps taps
    cdef bint registers = (real_t is float and t.xl == 1 and t.yl == 1
                           and (ind == NULL or (small_plane and t.il == 1))
                           and plan_lane_taps(&taps, xs, w, &t))
    # Large results (values and indices together) bypass the caches.
    cdef bint stream = result_streams(ys, sizeof(real_t) + (sizeof(int64_t) if ind != NULL else 0))
    plan_lane_prefetch(&lp, x, xs, ys, w, task)
    for ow in range(ys.n[3]):
        lane_prefetch_step(&lp, ow)
        yrow = y + offset5(ys, t.b, od, oh, ow, 0)
        empty_window = w.count[0][od] * w.count[1][oh] * w.count[2][ow] == 0
        if registers:
            irow = NULL if ind == NULL else ind + offset5(js, t.b, od, oh, ow, 0)
            done = lanes_max_registers(x, xs, yrow, irow, w, &t, &taps, ow, stream)
        for blk in range((t.nlanes - done + LANE_BLOCK - 1) // LANE_BLOCK):
            l0 = t.lane0 + done + blk * LANE_BLOCK
            nl = t.lane0 + t.nlanes - l0 if t.lane0 + t.nlanes - l0 < LANE_BLOCK else LANE_BLOCK
            max_lane_taps(x, xs, accv, acci, acci32, ind != NULL, small_plane, w, &t, od, oh, ow,
                          l0, nl)
            if t.yl == 1:
                copy_lanes(yrow + l0, accv, nl)
            else:
                for l in range(nl):
                    yrow[(l0 + l) * t.yl] = accv[l]
            if ind != NULL:
                flat = (w.first[0][od] * H + w.first[1][oh]) * W + w.first[2][ow]
                if small_plane:
                    for l in range(nl):
                        acci[l] = acci32[l]
                if not empty_window:
                    # Still -1: every tap equals lowest(), so the first tap is the maximum.
                    for l in range(nl):
                        acci[l] = flat if acci[l] < 0 else acci[l]
                irow = ind + offset5(js, t.b, od, oh, ow, 0) + l0 * t.il
                if t.il == 1:
                    copy_lanes(irow, acci, nl)
                else:
                    for l in range(nl):
                        irow[l * t.il] = acci[l]
    if stream:
        pypool_store_fence()


cdef inline void finish_lanes(float_out_t* y, int64_t ystride, const double* acc, int64_t V,
                              int mode, double p, double divisor) noexcept nogil:
    """y[c * ystride] = finished acc[c] for the V lanes of one output position;
    one loop per case, so that the averages' divisions vectorize."""
    cdef int64_t c
    cdef double rec
    # "+ 0.0": a sum starts from +0, so a window of -0 values averages to +0.
    if mode == ACC_SUM and is_pow2(divisor):
        # x / 2**k and x * 2**-k round the same real number: the same bits,
        # without the division (2x2 windows give 4 lanes of results per 16 inputs).
        rec = 1.0 / divisor
        if ystride == 1:
            for c in range(V):
                y[c] = <float_out_t>((acc[c] + 0.0) * rec)
        else:
            for c in range(V):
                y[c * ystride] = <float_out_t>((acc[c] + 0.0) * rec)
    elif mode == ACC_SUM and ystride == 1:
        for c in range(V):
            y[c] = <float_out_t>((acc[c] + 0.0) / divisor)
    elif mode == ACC_SUM:
        for c in range(V):
            y[c * ystride] = <float_out_t>((acc[c] + 0.0) / divisor)
    elif mode == ACC_SQUARE:
        for c in range(V):    # (as finish_plane_row: vector square roots)
            y[c * ystride] = <float_out_t>sqrt(acc[c] + 0.0)
    elif float_out_t is float and fast_roots(mode, p):
        pypool_float_roots(acc, V, 1.0 / p, y, ystride)
    else:
        for c in range(V):
            y[c * ystride] = <float_out_t>acc_final(acc[c] + 0.0, mode, p, divisor)


cdef void reduce_lane_row(const real_t* x, const Strided5* xs, float_out_t* y,
                          const Strided5* ys, const Windows* w, int mode, double p,
                          int64_t divisor_override, int64_t task) noexcept nogil:
    """One output row of an average or Lp norm, LANE_BLOCK lanes at a time."""
    cdef LaneRow t = decode_lane_row(xs, ys, ys, task)
    cdef int64_t od = t.od, oh = t.oh
    cdef int64_t ow, blk, l0, nl, jd, jh, jw, i_d, i_h, i_w, l
    cdef const real_t* xrow
    cdef float_out_t* yrow
    cdef double divisor
    cdef double acc[LANE_BLOCK]
    for ow in range(ys.n[3]):
        yrow = y + offset5(ys, t.b, od, oh, ow, 0)
        divisor = avg_divisor(w, od, oh, ow, divisor_override)
        for blk in range((t.nlanes + LANE_BLOCK - 1) // LANE_BLOCK):
            l0 = t.lane0 + blk * LANE_BLOCK
            nl = t.lane0 + t.nlanes - l0 if t.lane0 + t.nlanes - l0 < LANE_BLOCK else LANE_BLOCK
            for l in range(nl):
                acc[l] = 0.0
            for jd in range(w.count[0][od]):
                i_d = w.first[0][od] + jd * w.step[0]
                for jh in range(w.count[1][oh]):
                    i_h = w.first[1][oh] + jh * w.step[1]
                    xrow = x + offset5(xs, t.b, i_d, i_h, 0, 0) + l0 * t.xl
                    for jw in range(w.count[2][ow]):
                        i_w = w.first[2][ow] + jw * w.step[2]
                        if t.xl == 1:   # a literal unit stride vectorizes
                            accumulate(acc, xrow + i_w * xs.s[3], 1, nl, mode, p)
                        else:
                            accumulate(acc, xrow + i_w * xs.s[3], t.xl, nl, mode, p)
            finish_lanes(yrow + l0 * t.yl, t.yl, acc, nl, mode, p, divisor)


# ----------------------------------------------------------------------------- whole-plane sums

cdef inline bint is_global_sum(const Strided5* xs, const Strided5* ys, const Windows* w,
                               int mode) noexcept nogil:
    """A global average (spatial axes merged into W, one window covering all of
    it); with mode ACC_SUM, the same test serves global max."""
    return (mode == ACC_SUM and ys.n[1] * ys.n[2] * ys.n[3] == 1
            and xs.n[1] == 1 and xs.n[2] == 1
            and w.count[0][0] == 1 and w.count[1][0] == 1
            and w.first[2][0] == 0 and w.count[2][0] == xs.n[3] and w.step[2] == 1)


cdef inline double sum_contiguous(const real_t* p, int64_t n) noexcept nogil:
    """Sum of p[0:n] in double with 8 interleaved partial sums, combined pairwise.

    A fixed order (it depends on n only, not on alignment or threads), and 8
    independent chains of adds instead of one long one. The partial sums are
    separate locals so they stay in registers.
    """
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    cdef int64_t i = 0, rest
    while i + 8 <= n:
        a0 = a0 + <double>p[i]
        a1 = a1 + <double>p[i + 1]
        a2 = a2 + <double>p[i + 2]
        a3 = a3 + <double>p[i + 3]
        a4 = a4 + <double>p[i + 4]
        a5 = a5 + <double>p[i + 5]
        a6 = a6 + <double>p[i + 6]
        a7 = a7 + <double>p[i + 7]
        i += 8
    rest = n - i
    if rest > 0:
        a0 = a0 + <double>p[i]
    if rest > 1:
        a1 = a1 + <double>p[i + 1]
    if rest > 2:
        a2 = a2 + <double>p[i + 2]
    if rest > 3:
        a3 = a3 + <double>p[i + 3]
    if rest > 4:
        a4 = a4 + <double>p[i + 4]
    if rest > 5:
        a5 = a5 + <double>p[i + 5]
    if rest > 6:
        a6 = a6 + <double>p[i + 6]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


cdef enum:
    PLANE_GROUP = 16   # channels_first planes per task of a global average
    # The AVX-512 global sums (both layouts) can prefetch this many bytes
    # ahead, for inputs of more than PLANES_IN_CACHE elements (1 MiB of
    # float32, an L2's worth); channels_first, only planes of at most 1/8 of
    # it (see global_sum_planes). Off (0): on the Zen 4 machine of 2026-11-30
    # a 12 KiB prefetch made (64,2048,7,7) twice as slow, 1 thread 2.0-2.2 ->
    # 1.0-1.1 ms without it (a C model: 2.0 -> 1.35 ms from memory, no gain
    # at any distance from cache), where an earlier machine had measured it
    # best at 12-16 KiB (NHWC (64,7,7,2048) 0.72 -> 0.57 ms).
    PLANES_PREFETCH = 0
    PLANES_IN_CACHE = 262144


cdef inline int64_t global_prefetch_bytes(const Strided5* xs) noexcept nogil:
    """How far ahead the AVX-512 global sums prefetch this input (0: not at all)."""
    return PLANES_PREFETCH if xs.n[0] * xs.s[0] > PLANES_IN_CACHE else 0


cdef extern from "_sums.h":
    int pypool_sum_planes_f32(const float* p, int64_t stride, int64_t n, int64_t count,
                              double* sums) noexcept nogil
    int64_t pypool_average_planes_f32(const float* p, int64_t stride, int64_t n, int64_t count,
                                      double divisor, double recip, float* y,
                                      int64_t ystride, int64_t prefetch_bytes) noexcept nogil
    int pypool_sums_enable_avx512(int allow) noexcept nogil
    int pypool_add_row_f32(double* acc, const float* row, int64_t n, int64_t ahead) noexcept nogil
    int pypool_pair_average_row_f32(float* y, const float* r0, const float* r1, double rec_dh,
                                    const double* recw, int64_t n) noexcept nogil


cdef inline void store_average(float_out_t* y, double acc, double divisor,
                               double recip) noexcept nogil:
    """y = acc / divisor; a float32 result multiplies by ``recip`` instead unless the
    product lies near a float rounding midpoint (see _rounding.h)."""
    cdef double q = acc * recip
    if float_out_t is not float or pypool_float_rounding_risk(q):
        q = acc / divisor
    y[0] = <float_out_t>q


cdef void global_sum_planes(const real_t* x, const Strided5* xs, float_out_t* y,
                            const Strided5* ys, double divisor, double recip,
                            int64_t group) noexcept nogil:
    """Averages of the channels_first planes (merged spatial axes) of one group:
    planes [group * PLANE_GROUP, ...) up to the batch size.

    ``recip`` is 1 / divisor. A scalar division per plane would dominate the
    few adds of a small plane, so a float32 result multiplies instead, unless
    the product lies near a float rounding midpoint (then it could round
    differently from the quotient, and the plane divides; see _rounding.h).
    """
    cdef int64_t b0 = group * PLANE_GROUP, b, j, done
    cdef int64_t nb = xs.n[0] - b0 if xs.n[0] - b0 < PLANE_GROUP else PLANE_GROUP
    cdef double sums[PLANE_GROUP]
    cdef double acc
    cdef const real_t* p
    if real_t is float and float_out_t is float and xs.s[3] == 1:
        # AVX-512 CPUs: 8 planes at a time, divided and stored; the same results.
        # It asks for the next 8 planes in one burst, which pays only while they
        # are small: larger planes stream well alone, and their burst (of up to
        # the next 400 KB, for 112 x 112) evicted what was being read (1 thread,
        # (16,64,112,112) 2.6 -> 1.9 ms, (256,64,56,56) 15.5 -> 12.4 ms; 7 x 7
        # and 14 x 14 planes keep prefetching: without, 14 x 14 took 15 -> 18 ms).
        done = pypool_average_planes_f32(x + b0 * xs.s[0], xs.s[0], xs.n[3], nb, divisor,
                                         recip, y + b0 * ys.s[0], ys.s[0],
                                         global_prefetch_bytes(xs)
                                         if 8 * xs.s[0] * <int64_t>sizeof(float) <= PLANES_PREFETCH
                                         else 0)
        b0 += done
        nb -= done
    if real_t is float and xs.s[3] == 1:
        # Several planes side by side (AVX2 builds); the same sums as below.
        if pypool_sum_planes_f32(x + b0 * xs.s[0], xs.s[0], xs.n[3], nb, sums):
            for b in range(nb):
                store_average(y + (b0 + b) * ys.s[0], sums[b], divisor, recip)
            return
    for b in range(b0, b0 + nb):
        p = x + b * xs.s[0]
        if xs.s[3] == 1:
            acc = sum_contiguous(p, xs.n[3])
        else:
            acc = 0.0
            for j in range(xs.n[3]):
                acc = acc + <double>p[j * xs.s[3]]
        store_average(y + b * ys.s[0], acc, divisor, recip)


cdef inline int64_t channel_block(const Strided5* ys, int nthreads) noexcept nogil:
    """Channels per task of a channels_last global average: all of them (one
    sequential sweep over each batch element) unless that leaves too few tasks."""
    cdef int64_t want = 4 * <int64_t>nthreads, C = ys.n[4], split, block
    if ys.n[0] >= want:
        return C
    split = (want + ys.n[0] - 1) // ys.n[0]
    block = (C + split - 1) // split
    return block if block > 64 else (C if C < 64 else 64)


cdef int global_sum_channels(const real_t* x, const Strided5* xs, float_out_t* y,
                             const Strided5* ys, double divisor, int64_t cblock,
                             int64_t task) noexcept nogil:
    """Averages of ``cblock`` channels of one batch element of a channels_last input.

    Walks the positions in memory order with the block's channels summing
    side by side (long contiguous rows), instead of LANE_BLOCK channels at a
    time through all positions. Each channel still adds its terms in position
    order, so the block size does not change results. Returns 1 when scratch
    cannot be allocated.
    """
    cdef int64_t nblocks = (ys.n[4] + cblock - 1) // cblock
    cdef int64_t b = task // nblocks, c0 = (task % nblocks) * cblock
    cdef int64_t nc = ys.n[4] - c0 if ys.n[4] - c0 < cblock else cblock
    cdef int64_t j, c
    cdef const real_t* row = x + b * xs.s[0] + c0 * xs.s[4]
    cdef float_out_t* yrow = y + b * ys.s[0] + c0 * ys.s[4]
    cdef double* acc = <double*>malloc(<size_t>nc * sizeof(double))
    if acc == NULL:
        return 1
    for c in range(nc):
        acc[c] = 0.0
    # float32 on AVX-512 CPUs: pypool_add_row_f32, the same adds, prefetching.
    cdef int64_t ahead = global_prefetch_bytes(xs) // <int64_t>sizeof(float)
    for j in range(xs.n[3]):
        if real_t is float and xs.s[4] == 1 and pypool_add_row_f32(acc, row + j * xs.s[3], nc,
                                                                   ahead):
            pass
        elif xs.s[4] == 1:
            accumulate(acc, row + j * xs.s[3], 1, nc, ACC_SUM, 0.0)
        else:
            accumulate(acc, row + j * xs.s[3], xs.s[4], nc, ACC_SUM, 0.0)
    for c in range(nc):
        yrow[c * ys.s[4]] = <float_out_t>(acc[c] / divisor)
    free(acc)
    return 0


include "running.pxi"
include "lane_bands.pxi"
include "lane_sums.pxi"
include "depth_first.pxi"


# ----------------------------------------------------------------------------- drivers

cdef inline bint use_plane_path(const Strided5* xs, const Strided5* ys,
                                const Windows* w) noexcept nogil:
    """Plane path: sliding windows, no lanes, contiguous W, rows long enough to
    vectorize, and planes small enough for its int32 column indices."""
    return (w.sliding and ys.n[4] == 1 and xs.s[3] == 1 and ys.n[3] >= 4
            and xs.n[1] * xs.n[2] * xs.n[3] < INT32_MAX - 1)


cdef inline int64_t chunk_count(int64_t rows, int nthreads) noexcept nogil:
    """Plane-path chunks: a few per thread (for balance), each allocating its scratch once."""
    cdef int64_t n = 4 * <int64_t>nthreads
    return rows if rows < n else n


cdef enum:
    RUN_CHANNELS = 128    # channels a channels_last running call takes at most, when it
                          # must be split (channel_split)


cdef bint channel_split(const Strided5* xs, const Strided5* ys, const Windows* w,
                        int64_t* group) noexcept nogil:
    """Does a channels_last call go by groups of channels? Where the running
    path refuses it with every channel (a task's rows of all channels past
    RUN_SCRATCH_MAX: 512 channels of max 13x13, which then took the lanes
    path's k*k taps per output, 40-50x slower) but takes at most RUN_CHANNELS
    of them. *group: the channels of a group (split evenly). Each group is
    then pooled as a call of its own on the channels' slice; lanes never mix,
    so the results are those of one call."""
    cdef Strided5 gx = xs[0]
    cdef Strided5 gy = ys[0]
    cdef int64_t V = ys.n[4], n
    if V <= RUN_CHANNELS or use_running_path(xs, ys, w, False):
        return False
    n = (V + RUN_CHANNELS - 1) // RUN_CHANNELS
    group[0] = (V + n - 1) // n
    gx.n[4] = group[0]
    gy.n[4] = group[0]
    return use_running_path(&gx, &gy, w, False)


cdef inline void channel_slice(Strided5* gx, Strided5* gy, const Strided5* xs,
                               const Strided5* ys, int64_t c0, int64_t group) noexcept nogil:
    """gx, gy: xs and ys narrowed to channels [c0, c0 + group) (or to the end)."""
    gx[0] = xs[0]
    gy[0] = ys[0]
    gx.n[4] = ys.n[4] - c0 if ys.n[4] - c0 < group else group
    gy.n[4] = gx.n[4]


cdef inline real_t max_contiguous(const real_t* p, int64_t n) noexcept nogil:
    """max_nan of p[0:n] (n >= 1) in 8 interleaved lanes (lane j takes p[j],
    p[j+8], ...: independent chains), then the lanes in order. A zero maximum
    is then the first zero of p, so its sign is the row-major first
    maximum's, as on the direct paths. (GCC keeps this loop scalar; float
    planes without NaN or a zero maximum take _plane_max.h's vectors.)"""
    cdef real_t m[8]
    cdef real_t r
    cdef int64_t i, j, full = n - n % 8
    if full == 0:
        r = p[0]
        for i in range(1, n):
            r = max_nan(r, p[i])
    else:
        for j in range(8):
            m[j] = p[j]
        for i in range(8, full, 8):
            for j in range(8):
                m[j] = max_nan(m[j], p[i + j])
        r = max_nan(max_nan(max_nan(m[0], m[1]), max_nan(m[2], m[3])),
                    max_nan(max_nan(m[4], m[5]), max_nan(m[6], m[7])))
        for i in range(full, n):
            r = max_nan(r, p[i])
    if r == 0:
        for i in range(n):
            if p[i] == 0:
                return p[i]
    return r


cdef extern from "_plane_max.h":
    int pypool_plane_max_f32(const float* p, int64_t n, float* out) noexcept nogil
    int pypool_plane_max_f64(const double* p, int64_t n, double* out) noexcept nogil


cdef void global_max_planes(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                            int64_t b0, int64_t b1) noexcept nogil:
    """Planes [b0, b1) of a global max (values) over contiguous planes: float
    planes by _plane_max.h's vectors where they can, else max_contiguous."""
    cdef int64_t b
    cdef real_t* dst
    for b in range(b0, b1):
        dst = y + b * ys.s[0]
        if real_t is float:
            if pypool_plane_max_f32(x + b * xs.s[0], xs.n[3], dst):
                continue
        elif real_t is double:
            if pypool_plane_max_f64(x + b * xs.s[0], xs.n[3], dst):
                continue
        dst[0] = max_contiguous(x + b * xs.s[0], xs.n[3])


cdef int max_forward(const real_t* x, const Strided5* xs, real_t* y, const Strided5* ys,
                     int64_t* ind, const Strided5* js, const Windows* w,
                     int nthreads) noexcept nogil:
    """Returns the number of chunks that could not allocate scratch (0 on success)."""
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2], tasks, chunks
    cdef int failed = 0
    cdef ColumnTaps ct
    cdef RunPlan rp
    cdef Strided5 gx, gy
    cdef int64_t c0, group
    if (ind == NULL and is_global_sum(xs, ys, w, ACC_SUM) and ys.n[4] == 1 and xs.s[3] == 1
            and xs.n[3] >= 1):
        # A global max (spatial axes merged): one plane per output, each a
        # contiguous run (the lanes path took a window table per output: 5x the copy).
        chunks = chunk_count(ys.n[0], nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                global_max_planes(x, xs, y, ys, r * ys.n[0] // chunks,
                                  (r + 1) * ys.n[0] // chunks)
        else:
            global_max_planes(x, xs, y, ys, 0, ys.n[0])
        return 0
    if ind == NULL and use_depth_first(xs, ys, w, True, sizeof(real_t)):
        failed = depth_first_max(x, xs, y, ys, w, nthreads)
        if failed >= 0:
            return failed
        failed = 0    # no memory for the intermediate: the direct paths
    if ind == NULL and channel_split(xs, ys, w, &group):
        c0 = 0
        while c0 < ys.n[4]:
            channel_slice(&gx, &gy, xs, ys, c0, group)
            failed += max_forward(x + c0 * xs.s[4], &gx, y + c0 * ys.s[4], &gy, NULL, js, w,
                                  nthreads)
            c0 += group
    elif use_running_path(xs, ys, w, ind != NULL) or use_few_lane_rows(xs, ys, w, ind != NULL):
        plan_running(&rp, ys, w, False, sizeof(real_t))
        tasks = rp.groups * rp.strips
        chunks = chunk_count(tasks, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += running_max_tasks(x, xs, y, ys, w, &rp, r * tasks // chunks,
                                            (r + 1) * tasks // chunks)
        else:
            for r in range(chunks):
                failed += running_max_tasks(x, xs, y, ys, w, &rp, r * tasks // chunks,
                                            (r + 1) * tasks // chunks)
    elif use_plane_path(xs, ys, w):
        if plan_columns(&ct, w, xs.n[3], ys.n[3]):
            return 1
        chunks = chunk_count(rows, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += max_plane_rows(x, xs, y, ys, ind, js, w, &ct, r * rows // chunks,
                                         (r + 1) * rows // chunks)
        else:
            for r in range(chunks):
                failed += max_plane_rows(x, xs, y, ys, ind, js, w, &ct, r * rows // chunks,
                                         (r + 1) * rows // chunks)
        free(ct.lo)
    else:
        tasks = lane_rows(ys)
        if nthreads > 1:
            for r in prange(tasks, num_threads=nthreads, schedule="static"):
                max_lane_row(x, xs, y, ys, ind, js, w, r)
        else:
            for r in range(tasks):
                max_lane_row(x, xs, y, ys, ind, js, w, r)
    return failed


cdef int reduce_forward(const real_t* x, const Strided5* xs, float_out_t* y, const Strided5* ys,
                        const Windows* w, int op, int64_t divisor_override, double p,
                        int nthreads) noexcept nogil:
    """Returns the number of chunks that could not allocate scratch (0 on success)."""
    cdef int64_t r, rows = ys.n[0] * ys.n[1] * ys.n[2], tasks, chunks, cblock
    cdef double divisor
    cdef int mode = acc_mode(op, p)
    cdef int failed = 0
    cdef ColumnTaps ct
    cdef RunPlan rp
    cdef LanePlan lp
    cdef double* recw = NULL
    cdef Strided5 gx, gy
    cdef int64_t c0, group
    if (mode == ACC_SUM and not is_global_sum(xs, ys, w, mode)
            and use_depth_first(xs, ys, w, True, sizeof(double))):
        failed = depth_first_average(x, xs, y, ys, w, divisor_override, nthreads)
        if failed >= 0:
            return failed
        failed = 0    # no memory for the intermediate: the direct paths
    if is_global_sum(xs, ys, w, mode) and ys.n[4] == 1:
        divisor = avg_divisor(w, 0, 0, 0, divisor_override)
        tasks = (ys.n[0] + PLANE_GROUP - 1) // PLANE_GROUP
        if nthreads > 1:
            for r in prange(tasks, num_threads=nthreads, schedule="static"):
                global_sum_planes(x, xs, y, ys, divisor, 1.0 / divisor, r)
        else:
            for r in range(tasks):
                global_sum_planes(x, xs, y, ys, divisor, 1.0 / divisor, r)
    elif is_global_sum(xs, ys, w, mode):
        cblock = channel_block(ys, nthreads)
        divisor = avg_divisor(w, 0, 0, 0, divisor_override)
        tasks = ys.n[0] * ((ys.n[4] + cblock - 1) // cblock)
        if nthreads > 1:
            for r in prange(tasks, num_threads=nthreads, schedule="static"):
                failed += global_sum_channels(x, xs, y, ys, divisor, cblock, r)
        else:
            for r in range(tasks):
                failed += global_sum_channels(x, xs, y, ys, divisor, cblock, r)
    elif use_lane_bands(xs, ys, w, mode, real_t is float or real_t is double):
        plan_lane_bands(&lp, xs, ys, w, nthreads)
        tasks = lp.rp.groups * lp.rp.strips * lp.cgroups
        # one chunk a thread: each chunk allocates its scratch (up to 1.2 MB of
        # fresh pages), and the tasks are alike in cost (A/B against four chunks a
        # thread: 2-6% faster at one thread, the same at two)
        chunks = tasks if tasks < nthreads else nthreads
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += lane_band_tasks(x, xs, y, ys, w, &lp, divisor_override,
                                          r * tasks // chunks, (r + 1) * tasks // chunks)
        else:
            for r in range(chunks):
                failed += lane_band_tasks(x, xs, y, ys, w, &lp, divisor_override,
                                          r * tasks // chunks, (r + 1) * tasks // chunks)
    elif channel_split(xs, ys, w, &group):
        c0 = 0
        while c0 < ys.n[4]:
            channel_slice(&gx, &gy, xs, ys, c0, group)
            failed += reduce_forward(x + c0 * xs.s[4], &gx, y + c0 * ys.s[4], &gy, w, op,
                                     divisor_override, p, nthreads)
            c0 += group
    elif (not use_running_path(xs, ys, w, False) and ys.n[4] >= FEW_LANES
          and use_lane_direct(xs, ys, w)):
        chunks = chunk_count(rows, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += lane_direct_rows(x, xs, y, ys, w, mode, p, divisor_override,
                                           r * rows // chunks, (r + 1) * rows // chunks)
        else:
            for r in range(chunks):
                failed += lane_direct_rows(x, xs, y, ys, w, mode, p, divisor_override,
                                           r * rows // chunks, (r + 1) * rows // chunks)
    elif (not use_running_path(xs, ys, w, False) and ys.n[4] >= FEW_LANES
          and use_lane_sums(xs, ys, w, mode)):
        # (fewer channels take the separable lanes below, whose rows pool flattened)
        chunks = chunk_count(rows, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += lane_sum_rows(x, xs, y, ys, w, mode, p, divisor_override,
                                        r * rows // chunks, (r + 1) * rows // chunks)
        else:
            for r in range(chunks):
                failed += lane_sum_rows(x, xs, y, ys, w, mode, p, divisor_override,
                                        r * rows // chunks, (r + 1) * rows // chunks)
    elif use_running_path(xs, ys, w, False) or use_separable_lanes(xs, ys, w, mode):
        if mode == ACC_SUM:
            recw = pow2_reciprocals(w, divisor_override)
        plan_running(&rp, ys, w, True, sizeof(float_out_t))
        tasks = rp.groups * rp.strips
        chunks = chunk_count(tasks, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += running_reduce_tasks(x, xs, y, ys, w, &rp, mode, p, divisor_override,
                                               recw, r * tasks // chunks, (r + 1) * tasks // chunks)
        else:
            for r in range(chunks):
                failed += running_reduce_tasks(x, xs, y, ys, w, &rp, mode, p, divisor_override,
                                               recw, r * tasks // chunks, (r + 1) * tasks // chunks)
    elif use_plane_path(xs, ys, w):
        if plan_columns(&ct, w, xs.n[3], ys.n[3]):
            return 1
        if mode == ACC_SUM:
            recw = pow2_reciprocals(w, divisor_override)
        chunks = chunk_count(rows, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += reduce_plane_rows(x, xs, y, ys, w, &ct, mode, p, divisor_override, recw,
                                            r * rows // chunks, (r + 1) * rows // chunks)
        else:
            for r in range(chunks):
                failed += reduce_plane_rows(x, xs, y, ys, w, &ct, mode, p, divisor_override, recw,
                                            r * rows // chunks, (r + 1) * rows // chunks)
        free(ct.lo)
    else:
        tasks = lane_rows(ys)
        if nthreads > 1:
            for r in prange(tasks, num_threads=nthreads, schedule="static"):
                reduce_lane_row(x, xs, y, ys, w, mode, p, divisor_override, r)
        else:
            for r in range(tasks):
                reduce_lane_row(x, xs, y, ys, w, mode, p, divisor_override, r)
    free(recw)
    return failed


# ----------------------------------------------------------------------------- Python entry points

def max_pool_forward(const real_t[:, :, :, :, :] x, real_t[:, :, :, :, :] y,
                     ind, bint want_ind, geom, bint adaptive, int nthreads):
    """Max over sliding (adaptive=False) or adaptive windows of 5-D views.

    ``ind`` is the 5-D int64 index output, read only with ``want_ind`` (a
    buffer acquisition is a good part of a small call's cost). ``geom`` holds
    3 tuples (in_size, out_size, kernel, stride, dilation, pad_begin,
    pad_end); adaptive windows use only the sizes.
    """
    cdef Strided5 xs, ys, js
    cdef Windows w
    cdef int64_t[:, :, :, :, :] iv
    cdef int64_t* ip = NULL
    describe(&xs, x.shape, x.strides, sizeof(real_t))
    describe(&ys, y.shape, y.strides, sizeof(real_t))
    js = ys
    if want_ind:
        iv = ind
        describe(&js, iv.shape, iv.strides, sizeof(int64_t))
        ip = &iv[0, 0, 0, 0, 0]
    make_windows(&w, geom, adaptive, False)
    cdef int failed
    try:
        with nogil:
            failed = max_forward(&x[0, 0, 0, 0, 0], &xs, &y[0, 0, 0, 0, 0], &ys, ip, &js, &w,
                                 nthreads)
    finally:
        free_windows(&w)
    if failed:
        raise MemoryError("pypool: cannot allocate kernel scratch buffers")


def reduce_pool_forward(int op, const real_t[:, :, :, :, :] x, float_out_t[:, :, :, :, :] y,
                        geom, bint adaptive, bint count_include_pad, int64_t divisor_override,
                        double p, int nthreads):
    """Average (op=0) or Lp norm (op=1, order p) over windows of 5-D views."""
    cdef Strided5 xs, ys
    cdef Windows w
    describe(&xs, x.shape, x.strides, sizeof(real_t))
    describe(&ys, y.shape, y.strides, sizeof(float_out_t))
    make_windows(&w, geom, adaptive, count_include_pad)
    sliding_if_equal_cells(&w, &xs)
    cdef int failed
    try:
        with nogil:
            failed = reduce_forward(&x[0, 0, 0, 0, 0], &xs, &y[0, 0, 0, 0, 0], &ys, &w, op,
                                    divisor_override, p, nthreads)
    finally:
        free_windows(&w)
    if failed:
        raise MemoryError("pypool: cannot allocate kernel scratch buffers")

