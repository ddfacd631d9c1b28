"""Calling the compiled kernels: dtype mapping, 5-D views, scratch buffers.

The kernels see a few dtypes only (bool as uint8, float16 widened to
float32 or float64) and 5-D views (B, D, H, W, V). These helpers build
those views of inputs and results, and copy through a scratch array when a
result cannot be viewed directly (float16, or ``out=`` with strides that no
5-D view can express).
"""

import itertools
import math
import threading

import numpy as np

from . import _native
from ._args import result_array, view5, writable_view5


_INT64 = np.dtype(np.int64)


# float16 arrays of at least this many elements convert on the kernels' threads.
HALF_THREADS_MIN = 1 << 15


def _native_half(arr):
    """Is arr a C-contiguous float16 array in native byte order, big enough
    for the threaded conversions (_native.halfs_to_floats, floats_to_halfs)?"""
    return (arr.dtype.kind == "f" and arr.dtype.itemsize == 2 and arr.dtype.isnative
            and arr.flags.c_contiguous and arr.size >= HALF_THREADS_MIN)


# Strided inputs of at least this many bytes are packed on the kernels' threads.
PACK_MIN_BYTES = 1 << 18


def packable_rows(arr):
    """``arr`` as a 2-D (rows, last axis) view when it is a strided input worth
    packing into contiguous memory on the kernels' threads (a column slice
    x[..., ::2], a view with a stepped or reversed last axis): its other axes
    merge into rows without a copy, and its elements are whole aligned
    numbers of a size the gather moves. Not a broadcast view (a stride of 0:
    its copy could be far larger than its memory). Else None."""
    if (arr.flags.c_contiguous or arr.ndim < 2 or arr.nbytes < PACK_MIN_BYTES
            or not arr.flags.aligned or arr.dtype.itemsize not in _BITS
            or arr.strides[-1] % arr.dtype.itemsize
            or any(st == 0 and n > 1 for n, st in zip(arr.shape, arr.strides))
            or not axes_merge(arr.shape[:-1], arr.strides[:-1])):
        return None
    return arr.reshape(-1, arr.shape[-1])


def kernel_input(arr, nthreads=1):
    """``(xk, scratch)``: the array the kernels read - bool as uint8, float16
    widened (exactly) to float32, a strided input packed - and the scratch
    array holding it (or None), to give back to the scratch pool."""
    dt = arr.dtype   # (kind and itemsize: cheaper than comparing dtypes, on every call)
    if dt.kind == "b":
        arr = arr.view(np.uint8)
    elif dt.kind == "f" and dt.itemsize == 2:
        if _native_half(arr):
            wide = _scratch_pool.take(arr.shape, np.float32)
            _native.halfs_to_floats(arr.reshape(-1).view(np.uint16), wide.reshape(-1), nthreads)
            return wide, wide
        return arr.astype(np.float32), None
    if arr.flags.c_contiguous:
        return arr, None
    rows = packable_rows(arr)
    if rows is None or arr.nbytes > COPY_LIMIT:    # (large ones come in pieces)
        return arr, None
    packed = _scratch_pool.take(arr.shape, arr.dtype)
    bits = _BITS[arr.dtype.itemsize]
    _native.gather_rows(rows.view(bits), packed.reshape(rows.shape).view(bits), nthreads)
    return packed, packed


# Large calls whose input is staged by kernel_input - float16 widened, a
# strided input packed - go in pieces of about this many staged bytes: the
# staged input and the kernels' result then stay in the caches between the
# staging and the pooling, so memory sees little more than the caller's
# arrays. (max 3x3 s2 p1 float16 (32,64,112,112), 1 thread, one run: 14.5
# ms whole, 9.0 in pieces of 1 MB, 7.5 of 2 MB, 7.3 of 4 MB, 7.8 of 16 MB.)
PIECE_BYTES = 1 << 22


def staged_pieces(arr, lead, channels_last, results):
    """``[(arr_piece, piece_lead, result_pieces), ...]`` splitting a large
    call with a staged input along its batch (planes for channels_first,
    samples for channels_last), or None to run it whole. ``results`` (None
    entries allowed) must all be C-contiguous, so that their pieces are views."""
    if arr.size * 8 <= 2 * PIECE_BYTES:    # (too small at any itemsize: the common case)
        return None
    nlead = len(lead)
    if not nlead or any(r is not None and not r.flags.c_contiguous for r in results):
        return None
    if _native_half(arr):
        if not _native_half(results[0]):
            return None
        itemsize = 4
    elif not arr.flags.c_contiguous and packable_rows(arr) is not None:
        itemsize = arr.dtype.itemsize     # (its lead axes merge: no copy below)
    else:
        return None
    batch = math.prod(lead)
    per_item = arr.size // batch
    step = max(1, PIECE_BYTES // (itemsize * per_item))
    if step >= batch or arr.size * itemsize <= 2 * PIECE_BYTES:
        return None
    flat_in = arr.reshape((batch,) + arr.shape[nlead:])
    flat_out = [None if r is None else r.reshape((batch,) + r.shape[nlead:]) for r in results]
    return [(flat_in[i:i + step], (min(step, batch - i),),
             [None if r is None else r[i:i + step] for r in flat_out])
            for i in range(0, batch, step)]


def put_result(result, scratch, nthreads):
    """Copy a kernel's scratch result into ``result`` (float32 or float64 into
    float16 on the kernels' threads, with NumPy's rounding) and give the
    scratch back."""
    if _native_half(result) and scratch.flags.c_contiguous and scratch.dtype == np.float32:
        _native.floats_to_halfs(scratch.reshape(-1), result.reshape(-1).view(np.uint16), nthreads)
    elif _native_half(result) and scratch.flags.c_contiguous and scratch.dtype == np.float64:
        _native.doubles_to_halfs(scratch.reshape(-1), result.reshape(-1).view(np.uint16), nthreads)
    else:
        np.copyto(result, scratch, casting="unsafe")
    _scratch_pool.give(scratch)


def kernel_target(result, kernel_dtype, lead, spatial, channels_last):
    """A writable 5-D view of ``result`` in the kernel's dtype, else a scratch array.

    Returns (view, scratch); when scratch is not None the caller copies it into
    ``result`` after the kernel ran.
    """
    direct = result
    if result.dtype == kernel_dtype and result.flags.c_contiguous:
        return view5(result, lead, spatial, channels_last), None   # (fresh results)
    if result.dtype.kind == "b" and kernel_dtype == np.uint8:
        direct = result.view(np.uint8)
    if direct.dtype == kernel_dtype:
        v = writable_view5(direct, lead, spatial, channels_last)
        if v is not None:
            return v, None
    scratch = _scratch_pool.take(result.shape, kernel_dtype)
    return view5(scratch, lead, spatial, channels_last), scratch


def axes_merge(shape, strides):
    """Can these axes be viewed as one without a copy (NumPy's reshape rule: each
    axis longer than 1 steps exactly over the next such axis)?"""
    inner = None
    for n, s in zip(reversed(shape), reversed(strides)):
        if n == 1:
            continue
        if inner is not None and s != inner[0] * inner[1]:
            return False
        inner = (n, s)
    return True


# Inputs whose axes cannot be merged into the kernels' 5-D view are copied
# (contiguous: results bit-identical to a contiguous input's) only up to this
# many bytes; larger views - broadcast ones may be far larger than memory -
# are pooled where they are.
COPY_LIMIT = 2**28


def too_big_to_copy(arr):
    return not arr.flags.c_contiguous and arr.nbytes > COPY_LIMIT


def outer_lead_axes(arr, nlead):
    """How many of the first lead axes to loop over, for a view too big to copy
    (else 0): up to the last broadcast one (stride 0: equal results, computed
    once), and far enough that the remaining ones merge into the kernels' batch
    axis without copying ``arr``.

    A broadcast batch of a (C, H, W) image has shape (N, C, H, W) and strides
    (0, ...): reshaping it to (N * C, ...) would copy all of it, and pooling
    all N copies would repeat the same work N times.
    """
    if nlead == 0 or not too_big_to_copy(arr):
        return 0
    shape, strides = arr.shape, arr.strides
    k = 0
    for a in range(nlead):
        if strides[a] == 0 and shape[a] > 1:
            k = a + 1
    while k < nlead - 1 and not axes_merge(shape[k:nlead], strides[k:nlead]):
        k += 1    # (a single axis needs no merging)
    return k


def each_lead_piece(arr, k, results, run):
    """``run(arr[i], *(r[i] for r in results))`` for every index i over the first k
    axes; along axes where ``arr`` has stride 0 the results are equal, so they
    are computed at index 0 only and copied to the rest."""
    outer = arr.shape[:k]
    repeat = [n > 1 and arr.strides[a] == 0 for a, n in enumerate(outer)]
    for idx in itertools.product(*[range(1 if r else n) for r, n in zip(repeat, outer)]):
        run(arr[idx], *(None if r is None else r[idx] for r in results))
    for a in range(k):
        if repeat[a]:
            head = (slice(None),) * a
            for r in results:
                if r is not None:
                    r[head + (slice(1, None),)] = r[head + (slice(0, 1),)]


def max_outputs(out, shape, dtype, return_indices, inputs):
    """Allocate or check the value (and index) outputs of a max-type op."""
    out_indices = None
    if return_indices and isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError(f"out must be an array or a (values, indices) pair, got a tuple of {len(out)}")
        out, out_indices = out
    values = result_array(out, shape, dtype, inputs)
    indices = None
    if return_indices:
        indices = result_array(out_indices, shape, np.int64, list(inputs) + [values], name="out[1]")
    return values, indices


def other_layout(arr, lead, channels_last):
    """``(view, lead)``: ``arr`` seen in the other layout when its memory is laid
    out that way (a channels_first view of NHWC memory such as
    ``x.transpose(0, 3, 1, 2)``, or the reverse), else None. Such a view would
    be copied whole (its batch and channel axes do not merge) and then pooled;
    in its own layout it is contiguous, and only the smaller result is
    transposed (other_layout_result, put_other_layout)."""
    if arr.flags.c_contiguous or not arr.size:
        return None
    nlead = len(lead)
    if channels_last:
        view, view_lead = np.moveaxis(arr, -1, nlead), lead + (arr.shape[-1],)
    elif nlead:
        view, view_lead = np.moveaxis(arr, nlead - 1, -1), lead[:-1]
    else:
        return None
    return (view, view_lead) if view.flags.c_contiguous else None


def _other_axes(ndim, nlead, channels_last):
    """The axis order that takes an array of this layout to the other one."""
    axes = list(range(ndim))
    if channels_last:
        return axes[:nlead] + [ndim - 1] + axes[nlead:ndim - 1]
    return axes[:nlead - 1] + axes[nlead:] + [nlead - 1]


class _ScratchPool:
    """Large scratch arrays kept for the next call: fresh pages from the system
    cost more than the kernels that fill them (max 3x3 s2 with indices on a
    transposed (32,64,112,112) view: 41% of the time in the kernel's page
    clearing). Each array is lent to one call at a time, so concurrent calls
    never share one; at most KEEP arrays (and KEEP_BYTES) are kept."""

    KEEP, KEEP_BYTES, MIN_BYTES = 4, 1 << 28, 1 << 20

    def __init__(self):
        self._free = []
        self._lock = threading.Lock()

    def take(self, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes >= self.MIN_BYTES:
            with self._lock:
                for i, buf in enumerate(self._free):
                    if nbytes <= buf.nbytes <= 2 * nbytes:
                        del self._free[i]
                        return buf[:nbytes].view(dtype).reshape(shape)
        return np.empty(shape, dtype)

    def give(self, arr):
        base = arr.base if arr.base is not None else arr
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        if not isinstance(base, np.ndarray) or base.nbytes < self.MIN_BYTES:
            return
        with self._lock:
            if (len(self._free) < self.KEEP
                    and sum(b.nbytes for b in self._free) + base.nbytes <= self.KEEP_BYTES):
                self._free.append(base.view(np.uint8).reshape(-1))


_scratch_pool = _ScratchPool()


def other_layout_result(result, lead, channels_last):
    """A C-contiguous array for ``result``'s values in the other layout (or None)."""
    if result is None:
        return None
    order = _other_axes(result.ndim, len(lead), channels_last)
    return _scratch_pool.take(tuple(result.shape[a] for a in order), result.dtype)


_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def put_other_layout(tmp, result, lead, channels_last, nthreads):
    """result[...] = tmp, which holds it in the other layout (other_layout_result):
    a transpose of (batch, rows, columns) planes, in parallel, when result is
    C-contiguous, else NumPy's copy."""
    if result is None:
        return
    _put_other_layout(tmp, result, lead, channels_last, nthreads)
    _scratch_pool.give(tmp)


def _put_other_layout(tmp, result, lead, channels_last, nthreads):
    nlead = len(lead)
    if channels_last:    # tmp is (*lead, C, *spatial)
        batch, rows = math.prod(lead), tmp.shape[nlead]
    else:                # tmp is (*lead[:-1], *spatial, C)
        batch, rows = math.prod(lead[:-1]), tmp.size // max(1, math.prod(lead))
    cols = tmp.size // max(1, batch * rows)
    if result.flags.c_contiguous and result.dtype.itemsize in _BITS and tmp.size:
        bits = _BITS[result.dtype.itemsize]
        _native.transpose_batches(tmp.view(bits).reshape(batch, rows, cols),
                                  result.view(bits).reshape(batch, cols, rows), nthreads)
    else:
        inverse = np.argsort(_other_axes(result.ndim, nlead, channels_last))
        np.copyto(result, tmp.transpose(inverse))


def run_max(arr, lead, spatial, out_spatial, channels_last, axes, values, indices, nthreads,
             adaptive=False):
    """Run the max kernel from an input array into (values, indices) of the result's shape."""
    if values.size == 0:
        return
    k = outer_lead_axes(arr, len(lead))
    if k:
        each_lead_piece(arr, k, (values, indices), lambda a, v, i: run_max(
            a, lead[k:], spatial, out_spatial, channels_last, axes, v, i, nthreads, adaptive))
        return
    flip = other_layout(arr, lead, channels_last)
    if flip is not None:
        tv = other_layout_result(values, lead, channels_last)
        ti = other_layout_result(indices, lead, channels_last)
        run_max(flip[0], flip[1], spatial, out_spatial, not channels_last, axes, tv, ti,
                nthreads, adaptive)
        put_other_layout(tv, values, lead, channels_last, nthreads)
        put_other_layout(ti, indices, lead, channels_last, nthreads)
        return
    pieces = staged_pieces(arr, lead, channels_last, (values, indices))
    if pieces:
        for a, piece_lead, (v, i) in pieces:
            run_max(a, piece_lead, spatial, out_spatial, channels_last, axes, v, i, nthreads,
                    adaptive)
        return
    xk, xscratch = kernel_input(arr, nthreads)
    x5 = view5(xk, lead, spatial, channels_last)
    y5, scratch = kernel_target(values, xk.dtype, lead, out_spatial, channels_last)
    if indices is None:
        i5, iscratch, want = None, None, False
    else:
        i5, iscratch = kernel_target(indices, _INT64, lead, out_spatial, channels_last)
        want = True
    kernel = _native.max_pool_forward_for.get(x5.dtype, _native.max_pool_forward)
    kernel(x5, y5, i5, want, axes, adaptive, nthreads)
    if xscratch is not None:
        _scratch_pool.give(xscratch)
    if scratch is not None:
        put_result(values, scratch, nthreads)
    if iscratch is not None:
        np.copyto(indices, iscratch)


def run_reduce(arr, lead, spatial, out_spatial, channels_last, axes, result, nthreads, *,
                op=0, adaptive=False, count_include_pad=False, divisor_override=0, p=1.0):
    """Run the average (op=0) or Lp (op=1) kernel; float16 results go through float64."""
    if result.size == 0:
        return
    k = outer_lead_axes(arr, len(lead))
    if k:
        each_lead_piece(arr, k, (result,), lambda a, r: run_reduce(
            a, lead[k:], spatial, out_spatial, channels_last, axes, r, nthreads, op=op,
            adaptive=adaptive, count_include_pad=count_include_pad,
            divisor_override=divisor_override, p=p))
        return
    flip = other_layout(arr, lead, channels_last)
    if flip is not None:
        tmp = other_layout_result(result, lead, channels_last)
        run_reduce(flip[0], flip[1], spatial, out_spatial, not channels_last, axes, tmp,
                   nthreads, op=op, adaptive=adaptive, count_include_pad=count_include_pad,
                   divisor_override=divisor_override, p=p)
        put_other_layout(tmp, result, lead, channels_last, nthreads)
        return
    pieces = staged_pieces(arr, lead, channels_last, (result,))
    if pieces:
        for a, piece_lead, (r,) in pieces:
            run_reduce(a, piece_lead, spatial, out_spatial, channels_last, axes, r, nthreads,
                       op=op, adaptive=adaptive, count_include_pad=count_include_pad,
                       divisor_override=divisor_override, p=p)
        return
    xk, xscratch = kernel_input(arr, nthreads)
    x5 = view5(xk, lead, spatial, channels_last)
    kernel_out = np.dtype(np.float32) if result.dtype == np.float32 else np.dtype(np.float64)
    y5, scratch = kernel_target(result, kernel_out, lead, out_spatial, channels_last)
    kernel = _native.reduce_pool_forward_for.get((x5.dtype, y5.dtype), _native.reduce_pool_forward)
    kernel(op, x5, y5, axes, adaptive, count_include_pad, divisor_override, p, nthreads)
    if xscratch is not None:
        _scratch_pool.give(xscratch)
    if scratch is not None:
        put_result(result, scratch, nthreads)



def float_kernel_dtype(result_dtype):
    """Kernels compute float32 results in float32 and every other float in float64."""
    return np.dtype(np.float32) if result_dtype == np.float32 else np.dtype(np.float64)


def run_window_backward(grad, lead, out_spatial, in_spatial, channels_last, axes, result,
                        nthreads, *, adaptive=False, use_divisor=True, count_include_pad=False,
                        divisor_override=0):
    """Gather the adjoint of a window sum/average from ``grad`` into ``result``."""
    if result.size == 0:
        return
    kdt = float_kernel_dtype(result.dtype)
    g5 = view5(grad.astype(kdt, copy=False), lead, out_spatial, channels_last)
    d5, scratch = kernel_target(result, kdt, lead, in_spatial, channels_last)
    _native.window_backward(g5, d5, axes, adaptive, use_divisor, count_include_pad,
                             divisor_override, nthreads)
    if scratch is not None:
        np.copyto(result, scratch, casting="unsafe")


def check_index_range(indices5, lo, hi, name, nthreads):
    """Every index in [lo, hi), else a ValueError naming the offending values."""
    if indices5.size and _native.check_indices(indices5, lo, hi, nthreads):
        flat = indices5.ravel()
        bad = flat[(flat < lo) | (flat >= hi)]
        raise ValueError(f"{name} holds {bad.size} value(s) outside [{lo}, {hi}) "
                         f"(e.g. {int(bad[0])}); each must index its plane's {hi} positions")


def run_max_backward(grad, indices, lead, out_spatial, in_spatial, channels_last, result,
                     nthreads):
    """Scatter-add ``grad`` at plane positions ``indices`` into ``result`` (zeros elsewhere).

    Spatial axes are merged (a flat index does not care about them), so any
    number of them works. Indices must already be checked.
    """
    if result.size == 0:
        return
    kdt = float_kernel_dtype(result.dtype)
    q = (math.prod(out_spatial),)
    p = (math.prod(in_spatial),)
    g5 = view5(grad.astype(kdt, copy=False), lead, q, channels_last)
    i5 = view5(indices, lead, q, channels_last)
    d5, scratch = kernel_target(result, kdt, lead, p, channels_last)
    _native.max_backward(g5, i5, d5, nthreads)
    if scratch is not None:
        np.copyto(result, scratch, casting="unsafe")


_SAME_SIZE_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def run_unpool(arr, indices, lead, in_spatial, out_spatial, channels_last, result, nthreads):
    """Place ``arr`` at ``indices`` in zeroed planes of ``result`` (pure data movement).

    Values move bit for bit, so each dtype is handled as the unsigned
    integer of its size.
    """
    if result.size == 0:
        return
    udt = _SAME_SIZE_UINT[arr.dtype.itemsize]
    q = (math.prod(in_spatial),)
    p = (math.prod(out_spatial),)
    x5 = view5(arr.view(udt), lead, q, channels_last)
    i5 = view5(indices, lead, q, channels_last)
    target = result.view(udt)
    y5, scratch = kernel_target(target, np.dtype(udt), lead, p, channels_last)
    _native.max_unpool_forward(x5, i5, y5, nthreads)
    if scratch is not None:
        np.copyto(target, scratch)
