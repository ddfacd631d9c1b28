"""Backward passes (input gradients) and max-unpooling.

Every backward function takes the gradient of the pooled result and returns
the gradient of the input, of shape ``input_shape``. Index arrays that come
from users (max_pool_backward, max_unpool) are checked — dtype, shape and
range — before anything is written.
"""

import math

import numpy as np

from . import _native
from ._args import (_ERR_EMPTY, _OK, adaptive_geometry, as_sequence, check_flag, check_indices,
                    check_input, check_layout, check_norm_type, check_shape, check_size,
                    global_axes, global_geometry, grad_dtype, parse_padding, per_axis,
                    rank_from_kernel, result_array, result_dtype_avg, split_shape, thread_count,
                    view5, window_geometry)
from ._dispatch import check_index_range, run_max_backward, run_unpool, run_window_backward
from ._pooling import _check_divisor, _aliases

__all__ = [
    "max_unpool", "max_pool_backward", "avg_pool_backward", "lp_pool_backward",
    "global_avg_pool_backward", "adaptive_avg_pool_backward",
]


def _check_grad(grad_output, expected, input_shape):
    g = check_input(grad_output, "grad_output")
    if g.shape != tuple(expected):
        raise ValueError(f"grad_output has shape {g.shape}; expected {tuple(expected)} "
                         f"(the pooled shape for input_shape {tuple(input_shape)})")
    return g


def _check_ndim(ndim, input_shape, channels_last, limit=None):
    """Spatial rank of a backward call: ``ndim`` or len(input_shape) - 2."""
    n = len(input_shape) - 2 if ndim is None else check_size("ndim", ndim, 1)
    most = len(input_shape) - (1 if channels_last else 0)
    if limit is not None:
        most = min(most, limit)
    if not 1 <= n <= most:
        raise ValueError(f"ndim must be between 1 and {most} for input_shape {tuple(input_shape)}, got {n}")
    return n


# ----------------------------------------------------------------------------- max-unpooling

def _max_unpool(rank, x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
                layout="channels_first", out=None, num_threads=None):
    arr = check_input(x)
    rank = rank_from_kernel(kernel_size, rank)
    channels_last = check_layout(layout)
    kernel = per_axis("kernel_size", kernel_size, rank, 1)
    stride = per_axis("stride", stride, rank, 1, default=kernel)
    mode, pads = parse_padding(padding, rank)
    if mode != 0:
        raise ValueError(f"padding for max_unpool must be ints, (begin, end) pairs or 'valid', got {padding!r}")
    lead, spatial, channels = split_shape(arr.shape, rank, channels_last)
    if output_size is None:
        sizes = []
        for i, (L, s, (pb, pe), k) in enumerate(zip(spatial, stride, pads, kernel)):
            st, n = _native.unpool_axis(L, k, s, pb, pe)   # the check the C API runs
            if st == _ERR_EMPTY:
                raise ValueError(f"max_unpool output size on spatial axis {i} would be {n} "
                                 f"(input size {L}, stride {s}, padding {(pb, pe)}, "
                                 f"kernel_size {k}); it must be at least 1")
            if st != _OK:
                raise ValueError(f"max_unpool output size on spatial axis {i} (input size {L}, "
                                 f"stride {s}, padding {(pb, pe)}, kernel_size {k}) overflows "
                                 f"64-bit arithmetic")
            sizes.append(n)
    else:
        seq = as_sequence(output_size)
        if seq is None:
            raise TypeError(f"output_size must be a tuple of ints, got {output_size!r}")
        if len(seq) == arr.ndim:   # a full shape, as PyTorch accepts
            full = tuple(seq)
            start = len(lead)
            seq = full[start:start + rank]
            rest = full[:start] + full[start + rank:]
            if tuple(rest) != tuple(arr.shape[:start] + arr.shape[start + rank:]):
                raise ValueError(f"output_size {full} does not match x's shape {arr.shape} "
                                 f"outside the spatial axes")
        elif len(seq) != rank:
            raise ValueError(f"output_size must have {rank} entries (or {arr.ndim} for a full shape), "
                             f"got {len(seq)}: {output_size!r}")
        sizes = [check_size(f"output_size[{i}]", n, 1) for i, n in enumerate(seq)]
    out_spatial = tuple(sizes)
    ind = check_indices(indices, arr.shape, "x")
    shape = lead + out_spatial + ((channels,) if channels_last else ())
    result = result_array(out, shape, arr.dtype, [arr, ind])
    nthreads = thread_count(num_threads, arr.size + result.size)
    plane = math.prod(out_spatial)
    check_index_range(view5(ind, lead, spatial, channels_last), 0, plane, "indices", nthreads)
    run_unpool(arr, ind, lead, spatial, out_spatial, channels_last, result, nthreads)
    return result


def max_unpool(x, indices, kernel_size, stride=None, padding=0, output_size=None, *,
               layout="channels_first", out=None, num_threads=None):
    """Partial inverse of max pooling: put each value back at its index, zeros elsewhere.

    Parameters
    ----------
    x : array_like
        Pooled values, ``(*lead, *spatial)`` or ``(*lead, *spatial, C)``; any real dtype.
    indices : array_like of int
        Same shape as ``x``: per-plane positions flattened row-major over the
        OUTPUT's spatial axes (what :func:`max_pool` returns). Checked to lie in
        ``[0, prod(output spatial))`` before anything is written.
    kernel_size, stride, padding
        The pooling's window (padding: ints, ``(begin, end)`` pairs or ``"valid"``).
    output_size : tuple of int, optional
        Spatial output sizes (or a full output shape). Default per axis:
        ``(L - 1) * stride - pad_begin - pad_end + kernel_size``.
    layout, out, num_threads
        As for :func:`max_pool`.

    Returns
    -------
    ndarray
        Of ``x``'s dtype. When two values carry the same index the last one
        in row-major order wins (PyTorch's CPU behaviour).
    """
    return _max_unpool(None, x, indices, kernel_size, stride, padding, output_size, layout=layout,
                       out=out, num_threads=num_threads)


max_unpool1d, max_unpool2d, max_unpool3d = _aliases(max_unpool, _max_unpool)


# ----------------------------------------------------------------------------- backward passes

def max_pool_backward(grad_output, indices, input_shape, *, ndim=None, layout="channels_first",
                      out=None, num_threads=None):
    """Gradient of max_pool, adaptive_max_pool or global_max_pool w.r.t. their input.

    Parameters
    ----------
    grad_output : array_like
        Gradient of the pooled result: ``(*lead, *out_spatial[, C])``, or
        ``(*lead[, C])`` for global pooling without keepdims.
    indices : array_like of int
        The indices the forward op returned (same shape as grad_output); -1
        (an empty window) contributes nothing. Checked before any write.
    input_shape : tuple of int
        Shape of the forward op's input.
    ndim : int, optional
        Spatial rank; default ``len(input_shape) - 2``.
    layout, out, num_threads
        As for :func:`max_pool`.

    Returns
    -------
    ndarray
        Zeros plus, at each index, the sum of the gradients pointing there
        (accumulated in float64, rounded once). float16/32/64 gradients keep
        their dtype; integer ones give float64.
    """
    g = check_input(grad_output, "grad_output")
    input_shape = check_shape("input_shape", input_shape)
    channels_last = check_layout(layout)
    ndim = _check_ndim(ndim, input_shape, channels_last)
    lead, spatial, channels = split_shape(input_shape, ndim, channels_last, "input_shape")
    tail = (channels,) if channels_last else ()
    nlead = len(lead)
    if g.ndim == len(input_shape):
        out_spatial = g.shape[nlead:nlead + ndim]
    else:   # global pooling without keepdims: no spatial axes left
        out_spatial = ()
    if g.shape != lead + out_spatial + tail:
        raise ValueError(f"grad_output has shape {g.shape}; for input_shape {input_shape} with "
                         f"ndim={ndim} and layout={layout!r} expected {lead + ('...',) * ndim + tail} "
                         f"or {lead + tail}")
    ind = check_indices(indices, g.shape, "grad_output")
    result = result_array(out, input_shape, grad_dtype(g.dtype), [g, ind])
    nthreads = thread_count(num_threads, g.size + result.size)
    plane = math.prod(spatial)
    q = (math.prod(out_spatial),)
    check_index_range(view5(ind, lead, q, channels_last), -1, plane, "indices", nthreads)
    run_max_backward(g, ind, lead, out_spatial, spatial, channels_last, result, nthreads)
    return result


def avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, dilation=1,
                      ceil_mode=False, count_include_pad=True, divisor_override=None, *,
                      layout="channels_first", out=None, num_threads=None):
    """Gradient of :func:`avg_pool` w.r.t. its input (its exact adjoint).

    Takes the forward call's window arguments and ``input_shape``; every input
    element gets the sum, over the windows that read it, of that window's
    gradient divided by its divisor (in float64, rounded once).
    """
    input_shape = check_shape("input_shape", input_shape)
    geo = window_geometry(input_shape, kernel_size, stride, padding, dilation, ceil_mode, layout,
                          name="input_shape")
    count_include_pad = check_flag("count_include_pad", count_include_pad)
    divisor = _check_divisor(divisor_override)
    g = _check_grad(grad_output, geo.out_shape(), input_shape)
    result = result_array(out, input_shape, grad_dtype(g.dtype), [g])
    nthreads = thread_count(num_threads, math.prod(geo.kernel) * result.size)
    run_window_backward(g, geo.lead, geo.out_spatial, geo.spatial, geo.channels_last, geo.axes(),
                        result, nthreads, use_divisor=True, count_include_pad=count_include_pad,
                        divisor_override=divisor)
    return result


def lp_pool_backward(grad_output, x, norm_type, kernel_size, stride=None, padding=0, dilation=1,
                     ceil_mode=False, *, layout="channels_first", out=None, num_threads=None):
    """Gradient of :func:`lp_pool` w.r.t. ``x``.

    For finite p: ``y**(1-p) * |x|**(p-1) * sign(x)`` times the window
    gradients, summed over the windows reading each element; taken as 0
    where ``y == 0`` or ``x == 0`` (the norm is not differentiable there).
    For p = inf the gradient goes to the window's first maximal ``|x|``,
    times ``sign(x)``. Computed in float64; the result has ``x``'s floating
    dtype (float64 for integer ``x``).
    """
    arr = check_input(x)
    p = check_norm_type(norm_type)
    geo = window_geometry(arr.shape, kernel_size, stride, padding, dilation, ceil_mode, layout)
    g = _check_grad(grad_output, geo.out_shape(), arr.shape)
    result = result_array(out, arr.shape, result_dtype_avg(arr.dtype, None), [g, arr])
    nthreads = thread_count(num_threads, math.prod(geo.kernel) * arr.size)
    if result.size == 0:
        return result
    # In float64 throughout, by the compiled routine the C API uses too.
    x64 = arr.astype(np.float64)
    g64 = g.astype(np.float64)
    grad = np.empty(arr.shape, np.float64)
    cl = geo.channels_last
    _native.lp_backward(view5(g64, geo.lead, geo.out_spatial, cl), view5(x64, geo.lead, geo.spatial, cl),
                        view5(grad, geo.lead, geo.spatial, cl), geo.axes(), p, nthreads)
    np.copyto(result, grad, casting="unsafe")
    return result


def global_avg_pool_backward(grad_output, input_shape, *, layout="channels_first", out=None,
                             num_threads=None):
    """Gradient of :func:`global_avg_pool`: each input element gets ``g / spatial size``.

    ``grad_output`` may have the shape of either result (with or without keepdims).
    """
    input_shape = check_shape("input_shape", input_shape)
    lead, size, channels_last, flat, keep = global_geometry(input_shape, layout, "input_shape")
    g = check_input(grad_output, "grad_output")
    if g.shape not in (tuple(flat), tuple(keep)):
        raise ValueError(f"grad_output has shape {g.shape}; expected {tuple(flat)} or {tuple(keep)} "
                         f"for input_shape {input_shape}")
    result = result_array(out, input_shape, grad_dtype(g.dtype), [g])
    nthreads = thread_count(num_threads, result.size)
    run_window_backward(g, lead, (1,), (size,), channels_last, global_axes(size), result, nthreads,
                        use_divisor=True)
    return result


def adaptive_avg_pool_backward(grad_output, input_shape, *, ndim=None, layout="channels_first",
                               out=None, num_threads=None):
    """Gradient of :func:`adaptive_avg_pool` (its exact adjoint).

    The output size is read from ``grad_output``'s spatial axes; ``ndim`` (1 to
    3) defaults to ``len(input_shape) - 2``.
    """
    input_shape = check_shape("input_shape", input_shape)
    channels_last = check_layout(layout)
    ndim = _check_ndim(ndim, input_shape, channels_last, limit=3)
    g = check_input(grad_output, "grad_output")
    lead, spatial, channels = split_shape(input_shape, ndim, channels_last, "input_shape")
    if g.ndim != len(input_shape):
        raise ValueError(f"grad_output has shape {g.shape}; expected {len(input_shape)} dims like "
                         f"input_shape {input_shape}")
    out_spatial = g.shape[len(lead):len(lead) + ndim]
    if 0 in out_spatial:
        raise ValueError(f"grad_output has shape {g.shape}; its spatial sizes {out_spatial} (the "
                         f"pooled output size) must each be at least 1")
    geo = adaptive_geometry(input_shape, out_spatial, layout, ndim, name="input_shape")
    g = _check_grad(g, geo.out_shape(), input_shape)
    result = result_array(out, input_shape, grad_dtype(g.dtype), [g])
    nthreads = thread_count(num_threads, g.size + result.size)
    run_window_backward(g, lead, out_spatial, spatial, channels_last, geo.axes(), result, nthreads,
                        adaptive=True, use_divisor=True)
    return result
