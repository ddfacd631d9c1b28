# Window geometry: the single source of truth for output sizes and pads,
# adaptive and unpool sizes and thread counts, used by the Python layer
# (through axis_geometry and the other def wrappers), the C API and the kernels.

from libc.stdint cimport INT64_MAX
from libc.stdlib cimport free, malloc

# Sizes stay below 2**62 so that the sum of two of them never overflows int64.
cdef int64_t SIZE_LIMIT = 4611686018427387904


cdef pypool_status resolve_axis(pypool_axis* a, pypool_pad_mode mode,
                                bint ceil_mode) noexcept nogil:
    """Fill a.out_size (and a.pad_begin/pad_end for "same" modes).

    Inputs are a.in_size, a.kernel, a.stride, a.dilation and, for explicit
    padding, a.pad_begin / a.pad_end. Nothing is written on error.
    """
    cdef int64_t L = a.in_size, k = a.kernel, s = a.stride, d = a.dilation
    cdef int64_t pb = a.pad_begin, pe = a.pad_end
    cdef int64_t ext, out, total, span, q
    if L < 0:
        return PYPOOL_ERR_SHAPE
    if k < 1:
        return PYPOOL_ERR_KERNEL
    if s < 1:
        return PYPOOL_ERR_STRIDE
    if d < 1:
        return PYPOOL_ERR_DILATION
    if L >= SIZE_LIMIT or k >= SIZE_LIMIT or s >= SIZE_LIMIT or d >= SIZE_LIMIT:
        return PYPOOL_ERR_OVERFLOW
    if k - 1 > (SIZE_LIMIT - 1) // d:
        return PYPOOL_ERR_OVERFLOW
    ext = (k - 1) * d + 1
    if mode != PYPOOL_PAD_EXPLICIT:
        out = L // s + (1 if L % s != 0 else 0)
        total = (out - 1) * s + ext - L
        if total < 0:
            total = 0
        if mode == PYPOOL_PAD_SAME_UPPER:
            pb = total // 2
        else:
            pb = total - total // 2
        pe = total - pb
    if pb < 0 or pe < 0:
        return PYPOOL_ERR_PAD_NEGATIVE
    if pb >= ext or pe >= ext:
        return PYPOOL_ERR_PAD_TOO_LARGE
    # pb, pe < ext <= 2**62, so pb + pe fits; L + (pb + pe) may not.
    if L > INT64_MAX - (pb + pe):
        return PYPOOL_ERR_OVERFLOW
    span = L + pb + pe
    q = span - ext     # may be negative: then only ceil_mode can leave a window
    if ceil_mode:
        if q >= 0:
            out = q // s + (1 if q % s != 0 else 0) + 1
        else:
            out = 1 - ((-q) // s)
        # The last window must start inside the input or the left padding.
        if out >= 1 and (out - 1) * s >= L + pb:
            out -= 1
    elif q < 0:
        return PYPOOL_ERR_EMPTY_OUTPUT
    else:
        out = q // s + 1
    if out < 1:
        return PYPOOL_ERR_EMPTY_OUTPUT
    a.out_size = out
    a.pad_begin = pb
    a.pad_end = pe
    return PYPOOL_OK


def axis_geometry(int64_t in_size, int64_t kernel, int64_t stride, int64_t dilation,
                  int mode, int64_t pad_begin, int64_t pad_end, bint ceil_mode):
    """Resolve one axis: returns (status, out_size, pad_begin, pad_end).

    Thin Python access to ``resolve_axis`` so that the Python layer and the C
    API share one implementation; the caller turns a status into a message.
    """
    cdef pypool_axis a
    a.in_size = in_size
    a.kernel = kernel
    a.stride = stride
    a.dilation = dilation
    a.pad_begin = pad_begin
    a.pad_end = pad_end
    a.out_size = 0
    cdef pypool_status st = resolve_axis(&a, <pypool_pad_mode>mode, ceil_mode)
    return int(st), a.out_size, a.pad_begin, a.pad_end


cdef pypool_status check_adaptive_axis(int64_t in_size, int64_t out_size) noexcept nogil:
    """One axis of adaptive pooling: a non-empty input, an output of at least 1,
    and in_size * out_size below 2**62 (cell bounds are computed from it)."""
    if in_size < 0:
        return PYPOOL_ERR_SHAPE
    if out_size < 1:
        return PYPOOL_ERR_EMPTY_OUTPUT
    if in_size == 0:
        return PYPOOL_ERR_SHAPE
    if in_size >= SIZE_LIMIT or out_size >= SIZE_LIMIT or in_size > (SIZE_LIMIT - 1) // out_size:
        return PYPOOL_ERR_OVERFLOW
    return PYPOOL_OK


cdef pypool_status unpool_axis_size(int64_t in_size, int64_t kernel, int64_t stride,
                                    int64_t pad_begin, int64_t pad_end,
                                    int64_t* out_size) noexcept nogil:
    """Default max_unpool output size of one axis: (L-1)*stride - pad_begin - pad_end + kernel.

    The size is written even when it is below 1 (PYPOOL_ERR_EMPTY_OUTPUT),
    so that messages can show it.
    """
    cdef int64_t n
    if in_size < 0:
        return PYPOOL_ERR_SHAPE
    if kernel < 1:
        return PYPOOL_ERR_KERNEL
    if stride < 1:
        return PYPOOL_ERR_STRIDE
    if pad_begin < 0 or pad_end < 0:
        return PYPOOL_ERR_PAD_NEGATIVE
    if (in_size >= SIZE_LIMIT or kernel >= SIZE_LIMIT or stride >= SIZE_LIMIT
            or pad_begin >= SIZE_LIMIT or pad_end >= SIZE_LIMIT):
        return PYPOOL_ERR_OVERFLOW
    if in_size > 1 and in_size - 1 > (SIZE_LIMIT - 1) // stride:
        return PYPOOL_ERR_OVERFLOW
    # Every term is below 2**62: no intermediate overflows.
    n = (in_size - 1) * stride + kernel - pad_begin - pad_end
    if n >= SIZE_LIMIT:
        return PYPOOL_ERR_OVERFLOW
    out_size[0] = n
    if n < 1:
        return PYPOOL_ERR_EMPTY_OUTPUT
    return PYPOOL_OK


def adaptive_axis_status(int64_t in_size, int64_t out_size):
    """Status of ``check_adaptive_axis`` (Python access to the shared check)."""
    return int(check_adaptive_axis(in_size, out_size))


def unpool_axis(int64_t in_size, int64_t kernel, int64_t stride, int64_t pad_begin,
                int64_t pad_end):
    """(status, size) of ``unpool_axis_size`` (Python access to the shared check)."""
    cdef int64_t n = 0
    cdef pypool_status st = unpool_axis_size(in_size, kernel, stride, pad_begin, pad_end, &n)
    return int(st), n


# ----------------------------------------------------------------------------- threads

# Below this many input reads a call runs on one thread: starting an OpenMP
# team costs more than the work (see benchmarks/).
cdef int64_t SERIAL_WORK = 1 << 15


cdef int thread_budget(int requested, int64_t work) noexcept nogil:
    """Threads for one call: the OpenMP default, capped by ``requested`` (0 = no cap)
    and by the larger of that default and the processor count; 1 for small work
    and in a child made by fork() (libgomp would hang there, see _capi_support.h)."""
    cdef int default_threads, most
    if work < SERIAL_WORK or pypool_forked_child():
        return 1
    default_threads = omp_get_max_threads()
    if requested <= 0:
        return default_threads
    most = omp_get_num_procs()
    if default_threads > most:
        most = default_threads
    return requested if requested < most else most


def threads_for(int requested, int64_t work):
    """``thread_budget`` for the Python layer (requested 0 = num_threads=None)."""
    return thread_budget(requested, work)


# The in-bounds taps of a window starting at ``start`` are j in
# [first_tap, end_tap). Two functions returning values rather than one with
# pointer outputs: Cython only makes a prange variable thread-private when it
# is assigned in the loop body, never when its address is passed.
cdef inline int64_t first_tap(int64_t start, int64_t d) noexcept nogil:
    return 0 if start >= 0 else (-start + d - 1) // d


cdef inline int64_t end_tap(int64_t start, int64_t L, int64_t k, int64_t d) noexcept nogil:
    cdef int64_t last, first = first_tap(start, d)
    if start >= L:
        return first
    # ceil((L - start) / d) written as (n - 1) // d + 1: L - start < 2**63, but
    # adding d - 1 to it could wrap (pads and dilations go up to 2**62).
    last = (L - start - 1) // d + 1
    if last > k:
        last = k
    return last if last > first else first


cdef inline int64_t padded_taps(int64_t start, int64_t L, int64_t pad_end,
                                int64_t k, int64_t d) noexcept nogil:
    """Taps of a window inside [-pad_begin, L + pad_end): the count_include_pad divisor.

    Windows never start before -pad_begin, so only the end needs clipping; the
    ceil_mode overhang past the end padding is not counted (PyTorch's rule).
    """
    cdef int64_t end = L + pad_end, n
    if start >= end:
        return 0
    n = (end - start - 1) // d + 1    # ceil without the "+ d - 1" that could wrap
    return n if n < k else k


# ----------------------------------------------------------------------------- window tables

cdef void free_windows(Windows* w) noexcept nogil:
    free(w.block)
    w.block = NULL


cdef pypool_status alloc_windows(Windows* w, const int64_t* out_sizes) noexcept nogil:
    """One block for the first/count/divisor tables of the 3 axes."""
    cdef int64_t total = out_sizes[0] + out_sizes[1] + out_sizes[2], pos = 0
    cdef int a
    cdef int64_t* block = <int64_t*>malloc(<size_t>(3 * total + 1) * sizeof(int64_t))
    w.block = block
    if block == NULL:
        return PYPOOL_ERR_NOMEM
    for a in range(3):
        w.out[a] = out_sizes[a]
        w.first[a] = block + pos
        w.count[a] = block + pos + total
        w.divisor[a] = <double*>(block + pos + 2 * total)   # same size as int64_t
        pos += out_sizes[a]
    return PYPOOL_OK


cdef pypool_status sliding_windows(Windows* w, const pypool_axis* ax,
                                   bint count_include_pad) noexcept nogil:
    """Tables of a sliding-window op (max/avg/lp) from resolved axes."""
    cdef int64_t sizes[3]
    cdef int a
    cdef int64_t o, start, lo, hi
    for a in range(3):
        sizes[a] = ax[a].out_size
    cdef pypool_status st = alloc_windows(w, sizes)
    if st != PYPOOL_OK:
        return st
    w.sliding = True
    for a in range(3):
        w.step[a] = ax[a].dilation
        w.kernel[a] = ax[a].kernel
        w.stride[a] = ax[a].stride
        w.pad_begin[a] = ax[a].pad_begin
        for o in range(ax[a].out_size):
            start = o * ax[a].stride - ax[a].pad_begin
            lo = first_tap(start, ax[a].dilation)
            hi = end_tap(start, ax[a].in_size, ax[a].kernel, ax[a].dilation)
            w.first[a][o] = start + lo * ax[a].dilation
            w.count[a][o] = hi - lo
            if count_include_pad:
                w.divisor[a][o] = padded_taps(start, ax[a].in_size, ax[a].pad_end,
                                              ax[a].kernel, ax[a].dilation)
            else:
                w.divisor[a][o] = hi - lo
    return PYPOOL_OK


cdef pypool_status adaptive_windows(Windows* w, const int64_t* in_sizes,
                                    const int64_t* out_sizes) noexcept nogil:
    """Tables of adaptive pooling: cell o covers [floor(o*L/O), ceil((o+1)*L/O))."""
    cdef int a
    cdef int64_t o, L, O, lo, hi
    cdef pypool_status st = alloc_windows(w, out_sizes)
    if st != PYPOOL_OK:
        return st
    w.sliding = False
    for a in range(3):
        L = in_sizes[a]
        O = out_sizes[a]
        w.step[a] = 1
        w.kernel[a] = 0
        w.stride[a] = 0
        w.pad_begin[a] = 0
        for o in range(O):
            lo = (o * L) // O
            hi = ((o + 1) * L + O - 1) // O
            w.first[a][o] = lo
            w.count[a][o] = hi - lo
            w.divisor[a][o] = hi - lo
    return PYPOOL_OK


cdef void sliding_if_equal_cells(Windows* w, const Strided5* xs) noexcept nogil:
    """Adaptive cells that all have one size per axis (every input size a
    multiple of the output size, as 112 -> 7) are the sliding windows of that
    size at that stride, without padding: the same tables. Mark them so, so
    that an average takes the sliding-window paths and their order of adds
    (1 thread, float32 (16,64,112,112) to 7 x 7: 7.0 -> 3.0-3.9 ms, PyTorch 5.9-6.1).
    Called by the average and Lp entry points only, not in adaptive_windows:
    max paths for large windows break ties in another order (README), and
    the backward passes keep the adaptive path's order."""
    cdef int a
    if w.sliding:
        return
    for a in range(3):
        if w.out[a] <= 0 or xs.n[a + 1] <= 0 or xs.n[a + 1] % w.out[a] != 0:
            return
    for a in range(3):
        w.kernel[a] = xs.n[a + 1] // w.out[a]
        w.stride[a] = w.kernel[a]
    w.sliding = True


cdef void free_covers(Covers* c) noexcept nogil:
    free(c.block)
    c.block = NULL


cdef pypool_status build_covers(Covers* c, const Windows* w, const int64_t* in_sizes) noexcept nogil:
    """Invert window tables: for each input position, the outputs that read it."""
    cdef int a
    cdef int64_t total = 0, pos = 0, o, j, i
    cdef int64_t* block
    cdef int64_t* fill
    for a in range(3):
        total += in_sizes[a] + 1
        for o in range(w.out[a]):
            total += w.count[a][o]
            if total >= SIZE_LIMIT:   # more taps than memory could hold; also keeps total in int64
                c.block = NULL
                return PYPOOL_ERR_OVERFLOW
    block = <int64_t*>malloc(<size_t>(total + 1) * sizeof(int64_t))
    c.block = block
    if block == NULL:
        return PYPOOL_ERR_NOMEM
    for a in range(3):
        c.offset[a] = block + pos
        pos += in_sizes[a] + 1
        for i in range(in_sizes[a] + 1):
            c.offset[a][i] = 0
        # Count the readers of each position, then prefix-sum into offsets.
        for o in range(w.out[a]):
            for j in range(w.count[a][o]):
                c.offset[a][w.first[a][o] + j * w.step[a] + 1] += 1
        for i in range(in_sizes[a]):
            c.offset[a][i + 1] += c.offset[a][i]
        c.outs[a] = block + pos
        pos += c.offset[a][in_sizes[a]]
    # Fill in ascending output order, using a cursor per position.
    fill = <int64_t*>malloc(<size_t>(in_sizes[0] + in_sizes[1] + in_sizes[2] + 1) * sizeof(int64_t))
    if fill == NULL:
        free_covers(c)
        return PYPOOL_ERR_NOMEM
    for a in range(3):
        for i in range(in_sizes[a]):
            fill[i] = c.offset[a][i]
        for o in range(w.out[a]):
            for j in range(w.count[a][o]):
                i = w.first[a][o] + j * w.step[a]
                c.outs[a][fill[i]] = o
                fill[i] += 1
    free(fill)
    return PYPOOL_OK
