"""Forward max, average and global pooling: the public functions.

Each function checks its arguments (``_args``), builds the kernels' 5-D view
(B, D, H, W, V) of the input without copying where the strides allow, and
calls one compiled kernel with the GIL released.
"""

import numpy as np

from . import _kernels
from ._args import (as_sequence, check_flag, check_input, check_layout, check_out,
                    check_size, result_dtype_avg, thread_count, view5, window_geometry,
                    writable_view5)

__all__ = [
    "max_pool", "avg_pool", "global_avg_pool", "global_max_pool", "pooled_shape",
    "resolve_padding",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
]

# Stands in for the index array when return_indices=False (never written).
_NO_INDICES = np.zeros((1, 1, 1, 1, 1), dtype=np.int64)


def _kernel_input(arr):
    """The array the kernels read: bool as uint8, float16 widened (exactly) to float32."""
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    return arr


def _kernel_target(result, kernel_dtype, lead, spatial, channels_last):
    """A writable 5-D view of ``result`` in the kernel's dtype, else a scratch array.

    Returns (view, scratch); when scratch is not None the caller copies it into
    ``result`` after the kernel ran.
    """
    direct = result
    if result.dtype == np.bool_ and kernel_dtype == np.uint8:
        direct = result.view(np.uint8)
    if direct.dtype == kernel_dtype:
        v = writable_view5(direct, lead, spatial, channels_last)
        if v is not None:
            return v, None
    scratch = np.empty(result.shape, dtype=kernel_dtype)
    return view5(scratch, lead, spatial, channels_last), scratch


def _max_outputs(out, shape, dtype, return_indices, inputs):
    """Allocate or check the value (and index) outputs of a max-type op."""
    out_indices = None
    if return_indices and isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError(f"out must be an array or a (values, indices) pair, got a tuple of {len(out)}")
        out, out_indices = out
    if out is None:
        values = np.empty(shape, dtype=dtype)
    else:
        values = check_out(out, shape, dtype, inputs)
    indices = None
    if return_indices:
        if out_indices is None:
            indices = np.empty(shape, dtype=np.int64)
        else:
            indices = check_out(out_indices, shape, np.int64, list(inputs) + [values], name="out[1]")
    return values, indices


def _run_max(arr, lead, spatial, out_spatial, channels_last, axes, values, indices, nthreads):
    """Run the max kernel from an input array into (values, indices) of the result's shape."""
    if values.size == 0:
        return
    xk = _kernel_input(arr)
    x5 = view5(xk, lead, spatial, channels_last)
    y5, scratch = _kernel_target(values, xk.dtype, lead, out_spatial, channels_last)
    if indices is None:
        i5, iscratch, want = _NO_INDICES, None, False
    else:
        i5, iscratch = _kernel_target(indices, np.dtype(np.int64), lead, out_spatial, channels_last)
        want = True
    _kernels.max_pool_forward(x5, y5, i5, want, axes, nthreads)
    if scratch is not None:
        np.copyto(values, scratch, casting="unsafe")
    if iscratch is not None:
        np.copyto(indices, iscratch)


def _run_avg(arr, lead, spatial, out_spatial, channels_last, axes, result,
             count_include_pad, divisor_override, nthreads):
    """Run the average kernel; float16 results are computed in float64 and rounded once."""
    if result.size == 0:
        return
    xk = _kernel_input(arr)
    x5 = view5(xk, lead, spatial, channels_last)
    kernel_out = np.dtype(np.float32) if result.dtype == np.float32 else np.dtype(np.float64)
    y5, scratch = _kernel_target(result, kernel_out, lead, out_spatial, channels_last)
    _kernels.avg_pool_forward(x5, y5, axes, count_include_pad, divisor_override, nthreads)
    if scratch is not None:
        np.copyto(result, scratch, casting="unsafe")


def _window_work(g):
    """Input reads of a windowed pool: outputs times taps (used to pick threads)."""
    taps = int(np.prod(g.kernel))
    return int(np.prod(g.out_shape(), dtype=np.float64)) * taps


def _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, layout, return_indices,
              out, num_threads, rank):
    arr = check_input(x)
    g = window_geometry(arr.shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank)
    return_indices = check_flag("return_indices", return_indices)
    values, indices = _max_outputs(out, g.out_shape(), arr.dtype, return_indices, [arr])
    nthreads = thread_count(num_threads, _window_work(g))
    _run_max(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), values, indices,
             nthreads)
    return (values, indices) if return_indices else values


def _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
              divisor_override, layout, dtype, out, num_threads, rank):
    arr = check_input(x)
    g = window_geometry(arr.shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank)
    count_include_pad = check_flag("count_include_pad", count_include_pad)
    divisor = _check_divisor(divisor_override)
    rdtype = result_dtype_avg(arr.dtype, dtype)
    shape = g.out_shape()
    result = np.empty(shape, dtype=rdtype) if out is None else check_out(out, shape, rdtype, [arr])
    nthreads = thread_count(num_threads, _window_work(g))
    _run_avg(arr, g.lead, g.spatial, g.out_spatial, g.channels_last, g.axes(), result,
             count_include_pad, divisor, nthreads)
    return result


def _check_divisor(divisor_override):
    """None -> 0 (no override); else a positive int."""
    if divisor_override is None:
        return 0
    return check_size("divisor_override", divisor_override, 1)


# ----------------------------------------------------------------------------- public API

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
    return _max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, layout,
                     return_indices, out, num_threads, None)


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
    return _avg_pool(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                     divisor_override, layout, dtype, out, num_threads, None)


def _global_geometry(arr, layout):
    """(lead, spatial size, channels_last, result shape w/o and with keepdims) of global pooling."""
    channels_last = check_layout(layout)
    if arr.ndim < 3:
        want = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(f"x has shape {arr.shape}; global pooling needs at least 3 dims {want}")
    if channels_last:
        lead, spatial, keep = arr.shape[:1], arr.shape[1:-1], (arr.shape[0],) + (1,) * (arr.ndim - 2) + (arr.shape[-1],)
        flat = (arr.shape[0], arr.shape[-1])
    else:
        lead, spatial, keep = arr.shape[:2], arr.shape[2:], arr.shape[:2] + (1,) * (arr.ndim - 2)
        flat = arr.shape[:2]
    size = int(np.prod(spatial, dtype=np.int64))
    if size == 0:
        raise ValueError(f"x has shape {arr.shape}; global pooling needs non-empty spatial axes {spatial}")
    return lead, size, channels_last, flat, keep


def _global_axes(size):
    return ((1, 1, 1, 1, 1, 0, 0), (1, 1, 1, 1, 1, 0, 0), (size, 1, size, 1, 1, 0, 0))


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
    lead, size, cl, flat, keep = _global_geometry(arr, layout)
    shape = keep if check_flag("keepdims", keepdims) else flat
    rdtype = result_dtype_avg(arr.dtype, dtype)
    result = np.empty(shape, dtype=rdtype) if out is None else check_out(out, shape, rdtype, [arr])
    nthreads = thread_count(num_threads, arr.size)
    _run_avg(arr, lead, (size,), (1,), cl, _global_axes(size), result, False, 0, nthreads)
    return result


def global_max_pool(x, *, layout="channels_first", keepdims=False, return_indices=False,
                    out=None, num_threads=None):
    """Maximum over every spatial axis, optionally with its flattened spatial index.

    Parameters are those of :func:`global_avg_pool`; ``return_indices`` and
    ``out`` behave as in :func:`max_pool`. The result keeps the input dtype.
    """
    arr = check_input(x)
    lead, size, cl, flat, keep = _global_geometry(arr, layout)
    shape = keep if check_flag("keepdims", keepdims) else flat
    return_indices = check_flag("return_indices", return_indices)
    values, indices = _max_outputs(out, shape, arr.dtype, return_indices, [arr])
    nthreads = thread_count(num_threads, arr.size)
    _run_max(arr, lead, (size,), (1,), cl, _global_axes(size), values, indices, nthreads)
    return (values, indices) if return_indices else values


def pooled_shape(input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 *, layout="channels_first"):
    """Output shape of a windowed pool of ``input_shape``, without computing it.

    Takes the window arguments of :func:`max_pool` / :func:`avg_pool` and
    raises the same errors they would.
    """
    g = window_geometry(_shape_arg(input_shape), kernel_size, stride, padding, dilation, ceil_mode,
                        layout, name="input_shape")
    return g.out_shape()


def resolve_padding(input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                    *, layout="channels_first"):
    """The explicit ``((begin, end), ...)`` pads per spatial axis that a call would use.

    Resolves ``"valid"``, ``"same"`` and ``"same_lower"`` for this input shape
    and checks the whole window geometry.
    """
    g = window_geometry(_shape_arg(input_shape), kernel_size, stride, padding, dilation, ceil_mode,
                        layout, name="input_shape")
    return g.pads


def _shape_arg(input_shape):
    seq = as_sequence(input_shape)
    if seq is None:
        raise TypeError(f"input_shape must be a tuple of ints, got {input_shape!r}")
    return tuple(check_size(f"input_shape[{i}]", n, 0) for i, n in enumerate(seq))


def _alias(generic_name, rank):
    """Build the fixed-rank alias (e.g. max_pool2d) of a rank-generic function."""
    impl = {"max_pool": _max_pool, "avg_pool": _avg_pool}[generic_name]

    if generic_name == "max_pool":
        def alias(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                  layout="channels_first", return_indices=False, out=None, num_threads=None):
            return impl(x, kernel_size, stride, padding, dilation, ceil_mode, layout,
                        return_indices, out, num_threads, rank)
    else:
        def alias(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                  count_include_pad=True, divisor_override=None, *, layout="channels_first",
                  dtype=None, out=None, num_threads=None):
            return impl(x, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                        divisor_override, layout, dtype, out, num_threads, rank)

    alias.__name__ = alias.__qualname__ = f"{generic_name}{rank}d"
    alias.__doc__ = (f"{rank}-D :func:`{generic_name}`: ints in kernel_size, stride, padding and "
                     f"dilation are broadcast to all {rank} spatial axes.\n\n"
                     f"See :func:`pypool.{generic_name}` for parameters and semantics.")
    return alias


max_pool1d, max_pool2d, max_pool3d = (_alias("max_pool", r) for r in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_alias("avg_pool", r) for r in (1, 2, 3))
