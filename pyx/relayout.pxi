# Results in the other layout: an input whose memory is in the other layout
# than the call's (a channels_first view of NHWC memory, x.transpose(0, 3, 1, 2),
# or the reverse) is pooled in its own layout, where it is contiguous, and the
# result transposed into place here (pypool/_dispatch.py, other_layout).

ctypedef fused bits_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t


cdef enum:
    RELAYOUT_TILE = 64    # a tile's rows and columns: 16 KB of float32 each way, in L1/L2


def transpose_batches(const bits_t[:, :, ::1] src, bits_t[:, :, ::1] dst, int nthreads):
    """dst[b, c, r] = src[b, r, c], tile by tile (threads share the tiles).

    Elements are moved as bits, so one unsigned type of each size serves
    every dtype of that size."""
    cdef int64_t B = src.shape[0], R = src.shape[1], C = src.shape[2]
    cdef int64_t rt = (R + RELAYOUT_TILE - 1) // RELAYOUT_TILE
    cdef int64_t ct = (C + RELAYOUT_TILE - 1) // RELAYOUT_TILE
    cdef int64_t tiles = B * rt * ct, i
    if dst.shape[0] != B or dst.shape[1] != C or dst.shape[2] != R:
        raise ValueError(f"transpose_batches: dst has shape "
                         f"{(dst.shape[0], dst.shape[1], dst.shape[2])}; expected {(B, C, R)}")
    if tiles == 0:
        return
    nthreads = max(1, nthreads)
    with nogil:
        if nthreads > 1:
            for i in prange(tiles, num_threads=nthreads, schedule="static"):
                transpose_tile(&src[0, 0, 0], &dst[0, 0, 0], R, C, rt, ct, i)
        else:
            for i in range(tiles):
                transpose_tile(&src[0, 0, 0], &dst[0, 0, 0], R, C, rt, ct, i)


cdef void transpose_tile(const bits_t* src, bits_t* dst, int64_t R, int64_t C, int64_t rt,
                         int64_t ct, int64_t tile) noexcept nogil:
    """Tile number ``tile`` (batch, then rows, then columns) of transpose_batches."""
    cdef int64_t b = tile // (rt * ct), r0 = (tile // ct) % rt * RELAYOUT_TILE
    cdef int64_t c0 = tile % ct * RELAYOUT_TILE
    cdef int64_t nr = min(<int64_t>RELAYOUT_TILE, R - r0), nc = min(<int64_t>RELAYOUT_TILE, C - c0)
    transpose(src + b * R * C + r0 * C + c0, nr, nc, C, dst + b * R * C + c0 * R + r0, R)


# Strided inputs (a column slice x[..., ::2], a reversed or sub-sampled view)
# are packed into contiguous scratch here before pooling, a piece at a time
# (pypool/_dispatch.py, staged_pieces): the plane paths' fast loops need
# contiguous rows, and NumPy's copy runs on one thread.

cdef inline void pack_row(const bits_t* src, int64_t step, bits_t* dst,
                          int64_t n) noexcept nogil:
    """dst[i] = src[i * step]; steps 1 and 2 spelled out, so they vectorize."""
    cdef int64_t i
    if step == 1:
        for i in range(n):
            dst[i] = src[i]
    elif step == 2:
        for i in range(n):
            dst[i] = src[2 * i]
    else:
        for i in range(n):
            dst[i] = src[i * step]


def gather_rows(const bits_t[:, :] src, bits_t[:, ::1] dst, int nthreads):
    """dst[r, i] = src[r, i]: the rows of a strided 2-D view packed, in parallel."""
    cdef int64_t R = src.shape[0], W = src.shape[1], r
    cdef int64_t step = src.strides[1] // <int64_t>sizeof(bits_t)
    if dst.shape[0] != R or dst.shape[1] != W:
        raise ValueError(f"gather_rows: shapes {(R, W)} and {(dst.shape[0], dst.shape[1])}")
    if src.strides[1] % <int64_t>sizeof(bits_t):
        raise ValueError("gather_rows: the column stride is not a whole number of elements")
    if R == 0 or W == 0:
        return
    with nogil:
        if nthreads > 1:
            for r in prange(R, num_threads=nthreads, schedule="static"):
                pack_row(&src[r, 0], step, &dst[r, 0], W)
        else:
            for r in range(R):
                pack_row(&src[r, 0], step, &dst[r, 0], W)
