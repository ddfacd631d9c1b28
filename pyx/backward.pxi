# Backward passes and max-unpooling.
#
# Gather (avg, adaptive avg, global avg, and the window sums of Lp): every
# input-gradient element is computed once, by one thread, from the outputs
# whose windows read it (the Covers tables), summed in double in ascending
# output order and rounded once. No zeroing pass, no races, and the result
# does not depend on the thread count. Sliding windows on channels_first data
# take a plane path (gather_plane_rows) that adds the same terms in the same
# order with contiguous loops.
#
# Scatter (max backward, max_unpool): work is split by batch plane b; planes
# never share an element, so no two threads write the same place. Within a
# plane the outputs are visited in row-major order.

from libc.string cimport memset

cdef enum:
    GRADIENT_SLOTS_MAX = 64   # output rows of weighted gradients a plane-path task keeps

cdef extern from "_scatter.h":
    void pypool_scatter_add_f32(double* acc, const int64_t* ind, const float* grad,
                                int64_t n) noexcept nogil
    void pypool_scatter_add_f64(double* acc, const int64_t* ind, const double* grad,
                                int64_t n) noexcept nogil


cdef void gather_row(const float_out_t* g, const Strided5* gs, float_out_t* dx,
                     const Strided5* ds, const Windows* w, const Covers* c,
                     bint use_divisor, int64_t divisor_override, int64_t r) noexcept nogil:
    """One input row (b, id, ih) of a window-sum adjoint: dx = sum of g / divisor."""
    cdef int64_t D = ds.n[1], H = ds.n[2], W = ds.n[3], V = ds.n[4]
    cdef int64_t b = r // (D * H), i_d = (r // H) % D, i_h = r % H
    cdef int64_t i_w, v, a, e, f, od, oh, ow
    cdef double acc, div_dh, divisor
    for i_w in range(W):
        for v in range(V):
            acc = 0.0
            for a in range(c.offset[0][i_d], c.offset[0][i_d + 1]):
                od = c.outs[0][a]
                for e in range(c.offset[1][i_h], c.offset[1][i_h + 1]):
                    oh = c.outs[1][e]
                    div_dh = w.divisor[0][od] * w.divisor[1][oh]
                    for f in range(c.offset[2][i_w], c.offset[2][i_w + 1]):
                        ow = c.outs[2][f]
                        if not use_divisor:
                            acc = acc + <double>g[offset5(gs, b, od, oh, ow, v)]
                        else:
                            if divisor_override > 0:
                                divisor = <double>divisor_override
                            else:
                                divisor = div_dh * w.divisor[2][ow]
                            acc = acc + <double>g[offset5(gs, b, od, oh, ow, v)] / divisor
            dx[offset5(ds, b, i_d, i_h, i_w, v)] = <float_out_t>acc



cdef inline void interleave(const double* phases, int64_t W, int64_t s, int64_t plen,
                            float_out_t* row, int64_t stride) noexcept nogil:
    """row[c * stride] = phases[(c % s) * plen + c // s]: undo the stride-phase split."""
    cdef int64_t i, p, half = W // 2
    if s == 1:
        if stride == 1:
            for i in range(W):
                row[i] = <float_out_t>phases[i]
        else:
            for i in range(W):
                row[i * stride] = <float_out_t>phases[i]
    elif s == 2 and stride == 1:
        for i in range(half):
            row[2 * i] = <float_out_t>phases[i]
            row[2 * i + 1] = <float_out_t>phases[plen + i]
        if W % 2:
            row[W - 1] = <float_out_t>phases[half]
    else:
        for p in range(s):
            for i in range((W - p + s - 1) // s):
                row[(p + i * s) * stride] = <float_out_t>phases[p * plen + i]


cdef inline void weighted_gradients(double* gw, const float_out_t* grow, const Strided5* gs,
                                    const Windows* w, int64_t od, int64_t oh, bint use_divisor,
                                    int64_t divisor_override, const double* recw) noexcept nogil:
    """gw[o] = the gradient of output (od, oh, o) over its divisor, in double."""
    cdef int64_t o, OW = gs.n[3]
    cdef double div_dh
    if not use_divisor and gs.s[3] == 1:
        for o in range(OW):
            gw[o] = <double>grow[o]
    elif not use_divisor:
        for o in range(OW):
            gw[o] = <double>grow[o * gs.s[3]]
    elif divisor_override > 0:
        for o in range(OW):
            gw[o] = <double>grow[o * gs.s[3]] / <double>divisor_override
    elif recw != NULL and gs.s[3] == 1:
        # Powers of two: multiplying by the exact reciprocal is the division.
        div_dh = 1.0 / (w.divisor[0][od] * w.divisor[1][oh])
        for o in range(OW):
            gw[o] = <double>grow[o] * (div_dh * recw[o])
    else:
        div_dh = w.divisor[0][od] * w.divisor[1][oh]
        for o in range(OW):
            gw[o] = <double>grow[o * gs.s[3]] / (div_dh * w.divisor[2][o])


cdef int gather_plane_rows(const float_out_t* g, const Strided5* gs, float_out_t* dx,
                           const Strided5* ds, const Windows* w, const Covers* c,
                           const ColumnTaps* ct, bint use_divisor, int64_t divisor_override,
                           const double* recw, int64_t r0, int64_t r1) noexcept nogil:
    """Input rows [r0, r1) of a window-sum adjoint, channels_first sliding windows.

    For each output row covering the input row, each kernel column scatters
    its outputs' weighted gradients into a stride-phase-split accumulator;
    kernel columns run from last to first so every input element still adds
    its contributions in ascending output order, exactly as gather_row does.
    Returns 1 when scratch cannot be allocated.
    """
    cdef int64_t D = ds.n[1], H = ds.n[2], W = ds.n[3], OW = gs.n[3]
    cdef int64_t kw = w.kernel[2], sw = w.stride[2], plen = ct.plen
    cdef int64_t r, b = r0 // (D * H), i_d = (r0 // H) % D, i_h = r0 % H
    cdef int64_t a, e, od, oh, jw, lo, n, o, tag, gw_tag = -1, slot
    # The weighted gradients of an output row serve every input row its windows
    # cover (3 of them for 3x3 stride 1): rows kept in slots by (od, oh) modulo
    # powers of two no smaller than the spans of the output rows covering one
    # input row, so those never share a slot; tags say which row a slot holds.
    # (avg 3x3 s1 backward, (32,128,56,56), 1 thread: 23 -> 20.8 ms.)
    cdef int64_t span_d = 1, span_h = 1
    for a in range(D):
        if c.offset[0][a + 1] > c.offset[0][a]:
            span_d = max(span_d, c.outs[0][c.offset[0][a + 1] - 1]
                         - c.outs[0][c.offset[0][a]] + 1)
    for a in range(H):
        if c.offset[1][a + 1] > c.offset[1][a]:
            span_h = max(span_h, c.outs[1][c.offset[1][a + 1] - 1]
                         - c.outs[1][c.offset[1][a]] + 1)
    cdef int64_t ext_d = pow2_at_least(span_d), ext_h = pow2_at_least(span_h)
    cdef int64_t nslots = ext_d * ext_h if ext_d * ext_h <= GRADIENT_SLOTS_MAX else 1
    cdef double* acc = <double*>malloc(<size_t>(sw * plen + 1) * sizeof(double))
    cdef double* gw = <double*>malloc(<size_t>(nslots * (OW + 1)) * sizeof(double))
    cdef int64_t* gw_tags = <int64_t*>malloc(<size_t>nslots * sizeof(int64_t))
    cdef double* dst
    cdef double* src
    cdef double* gslot
    cdef float_out_t* drow
    cdef bint pairs = (kw == 2 and sw == 2 and ds.s[3] == 1 and ct.col[0] == 0
                       and taps_span_row(ct, kw, OW))
    # A large gradient is written once and not read back soon: stream it.
    cdef bint stream = pairs and result_streams(ds, sizeof(float_out_t))
    if acc == NULL or gw == NULL or gw_tags == NULL:
        free(acc)
        free(gw)
        free(gw_tags)
        return 1
    for slot in range(nslots):
        gw_tags[slot] = -1
    for r in range(r0, r1):
        if (pairs and c.offset[0][i_d + 1] - c.offset[0][i_d] == 1
                and c.offset[1][i_h + 1] - c.offset[1][i_h] == 1):
            # 2x2 windows at stride 2 inside the row, one output row reading this
            # input row (avg 2x2 s2): each element gets one term, 0.0 + gw as
            # below, written straight into the row.
            od = c.outs[0][c.offset[0][i_d]]
            oh = c.outs[1][c.offset[1][i_h]]
            # Both input rows of a window row take the same weighted gradients.
            tag = (b * gs.n[1] + od) * gs.n[2] + oh
            if tag != gw_tag:
                weighted_gradients(gw, g + offset5(gs, b, od, oh, 0, 0), gs, w, od, oh,
                                   use_divisor, divisor_override, recw)
                gw_tag = tag
                gw_tags[0] = -1    # (slot 0 no longer holds what its tag says)
            drow = dx + offset5(ds, b, i_d, i_h, 0, 0)
            if float_out_t is float:
                pypool_store_pairs_f64_as_f32(drow, gw, OW, stream)
            else:
                pypool_store_pairs_f64(drow, gw, OW, stream)
            for o in range(2 * OW, W):
                drow[o] = 0
            next_row(&b, &i_d, &i_h, D, H)
            continue
        gw_tag = -1   # (the pairs' row, in slot 0, may be overwritten below)
        for o in range(sw * plen):
            acc[o] = 0.0
        for a in range(c.offset[0][i_d], c.offset[0][i_d + 1]):
            od = c.outs[0][a]
            for e in range(c.offset[1][i_h], c.offset[1][i_h + 1]):
                oh = c.outs[1][e]
                # The weighted gradient of each output of this row, once.
                slot = (od & (ext_d - 1)) * ext_h + (oh & (ext_h - 1)) if nslots > 1 else 0
                gslot = gw + slot * (OW + 1)
                tag = (b * gs.n[1] + od) * gs.n[2] + oh
                if gw_tags[slot] != tag:
                    weighted_gradients(gslot, g + offset5(gs, b, od, oh, 0, 0), gs, w, od, oh,
                                       use_divisor, divisor_override, recw)
                    gw_tags[slot] = tag
                for jw in range(kw - 1, -1, -1):
                    lo = ct.lo[jw]
                    n = ct.hi[jw] - lo
                    dst = acc + ct.src[jw]
                    src = gslot + lo
                    for o in range(n):
                        dst[o] = dst[o] + src[o]
        interleave(acc, W, sw, plen, dx + offset5(ds, b, i_d, i_h, 0, 0), ds.s[3])
        next_row(&b, &i_d, &i_h, D, H)
    if stream:
        pypool_store_fence()
    free(acc)
    free(gw)
    free(gw_tags)
    return 0


cdef int gather_backward(const float_out_t* g, const Strided5* gs, float_out_t* dx,
                         const Strided5* ds, const Windows* w, const Covers* c,
                         bint use_divisor, int64_t divisor_override,
                         int nthreads) noexcept nogil:
    """Returns the number of chunks that could not allocate scratch (0 on success)."""
    cdef int64_t r, rows = ds.n[0] * ds.n[1] * ds.n[2], chunks
    cdef int failed = 0
    cdef ColumnTaps ct
    cdef double* recw = NULL
    if w.sliding and ds.n[4] == 1 and gs.n[3] >= 4:
        if plan_columns(&ct, w, ds.n[3], gs.n[3]):
            return 1
        if use_divisor:
            recw = pow2_reciprocals(w, divisor_override)
        chunks = chunk_count(rows, nthreads)
        if nthreads > 1:
            for r in prange(chunks, num_threads=nthreads, schedule="static"):
                failed += gather_plane_rows(g, gs, dx, ds, w, c, &ct, use_divisor, divisor_override,
                                            recw, r * rows // chunks, (r + 1) * rows // chunks)
        else:
            for r in range(chunks):
                failed += gather_plane_rows(g, gs, dx, ds, w, c, &ct, use_divisor, divisor_override,
                                            recw, r * rows // chunks, (r + 1) * rows // chunks)
        free(ct.lo)
        free(recw)
    else:
        if nthreads > 1:
            for r in prange(rows, num_threads=nthreads, schedule="static"):
                gather_row(g, gs, dx, ds, w, c, use_divisor, divisor_override, r)
        else:
            for r in range(rows):
                gather_row(g, gs, dx, ds, w, c, use_divisor, divisor_override, r)
    return failed


cdef inline int64_t plane_offset(const Strided5* v, int64_t b, int64_t flat,
                                 int64_t c) noexcept nogil:
    """Offset of element ``flat`` (row-major over D, H, W) of plane b, lane c.

    The Python layer merges the spatial axes of these ops into W, so the
    common case needs no division.
    """
    cdef int64_t H = v.n[2], W = v.n[3]
    if v.n[1] == 1 and H == 1:
        return b * v.s[0] + flat * v.s[3] + c * v.s[4]
    return offset5(v, b, flat // (H * W), (flat // W) % H, flat % W, c)


cdef void scatter_grad_plane(const float_out_t* g, const Strided5* gs, const int64_t* ind,
                             const Strided5* js, float_out_t* dx, const Strided5* ds,
                             int64_t b, double* acc) noexcept nogil:
    """Max backward of plane b: dx[ind] += g, summed in double in ``acc`` (the
    plane's elements, zero on entry and left zero) and rounded once."""
    cdef int64_t OD = gs.n[1], OH = gs.n[2], OW = gs.n[3], V = gs.n[4]
    cdef int64_t D = ds.n[1], H = ds.n[2], W = ds.n[3]
    cdef int64_t plane = D * H * W, od, oh, ow, v, k, d, h, w
    cdef const int64_t* irow
    cdef const float_out_t* grow
    cdef float_out_t* drow
    cdef double* a
    # A large gradient is written once and not read back soon: stream it.
    cdef bint stream = ds.n[0] * plane * V * <int64_t>sizeof(float_out_t) >= STREAM_MIN_BYTES
    for od in range(OD):
        for oh in range(OH):
            irow = ind + offset5(js, b, od, oh, 0, 0)
            grow = g + offset5(gs, b, od, oh, 0, 0)
            if V == 1 and js.s[3] == 1 and gs.s[3] == 1:   # contiguous channels_first rows
                if float_out_t is float:
                    pypool_scatter_add_f32(acc, irow, <const float*>grow, OW)
                else:
                    pypool_scatter_add_f64(acc, irow, <const double*>grow, OW)
                continue
            for ow in range(OW):
                for v in range(V):
                    k = irow[ow * js.s[3] + v * js.s[4]]
                    if k >= 0:
                        acc[k * V + v] += <double>grow[ow * gs.s[3] + v * gs.s[4]]
    # While the plane is written out, ask for the next plane's gradients and
    # indices, a share per span written: the scatter above would otherwise
    # start each plane waiting on memory.
    cdef int64_t ahead_i = 0, ahead_g = 0, share_i = 0, share_g = 0, span = 0, spans
    cdef int64_t start, stop, cut
    cdef const char* next_i = NULL
    cdef const char* next_g = NULL
    # A plane whose result is one contiguous run is written as one row, cut
    # into pieces where the result's cache lines begin: written row by row, the
    # line two rows share (NumPy's arrays are 16-byte aligned) took ordinary
    # stores, a read of the line first, on every row.
    cdef bint flat = plane_is_one_run(ds)
    spans = (plane + DRAIN_PIECE - 1) // DRAIN_PIECE + 1 if flat else D * H
    if (b + 1 < gs.n[0] and V == 1 and js.s[3] == 1 and gs.s[3] == 1 and js.s[2] == OW
            and gs.s[2] == OW and (OD == 1 or (js.s[1] == OH * OW and gs.s[1] == OH * OW))):
        next_i = <const char*>(ind + (b + 1) * js.s[0])
        next_g = <const char*>(g + (b + 1) * gs.s[0])
        ahead_i = OD * OH * OW * <int64_t>sizeof(int64_t)
        ahead_g = OD * OH * OW * <int64_t>sizeof(float_out_t)
        share_i = ((ahead_i + spans - 1) // spans + 63) & ~(<int64_t>63)
        share_g = ((ahead_g + spans - 1) // spans + 63) & ~(<int64_t>63)
    if flat:
        drow = dx + offset5(ds, b, 0, 0, 0, 0)
        cut = to_next_line(drow) // <int64_t>sizeof(float_out_t)
        start = 0
        while start < plane:
            cut += DRAIN_PIECE
            stop = min(cut, plane)
            prefetch_share(next_i, ahead_i, share_i, next_g, ahead_g, share_g, span)
            span += 1
            drain_run(drow, acc, start, stop, stream)
            start = stop
    else:
        a = acc
        for d in range(D):
            for h in range(H):
                prefetch_share(next_i, ahead_i, share_i, next_g, ahead_g, share_g, span)
                span += 1
                drow = dx + offset5(ds, b, d, h, 0, 0)
                if V == 1 and ds.s[3] == 1:
                    drain_run(drow, a, 0, W, stream)
                else:
                    for w in range(W):
                        for v in range(V):
                            drow[w * ds.s[3] + v * ds.s[4]] = <float_out_t>a[w * V + v]
                            a[w * V + v] = 0.0
                a += W * V
    if stream:
        pypool_store_fence()


# Elements a max backward drains per piece of a contiguous plane (a multiple of
# 16, so pieces after the first start on a cache line of float32 and float64).
cdef int64_t DRAIN_PIECE = 1024


cdef inline void prefetch_share(const char* next_i, int64_t ahead_i, int64_t share_i,
                                const char* next_g, int64_t ahead_g, int64_t share_g,
                                int64_t span) noexcept nogil:
    """Share ``span`` of the next plane's indices and gradients (none when next_i is NULL)."""
    if next_i == NULL:
        return
    if span * share_i < ahead_i:
        pypool_prefetch_bytes(next_i + span * share_i, min(share_i, ahead_i - span * share_i))
    if span * share_g < ahead_g:
        pypool_prefetch_bytes(next_g + span * share_g, min(share_g, ahead_g - span * share_g))


cdef inline bint plane_is_one_run(const Strided5* ds) noexcept nogil:
    """Whether each (b) plane of a channels_first ds is one contiguous run."""
    cdef int64_t D = ds.n[1], H = ds.n[2], W = ds.n[3]
    return (ds.n[4] == 1 and ds.s[3] == 1 and ds.s[2] == W
            and (D == 1 or ds.s[1] == H * W))


cdef inline int64_t to_next_line(const void* p) noexcept nogil:
    """Bytes from p to the next 64-byte line boundary (0 on one)."""
    return (64 - <int64_t>(<uintptr_t>p & 63)) & 63


cdef inline bint overlaps_planes(const Strided5* gs, const Strided5* js,
                                 const Strided5* ds) noexcept nogil:
    """Whether scatter_overlapped_planes takes this max backward: channels_first
    gradient and index rows of unit stride (at least one row a plane), each
    plane of the result one contiguous run."""
    return (gs.n[4] == 1 and gs.s[3] == 1 and js.s[3] == 1 and gs.n[1] * gs.n[2] > 0
            and plane_is_one_run(ds))


cdef void scatter_overlapped_planes(const float_out_t* g, const Strided5* gs,
                                    const int64_t* ind, const Strided5* js, float_out_t* dx,
                                    const Strided5* ds, int64_t b0, int64_t b1,
                                    double* acc) noexcept nogil:
    """Planes [b0, b1) of a max backward (overlaps_planes), with plane b's
    scatter and plane b - 1's drain taking turns: after each output row of
    plane b, the next piece of plane b - 1 (about a plane per row count, cut
    where the result's cache lines begin) is written out. Loads and
    streaming stores then overlap, where draining whole planes between the
    scatters left each phase waiting on one of them (1 thread, float32
    (32,64,112,112) 3x3 s2: a C model of both, 5.6 -> 5.1 ms).

    ``acc``: two zeroed plane accumulators, left zero. The same additions in
    the same order as scatter_grad_plane."""
    cdef int64_t OD = gs.n[1], OH = gs.n[2], OW = gs.n[3], rows = OD * OH
    cdef int64_t plane = ds.n[1] * ds.n[2] * ds.n[3], b, r, start, cut, stop, piece
    cdef double* fill = acc            # plane b's sums
    cdef double* out = acc + plane     # plane b - 1's, being written
    cdef double* t
    cdef const int64_t* irow
    cdef const float_out_t* grow
    cdef float_out_t* drow = NULL
    cdef bint stream = ds.n[0] * plane * <int64_t>sizeof(float_out_t) >= STREAM_MIN_BYTES
    # pieces of whole 64-byte lines (16 elements hold one for float32 and float64)
    piece = ((plane + rows - 1) // rows + 15) & ~(<int64_t>15)
    for b in range(b0, b1 + 1):
        start = 0
        cut = 0
        if b > b0:
            drow = dx + offset5(ds, b - 1, 0, 0, 0, 0)
            cut = to_next_line(drow) // <int64_t>sizeof(float_out_t)
        for r in range(rows if b < b1 else 0):
            irow = ind + offset5(js, b, r // OH, r % OH, 0, 0)
            grow = g + offset5(gs, b, r // OH, r % OH, 0, 0)
            if float_out_t is float:
                pypool_scatter_add_f32(fill, irow, <const float*>grow, OW)
            else:
                pypool_scatter_add_f64(fill, irow, <const double*>grow, OW)
            if b > b0 and start < plane:
                cut += piece
                stop = min(cut, plane)
                drain_run(drow, out, start, stop, stream)
                start = stop
        if b > b0 and start < plane:
            drain_run(drow, out, start, plane, stream)
        t = fill
        fill = out
        out = t
    if stream:
        pypool_store_fence()


cdef inline void drain_run(float_out_t* drow, double* acc, int64_t start, int64_t stop,
                           bint stream) noexcept nogil:
    """drow[start:stop] = acc[start:stop] (rounded), then those sums zeroed."""
    if float_out_t is float:
        pypool_drain_f64_as_f32(<float*>drow + start, acc + start, stop - start, stream)
    else:
        pypool_drain_f64(<double*>drow + start, acc + start, stop - start, stream)


cdef int scatter_grad_planes(const float_out_t* g, const Strided5* gs, const int64_t* ind,
                             const Strided5* js, float_out_t* dx, const Strided5* ds,
                             int64_t b0, int64_t b1) noexcept nogil:
    """Planes [b0, b1) of a max backward; 1 when the accumulator cannot be allocated.

    One accumulator (two when the planes overlap) serves all the chunk's
    planes: a plane-sized malloc and free each time made the allocator hand
    the pages back and fault them in again (the kernel zeroing them), a third
    of the time of a large call."""
    cdef int64_t b, plane = ds.n[1] * ds.n[2] * ds.n[3] * ds.n[4]
    cdef bint overlap = overlaps_planes(gs, js, ds) and b1 - b0 >= 2
    cdef int64_t n = 2 * plane if overlap else plane
    cdef double* acc = <double*>malloc(<size_t>(n + 1) * sizeof(double))
    if acc == NULL:
        return 1
    # Zeroed once: each plane hands its rows out and leaves them zero.
    memset(acc, 0, <size_t>n * sizeof(double))
    if overlap:
        scatter_overlapped_planes(g, gs, ind, js, dx, ds, b0, b1, acc)
    else:
        for b in range(b0, b1):
            scatter_grad_plane(g, gs, ind, js, dx, ds, b, acc)
    free(acc)
    return 0


cdef void unpool_plane(const real_t* x, const Strided5* xs, const int64_t* ind,
                       const Strided5* js, real_t* y, const Strided5* ys, int64_t b) noexcept nogil:
    """Max-unpool plane b: zeros, then y[ind] = x; the last duplicate in row-major order wins."""
    cdef int64_t ID = xs.n[1], IH = xs.n[2], IW = xs.n[3], V = xs.n[4]
    cdef int64_t i, d, h, w, v
    cdef real_t* yrow
    cdef const int64_t* irow
    cdef const real_t* xrow
    for d in range(ys.n[1]):
        for h in range(ys.n[2]):
            yrow = y + offset5(ys, b, d, h, 0, 0)
            if V == 1 and ys.s[3] == 1:
                memset(yrow, 0, <size_t>ys.n[3] * sizeof(real_t))
            elif V == 1:
                for w in range(ys.n[3]):
                    yrow[w * ys.s[3]] = 0
            else:
                for w in range(ys.n[3]):
                    for v in range(V):
                        yrow[w * ys.s[3] + v * ys.s[4]] = 0
    for d in range(ID):
        for h in range(IH):
            irow = ind + offset5(js, b, d, h, 0, 0)
            xrow = x + offset5(xs, b, d, h, 0, 0)
            for w in range(IW):
                for v in range(V):
                    i = irow[w * js.s[3] + v * js.s[4]]
                    y[plane_offset(ys, b, i, v)] = xrow[w * xs.s[3] + v * xs.s[4]]


cdef int64_t count_bad_indices(const int64_t* ind, const Strided5* js, int64_t lo,
                               int64_t hi, int nthreads) noexcept nogil:
    """How many indices fall outside [lo, hi); checked before any write."""
    cdef int64_t r, rows = js.n[0] * js.n[1] * js.n[2], bad = 0
    if nthreads > 1:
        for r in prange(rows, num_threads=nthreads, schedule="static"):
            bad += count_bad_row(ind, js, lo, hi, r)
    else:
        for r in range(rows):
            bad += count_bad_row(ind, js, lo, hi, r)
    return bad


cdef int64_t count_bad_row(const int64_t* ind, const Strided5* js, int64_t lo, int64_t hi,
                           int64_t r) noexcept nogil:
    cdef int64_t D = js.n[1], H = js.n[2], b = r // (D * H), d = (r // H) % D, h = r % H
    cdef int64_t w, v, k, bad = 0
    cdef const int64_t* irow = ind + offset5(js, b, d, h, 0, 0)
    # One unsigned comparison tests both bounds.
    cdef uint64_t span = <uint64_t>(hi - lo)
    if js.n[4] == 1:
        for w in range(js.n[3]):
            bad += <uint64_t>(irow[w * js.s[3]] - lo) >= span
    else:
        for w in range(js.n[3]):
            for v in range(js.n[4]):
                bad += <uint64_t>(irow[w * js.s[3] + v * js.s[4]] - lo) >= span
    return bad


# ----------------------------------------------------------------------------- Python entry points

def window_backward(const float_out_t[:, :, :, :, :] g, float_out_t[:, :, :, :, :] dx, geom,
                    bint adaptive, bint use_divisor, bint count_include_pad,
                    int64_t divisor_override, int nthreads):
    """Adjoint of a window sum (or average when use_divisor) from g into dx (5-D views)."""
    cdef Strided5 gs, ds
    cdef Windows w
    cdef Covers c
    cdef int64_t ins[3]
    describe(&gs, g.shape, g.strides, sizeof(float_out_t))
    describe(&ds, dx.shape, dx.strides, sizeof(float_out_t))
    make_windows(&w, geom, adaptive, count_include_pad)
    for i in range(3):
        ins[i] = dx.shape[i + 1]
    cdef int failed = 0
    c.block = NULL
    try:
        if build_covers(&c, &w, ins) != PYPOOL_OK:
            raise MemoryError("pypool: cannot allocate window tables")
        with nogil:
            failed = gather_backward(&g[0, 0, 0, 0, 0], &gs, &dx[0, 0, 0, 0, 0], &ds, &w, &c,
                                     use_divisor, divisor_override, nthreads)
    finally:
        free_covers(&c)
        free_windows(&w)
    if failed:
        raise MemoryError("pypool: cannot allocate kernel scratch buffers")


def check_indices(const int64_t[:, :, :, :, :] ind, int64_t lo, int64_t hi, int nthreads):
    """Number of indices outside [lo, hi)."""
    cdef Strided5 js
    cdef int64_t bad
    describe(&js, ind.shape, ind.strides, sizeof(int64_t))
    with nogil:
        bad = count_bad_indices(&ind[0, 0, 0, 0, 0], &js, lo, hi, nthreads)
    return bad


def max_backward(const float_out_t[:, :, :, :, :] g, const int64_t[:, :, :, :, :] ind,
                 float_out_t[:, :, :, :, :] dx, int nthreads):
    """Scatter-add g into dx at ind (checked beforehand), plane by plane."""
    cdef Strided5 gs, js, ds
    cdef int failed
    describe(&gs, g.shape, g.strides, sizeof(float_out_t))
    describe(&js, ind.shape, ind.strides, sizeof(int64_t))
    describe(&ds, dx.shape, dx.strides, sizeof(float_out_t))
    with nogil:
        failed = scatter_planes(&g[0, 0, 0, 0, 0], &gs, &ind[0, 0, 0, 0, 0], &js,
                                &dx[0, 0, 0, 0, 0], &ds, nthreads)
    if failed:
        raise MemoryError("pypool: cannot allocate the max-backward accumulator")


def max_unpool_forward(const real_t[:, :, :, :, :] x, const int64_t[:, :, :, :, :] ind,
                       real_t[:, :, :, :, :] y, int nthreads):
    """Place x at ind (checked beforehand) in zeroed planes of y."""
    cdef Strided5 xs, js, ys
    cdef int64_t b
    describe(&xs, x.shape, x.strides, sizeof(real_t))
    describe(&js, ind.shape, ind.strides, sizeof(int64_t))
    describe(&ys, y.shape, y.strides, sizeof(real_t))
    with nogil:
        if nthreads > 1:
            for b in prange(ys.n[0], num_threads=nthreads, schedule="static"):
                unpool_plane(&x[0, 0, 0, 0, 0], &xs, &ind[0, 0, 0, 0, 0], &js,
                             &y[0, 0, 0, 0, 0], &ys, b)
        else:
            for b in range(ys.n[0]):
                unpool_plane(&x[0, 0, 0, 0, 0], &xs, &ind[0, 0, 0, 0, 0], &js,
                             &y[0, 0, 0, 0, 0], &ys, b)
