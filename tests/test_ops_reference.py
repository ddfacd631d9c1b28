"""pypool's newer ops against the loop-based oracle in ``reference_ops.py``.

Ops covered: adaptive_avg_pool, adaptive_max_pool (and their 1d/2d/3d
aliases), lp_pool (+ aliases), max_unpool (+ aliases), global_max_pool with
indices, and every backward op (max_pool_backward, avg_pool_backward,
lp_pool_backward, global_avg_pool_backward, adaptive_avg_pool_backward).

Inputs are tiny (spatial extents 1..8 depending on the rank, 0-2 leading
axes, both layouts) and come in many memory layouts: strided, reversed
(negative strides), transposed, Fortran ordered, broadcast (zero strides),
byte-swapped and read-only.  Every call also checks that its inputs are left
untouched.

Values sit on a dyadic grid (k / 2**m, |k| <= 1024, m <= 8), so float64 sums
of a handful of them are exact.  Consequences for the tolerances:

* max / unpool / max_pool_backward: bit-exact (max_pool_backward only adds
  dyadic gradients);
* averages and Lp norms: a float64 result within a few ulps of the float64
  oracle; a float32 / float16 result within one ulp of that dtype around the
  exact float64 value (the SPEC's "one rounding");
* backward ops whose terms may cancel: the error is measured against the sum
  of the absolute values of the terms, which the oracle gives when it is fed
  |grad| (and |x| for Lp).
"""

import math
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_ops as R  # noqa: E402
from reference import ref_global_max_pool  # noqa: E402
from strategies import examples, paddings  # noqa: E402

import pypool  # noqa: E402
from pypool import _pooling  # noqa: E402
from pypool._args import adaptive_geometry  # noqa: E402

LAYOUTS = ("channels_first", "channels_last")
MAX_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
              np.uint32, np.uint64, np.float16, np.float32, np.float64)
FLOATS = (np.float16, np.float32, np.float64)
AVG_DTYPES = (np.float16, np.float32, np.float64, np.float64, np.int8, np.int32, np.uint8,
              np.bool_)
GRAD_DTYPES = (np.float16, np.float32, np.float64, np.float64, np.int16, np.int64, np.bool_)
INDEX_DTYPES = (np.int64, np.int64, np.int64, np.int32, np.uint32, np.int16)
# largest spatial extent per rank: keeps the loop-based oracle quick
MAX_EXTENT = {1: 8, 2: 6, 3: 4}

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])


def _native(dtype):
    return np.dtype(dtype).newbyteorder("=")


# ---------------------------------------------------------------------------
# value and array strategies
# ---------------------------------------------------------------------------

def dyadic(max_k=1024, max_m=8):
    return st.builds(lambda k, m: k / 2.0 ** m, st.integers(-max_k, max_k), st.integers(0, max_m))


def elements(dtype, specials=False, extremes=False, small=3):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        base = st.integers(max(int(info.min), -small), min(int(info.max), small))
        if extremes:
            return st.one_of(base, base, st.sampled_from([int(info.min), int(info.max)]))
        return base
    ties = st.integers(-small, small).map(float)
    parts = [ties, dyadic()]
    if specials:
        parts.append(st.sampled_from([math.nan, math.inf, -math.inf, -0.0]))
    return st.one_of(*parts)


def _filler(dtype):
    """Value written around a strided view; wrong reads show up as outliers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return True
    if dtype.kind in "iu":
        return 7
    return 777.25


@st.composite
def arrays(draw, dtype, shape, elems=None, layouts=True):
    """Draw (x, owner): x with the given values in some memory layout.

    ``owner`` is the memory behind ``x`` (checked for modification too).
    """
    dtype = np.dtype(dtype)
    if elems is None:
        elems = elements(dtype)
    hyp_dtype = np.float64 if dtype.kind == "f" else dtype

    def fresh(shp):
        return draw(hnp.arrays(hyp_dtype, shp, elements=elems)).astype(dtype)

    kind = "plain"
    if layouts:
        kind = draw(st.sampled_from(["plain", "plain", "strided", "flipped", "permuted",
                                     "fortran", "broadcast", "swapped"]))
    wide = [a for a, n in enumerate(shape) if n > 1]
    if kind == "broadcast" and wide:
        axis = draw(st.sampled_from(wide))
        base = fresh(tuple(1 if a == axis else n for a, n in enumerate(shape)))
        x = np.broadcast_to(base, shape)
        return x, base
    values = fresh(shape)
    owner = values
    x = values
    if kind == "strided" and shape:
        steps = [draw(st.integers(1, 3)) for _ in shape]
        offs = [draw(st.integers(0, 1)) for _ in shape]
        owner = np.full([n * s + o for n, s, o in zip(shape, steps, offs)], _filler(dtype),
                        dtype=dtype)
        x = owner[tuple(slice(o, o + n * s, s) for n, s, o in zip(shape, steps, offs))]
        x[...] = values
    elif kind == "flipped" and shape:
        axes = tuple(sorted(set(draw(st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                              max_size=len(shape))))))
        owner = np.ascontiguousarray(np.flip(values, axes))
        x = np.flip(owner, axes)
    elif kind == "permuted" and len(shape) > 1:
        perm = draw(st.permutations(list(range(len(shape)))))
        owner = np.ascontiguousarray(values.transpose(perm))
        x = owner.transpose(np.argsort(perm))
    elif kind == "fortran":
        owner = np.asfortranarray(values)
        x = owner
    elif kind == "swapped" and dtype.itemsize > 1:
        owner = values.astype(dtype.newbyteorder("S"))
        x = owner
    assert np.array_equal(x, values, equal_nan=dtype.kind == "f")
    if draw(st.booleans()):
        x = x.view()
        x.flags.writeable = False
    return x, owner


class Frozen:
    """Snapshots of arrays; ``check()`` asserts they were not modified."""

    def __init__(self, *arrs):
        self.items = [(a, np.array(a, copy=True)) for a in arrs]

    def check(self):
        for a, snap in self.items:
            np.testing.assert_array_equal(a, snap)
            assert a.dtype == snap.dtype


def full_shape(lead, spatial, layout, channels):
    if layout == "channels_first":
        return tuple(lead) + tuple(spatial)
    return tuple(lead) + tuple(spatial) + (channels,)


def lead_axes(shape, nd, layout):
    """The batch/channel axes in front of the nd spatial axes."""
    return shape[:len(shape) - nd] if layout == "channels_first" else shape[:-nd - 1]


@st.composite
def shapes(draw, nd=None, max_lead=2, min_extent=1):
    """(nd, layout, shape, spatial)."""
    if nd is None:
        nd = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=max_lead))
    spatial = tuple(draw(st.lists(st.integers(min_extent, MAX_EXTENT[nd]), min_size=nd,
                                  max_size=nd)))
    channels = draw(st.integers(1, 3))
    return nd, layout, full_shape(lead, spatial, layout, channels), spatial


@st.composite
def windows(draw, nd, spatial, allow_same=True, allow_dilation=True):
    """kernel / stride / padding / dilation / ceil_mode as max_pool takes them."""
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    if allow_dilation and draw(st.booleans()):
        dilation = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    else:
        dilation = (1,) * nd
    stride = draw(st.one_of(st.none(), st.lists(st.integers(1, 3), min_size=nd,
                                                   max_size=nd).map(tuple)))
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    padding = draw(paddings(ext, allow_same))
    ceil_mode = draw(st.booleans())
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=ceil_mode)


def maybe_int(draw, values):
    """A tuple, or its single value when every entry is equal (ints broadcast)."""
    if values is None or isinstance(values, str):
        return values
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return values


def geometry_or_none(spatial, w):
    try:
        return R.lp_geometry(spatial, w["kernel"], w["stride"], w["padding"], w["dilation"],
                             w["ceil_mode"])
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------

def assert_exact(got, expected):
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert _native(got.dtype) == _native(expected.dtype), (got.dtype, expected.dtype)
    np.testing.assert_array_equal(got, expected)


def assert_close(got, ref64, dtype, bound=None, rtol64=8 * np.finfo(np.float64).eps):
    """got (of dtype) against the float64 oracle value ref64.

    ``bound`` is a per-element scale for absolute error (the sum of |terms|);
    without it the scale is |ref64|.  float64: |got - ref| <= rtol64 * scale.
    Lower precision: additionally one ulp of ``dtype`` at |ref64|.
    """
    dtype = _native(dtype)
    assert isinstance(got, np.ndarray)
    assert got.shape == ref64.shape, (got.shape, ref64.shape)
    assert _native(got.dtype) == dtype, (got.dtype, dtype)
    g = got.astype(np.float64)
    ref64 = np.asarray(ref64, dtype=np.float64)
    scale = np.abs(ref64) if bound is None else np.maximum(np.abs(ref64), bound)
    with np.errstate(invalid="ignore", over="ignore"):
        expected_cast = ref64.astype(dtype).astype(np.float64)
        tol = rtol64 * scale
        if dtype != np.float64:
            tol = tol + np.spacing(np.abs(ref64).astype(dtype)).astype(np.float64)
        diff = np.abs(g - ref64)
        ok = (diff <= tol) | (g == expected_cast) | (np.isnan(g) & np.isnan(ref64))
    if not ok.all():
        bad = np.argwhere(~ok)[:6]
        raise AssertionError("mismatch at %s: got %s, oracle %s" % (
            bad.tolist(), [g[tuple(b)] for b in bad], [ref64[tuple(b)] for b in bad]))


def assert_fresh(arr):
    assert isinstance(arr, np.ndarray)
    assert arr.flags.c_contiguous


# ---------------------------------------------------------------------------
# adaptive pooling
# ---------------------------------------------------------------------------

@st.composite
def adaptive_sizes(draw, spatial):
    sizes = []
    for L in spatial:
        sizes.append(draw(st.one_of(st.integers(1, L + 3), st.integers(1, max(1, L // 2)),
                                    st.just(None))))
    return tuple(sizes)


def _adaptive_call(draw, name, x, nd, sizes, **kw):
    """Call the generic op or the rank alias (with an int when possible)."""
    if draw(st.booleans()):
        return getattr(pypool, name)(x, sizes, **kw)
    alias = getattr(pypool, "%s%dd" % (name, nd))
    arg = sizes
    if len(set(sizes)) == 1 and sizes[0] is not None and draw(st.booleans()):
        arg = sizes[0]
    return alias(x, arg, **kw)


@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data())
def test_adaptive_max_pool(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    dtype = draw(st.sampled_from(MAX_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=draw(st.booleans()),
                                                  extremes=True)))
    frozen = Frozen(x, owner)
    sizes = draw(adaptive_sizes(spatial))
    return_indices = draw(st.booleans())
    threads = draw(st.sampled_from([None, 1, 2]))
    ref_v, ref_i = R.ref_adaptive_max_pool(x, sizes, layout)
    got = _adaptive_call(draw, "adaptive_max_pool", x, nd, sizes, layout=layout,
                         return_indices=return_indices, num_threads=threads)
    if return_indices:
        got, idx = got
        assert_fresh(idx)
        assert idx.dtype == np.int64
        assert_exact(idx, ref_i)
    assert_fresh(got)
    assert_exact(got, ref_v)
    frozen.check()


@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data())
def test_adaptive_avg_pool(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    dtype = draw(st.sampled_from(AVG_DTYPES))
    out_dtype = draw(st.sampled_from([None, None, np.float16, np.float32, np.float64]))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=draw(st.booleans()))))
    frozen = Frozen(x, owner)
    sizes = draw(adaptive_sizes(spatial))
    ref = R.ref_adaptive_avg_pool(x, sizes, layout, keep_float64=True)
    got = _adaptive_call(draw, "adaptive_avg_pool", x, nd, sizes, layout=layout,
                         dtype=out_dtype, num_threads=draw(st.sampled_from([None, 1, 2])))
    assert_fresh(got)
    assert_close(got, ref, R.float_result_dtype(_native(x.dtype), out_dtype))
    frozen.check()


@settings(max_examples=examples(200), **SETTINGS)
@given(data=st.data())
def test_adaptive_even_cells(data):
    """Output sizes that divide the input sizes: the cells are sliding windows
    (kernel = stride = cell) and take those paths (_pooling._even_cells),
    except indices of channels_first cells 3 or more columns wide."""
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    sizes = tuple(draw(st.sampled_from([d for d in range(1, L + 1) if L % d == 0]))
                  for L in spatial)
    if all(o == 1 for o in sizes):
        sizes = spatial    # (one cell per axis: the global paths)
    return_indices = draw(st.booleans())
    dtype = draw(st.sampled_from(MAX_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=draw(st.booleans()),
                                                  extremes=True)))
    frozen = Frozen(x, owner)
    g = adaptive_geometry(x.shape, sizes, layout, nd)
    cells = [L // o for L, o in zip(spatial, sizes)]
    sliding = not (return_indices and layout == "channels_first" and nd >= 2 and cells[-1] >= 3)
    assert (_pooling._even_cells(g, return_indices) is not None) == sliding
    threads = draw(st.sampled_from([None, 1, 2]))
    ref_v, ref_i = R.ref_adaptive_max_pool(x, sizes, layout)
    got = pypool.adaptive_max_pool(x, sizes, layout=layout, return_indices=return_indices,
                                   num_threads=threads)
    if return_indices:
        got, idx = got
        assert_exact(idx, ref_i)
    assert_exact(got, ref_v)
    if dtype in AVG_DTYPES:
        ref = R.ref_adaptive_avg_pool(x, sizes, layout, keep_float64=True)
        avg = pypool.adaptive_avg_pool(x, sizes, layout=layout, num_threads=threads)
        assert_close(avg, ref, R.float_result_dtype(_native(x.dtype), None))
    frozen.check()


def test_adaptive_examples():
    x = np.arange(10, dtype=np.float64).reshape(1, 10)
    # cells of 10 -> 4: [0,3) [2,5) [5,8) [7,10)
    np.testing.assert_array_equal(pypool.adaptive_avg_pool1d(x, 4), [[1.0, 3.0, 6.0, 8.0]])
    v, i = pypool.adaptive_max_pool1d(x, 4, return_indices=True)
    np.testing.assert_array_equal(v, [[2, 4, 7, 9]])
    np.testing.assert_array_equal(i, [[2, 4, 7, 9]])
    # output larger than the input repeats elements
    np.testing.assert_array_equal(pypool.adaptive_max_pool1d(np.array([1, 5]), 3), [1, 5, 5])
    # None keeps an axis
    y = pypool.adaptive_avg_pool(np.ones((2, 5, 7)), (None, 3))
    assert y.shape == (2, 5, 3)
    # ties and NaN: first maximum / first NaN
    v, i = pypool.adaptive_max_pool1d(np.array([2.0, 1.0, 2.0, np.nan, np.nan]), 1,
                                      return_indices=True)
    assert np.isnan(v[0]) and i[0] == 3
    v, i = pypool.adaptive_max_pool1d(np.array([3, 1, 3], dtype=np.int8), 1, return_indices=True)
    assert v.dtype == np.int8 and v[0] == 3 and i[0] == 0


# ---------------------------------------------------------------------------
# Lp pooling
# ---------------------------------------------------------------------------

NORMS = st.one_of(st.sampled_from([1, 2, 3, 4, 1.0, 2.0, 0.5, 1.5, 2.5, math.inf]),
                  st.floats(0.5, 6.0))


def lp_elements(dtype, specials=False, nonzero=False):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(max(int(info.min), -20), min(int(info.max), 20))
    vals = st.one_of(st.integers(-3, 3).map(float), dyadic(64, 4))
    if nonzero:
        vals = vals.filter(lambda v: v != 0)
    if specials:
        vals = st.one_of(vals, st.sampled_from([math.nan, math.inf, -math.inf, -0.0]))
    return vals


def _lp_call(draw, x, p, nd, w, **kw):
    stride = maybe_int(draw, w["stride"])
    dilation = maybe_int(draw, w["dilation"])
    args = (w["kernel"], stride, w["padding"], dilation, w["ceil_mode"])
    if draw(st.booleans()):
        return pypool.lp_pool(x, p, *args, **kw)
    alias = getattr(pypool, "lp_pool%dd" % nd)
    kernel = maybe_int(draw, w["kernel"])
    return alias(x, p, kernel, stride=stride, padding=w["padding"], dilation=dilation,
                 ceil_mode=w["ceil_mode"], **kw)


@settings(max_examples=examples(400), **SETTINGS)
@given(data=st.data())
def test_lp_pool(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    w = draw(windows(nd, spatial))
    dtype = draw(st.sampled_from(AVG_DTYPES))
    out_dtype = draw(st.sampled_from([None, None, np.float16, np.float32, np.float64]))
    p = draw(NORMS)
    x, owner = draw(arrays(dtype, shape, lp_elements(dtype, specials=draw(st.booleans()))))
    frozen = Frozen(x, owner)
    kw = dict(layout=layout, dtype=out_dtype, num_threads=draw(st.sampled_from([None, 1, 2])))
    if geometry_or_none(spatial, w) is None:
        with pytest.raises(ValueError):
            _lp_call(draw, x, p, nd, w, **kw)
        frozen.check()
        return
    ref = R.ref_lp_pool(x, p, w["kernel"], w["stride"], w["padding"], w["dilation"],
                        w["ceil_mode"], layout, keep_float64=True)
    got = _lp_call(draw, x, p, nd, w, **kw)
    assert_fresh(got)
    assert_close(got, ref, R.float_result_dtype(_native(x.dtype), out_dtype),
                 rtol64=64 * np.finfo(np.float64).eps)
    frozen.check()


def test_lp_examples():
    x = np.array([[3.0, -4.0, 0.0, 1.0]])
    np.testing.assert_allclose(pypool.lp_pool1d(x, 2, 2), [[5.0, 1.0]], rtol=1e-15)
    np.testing.assert_allclose(pypool.lp_pool1d(x, 1, 2), [[7.0, 1.0]], rtol=1e-15)
    np.testing.assert_array_equal(pypool.lp_pool1d(x, math.inf, 2), [[4.0, 1.0]])
    # padding contributes nothing; an empty window (dilation) gives 0
    np.testing.assert_allclose(pypool.lp_pool1d(x, 2, 2, stride=2, padding=1), [[3.0, 4.0, 1.0]],
                               rtol=1e-15)
    y = pypool.lp_pool1d(np.array([2.0]), 2, 2, stride=1, padding=1, dilation=2)
    np.testing.assert_array_equal(y, [0.0])
    # integer input -> float64
    assert pypool.lp_pool1d(np.array([3, 4], dtype=np.int16), 2, 2).dtype == np.float64
    assert pypool.lp_pool1d(np.array([3, 4], dtype=np.float16), 2, 2).dtype == np.float16


# ---------------------------------------------------------------------------
# max_unpool
# ---------------------------------------------------------------------------

@st.composite
def unpool_geometry(draw, nd, spatial):
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    stride = draw(st.one_of(st.none(), st.lists(st.integers(1, 3), min_size=nd,
                                                   max_size=nd).map(tuple)))
    form = draw(st.sampled_from(["int", "axes", "pairs", "valid"]))
    if form == "int":
        padding = draw(st.integers(0, min(kernel) - 1))
    elif form == "axes":
        padding = tuple(draw(st.integers(0, k - 1)) for k in kernel)
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1)))
                        for k in kernel)
    else:
        padding = "valid"
    return kernel, stride, padding


def _unpool_call(draw, x, idx, nd, kernel, stride, padding, output_size, **kw):
    if draw(st.booleans()):
        return pypool.max_unpool(x, idx, kernel, stride, padding, output_size, **kw)
    alias = getattr(pypool, "max_unpool%dd" % nd)
    return alias(x, idx, maybe_int(draw, kernel), stride=maybe_int(draw, stride),
                 padding=padding, output_size=output_size, **kw)


@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data())
def test_max_unpool_random_indices(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    kernel, stride, padding = draw(unpool_geometry(nd, spatial))
    full_stride = stride or kernel
    pads = R.resolve_pads(spatial, kernel, full_stride, padding, (1,) * nd)
    default = R.unpool_default_size(spatial, kernel, full_stride, pads)
    choice = draw(st.sampled_from(["default", "spatial", "full"]))
    if choice == "default":
        output_size, outs = None, default
    else:
        outs = tuple(max(1, d + draw(st.integers(-2, 2))) for d in default)
        output_size = outs
        if choice == "full":
            lead_shape = shape[:len(shape) - nd] if layout == "channels_first" else shape[:-nd - 1]
            output_size = full_shape(lead_shape, outs, layout, shape[-1])
        output_size = list(output_size) if draw(st.booleans()) else tuple(output_size)
    dtype = draw(st.sampled_from(MAX_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=True, extremes=True)))
    if min(outs) < 1:
        with pytest.raises(ValueError):
            pypool.max_unpool(x, np.zeros(shape, np.int64), kernel, stride, padding, output_size,
                              layout=layout)
        return
    size = math.prod(outs)
    idx_dtype = draw(st.sampled_from(INDEX_DTYPES))
    hi = min(size - 1, int(np.iinfo(idx_dtype).max))
    assume(hi == size - 1)
    # a narrow index range makes duplicates (the last one must win) common
    top = draw(st.sampled_from([hi, min(hi, 3)]))
    idx, idx_owner = draw(arrays(idx_dtype, shape, st.integers(0, top)))
    frozen = Frozen(x, owner, idx, idx_owner)
    ref = R.ref_max_unpool(x, idx, kernel, stride, padding, output_size, layout)
    got = _unpool_call(draw, x, idx, nd, kernel, stride, padding, output_size, layout=layout,
                       num_threads=draw(st.sampled_from([None, 1, 2])))
    assert_fresh(got)
    assert_exact(got, ref)
    frozen.check()


@settings(max_examples=examples(200), **SETTINGS)
@given(data=st.data())
def test_unpool_round_trip(data):
    """max_unpool(*max_pool(x, return_indices=True)) puts every maximum back."""
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    w = draw(windows(nd, spatial, allow_same=False, allow_dilation=False))
    if draw(st.booleans()):  # non-overlapping windows
        w["stride"] = None
    assume(geometry_or_none(spatial, w) is not None)
    dtype = draw(st.sampled_from(MAX_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=True, extremes=True)))
    frozen = Frozen(x, owner)
    k, s, pad, cm = w["kernel"], w["stride"], w["padding"], w["ceil_mode"]
    values, indices = pypool.max_pool(x, k, s, pad, 1, cm, layout=layout, return_indices=True)
    frozen2 = Frozen(values, indices)
    out = pypool.max_unpool(values, indices, k, s, pad, output_size=spatial, layout=layout)
    frozen.check()
    frozen2.check()
    assert out.shape == x.shape and _native(out.dtype) == _native(x.dtype)
    # expected: x at every index the pool produced, zero elsewhere
    pl = R._Planes(x.shape, nd, layout)
    xs = pl.split(np.asarray(x)).reshape(pl.count, -1)
    hit = np.zeros(xs.shape, dtype=bool)
    for plane, row in enumerate(pl.split(indices).reshape(pl.count, -1)):
        hit[plane, row] = True
    expected = np.where(hit, xs, np.zeros((), dtype=_native(x.dtype)))
    got = pl.split(out).reshape(pl.count, -1)
    np.testing.assert_array_equal(got, expected)
    # non-overlapping windows that tile the input exactly: the default size is the input
    fs = s or k
    pads = R.resolve_pads(spatial, k, fs, pad, (1,) * nd)
    if R.unpool_default_size(values.shape[-nd:] if layout == "channels_first"
                             else values.shape[-nd - 1:-1], k, fs, pads) == tuple(spatial):
        out2 = pypool.max_unpool(values, indices, k, s, pad, layout=layout)
        np.testing.assert_array_equal(out2, out)


def test_unpool_examples():
    x = np.array([[1.0, 2.0, 3.0]])
    i = np.array([[0, 0, 5]])
    np.testing.assert_array_equal(pypool.max_unpool1d(x, i, 2), [[2.0, 0, 0, 0, 0, 3.0]])
    # output_size as spatial sizes and as the full shape
    np.testing.assert_array_equal(pypool.max_unpool1d(x, i, 2, output_size=(7,)),
                                  [[2.0, 0, 0, 0, 0, 3.0, 0]])
    np.testing.assert_array_equal(pypool.max_unpool1d(x, i, 2, output_size=(1, 7)),
                                  [[2.0, 0, 0, 0, 0, 3.0, 0]])
    # bool and uint64 keep their dtype
    b = pypool.max_unpool1d(np.array([True, True]), np.array([1, 2]), 2)
    assert b.dtype == np.bool_ and b.tolist() == [False, True, True, False]
    u = pypool.max_unpool1d(np.array([2**64 - 1], dtype=np.uint64), np.array([1]), 2)
    assert u.dtype == np.uint64 and u.tolist() == [0, 2**64 - 1]
    # default size with padding: (L-1)*s - pb - pe + k
    assert pypool.max_unpool1d(np.ones(3), np.zeros(3, np.int64), 3, 2, 1).shape == (5,)
    assert pypool.max_unpool(np.ones(3), np.zeros(3, np.int64), (3,), 2, ((1, 0),)).shape == (6,)


# ---------------------------------------------------------------------------
# global_max_pool indices
# ---------------------------------------------------------------------------

@settings(max_examples=examples(100), **SETTINGS)
@given(data=st.data())
def test_global_max_pool_indices(data):
    draw = data.draw
    nd = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, MAX_EXTENT[nd]), min_size=nd, max_size=nd)))
    shape = (N, C) + spatial if layout == "channels_first" else (N,) + spatial + (C,)
    dtype = draw(st.sampled_from(MAX_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=True, extremes=True)))
    keepdims = draw(st.booleans())
    ref_v, ref_i = ref_global_max_pool(x, layout, keepdims)
    v, i = pypool.global_max_pool(x, layout=layout, keepdims=keepdims, return_indices=True)
    assert_exact(v, ref_v)
    assert_exact(i, ref_i)


# ---------------------------------------------------------------------------
# max_pool_backward
# ---------------------------------------------------------------------------

def grad_elements(dtype, small=False):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        return st.integers(-50, 50) if dtype.kind == "i" else st.integers(0, 50)
    if small:
        return st.one_of(st.integers(-4, 4).map(float), dyadic(64, 4))
    return st.one_of(st.integers(-4, 4).map(float), dyadic())


@st.composite
def max_indices_source(draw):
    """(input_shape, grad_shape, indices, ndim_arg, layout) from one of the max ops."""
    source = draw(st.sampled_from(["max_pool", "max_pool", "adaptive", "global", "random"]))
    nd, layout, shape, spatial = draw(shapes())
    x = draw(arrays(np.float64, shape, elements(np.float64, specials=True), layouts=False))[0]
    if source == "global":
        N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        shape = (N, C) + spatial if layout == "channels_first" else (N,) + spatial + (C,)
        x = draw(hnp.arrays(np.float64, shape, elements=elements(np.float64)))
        _, idx = pypool.global_max_pool(x, layout=layout, keepdims=True, return_indices=True)
        ndim_arg = draw(st.sampled_from([None, nd]))
    elif source == "adaptive":
        sizes = draw(adaptive_sizes(spatial))
        _, idx = pypool.adaptive_max_pool(x, sizes, layout=layout, return_indices=True)
        ndim_arg = nd
    elif source == "max_pool":
        w = draw(windows(nd, spatial))
        assume(geometry_or_none(spatial, w) is not None)
        _, idx = pypool.max_pool(x, w["kernel"], w["stride"], w["padding"], w["dilation"],
                                 w["ceil_mode"], layout=layout, return_indices=True)
        ndim_arg = nd
    else:
        outs = tuple(draw(st.lists(st.integers(1, 5), min_size=nd, max_size=nd)))
        lead = lead_axes(shape, nd, layout)
        gshape = full_shape(lead, outs, layout, shape[-1])
        hi = math.prod(spatial) - 1
        idx = draw(hnp.arrays(np.int64, gshape,
                              elements=st.integers(-1, draw(st.sampled_from([hi, min(hi, 2)])))))
        ndim_arg = nd
    if len(shape) - 2 != nd:
        ndim_arg = nd  # the default (len(input_shape) - 2) would be wrong
    elif draw(st.booleans()):
        ndim_arg = None
    return shape, idx, ndim_arg, layout


@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data())
def test_max_pool_backward(data):
    draw = data.draw
    input_shape, idx0, ndim_arg, layout = draw(max_indices_source())
    gdtype = draw(st.sampled_from(GRAD_DTYPES))
    idx_dtype = draw(st.sampled_from([np.int64, np.int64, np.int32]))
    # keep the drawn index values, only change dtype / memory layout
    idx = np.asarray(idx0).astype(idx_dtype)
    if draw(st.booleans()):
        idx = np.flip(np.ascontiguousarray(np.flip(idx)))
    grad, gowner = draw(arrays(gdtype, idx.shape, grad_elements(gdtype)))
    frozen = Frozen(grad, gowner, idx)
    shape_arg = list(input_shape) if draw(st.booleans()) else tuple(input_shape)
    ref = R.ref_max_pool_backward(grad, idx, input_shape, ndim_arg, layout)
    kw = dict(layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    if ndim_arg is not None:
        kw["ndim"] = ndim_arg
    got = pypool.max_pool_backward(grad, idx, shape_arg, **kw)
    assert_fresh(got)
    # dyadic gradients: the float64 sums are exact, so one rounding is exact too
    assert_exact(got, ref)
    frozen.check()


def test_max_pool_backward_examples():
    g = np.array([[1.0, 2.0, 4.0]])
    i = np.array([[0, 0, -1]])
    np.testing.assert_array_equal(pypool.max_pool_backward(g, i, (1, 4), ndim=1),
                                  [[3.0, 0, 0, 0]])
    assert pypool.max_pool_backward(g.astype(np.float32), i, (1, 4), ndim=1).dtype == np.float32
    assert pypool.max_pool_backward(g.astype(np.int32), i, (1, 4), ndim=1).dtype == np.float64
    # global max with keepdims indices, default ndim
    x = np.array([[[[1.0, 5.0], [5.0, 2.0]]]])
    v, idx = pypool.global_max_pool(x, keepdims=True, return_indices=True)
    gi = pypool.max_pool_backward(np.ones_like(v), idx, x.shape)
    np.testing.assert_array_equal(gi, [[[[0.0, 1.0], [0.0, 0.0]]]])
    # global pooling takes any number of spatial axes, and so does the backward
    x = np.zeros((1, 2, 2, 3, 2, 2))
    x[0, 1, 1, 2, 0, 1] = 1.0
    v, idx = pypool.global_max_pool(x, keepdims=True, return_indices=True)
    assert idx[0, 1].item() == ((1 * 3 + 2) * 2 + 0) * 2 + 1
    gi = pypool.max_pool_backward(np.full(v.shape, 2.0), idx, x.shape)
    expected = np.zeros(x.shape)
    expected[0, 0, 0, 0, 0, 0] = 2.0  # all-zero plane: the first element
    expected[0, 1, 1, 2, 0, 1] = 2.0
    np.testing.assert_array_equal(gi, expected)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("threads", [1, 2])
def test_max_pool_backward_reuses_a_clean_accumulator(layout, dtype, threads):
    """A thread sums a whole run of planes in one accumulator, zeroed once and
    left zero by each plane as its rows go out: a plane must not see the sums
    of the plane before it. Every plane here hits every position (several
    times), except the last, which hits only one, so any leftover shows."""
    rng = np.random.default_rng(7)
    planes, C, H, W = 5, 3, 6, 10
    input_shape = (planes, C, H, W) if layout == "channels_first" else (planes, H, W, C)
    gshape = (planes, C, 4, 37) if layout == "channels_first" else (planes, 4, 37, C)
    idx = rng.integers(0, H * W, gshape)
    idx[-1] = 5
    grad = rng.integers(-8, 9, gshape).astype(dtype)
    expected = R.ref_max_pool_backward(grad, idx, input_shape, 2, layout)
    got = pypool.max_pool_backward(grad, idx, input_shape, layout=layout, num_threads=threads)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == dtype


# ---------------------------------------------------------------------------
# avg_pool_backward
# ---------------------------------------------------------------------------

@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data())
def test_avg_pool_backward(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    w = draw(windows(nd, spatial))
    geom = geometry_or_none(spatial, w)
    assume(geom is not None)
    outs = geom[-1]
    lead = lead_axes(shape, nd, layout)
    gshape = full_shape(lead, outs, layout, shape[-1])
    gdtype = draw(st.sampled_from(GRAD_DTYPES))
    grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
    frozen = Frozen(grad, gowner)
    cip = draw(st.booleans())
    dov = draw(st.one_of(st.none(), st.none(), st.integers(1, 9)))
    args = (w["kernel"], w["stride"], w["padding"], w["dilation"], w["ceil_mode"], cip, dov)
    ref = R.ref_avg_pool_backward(grad, shape, *args, layout=layout, keep_float64=True)
    bound = R.ref_avg_pool_backward(np.abs(np.asarray(grad, dtype=np.float64)), shape, *args,
                                    layout=layout, keep_float64=True)
    got = pypool.avg_pool_backward(grad, shape, w["kernel"], maybe_int(draw, w["stride"]),
                                   w["padding"], maybe_int(draw, w["dilation"]), w["ceil_mode"],
                                   cip, dov, layout=layout,
                                   num_threads=draw(st.sampled_from([None, 1, 2])))
    assert_fresh(got)
    assert_close(got, ref, R.float_result_dtype(_native(grad.dtype)), bound=bound)
    frozen.check()


# ---------------------------------------------------------------------------
# lp_pool_backward
# ---------------------------------------------------------------------------

@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data())
def test_lp_pool_backward(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    w = draw(windows(nd, spatial))
    geom = geometry_or_none(spatial, w)
    assume(geom is not None)
    outs = geom[-1]
    lead = lead_axes(shape, nd, layout)
    gshape = full_shape(lead, outs, layout, shape[-1])
    fdtype = draw(st.sampled_from(FLOATS + (np.float64,)))
    p = draw(NORMS)
    if fdtype == np.float16 and p < 1:
        p = 1.0 + p  # keeps the gradient factors inside float16's range
    x, xowner = draw(arrays(fdtype, shape, lp_elements(fdtype)))
    grad, gowner = draw(arrays(fdtype, gshape, grad_elements(fdtype, small=True)))
    frozen = Frozen(x, xowner, grad, gowner)
    args = (w["kernel"], w["stride"], w["padding"], w["dilation"], w["ceil_mode"])
    ref = R.ref_lp_pool_backward(grad, x, p, *args, layout=layout, keep_float64=True)
    bound = R.ref_lp_pool_backward(np.abs(np.asarray(grad, np.float64)),
                                   np.abs(np.asarray(x, np.float64)), p, *args, layout=layout,
                                   keep_float64=True)
    got = pypool.lp_pool_backward(grad, x, p, w["kernel"], maybe_int(draw, w["stride"]),
                                  w["padding"], maybe_int(draw, w["dilation"]), w["ceil_mode"],
                                  layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    assert_fresh(got)
    assert_close(got, ref, fdtype, bound=bound, rtol64=1e-12)
    frozen.check()


def test_lp_pool_backward_examples():
    x = np.array([3.0, -4.0, 0.0, 0.0])
    g = np.array([1.0, 1.0])
    # p = 2: x / y ; an all-zero window has no gradient
    np.testing.assert_allclose(pypool.lp_pool_backward(g, x, 2, (2,)), [0.6, -0.8, 0.0, 0.0],
                               rtol=1e-15)
    # p = inf: the first maximal |x| gets g * sign(x)
    np.testing.assert_array_equal(pypool.lp_pool_backward(g, np.array([-2.0, 2.0, 1.0, -1.0]),
                                                          math.inf, (2,)), [-1.0, 0.0, 1.0, 0.0])
    # p = 1: sign(x), 0 at x == 0
    np.testing.assert_array_equal(pypool.lp_pool_backward(g, np.array([-2.0, 0.0, 1.0, 3.0]), 1,
                                                          (2,)), [-1.0, 0.0, 1.0, 1.0])


# ---------------------------------------------------------------------------
# global / adaptive average backward
# ---------------------------------------------------------------------------

@settings(max_examples=examples(120), **SETTINGS)
@given(data=st.data())
def test_global_avg_pool_backward(data):
    draw = data.draw
    nd = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, MAX_EXTENT[nd]), min_size=nd, max_size=nd)))
    shape = (N, C) + spatial if layout == "channels_first" else (N,) + spatial + (C,)
    keep = draw(st.booleans())
    gshape = ((N, C) + (1,) * nd if layout == "channels_first" else (N,) + (1,) * nd + (C,)) \
        if keep else (N, C)
    gdtype = draw(st.sampled_from(GRAD_DTYPES))
    grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
    frozen = Frozen(grad, gowner)
    ref = R.ref_global_avg_pool_backward(np.asarray(grad, np.float64), shape, layout)
    got = pypool.global_avg_pool_backward(grad, shape, layout=layout,
                                          num_threads=draw(st.sampled_from([None, 1, 2])))
    assert_fresh(got)
    assert_close(got, ref, R.float_result_dtype(_native(grad.dtype)))
    frozen.check()


@settings(max_examples=examples(200), **SETTINGS)
@given(data=st.data())
def test_adaptive_avg_pool_backward(data):
    draw = data.draw
    nd, layout, shape, spatial = draw(shapes())
    sizes = R.adaptive_sizes(spatial, draw(adaptive_sizes(spatial)))
    lead = lead_axes(shape, nd, layout)
    gshape = full_shape(lead, sizes, layout, shape[-1])
    gdtype = draw(st.sampled_from(GRAD_DTYPES))
    grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
    frozen = Frozen(grad, gowner)
    ndim_arg = nd if (len(shape) - 2 != nd or draw(st.booleans())) else None
    ref = R.ref_adaptive_avg_pool_backward(grad, shape, nd, layout, keep_float64=True)
    bound = R.ref_adaptive_avg_pool_backward(np.abs(np.asarray(grad, np.float64)), shape, nd,
                                             layout, keep_float64=True)
    kw = dict(layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    if ndim_arg is not None:
        kw["ndim"] = ndim_arg
    got = pypool.adaptive_avg_pool_backward(grad, shape, **kw)
    assert_fresh(got)
    assert_close(got, ref, R.float_result_dtype(_native(grad.dtype)), bound=bound)
    frozen.check()


# ---------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------

def _strided_out(shape, dtype):
    big = np.full(tuple(2 * n for n in shape), 99, dtype=dtype)
    return big[tuple(slice(None, None, 2) for _ in shape)]


@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("name", ["adaptive_avg", "adaptive_max", "lp", "unpool",
                                  "max_bwd", "avg_bwd", "lp_bwd", "gavg_bwd", "aavg_bwd"])
def test_out_argument(name, strided):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6))
    g_small = rng.standard_normal((2, 3, 2, 3))
    idx = np.asarray(pypool.max_pool(x, (2, 2), return_indices=True)[1])
    calls = {
        "adaptive_avg": lambda out: pypool.adaptive_avg_pool(x, (2, 3), out=out),
        "adaptive_max": lambda out: pypool.adaptive_max_pool(x, (2, 3), out=out),
        "lp": lambda out: pypool.lp_pool(x, 3, (2, 2), out=out),
        "unpool": lambda out: pypool.max_unpool(g_small, idx, (2, 2), out=out),
        "max_bwd": lambda out: pypool.max_pool_backward(g_small, idx, x.shape, out=out),
        "avg_bwd": lambda out: pypool.avg_pool_backward(g_small, x.shape, (2, 2), out=out),
        "lp_bwd": lambda out: pypool.lp_pool_backward(g_small, x, 3, (2, 2), out=out),
        "gavg_bwd": lambda out: pypool.global_avg_pool_backward(g_small[..., 0, 0], x.shape,
                                                                out=out),
        "aavg_bwd": lambda out: pypool.adaptive_avg_pool_backward(g_small, x.shape, out=out),
    }
    fresh = calls[name](None)
    out = _strided_out(fresh.shape, fresh.dtype) if strided else np.empty_like(fresh)
    res = calls[name](out)
    assert res is out
    np.testing.assert_array_equal(out, fresh)
    with pytest.raises((TypeError, ValueError)):
        calls[name](np.empty(fresh.shape[:-1] + (fresh.shape[-1] + 1,), fresh.dtype))


# ---------------------------------------------------------------------------
# empty lead axes
# ---------------------------------------------------------------------------

def test_empty_batches():
    x = np.zeros((0, 3, 5, 5), np.float32)
    assert pypool.adaptive_avg_pool(x, (2, 2)).shape == (0, 3, 2, 2)
    v, i = pypool.adaptive_max_pool(x, (2, 2), return_indices=True)
    assert v.shape == i.shape == (0, 3, 2, 2)
    assert pypool.lp_pool(x, 2, (2, 2)).shape == (0, 3, 2, 2)
    g = np.zeros((0, 3, 2, 2), np.float32)
    gi = np.zeros((0, 3, 2, 2), np.int64)
    assert pypool.max_unpool(g, gi, (2, 2)).shape == (0, 3, 4, 4)
    assert pypool.max_pool_backward(g, gi, x.shape).shape == x.shape
    assert pypool.avg_pool_backward(g, x.shape, (2, 2)).shape == x.shape
    assert pypool.lp_pool_backward(g, x, 2, (2, 2)).shape == x.shape
    assert pypool.adaptive_avg_pool_backward(g, x.shape).shape == x.shape
    assert pypool.global_avg_pool_backward(np.zeros((0, 3), np.float32), x.shape).shape == x.shape


# ---------------------------------------------------------------------------
# bad arguments
# ---------------------------------------------------------------------------

_X = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
_Y, _I = (np.asarray(a) for a in pypool.max_pool(_X, (2, 2), return_indices=True))
_G = np.ones((2, 3, 2, 2))


def _idx_with(value, pos=(0, 0, 0, 0), dtype=np.int64):
    i = _I.astype(dtype)
    i[pos] = value
    return i


BAD_CALLS = [
    # adaptive pooling
    ("adaptive output 0", ValueError, lambda: pypool.adaptive_avg_pool(_X, (0, 2))),
    ("adaptive output -1", ValueError, lambda: pypool.adaptive_max_pool(_X, (2, -1))),
    ("adaptive alias 0", ValueError, lambda: pypool.adaptive_max_pool2d(_X, 0)),
    ("adaptive empty output_size", ValueError, lambda: pypool.adaptive_avg_pool(_X, ())),
    ("adaptive rank 4", ValueError, lambda: pypool.adaptive_avg_pool(_X, (1, 1, 1, 1))),
    ("adaptive too few axes", ValueError, lambda: pypool.adaptive_avg_pool(np.ones(4), (2, 2))),
    ("adaptive empty input axis", ValueError,
     lambda: pypool.adaptive_avg_pool(np.ones((2, 0, 3)), (2, 2))),
    ("adaptive max empty input axis", ValueError,
     lambda: pypool.adaptive_max_pool(np.ones((2, 3, 0)), (2, 2))),
    ("adaptive string size", TypeError, lambda: pypool.adaptive_avg_pool(_X, ("2", 2))),
    ("adaptive float size", (TypeError, ValueError), lambda: pypool.adaptive_avg_pool(_X, (2.5, 2))),
    ("adaptive complex", TypeError, lambda: pypool.adaptive_avg_pool(_X.astype(complex), (2, 2))),
    ("adaptive max complex", TypeError,
     lambda: pypool.adaptive_max_pool(_X.astype(complex), (2, 2))),
    ("adaptive bad layout", ValueError,
     lambda: pypool.adaptive_avg_pool(_X, (2, 2), layout="nchw")),
    # lp pooling
    ("lp p=0", ValueError, lambda: pypool.lp_pool(_X, 0, (2, 2))),
    ("lp p<0", ValueError, lambda: pypool.lp_pool(_X, -1.5, (2, 2))),
    ("lp p=nan", ValueError, lambda: pypool.lp_pool(_X, math.nan, (2, 2))),
    ("lp p=-inf", ValueError, lambda: pypool.lp_pool(_X, -math.inf, (2, 2))),
    ("lp p str", TypeError, lambda: pypool.lp_pool(_X, "2", (2, 2))),
    ("lp p None", TypeError, lambda: pypool.lp_pool(_X, None, (2, 2))),
    ("lp p complex", TypeError, lambda: pypool.lp_pool(_X, 2j, (2, 2))),
    ("lp complex x", TypeError, lambda: pypool.lp_pool(_X.astype(complex), 2, (2, 2))),
    ("lp output < 1", ValueError, lambda: pypool.lp_pool(_X, 2, (5, 5))),
    ("lp bwd p=0", ValueError, lambda: pypool.lp_pool_backward(_G, _X, 0, (2, 2))),
    ("lp bwd p str", TypeError, lambda: pypool.lp_pool_backward(_G, _X, "inf", (2, 2))),
    ("lp bwd grad shape", ValueError,
     lambda: pypool.lp_pool_backward(np.ones((2, 3, 3, 2)), _X, 2, (2, 2))),
    ("lp bwd grad lead", ValueError,
     lambda: pypool.lp_pool_backward(np.ones((2, 2, 2, 2)), _X, 2, (2, 2))),
    # max_unpool
    ("unpool index too big", ValueError,
     lambda: pypool.max_unpool(_Y, _idx_with(16), (2, 2))),
    ("unpool index -1", ValueError, lambda: pypool.max_unpool(_Y, _idx_with(-1), (2, 2))),
    ("unpool index huge", ValueError, lambda: pypool.max_unpool(_Y, _idx_with(2**40), (2, 2))),
    ("unpool float indices", TypeError,
     lambda: pypool.max_unpool(_Y, _I.astype(np.float64), (2, 2))),
    ("unpool indices wrong shape", ValueError,
     lambda: pypool.max_unpool(_Y, _I[:, :, :1], (2, 2))),
    ("unpool indices broadcastable shape", ValueError,
     lambda: pypool.max_unpool(_Y, _I[:1], (2, 2))),
    ("unpool output_size 0", ValueError,
     lambda: pypool.max_unpool(_Y, _I, (2, 2), output_size=(0, 4))),
    ("unpool output_size length", ValueError,
     lambda: pypool.max_unpool(_Y, _I, (2, 2), output_size=(4, 4, 4))),
    ("unpool output_size too small for indices", ValueError,
     lambda: pypool.max_unpool(_Y, _I, (2, 2), output_size=(2, 2))),
    ("unpool same padding", ValueError,
     lambda: pypool.max_unpool(_Y, _I, (2, 2), padding="same")),
    ("unpool negative padding", ValueError,
     lambda: pypool.max_unpool(_Y, _I, (2, 2), padding=-1)),
    ("unpool default size < 1", ValueError,
     lambda: pypool.max_unpool(np.ones((1, 1)), np.zeros((1, 1), np.int64), (2, 2), padding=1)),
    ("unpool complex", TypeError,
     lambda: pypool.max_unpool(_Y.astype(complex), _I, (2, 2))),
    # max_pool_backward
    ("max bwd index -2", ValueError, lambda: pypool.max_pool_backward(_G, _idx_with(-2), _X.shape)),
    ("max bwd index too big", ValueError,
     lambda: pypool.max_pool_backward(_G, _idx_with(16), _X.shape)),
    ("max bwd float indices", TypeError,
     lambda: pypool.max_pool_backward(_G, _I.astype(np.float32), _X.shape)),
    ("max bwd indices shape", ValueError,
     lambda: pypool.max_pool_backward(_G, _I[:, :, :1], _X.shape)),
    ("max bwd input lead mismatch", ValueError,
     lambda: pypool.max_pool_backward(_G, _I, (3, 3, 4, 4))),
    ("max bwd input channels mismatch", ValueError,
     lambda: pypool.max_pool_backward(_G, _I, (2, 4, 4, 4))),
    ("max bwd ndim 0", ValueError, lambda: pypool.max_pool_backward(_G, _I, _X.shape, ndim=0)),
    ("max bwd ndim > len(input_shape)", ValueError,
     lambda: pypool.max_pool_backward(_G, _I, _X.shape, ndim=5)),
    ("max bwd complex grad", TypeError,
     lambda: pypool.max_pool_backward(_G.astype(complex), _I, _X.shape)),
    ("max bwd input_shape str", TypeError, lambda: pypool.max_pool_backward(_G, _I, "2344")),
    ("max bwd input_shape negative", ValueError,
     lambda: pypool.max_pool_backward(_G, _I, (2, 3, -4, 4))),
    # avg_pool_backward
    ("avg bwd grad spatial", ValueError,
     lambda: pypool.avg_pool_backward(np.ones((2, 3, 2, 3)), _X.shape, (2, 2))),
    ("avg bwd grad lead", ValueError,
     lambda: pypool.avg_pool_backward(np.ones((1, 3, 2, 2)), _X.shape, (2, 2))),
    ("avg bwd output < 1", ValueError,
     lambda: pypool.avg_pool_backward(np.ones((2, 3, 1, 1)), _X.shape, (5, 5))),
    ("avg bwd divisor 0", ValueError,
     lambda: pypool.avg_pool_backward(_G, _X.shape, (2, 2), divisor_override=0)),
    ("avg bwd complex", TypeError,
     lambda: pypool.avg_pool_backward(_G.astype(complex), _X.shape, (2, 2))),
    # global / adaptive average backward
    ("gavg bwd shape", ValueError,
     lambda: pypool.global_avg_pool_backward(np.ones((2, 4)), _X.shape)),
    ("gavg bwd keepdims shape", ValueError,
     lambda: pypool.global_avg_pool_backward(np.ones((2, 3, 1, 2)), _X.shape)),
    ("gavg bwd too few axes", ValueError,
     lambda: pypool.global_avg_pool_backward(np.ones((2, 3)), (2, 3))),
    ("aavg bwd lead", ValueError,
     lambda: pypool.adaptive_avg_pool_backward(np.ones((2, 2, 2, 2)), _X.shape)),
    ("aavg bwd empty input", ValueError,
     lambda: pypool.adaptive_avg_pool_backward(np.ones((2, 3, 2, 2)), (2, 3, 0, 4))),
    ("aavg bwd complex", TypeError,
     lambda: pypool.adaptive_avg_pool_backward(_G.astype(complex), _X.shape)),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments(name, exc, call):
    with pytest.raises(exc):
        call()


@pytest.mark.parametrize("bad", [16, -1, 2**33])
def test_unpool_validates_before_writing(bad):
    """A bad index anywhere (here: the very last element) leaves out= untouched."""
    out = np.full((2, 3, 4, 4), 5.0)
    idx = _idx_with(bad, pos=(1, 2, 1, 1))
    with pytest.raises(ValueError):
        pypool.max_unpool(_Y, idx, (2, 2), out=out)
    assert (out == 5.0).all()


def test_max_pool_backward_validates_before_writing():
    out = np.full(_X.shape, 5.0)
    with pytest.raises(ValueError):
        pypool.max_pool_backward(_G, _idx_with(99, pos=(1, 2, 1, 1)), _X.shape, out=out)
    assert (out == 5.0).all()


# ---------------------------------------------------------------------------
# determinism across thread counts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts(layout, dtype):
    rng = np.random.default_rng(7)
    shape = (4, 8, 64, 64) if layout == "channels_first" else (4, 64, 64, 8)
    x = rng.standard_normal(shape).astype(dtype)
    cl = layout == "channels_last"

    def pooled(spatial):
        return (4,) + spatial + (8,) if cl else (4, 8) + spatial

    g31 = rng.standard_normal(pooled((31, 31))).astype(dtype)  # k=3, s=2, pad 0
    g32 = rng.standard_normal(pooled((32, 32))).astype(dtype)  # k=3, s=2, pad 1
    g7 = rng.standard_normal(pooled((7, 9))).astype(dtype)
    gg = rng.standard_normal((4, 8)).astype(dtype)
    _, idx = pypool.max_pool(x, (3, 3), 2, 1, layout=layout, return_indices=True)
    ops = {
        "adaptive_avg": lambda n: pypool.adaptive_avg_pool(x, (7, 9), layout=layout, num_threads=n),
        "adaptive_max": lambda n: pypool.adaptive_max_pool(x, (7, 9), layout=layout,
                                                           return_indices=True, num_threads=n),
        "lp3": lambda n: pypool.lp_pool(x, 3, (3, 3), 2, 1, layout=layout, num_threads=n),
        "lp1.5": lambda n: pypool.lp_pool(x, 1.5, (3, 3), 2, layout=layout, num_threads=n),
        "lpinf": lambda n: pypool.lp_pool(x, math.inf, (3, 3), 2, layout=layout, num_threads=n),
        "unpool": lambda n: pypool.max_unpool(g32, idx, (3, 3), 2, 1, output_size=(64, 64),
                                              layout=layout, num_threads=n),
        "max_bwd": lambda n: pypool.max_pool_backward(g32, idx, x.shape, layout=layout,
                                                      num_threads=n),
        "avg_bwd": lambda n: pypool.avg_pool_backward(g32, x.shape, (3, 3), 2, 1, layout=layout,
                                                      count_include_pad=False, num_threads=n),
        "lp_bwd": lambda n: pypool.lp_pool_backward(g31, x, 2.5, (3, 3), 2, layout=layout,
                                                    num_threads=n),
        "gavg_bwd": lambda n: pypool.global_avg_pool_backward(gg, x.shape, layout=layout,
                                                              num_threads=n),
        "aavg_bwd": lambda n: pypool.adaptive_avg_pool_backward(g7, x.shape, layout=layout,
                                                                num_threads=n),
    }
    for name, op in ops.items():
        base = op(1)
        base = base if isinstance(base, tuple) else (base,)
        for n in (2, 4):
            other = op(n)
            other = other if isinstance(other, tuple) else (other,)
            for a, b in zip(base, other):
                assert a.dtype == b.dtype and a.shape == b.shape, name
                assert a.tobytes() == b.tobytes(), "%s differs between 1 and %d threads" % (name, n)


# ---------------------------------------------------------------------------
# accumulation: float32 / float16 data summed as float64 would sum it
# ---------------------------------------------------------------------------

_BIG = 2.0 ** 25  # float32 spacing here is 4: adding 1 in float32 is lost


@pytest.mark.parametrize("layout", LAYOUTS)
def test_float32_sums_are_exact(layout):
    def lay(a):
        """(N, C, L) channels_first data -> the layout under test."""
        return np.ascontiguousarray(np.moveaxis(a, 1, -1)) if layout == "channels_last" else a

    def unlay(a):
        return np.moveaxis(a, -1, 1) if layout == "channels_last" else a

    kw = dict(layout=layout)
    cancel = np.array([_BIG, 1, 1, 1, 1, 1, 1, -_BIG], dtype=np.float32).reshape(1, 1, 8)
    # adaptive average over the whole row: (2**25 + 6*1 - 2**25) / 8
    y = unlay(pypool.adaptive_avg_pool(lay(cancel), (1,), **kw))
    assert y.dtype == np.float32 and y.ravel()[0] == np.float32(0.75)
    # avg_pool_backward, divisor 1, kernel 5, stride 1: input 4 collects g[0..4]
    g = np.array([_BIG, 1, 1, 1, -_BIG], dtype=np.float32).reshape(1, 1, 5)
    gi = unlay(pypool.avg_pool_backward(lay(g), lay(np.zeros((1, 1, 9))).shape, (5,), 1,
                                        divisor_override=1, **kw))
    assert gi.dtype == np.float32 and gi[0, 0, 4] == 3.0
    # lp_pool_backward with p = 1 on positive x: the same sums of g
    gi = unlay(pypool.lp_pool_backward(lay(g), lay(np.ones((1, 1, 9), np.float32)), 1, (5,), 1,
                                       **kw))
    assert gi.dtype == np.float32 and gi[0, 0, 4] == 3.0
    # max_pool_backward: five gradients routed to one element
    gi = unlay(pypool.max_pool_backward(lay(g), lay(np.zeros((1, 1, 5), np.int64)),
                                        lay(np.zeros((1, 1, 9))).shape, ndim=1, **kw))
    assert gi.dtype == np.float32 and gi[0, 0, 0] == 3.0
    # adaptive_avg_pool_backward, 2 -> 5 cells: input 0 gets g0 + g1 + g2 / 2
    g = np.array([_BIG, 1, -2 * _BIG, _BIG, 0], dtype=np.float32).reshape(1, 1, 5)
    gi = unlay(pypool.adaptive_avg_pool_backward(lay(g), lay(np.zeros((1, 1, 2))).shape, ndim=1,
                                                 **kw))
    assert gi.dtype == np.float32 and gi.ravel().tolist() == [1.0, 0.0]


def test_float16_sums_are_exact():
    # 300 * 65504 exceeds 2**24: a float32 running sum drops the 0.5s
    row = np.zeros(1024, dtype=np.float16)
    row[:300] = 65504
    row[300:400] = 0.5
    row[400:700] = -65504
    y = pypool.adaptive_avg_pool1d(row.reshape(1, 1024), 1)
    assert y.dtype == np.float16 and y[0, 0] == np.float16(50 / 1024)
    g = np.array([2048, 1, 1, 1, -2048], dtype=np.float16)  # float16 spacing at 2048 is 2
    gi = pypool.max_pool_backward(g, np.zeros(5, np.int64), (4,), ndim=1)
    assert gi.dtype == np.float16 and gi[0] == 3


@pytest.mark.parametrize("p", [1, 2, 3.5])
def test_lp_pool_float32_rounds_once(p):
    """A 4096-tap window: a float32 running sum would be off by many ulps."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 1.0, size=(3, 4096)).astype(np.float32)
    got = pypool.lp_pool1d(x, p, 4096)
    ref = R.ref_lp_pool(x, p, (4096,), keep_float64=True)
    assert_close(got, ref, np.float32)


# ---------------------------------------------------------------------------
# inputs large enough for the parallel kernels, against the oracle
# ---------------------------------------------------------------------------

def _big_case(layout, seed, dtype=np.float64, shape=(4, 8, 36, 44)):
    rng = np.random.default_rng(seed)
    x = (rng.integers(-512, 512, size=shape) / 64.0).astype(dtype)
    if layout == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x, rng


PARALLEL_OPS = ["adaptive_avg", "adaptive_max", "lp", "lp_inf", "unpool", "max_bwd", "avg_bwd",
                "lp_bwd", "aavg_bwd", "gavg_bwd"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", PARALLEL_OPS)
def test_parallel_sizes_match_reference(op, layout):
    x, rng = _big_case(layout, PARALLEL_OPS.index(op))
    kw = dict(layout=layout, num_threads=2)
    kernel, stride, pad = (3, 4), (1, 2), ((1, 0), (2, 1))
    g_shape = R._Planes(x.shape, 2, layout).full_shape(
        R.lp_geometry(R._parts(x.shape, 2, layout)[1], kernel, stride, pad)[-1])
    g = (rng.integers(-64, 64, size=g_shape) / 8.0)
    if op == "adaptive_avg":
        assert_close(pypool.adaptive_avg_pool(x, (5, 13), **kw),
                     R.ref_adaptive_avg_pool(x, (5, 13), layout, keep_float64=True), np.float64)
    elif op == "adaptive_max":
        v, i = pypool.adaptive_max_pool(x, (50, 7), return_indices=True, **kw)
        rv, ri = R.ref_adaptive_max_pool(x, (50, 7), layout)
        assert_exact(v, rv)
        assert_exact(i, ri)
    elif op in ("lp", "lp_inf"):
        p = 2.5 if op == "lp" else math.inf
        got = pypool.lp_pool(x, p, kernel, stride, pad, dilation=(1, 2), **kw)
        ref = R.ref_lp_pool(x, p, kernel, stride, pad, (1, 2), layout=layout, keep_float64=True)
        assert_close(got, ref, np.float64, rtol64=1e-14)
    elif op == "unpool":
        v, i = pypool.max_pool(x, kernel, stride, pad, return_indices=True, layout=layout)
        spatial = R._parts(x.shape, 2, layout)[1]
        got = pypool.max_unpool(v, i, kernel, stride, pad, output_size=spatial, **kw)
        assert_exact(got, R.ref_max_unpool(v, i, kernel, stride, pad, spatial, layout))
    elif op == "max_bwd":
        _, i = pypool.max_pool(x, kernel, stride, pad, return_indices=True, layout=layout)
        assert_exact(pypool.max_pool_backward(g, i, x.shape, **kw),
                     R.ref_max_pool_backward(g, i, x.shape, 2, layout))
    elif op == "avg_bwd":
        args = (kernel, stride, pad, 1, False, False, None)
        ref = R.ref_avg_pool_backward(g, x.shape, *args, layout=layout, keep_float64=True)
        bound = R.ref_avg_pool_backward(np.abs(g), x.shape, *args, layout=layout,
                                        keep_float64=True)
        assert_close(pypool.avg_pool_backward(g, x.shape, *args, **kw), ref, np.float64,
                     bound=bound)
    elif op == "lp_bwd":
        x = np.where(x == 0, 0.25, x)
        ref = R.ref_lp_pool_backward(g, x, 3, kernel, stride, pad, layout=layout,
                                     keep_float64=True)
        bound = R.ref_lp_pool_backward(np.abs(g), np.abs(x), 3, kernel, stride, pad,
                                       layout=layout, keep_float64=True)
        assert_close(pypool.lp_pool_backward(g, x, 3, kernel, stride, pad, **kw), ref,
                     np.float64, bound=bound, rtol64=1e-12)
    elif op == "aavg_bwd":
        ga = g[..., :9, :] if layout == "channels_last" else g[..., :9]
        ga = np.ascontiguousarray(ga)
        ref = R.ref_adaptive_avg_pool_backward(ga, x.shape, 2, layout, keep_float64=True)
        bound = R.ref_adaptive_avg_pool_backward(np.abs(ga), x.shape, 2, layout,
                                                 keep_float64=True)
        assert_close(pypool.adaptive_avg_pool_backward(ga, x.shape, **kw), ref, np.float64,
                     bound=bound)
    else:
        big = np.zeros((64, 16, 40, 40)) if layout == "channels_first" else np.zeros((64, 40, 40, 16))
        gg = rng.standard_normal((64, 16))
        assert_close(pypool.global_avg_pool_backward(gg, big.shape, **kw),
                     R.ref_global_avg_pool_backward(gg, big.shape, layout), np.float64)


# ---------------------------------------------------------------------------
# more argument handling
# ---------------------------------------------------------------------------

def test_out_must_not_overlap_inputs():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    _, idx1 = pypool.max_pool(x, (1, 1), return_indices=True)
    g = x.copy()
    calls = [
        lambda: pypool.adaptive_avg_pool(x, (None, None), out=x),
        lambda: pypool.adaptive_max_pool(x, (None, None), out=x),
        lambda: pypool.lp_pool(x, 2, (1, 1), out=x),
        lambda: pypool.max_unpool(x, idx1, (1, 1), out=x),
        lambda: pypool.max_pool_backward(g, idx1, x.shape, out=g),
        lambda: pypool.avg_pool_backward(g, x.shape, (1, 1), out=g),
        lambda: pypool.lp_pool_backward(g, x, 2, (1, 1), out=x),
        lambda: pypool.lp_pool_backward(g, x, 2, (1, 1), out=g),
        lambda: pypool.adaptive_avg_pool_backward(g, x.shape, out=g),
    ]
    for call in calls:
        before = (x.copy(), g.copy())
        with pytest.raises(ValueError):
            call()
        np.testing.assert_array_equal(x, before[0])
        np.testing.assert_array_equal(g, before[1])


def test_array_likes():
    np.testing.assert_array_equal(pypool.max_unpool([[1.0, 2.0]], [[0, 3]], (2,)),
                                  [[1.0, 0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(pypool.max_pool_backward([[1.0]], [[1]], (1, 2), ndim=1),
                                  [[0.0, 1.0]])
    y = pypool.adaptive_avg_pool([[1, 2, 3]], (1,))
    assert y.dtype == np.float64 and y.tolist() == [[2.0]]
    assert pypool.adaptive_max_pool([[1, 5, 3]], [2]).tolist() == [[5, 5]]
    np.testing.assert_allclose(pypool.lp_pool([[3, 4]], 2, [2]), [[5.0]], rtol=1e-15)
    np.testing.assert_array_equal(pypool.avg_pool_backward([[2.0]], [1, 2], [2]), [[1.0, 1.0]])
    np.testing.assert_array_equal(pypool.global_avg_pool_backward([[4.0]], [1, 1, 2, 2]),
                                  np.ones((1, 1, 2, 2)))
    # norm_type as NumPy scalars
    np.testing.assert_allclose(pypool.lp_pool1d(np.array([3.0, 4.0]), np.float32(2), 2), [5.0])
    np.testing.assert_allclose(pypool.lp_pool1d(np.array([3.0, 4.0]), np.int64(2), 2), [5.0])


@pytest.mark.parametrize("bad,dtype", [(2**63 + 5, np.uint64), (2**64 - 1, np.uint64),
                                       (-2**62, np.int64), (2**31 - 1, np.int32),
                                       (-2**31, np.int32)])
def test_extreme_indices_are_rejected(bad, dtype):
    idx = _I.astype(dtype)
    idx[0, 1, 1, 0] = bad
    with pytest.raises(ValueError):
        pypool.max_unpool(_Y, idx, (2, 2))
    with pytest.raises(ValueError):
        pypool.max_pool_backward(_G, idx, _X.shape)


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex128, "U3"])
def test_result_dtype_must_be_float(dtype):
    for call in (lambda: pypool.adaptive_avg_pool(_X, (2, 2), dtype=dtype),
                 lambda: pypool.lp_pool(_X, 2, (2, 2), dtype=dtype)):
        with pytest.raises((TypeError, ValueError)):
            call()


def test_calls_from_many_python_threads():
    """Concurrent calls (the GIL is released) give the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    x, rng = _big_case("channels_first", 11, np.float32)
    g = rng.standard_normal((4, 8, 18, 22)).astype(np.float32)
    _, idx = pypool.max_pool(x, (2, 2), return_indices=True)
    ops = [
        lambda: pypool.adaptive_avg_pool(x, (7, 5)),
        lambda: pypool.adaptive_max_pool(x, (7, 5), return_indices=True)[1],
        lambda: pypool.lp_pool(x, 3, (2, 2)),
        lambda: pypool.max_unpool(g, idx, (2, 2)),
        lambda: pypool.max_pool_backward(g, idx, x.shape),
        lambda: pypool.avg_pool_backward(g, x.shape, (2, 2)),
        lambda: pypool.lp_pool_backward(g, x, 3, (2, 2)),
        lambda: pypool.adaptive_avg_pool_backward(g, x.shape),
    ]
    serial = [op() for op in ops]
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [(k, pool.submit(ops[k])) for _ in range(6) for k in range(len(ops))]
        for k, fut in futures:
            assert fut.result().tobytes() == serial[k].tobytes()
