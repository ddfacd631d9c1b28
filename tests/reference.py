"""A deliberately plain NumPy oracle for pypool's forward pooling ops.

Nothing here imports pypool.  The code follows SPEC.md sections 2-4 as
literally as possible and prefers loops that are easy to read over speed:
it is only ever run on tiny arrays by the property tests.

Conventions used throughout:

* ``kernel``, ``stride`` and ``dilation`` are full tuples with one entry per
  spatial axis (``stride`` may be ``None``, meaning "equal to kernel").
* ``padding`` is any form SPEC section 3 allows: an int, a tuple of ints, a
  tuple of ``(begin, end)`` pairs, ``"valid"``, ``"same"`` or
  ``"same_lower"``.
* channels_first arrays are ``(*lead, *spatial)``; channels_last arrays are
  ``(*lead, *spatial, C)``.  Every combination of leading (and, for
  channels_last, channel) indices is one independent "plane".
"""

import itertools
import math

import numpy as np

__all__ = [
    "resolve_pads",
    "output_size",
    "ref_pooled_shape",
    "ref_max_pool",
    "ref_avg_pool",
    "ref_global_avg_pool",
    "ref_global_max_pool",
    "avg_result_dtype",
    "empty_max_value",
]


# ----------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------

def _extent(k, d):
    """Span covered by a dilated kernel: (k - 1) * d + 1."""
    return (k - 1) * d + 1


def _full_stride(kernel, stride):
    if stride is None:
        return tuple(kernel)
    return tuple(stride)


def resolve_pads(spatial_shape, kernel, stride, padding, dilation):
    """Return ``[(begin, end), ...]``, one pair per spatial axis."""
    nd = len(kernel)
    stride = _full_stride(kernel, stride)
    assert len(spatial_shape) == nd and len(stride) == nd and len(dilation) == nd

    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * nd
        if padding not in ("same", "same_lower"):
            raise ValueError("unknown padding string %r" % (padding,))
        pads = []
        for L, k, s, d in zip(spatial_shape, kernel, stride, dilation):
            out = -(-L // s)  # ceil(L / s)
            total = max((out - 1) * s + _extent(k, d) - L, 0)
            small, big = total // 2, total - total // 2
            if padding == "same":  # odd pad at the end (SAME_UPPER)
                pads.append((small, big))
            else:  # odd pad at the beginning (SAME_LOWER)
                pads.append((big, small))
        return pads

    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * nd

    padding = tuple(padding)
    if len(padding) != nd:
        raise ValueError("padding has %d entries for %d axes" % (len(padding), nd))
    pads = []
    for p in padding:
        if isinstance(p, (int, np.integer)):
            pads.append((int(p), int(p)))
        else:
            b, e = p
            pads.append((int(b), int(e)))
    return pads


def output_size(L, k, s, pb, pe, d, ceil_mode):
    """Output length of one axis (may be < 1; the caller decides what to do).

    floor((L + pb + pe - ext) / s) + 1, or with ceil_mode ceil(...) + 1 minus
    one when that last window would start at or beyond L + pb (measured in
    padded coordinates), i.e. in the end padding.
    """
    span = L + pb + pe - _extent(k, d)
    if ceil_mode:
        n = -((-span) // s) + 1  # exact integer ceil
        if n >= 1 and (n - 1) * s >= L + pb:
            n -= 1
    else:
        n = span // s + 1  # Python's // floors, also for negative spans
    return n


def _split(shape, nd, layout):
    """Split a shape into (lead, spatial, channels_tail)."""
    shape = tuple(shape)
    if layout == "channels_first":
        if len(shape) < nd:
            raise ValueError("too few axes")
        return shape[: len(shape) - nd], shape[len(shape) - nd:], ()
    if layout == "channels_last":
        if len(shape) < nd + 1:
            raise ValueError("too few axes")
        return shape[: len(shape) - nd - 1], shape[len(shape) - nd - 1: -1], shape[-1:]
    raise ValueError("unknown layout %r" % (layout,))


def ref_pooled_shape(input_shape, kernel, stride=None, padding=0, dilation=None,
                     ceil_mode=False, layout="channels_first"):
    """Output shape tuple; entries of the spatial part may be < 1."""
    nd = len(kernel)
    if dilation is None:
        dilation = (1,) * nd
    stride = _full_stride(kernel, stride)
    lead, spatial, tail = _split(input_shape, nd, layout)
    pads = resolve_pads(spatial, kernel, stride, padding, dilation)
    outs = tuple(
        output_size(L, k, s, pb, pe, d, ceil_mode)
        for L, k, s, (pb, pe), d in zip(spatial, kernel, stride, pads, dilation)
    )
    return tuple(lead) + outs + tuple(tail)


# ----------------------------------------------------------------------------
# helpers shared by the ops
# ----------------------------------------------------------------------------

def _to_planes(x, nd, layout):
    """View x as (P, *spatial); return (planes, lead_shape, spatial, restore).

    ``restore(arr)`` maps a (P, *out_spatial) array back to the caller's
    layout.
    """
    x = np.asarray(x)
    lead, spatial, tail = _split(x.shape, nd, layout)
    if layout == "channels_last":
        # (*lead, *spatial, C) -> (*lead, C, *spatial)
        x = np.moveaxis(x, -1, len(lead))
        lead = tuple(lead) + tuple(tail)
    planes = x.reshape((math.prod(lead),) + tuple(spatial))

    def restore(arr):
        arr = arr.reshape(tuple(lead) + arr.shape[1:])
        if layout == "channels_last":
            arr = np.moveaxis(arr, len(lead) - 1, -1)
        return np.ascontiguousarray(arr)

    return planes, spatial, restore


def _geometry(spatial, kernel, stride, padding, dilation, ceil_mode):
    nd = len(kernel)
    kernel = tuple(int(k) for k in kernel)
    stride = tuple(int(s) for s in _full_stride(kernel, stride))
    dilation = tuple(int(d) for d in (dilation if dilation is not None else (1,) * nd))
    pads = resolve_pads(spatial, kernel, stride, padding, dilation)
    outs = tuple(
        output_size(L, k, s, pb, pe, d, ceil_mode)
        for L, k, s, (pb, pe), d in zip(spatial, kernel, stride, pads, dilation)
    )
    if min(outs, default=1) < 1:
        raise ValueError("output size %r is below 1" % (outs,))
    return kernel, stride, dilation, pads, outs


def _window_taps(opos, kernel, stride, dilation, pads):
    """All taps of one window in row-major order, as input coordinates."""
    per_axis = [
        [o * s - pb + kk * d for kk in range(k)]
        for o, k, s, d, (pb, _pe) in zip(opos, kernel, stride, dilation, pads)
    ]
    return itertools.product(*per_axis)


def empty_max_value(dtype):
    """Value of a max over a window with no in-bounds tap."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.False_
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype).min
    return -np.inf


def avg_result_dtype(in_dtype, dtype=None):
    """float16/32/64 keep their dtype; ints and bool give float64."""
    if dtype is not None:
        return np.dtype(dtype)
    in_dtype = np.dtype(in_dtype)
    if in_dtype.kind == "f":
        return in_dtype
    return np.dtype(np.float64)


def _flat_index(pos, spatial):
    """Row-major flattening of an input position over the spatial axes."""
    idx = 0
    for p, L in zip(pos, spatial):
        idx = idx * L + p
    return idx


def _max_over(planes, positions, spatial, dtype):
    """Max over the given in-bounds positions (row-major order), all planes.

    Returns (values[P], indices[P]).  Ties keep the first maximum; the first
    NaN met wins and stays; no positions -> (empty value, -1).
    """
    P = planes.shape[0]
    best = np.full(P, empty_max_value(dtype), dtype=dtype)
    best_idx = np.full(P, -1, dtype=np.int64)
    is_float = np.dtype(dtype).kind == "f"
    saw_nan = np.zeros(P, dtype=bool)
    for pos in positions:
        v = planes[(slice(None),) + tuple(pos)]
        flat = _flat_index(pos, spatial)
        if is_float:
            new_nan = np.isnan(v) & ~saw_nan
            best[new_nan] = v[new_nan]
            best_idx[new_nan] = flat
            saw_nan |= new_nan
            take = ~saw_nan & ((best_idx == -1) | (v > best))
        else:
            take = (best_idx == -1) | (v > best)
        best[take] = v[take]
        best_idx[take] = flat
    return best, best_idx


# ----------------------------------------------------------------------------
# the ops
# ----------------------------------------------------------------------------

def ref_max_pool(x, kernel, stride=None, padding=0, dilation=None, ceil_mode=False,
                 layout="channels_first"):
    """Return (values, indices) of max pooling, per SPEC sections 3 and 4."""
    x = np.asarray(x)
    nd = len(kernel)
    planes, spatial, restore = _to_planes(x, nd, layout)
    kernel, stride, dilation, pads, outs = _geometry(
        spatial, kernel, stride, padding, dilation, ceil_mode)
    P = planes.shape[0]
    values = np.empty((P,) + outs, dtype=x.dtype)
    indices = np.empty((P,) + outs, dtype=np.int64)
    for opos in itertools.product(*[range(o) for o in outs]):
        inside = [
            pos for pos in _window_taps(opos, kernel, stride, dilation, pads)
            if all(0 <= p < L for p, L in zip(pos, spatial))
        ]
        v, i = _max_over(planes, inside, spatial, x.dtype)
        values[(slice(None),) + opos] = v
        indices[(slice(None),) + opos] = i
    return restore(values), restore(indices)


def ref_avg_pool(x, kernel, stride=None, padding=0, dilation=None, ceil_mode=False,
                 count_include_pad=True, divisor_override=None,
                 layout="channels_first", dtype=None, keep_float64=False):
    """Average pooling per SPEC sections 3 and 4.

    The sum runs in float64 over the in-bounds taps (row-major order), the
    division is done in float64 and the quotient is cast once to the result
    dtype.  With ``keep_float64=True`` that final cast is skipped (the tests
    use it to measure how far a lower precision result is from the exact
    one).
    """
    x = np.asarray(x)
    nd = len(kernel)
    planes, spatial, restore = _to_planes(x, nd, layout)
    kernel, stride, dilation, pads, outs = _geometry(
        spatial, kernel, stride, padding, dilation, ceil_mode)
    P = planes.shape[0]
    planes64 = planes.astype(np.float64)
    result = np.empty((P,) + outs, dtype=np.float64)
    for opos in itertools.product(*[range(o) for o in outs]):
        total = np.zeros(P, dtype=np.float64)
        n_inside = 0
        n_padded_ok = 1
        for pos in _window_taps(opos, kernel, stride, dilation, pads):
            if all(0 <= p < L for p, L in zip(pos, spatial)):
                with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf -> nan
                    total = total + planes64[(slice(None),) + tuple(pos)]
                n_inside += 1
        # taps lying in [-pb, L + pe) on every axis (product of per-axis counts)
        for o, k, s, d, (pb, pe), L in zip(opos, kernel, stride, dilation, pads, spatial):
            start = o * s - pb
            n_padded_ok *= sum(1 for kk in range(k) if -pb <= start + kk * d < L + pe)
        if divisor_override is not None:
            divisor = float(divisor_override)
        elif count_include_pad:
            divisor = float(n_padded_ok)
        else:
            divisor = float(n_inside)
        with np.errstate(invalid="ignore", divide="ignore"):
            if divisor == 0.0:
                # only reachable with count_include_pad=False and an empty window
                q = np.full(P, np.nan)
            else:
                q = total / divisor
        result[(slice(None),) + opos] = q
    if not keep_float64:
        result = result.astype(avg_result_dtype(x.dtype, dtype))
    return restore(result)


def _global_planes(x, layout):
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError("global pooling needs ndim >= 3")
    if layout == "channels_first":
        N, C = x.shape[0], x.shape[1]
        spatial = x.shape[2:]
        planes = x.reshape(N, C, math.prod(spatial))
    elif layout == "channels_last":
        N, C = x.shape[0], x.shape[-1]
        spatial = x.shape[1:-1]
        moved = np.moveaxis(x, -1, 1)
        planes = moved.reshape(N, C, math.prod(spatial))
    else:
        raise ValueError("unknown layout %r" % (layout,))
    return planes, N, C, spatial


def _global_shape(N, C, spatial, layout, keepdims):
    if not keepdims:
        return (N, C)
    ones = (1,) * len(spatial)
    if layout == "channels_first":
        return (N, C) + ones
    return (N,) + ones + (C,)


def ref_global_avg_pool(x, layout="channels_first", keepdims=False, dtype=None):
    """Mean over all spatial axes: float64 sum, float64 divide, one cast."""
    x = np.asarray(x)
    planes, N, C, spatial = _global_planes(x, layout)
    count = math.prod(spatial)
    out = np.empty((N, C), dtype=np.float64)
    for n in range(N):
        for c in range(C):
            vals = planes[n, c].astype(np.float64)
            total = np.float64(0.0)
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                for v in vals:
                    total += v
                out[n, c] = total / np.float64(count)
    out = out.astype(avg_result_dtype(x.dtype, dtype))
    return out.reshape(_global_shape(N, C, spatial, layout, keepdims))


def ref_global_max_pool(x, layout="channels_first", keepdims=False):
    """Max over all spatial axes; returns (values, indices)."""
    x = np.asarray(x)
    planes, N, C, spatial = _global_planes(x, layout)
    values = np.empty((N, C), dtype=x.dtype)
    indices = np.empty((N, C), dtype=np.int64)
    is_float = x.dtype.kind == "f"
    for n in range(N):
        for c in range(C):
            best, best_i = empty_max_value(x.dtype), -1
            for i, v in enumerate(planes[n, c]):
                if is_float and np.isnan(v):
                    best, best_i = v, i
                    break  # first NaN wins, nothing can replace it
                if best_i == -1 or v > best:
                    best, best_i = v, i
            values[n, c] = best
            indices[n, c] = best_i
    shape = _global_shape(N, C, spatial, layout, keepdims)
    return values.reshape(shape), indices.reshape(shape)
