"""Forward pooling: the public max, average, Lp, adaptive and global functions.

Each function checks its arguments (``_args``), then hands the input to one
compiled kernel through ``_dispatch``. The rank-generic functions take the
spatial rank from ``kernel_size`` / ``output_size``; the ``*1d/2d/3d``
aliases fix it and broadcast plain ints.
"""

import inspect
import math

from ._args import (adaptive_geometry, check_flag, check_input, check_norm_type, check_shape,
                    check_size, global_axes, global_geometry, result_array, result_dtype_avg,
                    thread_count, window_geometry)
from ._dispatch import axes_merge, max_outputs, run_max, run_reduce, too_big_to_copy
from . import _plans

__all__ = [
    "max_pool", "avg_pool", "lp_pool", "adaptive_avg_pool", "adaptive_max_pool",
    "global_avg_pool", "global_max_pool", "pooled_shape", "resolve_padding",
]

REDUCE_AVG, REDUCE_LP = 0, 1


def _window_work(g):
    """Input reads of a pool: outputs times taps per output (used to pick threads)."""
    return g.work()


def _float_result(arr, dtype, shape, out):
    """The result array of an averaging op: new, or ``out`` once checked."""
    return result_array(out, shape, result_dtype_avg(arr.dtype, dtype), [arr])


def _check_divisor(divisor_override):
    """None -> 0 (no override); else a positive int."""
    if divisor_override is None:
        return 0
    return check_size("divisor_override", divisor_override, 1)


# ----------------------------------------------------------------------------- implementations
# Each takes the spatial rank first (None: from kernel_size / output_size).

def _max_pool(rank, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
              layout="channels_first", return_indices=False, out=None, num_threads=None):
    key = None
    if out is None:
        key = _plans.call_key("max", x, (rank, kernel_size, stride, padding, dilation, layout,
                                         num_threads), (ceil_mode, return_indices))
        plan = _plans.lookup(key)
        if plan is not None:
            return plan.run(x, num_threads, return_indices)
    arr = check_input(x)
    g = window_geometry(arr.shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank)
    return_indices = check_flag("return_indices", return_indices)
    values, indices = max_outputs(out, g.out_shape(), arr.dtype, return_indices, [arr])
    nthreads = thread_count(num_threads, _window_work(g))
    run_max(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), values, indices,
            nthreads)
    if key is not None and arr is x:
        _plans.remember_max(key, arr, g)
    return (values, indices) if return_indices else values


def _avg_pool(rank, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
              count_include_pad=True, divisor_override=None, *, layout="channels_first",
              dtype=None, out=None, num_threads=None):
    key = None
    if out is None and dtype is None:
        key = _plans.call_key("avg", x, (rank, kernel_size, stride, padding, dilation,
                                         divisor_override, layout, num_threads),
                              (ceil_mode, count_include_pad))
        plan = _plans.lookup(key)
        if plan is not None:
            return plan.run(x, num_threads)
    arr = check_input(x)
    g = window_geometry(arr.shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank)
    count_include_pad = check_flag("count_include_pad", count_include_pad)
    divisor = _check_divisor(divisor_override)
    result = _float_result(arr, dtype, g.out_shape(), out)
    nthreads = thread_count(num_threads, _window_work(g))
    run_reduce(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), result,
               nthreads, count_include_pad=count_include_pad, divisor_override=divisor)
    if key is not None and arr is x:
        _plans.remember_average(key, arr, g, result.dtype, count_include_pad, divisor)
    return result


def _lp_pool(rank, x, norm_type, kernel_size, stride=None, padding=0, dilation=1,
             ceil_mode=False, *, layout="channels_first", dtype=None, out=None, num_threads=None):
    arr = check_input(x)
    p = check_norm_type(norm_type)
    g = window_geometry(arr.shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank)
    result = _float_result(arr, dtype, g.out_shape(), out)
    nthreads = thread_count(num_threads, _window_work(g))
    run_reduce(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), result,
               nthreads, op=REDUCE_LP, p=p)
    return result


def _adaptive_work(g):
    """Adaptive cells read about the whole input once (more when cells overlap)."""
    return math.prod(g.lead + g.spatial) * max(g.channels, 1)


def _one_cell(g, arr):
    """The global kernels' view of adaptive pooling to one cell per axis (a
    global pool over those axes), or None for other output sizes. The global
    paths are the faster: 1 thread, float32 (16,64,112,112) to (1, 1), 6.0 ->
    1.85 ms (PyTorch: 1.84 ms)."""
    if any(o != 1 for o in g.out_spatial):
        return None
    return _global_plan(arr, g.lead, math.prod(g.spatial), g.channels_last)


def _even_cells(g, indices=False):
    """The kernels' axes for adaptive cells that all have one size along each
    axis (every input size a multiple of its output size): the sliding
    windows kernel = stride = that size, the same taps in the same order
    (the same bits) by the faster sliding paths. One thread, float32: max
    (32,512,28,28) to 7x7 7.8 -> 4.4 ms, 1-D (64,256,4096) to 512 123 -> 29
    ms. None otherwise, and for indices of channels_first cells 3 or more
    columns wide in 2-D and 3-D, where the sliding path is the slower (28 to
    7: 21 ms against 9.4)."""
    if any(L % o for L, o in zip(g.spatial, g.out_spatial)):
        return None
    cells = [L // o for L, o in zip(g.spatial, g.out_spatial)]
    if indices and not g.channels_last and g.rank >= 2 and cells[-1] >= 3:
        return None
    return (((1, 1, 1, 1, 1, 0, 0),) * (3 - g.rank)
            + tuple((L, o, c, c, 1, 0, 0) for L, o, c in zip(g.spatial, g.out_spatial, cells)))


def _adaptive_avg_pool(rank, x, output_size, *, layout="channels_first", dtype=None, out=None,
                       num_threads=None):
    arr = check_input(x)
    g = adaptive_geometry(arr.shape, output_size, layout, rank)
    result = _float_result(arr, dtype, g.out_shape(), out)
    nthreads = thread_count(num_threads, _adaptive_work(g))
    one = _one_cell(g, arr)
    even = None if one is not None else _even_cells(g)
    if one is not None:
        run_reduce(arr, g.lead, *one[:2], g.channels_last, one[2], result, nthreads)
    elif even is not None:
        run_reduce(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, even, result,
                   nthreads)
    else:
        run_reduce(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), result,
                   nthreads, adaptive=True)
    return result


def _adaptive_max_pool(rank, x, output_size, *, layout="channels_first", return_indices=False,
                       out=None, num_threads=None):
    arr = check_input(x)
    g = adaptive_geometry(arr.shape, output_size, layout, rank)
    return_indices = check_flag("return_indices", return_indices)
    values, indices = max_outputs(out, g.out_shape(), arr.dtype, return_indices, [arr])
    nthreads = thread_count(num_threads, _adaptive_work(g))
    one = _one_cell(g, arr)
    even = None if one is not None else _even_cells(g, return_indices)
    if one is not None:
        run_max(arr, g.lead, *one[:2], g.channels_last, one[2], values, indices, nthreads)
    elif even is not None:
        run_max(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, even, values, indices,
                nthreads)
    else:
        run_max(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), values,
                indices, nthreads, adaptive=True)
    return (values, indices) if return_indices else values


# ----------------------------------------------------------------------------- rank-generic API

def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             layout="channels_first", return_indices=False, out=None, num_threads=None):
    """Max pooling over 1, 2 or 3 spatial axes.

    Parameters
    ----------
    x : array_like
        Input of shape ``(*lead, *spatial)`` (channels_first) or
        ``(*lead, *spatial, C)`` (channels_last); any strides, never modified.
        bool, signed/unsigned integers and float16/32/64 are supported.
    kernel_size : tuple of int
        Window size per spatial axis; its length (1 to 3) is the spatial rank.
    stride : int or tuple of int, optional
        Step per axis; None means ``kernel_size``.
    padding : int, tuple, or str
        An int (both sides of every axis), one int per axis, one ``(begin, end)``
        pair per axis, ``"valid"``, ``"same"`` (odd pad at the end) or
        ``"same_lower"`` (odd pad at the beginning). Each pad must be smaller
        than the effective extent ``(k-1)*dilation+1``. Padding never wins.
    dilation : int or tuple of int
        Spacing between window taps.
    ceil_mode : bool
        Round the output size up; a last window that would start in the end
        padding is dropped.
    layout : {"channels_first", "channels_last"}
    return_indices : bool
        Also return int64 indices of each maximum, flattened row-major over the
        input's spatial axes of its plane; -1 for a window with no in-bounds tap.
    out : ndarray or (ndarray, ndarray), optional
        Where to write the values (and indices); exact shape and dtype.
    num_threads : int, optional
        Upper bound on the threads of this call; None uses the OpenMP default.

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``return_indices``
        Values of ``x``'s dtype. Ties go to the first maximum in row-major
        order; a window holding a NaN gives NaN and points at its first NaN;
        an empty window gives -inf (the dtype's minimum for integers).
    """
    return _max_pool(None, x, kernel_size, stride, padding, dilation, ceil_mode, layout=layout,
                     return_indices=return_indices, out=out, num_threads=num_threads)


def avg_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
             count_include_pad=True, divisor_override=None, *, layout="channels_first",
             dtype=None, out=None, num_threads=None):
    """Average pooling over 1, 2 or 3 spatial axes.

    Parameters are those of :func:`max_pool`, plus:

    count_include_pad : bool
        Count padded positions in the divisor (only those inside the padding,
        not the ceil_mode overhang past it, as PyTorch does).
    divisor_override : int, optional
        A positive divisor used for every window instead.
    dtype : dtype, optional
        float16, float32 or float64 result. By default floating inputs keep
        their dtype and integer/bool inputs give float64.

    Returns
    -------
    ndarray
        Each value is the float64 sum of the window divided in float64 and
        rounded once to the result dtype. A window with no in-bounds tap and
        ``count_include_pad=False`` gives NaN; NaN inputs propagate.
    """
    return _avg_pool(None, x, kernel_size, stride, padding, dilation, ceil_mode,
                     count_include_pad, divisor_override, layout=layout, dtype=dtype, out=out,
                     num_threads=num_threads)


def lp_pool(x, norm_type, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
            layout="channels_first", dtype=None, out=None, num_threads=None):
    """Power-average (Lp norm) pooling over 1, 2 or 3 spatial axes.

    Each output is ``(sum over in-bounds taps of |x|**p) ** (1/p)`` with
    ``p = norm_type`` (ONNX LpPool; PyTorch's lp_pool uses ``x**p`` instead
    of ``|x|**p``, which differs for negative inputs and odd p).

    Parameters
    ----------
    x : array_like
        As for :func:`max_pool`.
    norm_type : float
        The order p > 0; ``float("inf")`` gives the window's max ``|x|``.
    kernel_size, stride, padding, dilation, ceil_mode, layout, out, num_threads
        As for :func:`max_pool`; padded positions contribute nothing and a
        window with no in-bounds tap gives 0.
    dtype : dtype, optional
        As for :func:`avg_pool`: floats keep their dtype, ints/bool give float64.

    Returns
    -------
    ndarray
        Sums are accumulated in float64 and rounded once; NaN propagates.
    """
    return _lp_pool(None, x, norm_type, kernel_size, stride, padding, dilation, ceil_mode,
                    layout=layout, dtype=dtype, out=out, num_threads=num_threads)


def adaptive_avg_pool(x, output_size, *, layout="channels_first", dtype=None, out=None,
                      num_threads=None):
    """Average pooling to a fixed output size.

    Output cell ``i`` of an axis with input size ``L`` and output size ``O``
    averages ``[floor(i*L/O), ceil((i+1)*L/O))`` (PyTorch's cells).

    Parameters
    ----------
    x : array_like
        As for :func:`max_pool`; every pooled axis must be non-empty.
    output_size : tuple of (int or None)
        Output size per spatial axis (its length, 1 to 3, is the rank); None
        keeps that axis's input size.
    layout, dtype, out, num_threads
        As for :func:`avg_pool`.

    Returns
    -------
    ndarray
    """
    return _adaptive_avg_pool(None, x, output_size, layout=layout, dtype=dtype, out=out,
                              num_threads=num_threads)


def adaptive_max_pool(x, output_size, *, layout="channels_first", return_indices=False,
                      out=None, num_threads=None):
    """Max pooling to a fixed output size (cells as in :func:`adaptive_avg_pool`).

    ``return_indices``, ``out`` and the tie/NaN rules are those of :func:`max_pool`;
    the result keeps the input dtype.
    """
    return _adaptive_max_pool(None, x, output_size, layout=layout, return_indices=return_indices,
                              out=out, num_threads=num_threads)


def _global_plan(arr, lead, size, channels_last):
    """(spatial, out_spatial, axes) of a global pool as the kernels see it: the
    spatial axes merged into one, unless that needs a copy of a view too big to
    copy (one with a broadcast inner axis, say; see _dispatch.COPY_LIMIT) and
    there are at most 3 of them: then each axis keeps its place and gets one
    window covering it (same indices; a sum adds the same terms, row-major)."""
    if too_big_to_copy(arr):
        shape = arr.shape[len(lead):arr.ndim - (1 if channels_last else 0)]
        strides = arr.strides[len(lead):arr.ndim - (1 if channels_last else 0)]
        if len(shape) <= 3 and not axes_merge(shape, strides):
            unused = ((1, 1, 1, 1, 1, 0, 0),) * (3 - len(shape))
            return shape, (1,) * len(shape), unused + tuple((L, 1, L, 1, 1, 0, 0) for L in shape)
    return (size,), (1,), global_axes(size)


def global_avg_pool(x, *, layout="channels_first", keepdims=False, dtype=None, out=None,
                    num_threads=None):
    """Mean over every spatial axis.

    Parameters
    ----------
    x : array_like
        ``(N, C, *spatial)`` (channels_first) or ``(N, *spatial, C)``
        (channels_last), at least 3 dims, non-empty spatial axes.
    keepdims : bool
        Keep the spatial axes as size 1.
    dtype, out, num_threads
        As for :func:`avg_pool`.

    Returns
    -------
    ndarray
        ``(N, C)``, or with keepdims ``(N, C, 1, ...)`` / ``(N, 1, ..., C)``.
    """
    arr = check_input(x)
    lead, size, cl, flat, keep = global_geometry(arr.shape, layout)
    shape = keep if check_flag("keepdims", keepdims) else flat
    result = _float_result(arr, dtype, shape, out)
    nthreads = thread_count(num_threads, arr.size)
    spatial, out_spatial, axes = _global_plan(arr, lead, size, cl)
    run_reduce(arr, lead, spatial, out_spatial, cl, axes, result, nthreads)
    return result


def global_max_pool(x, *, layout="channels_first", keepdims=False, return_indices=False,
                    out=None, num_threads=None):
    """Maximum over every spatial axis, optionally with its flattened spatial index.

    Parameters are those of :func:`global_avg_pool`; ``return_indices`` and
    ``out`` behave as in :func:`max_pool`. The result keeps the input dtype.
    """
    arr = check_input(x)
    lead, size, cl, flat, keep = global_geometry(arr.shape, layout)
    shape = keep if check_flag("keepdims", keepdims) else flat
    return_indices = check_flag("return_indices", return_indices)
    values, indices = max_outputs(out, shape, arr.dtype, return_indices, [arr])
    nthreads = thread_count(num_threads, arr.size)
    spatial, out_spatial, axes = _global_plan(arr, lead, size, cl)
    run_max(arr, lead, spatial, out_spatial, cl, axes, values, indices, nthreads)
    return (values, indices) if return_indices else values


def pooled_shape(input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 *, layout="channels_first"):
    """Output shape of a windowed pool of ``input_shape``, without computing it.

    Takes the window arguments of :func:`max_pool` / :func:`avg_pool` and
    raises the same errors they would.
    """
    g = window_geometry(check_shape("input_shape", input_shape), kernel_size, stride, padding,
                        dilation, ceil_mode, layout, name="input_shape")
    return g.out_shape()


def resolve_padding(input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                    *, layout="channels_first"):
    """The explicit ``((begin, end), ...)`` pads per spatial axis that a call would use.

    Resolves ``"valid"``, ``"same"`` and ``"same_lower"`` for this input shape
    and checks the whole window geometry.
    """
    g = window_geometry(check_shape("input_shape", input_shape), kernel_size, stride, padding,
                        dilation, ceil_mode, layout, name="input_shape")
    return g.pads


# ----------------------------------------------------------------------------- fixed-rank aliases

def fixed_rank(generic, impl, rank):
    """The ``{name}{rank}d`` alias of a rank-generic function: same parameters, rank fixed."""
    def alias(*args, **kwargs):
        return impl(rank, *args, **kwargs)

    name = f"{generic.__name__}{rank}d"
    alias.__name__ = alias.__qualname__ = name
    alias.__module__ = "pypool"
    alias.__signature__ = inspect.signature(generic)
    alias.__doc__ = (f"{rank}-D :func:`pypool.{generic.__name__}`: plain ints in the window "
                     f"arguments are broadcast to all {rank} spatial axes.\n\n"
                     f"See :func:`pypool.{generic.__name__}` for parameters and semantics.")
    return alias


def _aliases(generic, impl):
    return tuple(fixed_rank(generic, impl, r) for r in (1, 2, 3))


max_pool1d, max_pool2d, max_pool3d = _aliases(max_pool, _max_pool)
avg_pool1d, avg_pool2d, avg_pool3d = _aliases(avg_pool, _avg_pool)
lp_pool1d, lp_pool2d, lp_pool3d = _aliases(lp_pool, _lp_pool)
adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = _aliases(adaptive_avg_pool, _adaptive_avg_pool)
adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = _aliases(adaptive_max_pool, _adaptive_max_pool)
