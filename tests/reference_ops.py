"""Plain NumPy oracle for pypool's newer ops (SPEC.md sections 1-4).

Covered here: adaptive average / max pooling, Lp pooling, max-unpooling and
every backward op (max, average, Lp, global average, adaptive average).  The
forward max / average / global ops live in ``reference.py``; only its two
geometry helpers (``resolve_pads`` and ``output_size``) are reused here.

Nothing imports pypool.  Everything is written as explicit loops over output
positions and window taps, vectorised only across independent "planes"
(every leading index, plus the channel index for channels_last), so that each
function can be checked against the SPEC wording by reading it.  It is only
meant for tiny arrays.

Numerical conventions (the SPEC's "one rounding" rule):

* every sum is accumulated in float64, in row-major tap order;
* the final float64 value is cast once to the result dtype; functions that
  take ``keep_float64=True`` skip that cast so tests can measure the distance
  of a lower-precision result from the exact one.
"""

import itertools
import math
import numbers
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import output_size as _axis_output_size  # noqa: E402
from reference import resolve_pads  # noqa: E402

__all__ = [
    "adaptive_bounds",
    "adaptive_sizes",
    "float_result_dtype",
    "lp_geometry",
    "unpool_default_size",
    "ref_adaptive_avg_pool",
    "ref_adaptive_max_pool",
    "ref_lp_pool",
    "ref_max_unpool",
    "ref_max_pool_backward",
    "ref_avg_pool_backward",
    "ref_lp_pool_backward",
    "ref_global_avg_pool_backward",
    "ref_adaptive_avg_pool_backward",
]


# ---------------------------------------------------------------------------
# layout plumbing
# ---------------------------------------------------------------------------

def _parts(shape, nd, layout):
    """Split a shape into (lead, spatial, channel_tail) for a rank-``nd`` op."""
    shape = tuple(int(n) for n in shape)
    if layout == "channels_first":
        if len(shape) < nd:
            raise ValueError("shape %r has fewer than %d axes" % (shape, nd))
        return shape[:len(shape) - nd], shape[len(shape) - nd:], ()
    if layout == "channels_last":
        if len(shape) < nd + 1:
            raise ValueError("shape %r has fewer than %d axes" % (shape, nd + 1))
        return shape[:len(shape) - nd - 1], shape[len(shape) - nd - 1:-1], shape[-1:]
    raise ValueError("unknown layout %r" % (layout,))


class _Planes:
    """Remembers how a layout maps to ``(P, *spatial)`` planes and back."""

    def __init__(self, shape, nd, layout):
        self.lead, self.spatial, self.tail = _parts(shape, nd, layout)
        self.layout = layout
        self.count = math.prod(self.lead + self.tail)

    def split(self, arr):
        """(*lead, *spatial[, C]) array -> (P, *spatial) array (a copy or view)."""
        arr = np.asarray(arr)
        if self.layout == "channels_last":
            arr = np.moveaxis(arr, -1, len(self.lead))
        return arr.reshape((self.count,) + arr.shape[len(self.lead) + len(self.tail):])

    def join(self, planes):
        """(P, *s) array -> (*lead, *s[, C]) C-contiguous array."""
        arr = planes.reshape(self.lead + self.tail + planes.shape[1:])
        if self.layout == "channels_last":
            arr = np.moveaxis(arr, len(self.lead), -1)
        return np.ascontiguousarray(arr)

    def full_shape(self, spatial):
        return self.lead + tuple(spatial) + self.tail


def _row_major(sizes):
    """All positions of a box of the given sizes, in row-major order."""
    return itertools.product(*[range(n) for n in sizes])


def _flat(pos, sizes):
    idx = 0
    for p, n in zip(pos, sizes):
        idx = idx * n + p
    return idx


def _inside(pos, sizes):
    return all(0 <= p < n for p, n in zip(pos, sizes))


def float_result_dtype(in_dtype, dtype=None):
    """avg / lp / backward result dtype: floats kept, ints and bool -> float64."""
    if dtype is not None:
        return np.dtype(dtype)
    in_dtype = np.dtype(in_dtype)
    if in_dtype.kind == "f":
        return in_dtype.newbyteorder("=")
    return np.dtype(np.float64)


def _finish(result64, dtype, keep_float64):
    if keep_float64:
        return result64
    with np.errstate(over="ignore", invalid="ignore"):
        return result64.astype(dtype)


# ---------------------------------------------------------------------------
# windowed geometry (same window positions as max_pool)
# ---------------------------------------------------------------------------

def _tuple(v, nd):
    if v is None:
        return None
    if isinstance(v, numbers.Integral):
        return (int(v),) * nd
    return tuple(int(e) for e in v)


def lp_geometry(spatial, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(kernel, stride, dilation, pads, out_spatial) of a windowed pool.

    Raises ValueError when an output size is below 1.
    """
    nd = len(spatial)
    kernel = _tuple(kernel, nd)
    stride = _tuple(stride, nd) or kernel
    dilation = _tuple(dilation, nd)
    pads = resolve_pads(spatial, kernel, stride, padding, dilation)
    outs = tuple(_axis_output_size(L, k, s, pb, pe, d, ceil_mode)
                 for L, k, s, (pb, pe), d in zip(spatial, kernel, stride, pads, dilation))
    if min(outs) < 1:
        raise ValueError("output spatial size %r is below 1" % (outs,))
    return kernel, stride, dilation, pads, outs


def _taps(opos, kernel, stride, dilation, pads):
    """Input coordinates of every tap of one window, row-major order."""
    axes = [[o * s - pb + j * d for j in range(k)]
            for o, k, s, d, (pb, _) in zip(opos, kernel, stride, dilation, pads)]
    return itertools.product(*axes)


def _divisor(opos, spatial, kernel, stride, dilation, pads, count_include_pad,
             divisor_override):
    """Divisor of avg_pool for one window (0 when nothing counts)."""
    if divisor_override is not None:
        return float(divisor_override)
    if count_include_pad:
        n = 1
        for o, L, k, s, d, (pb, pe) in zip(opos, spatial, kernel, stride, dilation, pads):
            start = o * s - pb
            n *= sum(1 for j in range(k) if -pb <= start + j * d < L + pe)
        return float(n)
    n = 1
    for o, L, k, s, d, (pb, _pe) in zip(opos, spatial, kernel, stride, dilation, pads):
        start = o * s - pb
        n *= sum(1 for j in range(k) if 0 <= start + j * d < L)
    return float(n)


# ---------------------------------------------------------------------------
# adaptive pooling
# ---------------------------------------------------------------------------

def adaptive_bounds(i, L, O):
    """Cell i of O over an axis of length L: [floor(i*L/O), ceil((i+1)*L/O))."""
    return (i * L) // O, -((-(i + 1) * L) // O)


def adaptive_sizes(spatial, output_size):
    """Resolve None entries and check sizes (ValueError below 1)."""
    output_size = tuple(output_size)
    if len(output_size) != len(spatial):
        raise ValueError("output_size has %d entries for %d spatial axes"
                         % (len(output_size), len(spatial)))
    if min(spatial) < 1:
        raise ValueError("input spatial size %r has an empty axis" % (tuple(spatial),))
    outs = tuple(L if o is None else int(o) for o, L in zip(output_size, spatial))
    if min(outs) < 1:
        raise ValueError("output_size %r has an entry below 1" % (outs,))
    return outs


def _cell_positions(opos, spatial, outs):
    ranges = [range(*adaptive_bounds(o, L, O)) for o, L, O in zip(opos, spatial, outs)]
    return itertools.product(*ranges)


def _normalise_output_size(output_size):
    if isinstance(output_size, numbers.Integral) or output_size is None:
        return (output_size,)
    return tuple(output_size)


def ref_adaptive_avg_pool(x, output_size, layout="channels_first", dtype=None,
                          keep_float64=False):
    x = np.asarray(x)
    output_size = _normalise_output_size(output_size)
    nd = len(output_size)
    pl = _Planes(x.shape, nd, layout)
    outs = adaptive_sizes(pl.spatial, output_size)
    planes = pl.split(x).astype(np.float64)
    res = np.empty((pl.count,) + outs)
    for opos in _row_major(outs):
        total = np.zeros(pl.count)
        n = 0
        with np.errstate(invalid="ignore", over="ignore"):
            for pos in _cell_positions(opos, pl.spatial, outs):
                total = total + planes[(slice(None),) + pos]
                n += 1
            res[(slice(None),) + opos] = total / n
    return pl.join(_finish(res, float_result_dtype(x.dtype, dtype), keep_float64))


def _running_max(planes, positions, spatial, dtype, key=None):
    """First maximum (first NaN wins) over positions; -> (values, indices).

    ``key`` maps the raw values before comparing (used for |x| in Lp with
    p = inf); the values returned are the keyed ones.
    """
    P = planes.shape[0]
    dtype = np.dtype(dtype)
    best = np.zeros(P, dtype=dtype)
    idx = np.full(P, -1, dtype=np.int64)
    nan_seen = np.zeros(P, dtype=bool)
    floating = dtype.kind == "f"
    for pos in positions:
        v = planes[(slice(None),) + tuple(pos)]
        if key is not None:
            v = key(v)
        f = _flat(pos, spatial)
        if floating:
            is_nan = np.isnan(v)
            take_nan = is_nan & ~nan_seen
            take = take_nan | (~nan_seen & ~is_nan & ((idx == -1) | (v > best)))
            nan_seen |= take_nan
        else:
            take = (idx == -1) | (v > best)
        best = np.where(take, v, best)
        idx = np.where(take, f, idx)
    return best, idx


def ref_adaptive_max_pool(x, output_size, layout="channels_first"):
    """-> (values, indices); values keep x's dtype."""
    x = np.asarray(x)
    output_size = _normalise_output_size(output_size)
    nd = len(output_size)
    pl = _Planes(x.shape, nd, layout)
    outs = adaptive_sizes(pl.spatial, output_size)
    dtype = x.dtype.newbyteorder("=")
    planes = pl.split(x).astype(dtype)
    vals = np.empty((pl.count,) + outs, dtype=dtype)
    inds = np.empty((pl.count,) + outs, dtype=np.int64)
    for opos in _row_major(outs):
        v, i = _running_max(planes, _cell_positions(opos, pl.spatial, outs), pl.spatial, dtype)
        vals[(slice(None),) + opos] = v
        inds[(slice(None),) + opos] = i
    return pl.join(vals), pl.join(inds)


# ---------------------------------------------------------------------------
# Lp pooling
# ---------------------------------------------------------------------------

def _check_norm(norm_type):
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError("norm_type must be a real number, got %r" % (norm_type,))
    p = float(norm_type)
    if not p > 0:  # also catches NaN
        raise ValueError("norm_type must be > 0, got %r" % (norm_type,))
    return p


def _window_setup(shape, kernel, stride, padding, dilation, ceil_mode, layout):
    """(_Planes, geometry) of a windowed op on an input of the given shape."""
    nd = 1 if isinstance(kernel, numbers.Integral) else len(kernel)
    pl = _Planes(shape, nd, layout)
    return pl, lp_geometry(pl.spatial, kernel, stride, padding, dilation, ceil_mode)


def ref_lp_pool(x, norm_type, kernel, stride=None, padding=0, dilation=1, ceil_mode=False,
                layout="channels_first", dtype=None, keep_float64=False):
    """(sum of |x|**p over in-bounds taps) ** (1/p); p = inf -> max |x|; empty -> 0."""
    x = np.asarray(x)
    p = _check_norm(norm_type)
    pl, (kernel, stride, dilation, pads, outs) = _window_setup(
        x.shape, kernel, stride, padding, dilation, ceil_mode, layout)
    planes = np.abs(pl.split(x).astype(np.float64))
    res = np.empty((pl.count,) + outs)
    for opos in _row_major(outs):
        taps = [t for t in _taps(opos, kernel, stride, dilation, pads) if _inside(t, pl.spatial)]
        with np.errstate(invalid="ignore", over="ignore"):
            if math.isinf(p):
                r = np.zeros(pl.count)
                nan = np.zeros(pl.count, dtype=bool)
                for t in taps:
                    v = planes[(slice(None),) + t]
                    nan |= np.isnan(v)
                    r = np.where(v > r, v, r)
                r[nan] = np.nan
            else:
                total = np.zeros(pl.count)
                for t in taps:
                    total = total + planes[(slice(None),) + t] ** p
                r = total ** (1.0 / p)
        res[(slice(None),) + opos] = r
    return pl.join(_finish(res, float_result_dtype(x.dtype, dtype), keep_float64))


# ---------------------------------------------------------------------------
# max_unpool
# ---------------------------------------------------------------------------

def unpool_default_size(spatial, kernel, stride, pads):
    """(L - 1) * s - pb - pe + k per axis."""
    return tuple((L - 1) * s - pb - pe + k
                 for L, k, s, (pb, pe) in zip(spatial, kernel, stride, pads))


def ref_max_unpool(x, indices, kernel, stride=None, padding=0, output_size=None,
                   layout="channels_first"):
    """Zeros, then out_plane.flat[indices[...]] = x[...] in row-major order of x
    (so with duplicate indices the last element wins)."""
    x = np.asarray(x)
    indices = np.asarray(indices)
    nd = len(kernel)
    kernel = _tuple(kernel, nd)
    stride = _tuple(stride, nd) or kernel
    if isinstance(padding, str) and padding != "valid":
        raise ValueError("max_unpool padding must be an int, a tuple or 'valid'")
    pl = _Planes(x.shape, nd, layout)
    pads = resolve_pads(pl.spatial, kernel, stride, padding, (1,) * nd)
    if output_size is None:
        outs = unpool_default_size(pl.spatial, kernel, stride, pads)
    else:
        output_size = tuple(int(n) for n in output_size)
        if len(output_size) == nd:
            outs = output_size
        elif len(output_size) == x.ndim:
            outs = _parts(output_size, nd, layout)[1]
        else:
            raise ValueError("output_size must have %d or %d entries" % (nd, x.ndim))
    if min(outs) < 1:
        raise ValueError("output spatial size %r is below 1" % (outs,))
    if indices.dtype.kind not in "iu":
        raise TypeError("indices must be integers, got %s" % indices.dtype)
    if indices.shape != x.shape:
        raise ValueError("indices shape %r differs from x shape %r" % (indices.shape, x.shape))
    size = math.prod(outs)
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= size):
        raise ValueError("an index is outside [0, %d)" % size)
    dtype = x.dtype.newbyteorder("=")
    xp = pl.split(x).astype(dtype)
    ip = pl.split(indices).astype(np.int64)
    res = np.zeros((pl.count, size), dtype=dtype)
    rows = np.arange(pl.count)
    for pos in _row_major(pl.spatial):
        sel = (slice(None),) + pos
        res[rows, ip[sel]] = xp[sel]
    return pl.join(res.reshape((pl.count,) + tuple(outs)))


# ---------------------------------------------------------------------------
# backward ops
# ---------------------------------------------------------------------------

def _grad_planes(grad_output, input_shape, nd, layout):
    """Check that grad's lead / channel axes match input_shape; return planes."""
    grad_output = np.asarray(grad_output)
    pin = _Planes(input_shape, nd, layout)
    pg = _Planes(grad_output.shape, nd, layout)
    if pin.lead != pg.lead or pin.tail != pg.tail:
        raise ValueError("grad_output shape %r does not match input_shape %r"
                         % (grad_output.shape, tuple(input_shape)))
    return pin, pg, pg.split(grad_output).astype(np.float64)


def ref_max_pool_backward(grad_output, indices, input_shape, ndim=None,
                          layout="channels_first"):
    """grad_input_plane.flat[i] += g for every (g, i); i == -1 is skipped."""
    grad_output = np.asarray(grad_output)
    indices = np.asarray(indices)
    input_shape = tuple(int(n) for n in input_shape)
    nd = len(input_shape) - 2 if ndim is None else int(ndim)
    if indices.shape != grad_output.shape:
        raise ValueError("indices shape %r differs from grad_output shape %r"
                         % (indices.shape, grad_output.shape))
    if indices.dtype.kind not in "iu":
        raise TypeError("indices must be integers")
    pin, pg, g = _grad_planes(grad_output, input_shape, nd, layout)
    size = math.prod(pin.spatial)
    ip = pg.split(indices).astype(np.int64)
    if ip.size and (int(ip.min()) < -1 or int(ip.max()) >= size):
        raise ValueError("an index is outside [-1, %d)" % size)
    res = np.zeros((pin.count, size))
    for pos in _row_major(pg.spatial):
        sel = (slice(None),) + pos
        for plane in range(pin.count):
            i = ip[sel][plane]
            if i >= 0:
                res[plane, i] += g[sel][plane]
    out = res.reshape((pin.count,) + pin.spatial)
    return pin.join(out.astype(float_result_dtype(grad_output.dtype)))


def ref_avg_pool_backward(grad_output, input_shape, kernel, stride=None, padding=0,
                          dilation=1, ceil_mode=False, count_include_pad=True,
                          divisor_override=None, layout="channels_first",
                          keep_float64=False):
    """Adjoint of avg_pool: each in-bounds tap of a window gets g / divisor."""
    grad_output = np.asarray(grad_output)
    nd = len(kernel)
    input_shape = tuple(int(n) for n in input_shape)
    pin = _Planes(input_shape, nd, layout)
    kernel, stride, dilation, pads, outs = lp_geometry(
        pin.spatial, kernel, stride, padding, dilation, ceil_mode)
    if grad_output.shape != pin.full_shape(outs):
        raise ValueError("grad_output shape %r, expected %r"
                         % (grad_output.shape, pin.full_shape(outs)))
    g = pin.split(grad_output).astype(np.float64)
    res = np.zeros((pin.count,) + pin.spatial)
    for opos in _row_major(outs):
        div = _divisor(opos, pin.spatial, kernel, stride, dilation, pads, count_include_pad,
                       divisor_override)
        taps = [t for t in _taps(opos, kernel, stride, dilation, pads) if _inside(t, pin.spatial)]
        if not taps:
            continue
        share = g[(slice(None),) + opos] / div
        for t in taps:
            res[(slice(None),) + t] += share
    return pin.join(_finish(res, float_result_dtype(grad_output.dtype), keep_float64))


def ref_lp_pool_backward(grad_output, x, norm_type, kernel, stride=None, padding=0,
                         dilation=1, ceil_mode=False, layout="channels_first",
                         keep_float64=False):
    """d lp_pool / dx, applied to grad_output.

    finite p: g * y**(1-p) * |x|**(p-1) * sign(x), 0 where y == 0 or x == 0;
    p = inf:  g * sign(x) at the first maximal |x| of each window.
    y is the float64 (unrounded) forward value.
    """
    grad_output = np.asarray(grad_output)
    x = np.asarray(x)
    p = _check_norm(norm_type)
    pl, (kernel, stride, dilation, pads, outs) = _window_setup(
        x.shape, kernel, stride, padding, dilation, ceil_mode, layout)
    if grad_output.shape != pl.full_shape(outs):
        raise ValueError("grad_output shape %r, expected %r"
                         % (grad_output.shape, pl.full_shape(outs)))
    xs = pl.split(x).astype(np.float64)
    ax = np.abs(xs)
    sg = np.sign(xs)
    g = pl.split(grad_output).astype(np.float64)
    y = ref_lp_pool(x, p, kernel, stride, padding, dilation, ceil_mode, layout,
                    keep_float64=True)
    y = pl.split(y)
    res = np.zeros((pl.count,) + pl.spatial)
    for opos in _row_major(outs):
        o = (slice(None),) + opos
        taps = [t for t in _taps(opos, kernel, stride, dilation, pads) if _inside(t, pl.spatial)]
        if math.isinf(p):
            _, win = _running_max(ax, taps, pl.spatial, np.float64)
            for plane in range(pl.count):
                if win[plane] >= 0:
                    t = np.unravel_index(win[plane], pl.spatial)
                    res[(plane,) + t] += g[o][plane] * sg[(plane,) + t]
            continue
        yo = y[o]
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            scale = np.where(yo == 0, 0.0, yo ** (1.0 - p))
            for t in taps:
                xt = (slice(None),) + t
                a = ax[xt]
                term = np.where((a == 0) | (yo == 0), 0.0,
                                g[o] * scale * a ** (p - 1.0) * sg[xt])
                res[xt] += term
    return pl.join(_finish(res, float_result_dtype(grad_output.dtype), keep_float64))


def _global_parts(shape, layout):
    shape = tuple(int(n) for n in shape)
    if len(shape) < 3:
        raise ValueError("global pooling needs at least 3 axes, got %r" % (shape,))
    if layout == "channels_first":
        return shape[0], shape[1], shape[2:]
    if layout == "channels_last":
        return shape[0], shape[-1], shape[1:-1]
    raise ValueError("unknown layout %r" % (layout,))


def ref_global_avg_pool_backward(grad_output, input_shape, layout="channels_first"):
    """Every input element gets g / (spatial size); grad (N, C) or keepdims."""
    grad_output = np.asarray(grad_output)
    N, C, spatial = _global_parts(input_shape, layout)
    ones = (1,) * len(spatial)
    keep = (N, C) + ones if layout == "channels_first" else (N,) + ones + (C,)
    if grad_output.shape not in ((N, C), keep):
        raise ValueError("grad_output shape %r, expected %r or %r"
                         % (grad_output.shape, (N, C), keep))
    g = grad_output.astype(np.float64).reshape(keep)
    count = float(math.prod(spatial))
    res = np.broadcast_to(g / count, tuple(int(n) for n in input_shape))
    return np.ascontiguousarray(res.astype(float_result_dtype(grad_output.dtype)))


def ref_adaptive_avg_pool_backward(grad_output, input_shape, ndim=None,
                                   layout="channels_first", keep_float64=False):
    """Adjoint of adaptive_avg_pool: each member of a cell gets g / cell size."""
    grad_output = np.asarray(grad_output)
    input_shape = tuple(int(n) for n in input_shape)
    nd = len(input_shape) - 2 if ndim is None else int(ndim)
    pin, pg, g = _grad_planes(grad_output, input_shape, nd, layout)
    outs = adaptive_sizes(pin.spatial, pg.spatial)
    res = np.zeros((pin.count,) + pin.spatial)
    for opos in _row_major(outs):
        members = list(_cell_positions(opos, pin.spatial, outs))
        share = g[(slice(None),) + opos] / float(len(members))
        for t in members:
            res[(slice(None),) + t] += share
    return pin.join(_finish(res, float_result_dtype(grad_output.dtype), keep_float64))
