"""Property tests: pypool's forward ops against the plain NumPy oracle.

Hypothesis draws the geometry (spatial rank 1-3, kernel, stride, dilation,
every padding form, ceil_mode), the layout, the dtype, the values (small
integers so that ties are common, NaN, +-inf, -0.0, integer extremes) and the
memory layout of the input (sliced, reversed, transposed, Fortran ordered,
broadcast, byte-swapped, read-only).  Each call is compared with
``reference.py``: values, indices, dtype, shape, C-contiguity and that the
input is left untouched.

Values are drawn on a dyadic grid (k / 2**m with |k| <= 1024, m <= 8) so every
float64 sum of a window is exact; the only rounding an average can show is
in the division and the final cast.  That is what the tolerances encode:

* max / indices: exact equality;
* average with a float64 result: ``assert_allclose`` with rtol = 4 eps;
* average with a float32 / float16 result: the result must be the float64
  reference rounded once to that dtype, allowing at most 1 ulp of that dtype
  (the package may divide in float64 and then cast, i.e. round twice).
"""

import functools
import math
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import (  # noqa: E402
    avg_result_dtype,
    ref_avg_pool,
    ref_global_avg_pool,
    ref_global_max_pool,
    ref_max_pool,
    ref_pooled_shape,
    resolve_pads,
)

from reference_ops import ref_lp_pool  # noqa: E402
from strategies import examples, paddings  # noqa: E402

import pypool  # noqa: E402

LAYOUTS = ["channels_first", "channels_last"]
# (hypothesis favours the first entries of sampled_from, so floats go first)
MAX_DTYPES = [np.float64, np.float32, np.float16, np.int8, np.uint8, np.bool_, np.int16,
              np.uint16, np.int32, np.uint32, np.int64, np.uint64]
AVG_DTYPES = [np.float64, np.float32, np.float16, np.int8, np.int32, np.uint16, np.bool_]
AVG_OUT_DTYPES = [None, None, np.float16, np.float32, np.float64]
# the largest spatial extent per rank, so the loop-based oracle stays quick
MAX_DIM = {1: 9, 2: 7, 3: 5}

COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])


# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

@st.composite
def geometries(draw, max_rank=3):
    nd = draw(st.integers(1, max_rank))
    spatial = tuple(draw(st.lists(st.integers(1, MAX_DIM[nd]), min_size=nd, max_size=nd)))
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    if draw(st.booleans()):
        dilation = (1,) * nd
    else:
        dilation = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    stride = draw(st.one_of(st.none(),
                            st.lists(st.integers(1, 3), min_size=nd, max_size=nd).map(tuple)))
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    padding = draw(paddings(ext))
    ceil_mode = draw(st.booleans())
    return dict(nd=nd, spatial=spatial, kernel=kernel, stride=stride, dilation=dilation,
                padding=padding, ceil_mode=ceil_mode)


def _maybe_broadcast_int(draw, values):
    """Pass a per-axis tuple, or a plain int when every axis has the same value."""
    if values is None:
        return None
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return values


@functools.lru_cache(maxsize=None)
def element_strategy(dtype, specials, extremes):
    # cached: hypothesis computes properties of a strategy on its first use,
    # so building fresh one_of() strategies for every draw is slow
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        small = st.integers(max(int(info.min), -3), min(int(info.max), 3))
        if extremes:
            return st.one_of(small, small, st.sampled_from([int(info.min), int(info.max)]))
        return small
    # floats: small integers (ties) or dyadic numbers; optionally NaN / inf / -0.0
    dyadic = st.builds(lambda k, m: k / 2.0 ** m, st.integers(-1024, 1024), st.integers(0, 8))
    small = st.integers(-3, 3).map(float)
    parts = [small, small, dyadic]
    if specials:
        parts.append(st.sampled_from([math.nan, -math.inf, math.inf, -0.0]))
    return st.one_of(*parts)


def _fill_value(dtype):
    """A value put around strided views: larger than anything drawn, so a
    kernel that reads the wrong memory shows up in the max."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return True
    if dtype.kind in "iu":
        return 5
    return 1000.5


@functools.lru_cache(maxsize=None)
def _array_strategy(hdtype, shape, elements):
    return hnp.arrays(hdtype, shape, elements=elements)


@st.composite
def input_arrays(draw, dtype, shape, specials=True, extremes=True):
    """Return (x, owner): x is the array to pass, owner the memory behind it."""
    dtype = np.dtype(dtype)
    elements = element_strategy(dtype, bool(specials), bool(extremes))
    hdtype = np.dtype(np.float64) if dtype.kind == "f" else dtype

    def draw_data(shp):
        a = draw(_array_strategy(hdtype, shp, elements))
        return a.astype(dtype)

    variant = draw(st.sampled_from(
        ["contiguous", "contiguous", "step", "reverse", "transpose", "fortran",
         "broadcast", "byteswap"]))
    big_axes = [i for i, n in enumerate(shape) if n > 1]
    if variant == "broadcast" and big_axes:
        ax = draw(st.sampled_from(big_axes))
        small_shape = tuple(1 if i == ax else n for i, n in enumerate(shape))
        base = draw_data(small_shape)
        x = np.broadcast_to(base, shape)
        assert 0 in x.strides
        return x, base
    data = draw_data(shape)
    if variant == "step":
        steps = tuple(draw(st.integers(1, 3)) for _ in shape)
        owner = np.full(tuple(n * s for n, s in zip(shape, steps)), _fill_value(dtype), dtype=dtype)
        view = owner[tuple(slice(None, None, s) for s in steps)]
        view[...] = data
        x = view
    elif variant == "reverse" and shape:
        axes = tuple(sorted(set(draw(st.lists(st.integers(0, len(shape) - 1),
                                              min_size=1, max_size=len(shape))))))
        owner = np.ascontiguousarray(np.flip(data, axes))
        x = np.flip(owner, axes)
    elif variant == "transpose" and len(shape) > 1:
        perm = draw(st.permutations(range(len(shape))))
        owner = np.ascontiguousarray(np.transpose(data, perm))
        x = np.transpose(owner, np.argsort(perm))
    elif variant == "fortran":
        owner = np.asfortranarray(data)
        x = owner
    elif variant == "byteswap" and dtype.itemsize > 1:
        owner = data.astype(dtype.newbyteorder())
        x = owner
    else:
        owner = data
        x = owner
    np.testing.assert_array_equal(x, data)
    if draw(st.booleans()):
        x = x.view()
        x.flags.writeable = False
    return x, owner


def _native(dtype):
    return np.dtype(dtype).newbyteorder("=")


def _full_shape(geom, layout, lead, channels):
    if layout == "channels_first":
        return tuple(lead) + geom["spatial"]
    return tuple(lead) + geom["spatial"] + (channels,)


# ---------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------

def assert_same_max(got, expected):
    """Exact: same shape, same dtype, same values (NaN where NaN)."""
    assert got.shape == expected.shape
    assert _native(got.dtype) == _native(expected.dtype)
    np.testing.assert_array_equal(got, expected, strict=False)


def assert_avg_matches(got, ref64, out_dtype):
    """ref64 is the float64 reference before its final cast."""
    out_dtype = np.dtype(out_dtype)
    assert got.shape == ref64.shape
    assert _native(got.dtype) == _native(out_dtype)
    if _native(out_dtype) == np.float64:
        # window sums are exact (dyadic inputs); only the division rounds
        np.testing.assert_allclose(got, ref64, rtol=4 * np.finfo(np.float64).eps, atol=0,
                                   equal_nan=True)
        return
    # float32 / float16: the float64 reference rounded once to out_dtype,
    # exactly or within 1 ulp of out_dtype.
    expected = ref64.astype(_native(out_dtype))
    got_n = got.astype(_native(out_dtype))
    both_nan = np.isnan(got_n) & np.isnan(expected)
    exact = got_n == expected
    with np.errstate(invalid="ignore", over="ignore"):
        ulp = np.spacing(np.abs(expected)).astype(np.float64)
        near = np.abs(got_n.astype(np.float64) - expected.astype(np.float64)) <= ulp
    ok = both_nan | exact | (np.isfinite(expected) & near)
    if not ok.all():
        bad = np.argwhere(~ok)[:5]
        raise AssertionError(
            "average differs by more than 1 ulp at %s: got %s expected %s"
            % (bad.tolist(), [got_n[tuple(b)] for b in bad], [expected[tuple(b)] for b in bad]))


def assert_unchanged(x, snapshot, owner, owner_snapshot):
    np.testing.assert_array_equal(x, snapshot)
    np.testing.assert_array_equal(owner, owner_snapshot)


def _spatial_ok(shape, nd, layout):
    spatial = shape[-nd:] if layout == "channels_first" else shape[-nd - 1:-1]
    return min(spatial) >= 1


# ---------------------------------------------------------------------------
# max_pool
# ---------------------------------------------------------------------------

@settings(max_examples=examples(800), **COMMON)
@given(data=st.data())
def test_max_pool_matches_reference(data):
    draw = data.draw
    geom = draw(geometries())
    layout = draw(st.sampled_from(LAYOUTS))
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    channels = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(MAX_DTYPES))
    shape = _full_shape(geom, layout, lead, channels)
    x, owner = draw(input_arrays(dtype, shape, specials=draw(st.booleans())))
    snapshot, owner_snapshot = x.copy(), owner.copy()
    stride = _maybe_broadcast_int(draw, geom["stride"])
    dilation = _maybe_broadcast_int(draw, geom["dilation"])
    return_indices = draw(st.booleans())
    num_threads = draw(st.sampled_from([None, 1, 2]))
    args = (x, geom["kernel"], stride, geom["padding"], dilation, geom["ceil_mode"])
    kwargs = dict(layout=layout, return_indices=return_indices, num_threads=num_threads)

    expected_shape = ref_pooled_shape(shape, geom["kernel"], geom["stride"], geom["padding"],
                                      geom["dilation"], geom["ceil_mode"], layout)
    if not _spatial_ok(expected_shape, geom["nd"], layout):
        with pytest.raises(ValueError):
            pypool.max_pool(*args, **kwargs)
        with pytest.raises(ValueError):
            pypool.pooled_shape(shape, *args[1:], layout=layout)
        assert_unchanged(x, snapshot, owner, owner_snapshot)
        return

    assert pypool.pooled_shape(shape, *args[1:], layout=layout) == expected_shape
    spatial = (shape[-geom["nd"]:] if layout == "channels_first"
               else shape[-geom["nd"] - 1:-1])
    pads = resolve_pads(spatial, geom["kernel"], geom["stride"], geom["padding"],
                        geom["dilation"])
    got_pads = pypool.resolve_padding(shape, *args[1:], layout=layout)
    assert tuple(tuple(int(v) for v in p) for p in got_pads) == tuple(pads)

    ref_v, ref_i = ref_max_pool(x, geom["kernel"], geom["stride"], geom["padding"],
                                geom["dilation"], geom["ceil_mode"], layout)
    result = pypool.max_pool(*args, **kwargs)
    if return_indices:
        values, indices = result
        assert isinstance(indices, np.ndarray)
        assert indices.dtype == np.int64
        assert indices.shape == ref_i.shape
        np.testing.assert_array_equal(indices, ref_i)
    else:
        values = result
    assert isinstance(values, np.ndarray)
    assert values.flags.c_contiguous
    assert values.shape == expected_shape
    assert_same_max(values, ref_v)
    assert_unchanged(x, snapshot, owner, owner_snapshot)


# ---------------------------------------------------------------------------
# avg_pool
# ---------------------------------------------------------------------------

@settings(max_examples=examples(800), **COMMON)
@given(data=st.data())
def test_avg_pool_matches_reference(data):
    draw = data.draw
    geom = draw(geometries())
    layout = draw(st.sampled_from(LAYOUTS))
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    channels = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(AVG_DTYPES))
    out_dtype = draw(st.sampled_from(AVG_OUT_DTYPES))
    count_include_pad = draw(st.booleans())
    divisor_override = draw(st.one_of(st.none(), st.none(), st.integers(1, 9)))
    shape = _full_shape(geom, layout, lead, channels)
    # no integer extremes here: int64 values beyond 2**53 make the float64 sum
    # depend on the order of the additions
    x, owner = draw(input_arrays(dtype, shape, specials=draw(st.booleans()), extremes=False))
    snapshot, owner_snapshot = x.copy(), owner.copy()
    stride = _maybe_broadcast_int(draw, geom["stride"])
    dilation = _maybe_broadcast_int(draw, geom["dilation"])
    num_threads = draw(st.sampled_from([None, 1, 2]))
    args = (x, geom["kernel"], stride, geom["padding"], dilation, geom["ceil_mode"],
            count_include_pad, divisor_override)
    kwargs = dict(layout=layout, dtype=out_dtype, num_threads=num_threads)

    expected_shape = ref_pooled_shape(shape, geom["kernel"], geom["stride"], geom["padding"],
                                      geom["dilation"], geom["ceil_mode"], layout)
    if not _spatial_ok(expected_shape, geom["nd"], layout):
        with pytest.raises(ValueError):
            pypool.avg_pool(*args, **kwargs)
        assert_unchanged(x, snapshot, owner, owner_snapshot)
        return

    ref64 = ref_avg_pool(x, geom["kernel"], geom["stride"], geom["padding"], geom["dilation"],
                         geom["ceil_mode"], count_include_pad, divisor_override, layout,
                         keep_float64=True)
    got = pypool.avg_pool(*args, **kwargs)
    assert isinstance(got, np.ndarray)
    assert got.flags.c_contiguous
    assert got.shape == expected_shape
    assert_avg_matches(got, ref64, avg_result_dtype(_native(x.dtype), out_dtype))
    assert_unchanged(x, snapshot, owner, owner_snapshot)


# ---------------------------------------------------------------------------
# aliases with plain ints
# ---------------------------------------------------------------------------

@settings(max_examples=examples(150), **COMMON)
@given(data=st.data())
def test_aliases_with_plain_ints(data):
    draw = data.draw
    nd = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, (k - 1) * d))
    ceil_mode = draw(st.booleans())
    layout = draw(st.sampled_from(LAYOUTS))
    spatial = tuple(draw(st.lists(st.integers(1, MAX_DIM[nd]), min_size=nd, max_size=nd)))
    shape = (2,) + spatial if layout == "channels_first" else (2,) + spatial + (2,)
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int16]))
    x, _ = draw(input_arrays(dtype, shape, extremes=False))
    kernel, stride, dilation = (k,) * nd, (s,) * nd, (d,) * nd
    expected_shape = ref_pooled_shape(shape, kernel, stride, p, dilation, ceil_mode, layout)
    max_alias = getattr(pypool, "max_pool%dd" % nd)
    avg_alias = getattr(pypool, "avg_pool%dd" % nd)
    if not _spatial_ok(expected_shape, nd, layout):
        with pytest.raises(ValueError):
            max_alias(x, k, s, p, d, ceil_mode, layout=layout)
        return
    values, indices = max_alias(x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode,
                                layout=layout, return_indices=True)
    ref_v, ref_i = ref_max_pool(x, kernel, stride, p, dilation, ceil_mode, layout)
    assert_same_max(values, ref_v)
    np.testing.assert_array_equal(indices, ref_i)
    got = avg_alias(x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode,
                    count_include_pad=False, layout=layout)
    ref64 = ref_avg_pool(x, kernel, stride, p, dilation, ceil_mode, False, None, layout,
                         keep_float64=True)
    assert_avg_matches(got, ref64, avg_result_dtype(x.dtype))


# ---------------------------------------------------------------------------
# out=
# ---------------------------------------------------------------------------

@settings(max_examples=examples(100), **COMMON)
@given(data=st.data())
def test_out_argument(data):
    draw = data.draw
    geom = draw(geometries(max_rank=2))
    layout = draw(st.sampled_from(LAYOUTS))
    shape = _full_shape(geom, layout, (2,), 2)
    expected_shape = ref_pooled_shape(shape, geom["kernel"], geom["stride"], geom["padding"],
                                      geom["dilation"], geom["ceil_mode"], layout)
    assume(_spatial_ok(expected_shape, geom["nd"], layout))
    x, _ = draw(input_arrays(np.float64, shape, specials=False))
    strided = draw(st.booleans())

    def make_out(dtype):
        if strided:
            big = np.full(tuple(2 * n for n in expected_shape), -7.0).astype(dtype)
            return big[tuple(slice(None, None, 2) for _ in expected_shape)], big
        arr = np.empty(expected_shape, dtype=dtype)
        return arr, arr

    geo = (geom["kernel"], geom["stride"], geom["padding"], geom["dilation"], geom["ceil_mode"])
    out, _ = make_out(np.float64)
    ret = pypool.max_pool(x, *geo, layout=layout, out=out)
    assert ret is out
    assert_same_max(out, ref_max_pool(x, *geo, layout)[0])

    out, big = make_out(np.float64)
    ret = pypool.avg_pool(x, *geo, layout=layout, out=out)
    assert ret is out
    ref64 = ref_avg_pool(x, *geo, True, None, layout, keep_float64=True)
    assert_avg_matches(out, ref64, np.float64)
    if strided:
        # the cells between the strided view's elements are untouched
        mask = np.ones(big.shape, dtype=bool)
        mask[tuple(slice(None, None, 2) for _ in expected_shape)] = False
        assert (big[mask] == -7.0).all()


# ---------------------------------------------------------------------------
# zero-size lead axes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_zero_size_lead_axes(layout):
    shape = (0, 3, 5, 6) if layout == "channels_first" else (0, 5, 6, 3)
    x = np.zeros(shape, dtype=np.float32)
    expected = ref_pooled_shape(shape, (2, 3), None, 0, (1, 1), False, layout)
    v, i = pypool.max_pool(x, (2, 3), layout=layout, return_indices=True)
    assert v.shape == expected and i.shape == expected
    assert v.dtype == np.float32 and i.dtype == np.int64
    a = pypool.avg_pool(x, (2, 3), layout=layout)
    assert a.shape == expected and a.dtype == np.float32


# ---------------------------------------------------------------------------
# global pooling
# ---------------------------------------------------------------------------

@st.composite
def global_inputs(draw, dtypes, extremes):
    nd = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, MAX_DIM[nd]), min_size=nd, max_size=nd)))
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    shape = (N, C) + spatial if layout == "channels_first" else (N,) + spatial + (C,)
    dtype = draw(st.sampled_from(dtypes))
    x, owner = draw(input_arrays(dtype, shape, specials=draw(st.booleans()), extremes=extremes))
    return x, owner, layout


@settings(max_examples=examples(250), **COMMON)
@given(data=st.data())
def test_global_max_pool_matches_reference(data):
    x, owner, layout = data.draw(global_inputs(MAX_DTYPES, extremes=True))
    keepdims = data.draw(st.booleans())
    snapshot, owner_snapshot = x.copy(), owner.copy()
    ref_v, ref_i = ref_global_max_pool(x, layout, keepdims)
    values, indices = pypool.global_max_pool(x, layout=layout, keepdims=keepdims,
                                             return_indices=True)
    assert values.flags.c_contiguous
    assert_same_max(values, ref_v)
    assert indices.dtype == np.int64 and indices.shape == ref_i.shape
    np.testing.assert_array_equal(indices, ref_i)
    plain = pypool.global_max_pool(x, layout=layout, keepdims=keepdims)
    assert_same_max(plain, ref_v)
    assert_unchanged(x, snapshot, owner, owner_snapshot)


@settings(max_examples=examples(250), **COMMON)
@given(data=st.data())
def test_global_avg_pool_matches_reference(data):
    x, owner, layout = data.draw(global_inputs(AVG_DTYPES, extremes=False))
    keepdims = data.draw(st.booleans())
    out_dtype = data.draw(st.sampled_from(AVG_OUT_DTYPES))
    snapshot, owner_snapshot = x.copy(), owner.copy()
    ref64 = ref_global_avg_pool(x, layout, keepdims, dtype=np.float64)
    got = pypool.global_avg_pool(x, layout=layout, keepdims=keepdims, dtype=out_dtype)
    assert got.flags.c_contiguous
    assert_avg_matches(got, ref64, avg_result_dtype(_native(x.dtype), out_dtype))
    assert_unchanged(x, snapshot, owner, owner_snapshot)


@settings(max_examples=examples(160), **COMMON)
@given(planes=st.integers(1, 40), rows=st.integers(1, 9), cols=st.integers(1, 9),
       step=st.integers(1, 3), strided_out=st.booleans(), specials=st.booleans(),
       layout=st.sampled_from(["channels_first", "channels_last"]),
       seed=st.integers(0, 2**32 - 1))
def test_global_avg_pool_of_many_float32_planes(planes, rows, cols, step, strided_out,
                                                specials, layout, seed):
    """float32 global averages on their AVX-512 loops (where the CPU has them):
    channels_first sums 8 planes side by side, channels_last a position's
    channels 16 at a time. Every count of planes or channels, every plane
    size's leftover lanes, planes or channels apart (a step) and a strided
    result; NaN and infinities propagate."""
    rng = np.random.default_rng(seed)
    if layout == "channels_first":
        shape, scale_shape = (2, planes * step, rows, cols), (2, planes * step, 1, 1)
    else:
        shape, scale_shape = (2, rows, cols, planes * step), (2, 1, 1, planes * step)
    scale = 2.0 ** rng.integers(-20, 20, scale_shape)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    if specials:
        x.flat[rng.integers(0, x.size, 3)] = rng.choice([np.nan, np.inf, -np.inf], 3)
    view = x[:, ::step] if layout == "channels_first" else x[..., ::step]
    snapshot = x.copy()
    ref64 = ref_global_avg_pool(view, layout, dtype=np.float64)
    out = np.zeros((planes, 2), np.float32).T if strided_out else None
    got = pypool.global_avg_pool(view, layout=layout, out=out)
    assert got is out or out is None
    assert_avg_matches(got, ref64, np.float32)
    np.testing.assert_array_equal(x, snapshot)


# ---------------------------------------------------------------------------
# a few fixed cases worth pinning down by name
# ---------------------------------------------------------------------------

def test_nan_index_points_at_first_nan():
    x = np.array([1.0, np.nan, 3.0, np.nan, 0.0, 2.0])
    v, i = pypool.max_pool(x, (3,), return_indices=True)
    assert np.isnan(v).all()
    # window 0 = [1, nan, 3] -> nan at 1; window 1 = [nan, 0, 2] -> nan at 3
    np.testing.assert_array_equal(i, [1, 3])


def test_ties_go_to_first_in_row_major_order():
    x = np.array([[2, 2], [2, 2]], dtype=np.int8)
    v, i = pypool.max_pool(x, (2, 2), return_indices=True)
    assert v[0, 0] == 2 and i[0, 0] == 0
    x = np.array([[0, 3], [3, 1]], dtype=np.float32)
    v, i = pypool.max_pool(x, (2, 2), return_indices=True)
    assert i[0, 0] == 1


def test_all_minus_inf_window_points_inside():
    x = np.full((1, 4), -np.inf)
    v, i = pypool.max_pool(x, (2,), 2, 1, return_indices=True)
    # windows [-1,0], [1,2], [3,4]: each has an in-bounds tap holding -inf
    np.testing.assert_array_equal(v, [[-np.inf] * 3])
    np.testing.assert_array_equal(i, [[0, 1, 3]])


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8, np.bool_])
def test_window_without_in_bounds_tap(dtype):
    # L=2,k=2,d=3,p=1,s=3: one window, taps at -1 and 2, both outside
    x = np.ones((1, 2), dtype=dtype)
    v, i = pypool.max_pool(x, (2,), (3,), 1, (3,), return_indices=True)
    ref_v, ref_i = ref_max_pool(x, (2,), (3,), 1, (3,))
    assert_same_max(v, ref_v)
    np.testing.assert_array_equal(i, [[-1]])
    a = pypool.avg_pool(x, (2,), (3,), 1, (3,), count_include_pad=False)
    assert np.isnan(a).all()
    a = pypool.avg_pool(x, (2,), (3,), 1, (3,), count_include_pad=True)
    np.testing.assert_array_equal(a, [[0.0]])
    # divisor_override replaces the divisor, so the empty sum gives 0, not NaN
    a = pypool.avg_pool(x, (2,), (3,), 1, (3,), count_include_pad=False, divisor_override=2)
    np.testing.assert_array_equal(a, [[0.0]])


def _channels_last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


# One call per kernel path: plane (overlapping and power-of-two divisors),
# running windows, lanes (channels_last, strided W), global plane and channels.
ZERO_SIGN_CASES = {
    "plane 3x3 s1": lambda x: pypool.avg_pool2d(x, 3, 1, 1),
    "plane 2x2 s2": lambda x: pypool.avg_pool2d(x, 2),
    "running 15x15": lambda x: pypool.avg_pool2d(x, 15, 1, 7),
    "lanes nhwc": lambda x: pypool.avg_pool2d(_channels_last(x), 3, 2, 1, layout="channels_last"),
    "strided W": lambda x: pypool.avg_pool2d(x[..., ::2], 2),
    "global nchw": lambda x: pypool.global_avg_pool(x),
    "global nhwc": lambda x: pypool.global_avg_pool(_channels_last(x), layout="channels_last"),
}


@pytest.mark.parametrize("case", sorted(ZERO_SIGN_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_average_of_negative_zeros_is_positive_zero(case, dtype):
    # A sum starts from +0 (as PyTorch's does), so -0 + -0 ... gives +0. (Rows
    # of 41: the sum bands finish 32 outputs of a row at a time, then 8, then 1.)
    x = np.full((2, 3, 20, 41), -0.0, dtype=dtype)
    y = ZERO_SIGN_CASES[case](x)
    assert y.size and not np.signbit(y).any()


@pytest.mark.parametrize("shape", [(3, 4, 6, 8), (2, 5, 7, 9), (1, 1, 2, 4), (2, 3, 10, 57)])
@pytest.mark.parametrize("divisor_override", [None, 3])
def test_avg_2x2_stride_2_adds_row_sums_in_row_major_order(shape, divisor_override):
    """channels_first plane path: (x00 + x01) + (x10 + x11), bit for bit, in float64
    (random values make the other association orders differ in the last bit)."""
    x = np.random.default_rng(5).standard_normal(shape) * 10.0 ** np.random.default_rng(6).integers(
        -8, 8, shape)
    H, W = shape[-2] // 2 * 2, shape[-1] // 2 * 2
    q = x[..., :H, :W]
    total = (q[..., 0::2, 0::2] + q[..., 0::2, 1::2]) + (q[..., 1::2, 0::2] + q[..., 1::2, 1::2])
    expected = total / divisor_override if divisor_override else total * 0.25
    got = pypool.avg_pool2d(x, 2, divisor_override=divisor_override)
    np.testing.assert_array_equal(got, expected)
    # Rows apart in memory, but each contiguous: still the plane path, same order.
    strided = np.empty(shape[:-2] + (2 * shape[-2], shape[-1]))[..., ::2, :]
    strided[...] = x
    np.testing.assert_array_equal(pypool.avg_pool2d(strided, 2, divisor_override=divisor_override),
                                  expected)


@settings(max_examples=examples(120), **COMMON)
@given(out_rows=st.integers(1, 5), cols=st.integers(2, 41), planes=st.integers(1, 3),
       strided=st.booleans(), specials=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_float32_avg_2x2_stride_2_rounds_the_float64_sum_once(out_rows, cols, planes, strided,
                                                             specials, seed):
    """float32 avg 2x2 s2 (8 outputs at a time on AVX-512 CPUs, the row's end
    masked): ((x00 + x01) + (x10 + x11)) * 0.25 in float64, rounded once, for
    every row width's leftover outputs; rows apart in memory; NaN, infinities
    and the +0 of a sum of -0s."""
    rng = np.random.default_rng(seed)
    shape = (planes, 2, 2 * out_rows + int(rng.integers(0, 2)), cols)
    x = (rng.standard_normal(shape) * 2.0 ** rng.integers(-30, 30, shape)).astype(np.float32)
    if specials:
        x.flat[rng.integers(0, x.size, 4)] = rng.choice([np.nan, np.inf, -np.inf, -0.0], 4)
    if strided:
        holder = np.empty(shape[:-2] + (2 * shape[-2], cols), np.float32)
        holder[..., ::2, :] = x
        x = holder[..., ::2, :]
    q = x[..., :2 * out_rows, :cols // 2 * 2].astype(np.float64)
    with np.errstate(invalid="ignore"):   # inf + -inf
        total = ((q[..., 0::2, 0::2] + q[..., 0::2, 1::2])
                 + (q[..., 1::2, 0::2] + q[..., 1::2, 1::2]))
        expected = ((total + 0.0) * 0.25).astype(np.float32)
    got = pypool.avg_pool2d(x, 2)
    np.testing.assert_array_equal(got, expected)
    assert not np.signbit(got[got == 0]).any()


def _row_sums_then_rows(z, kh, kw, sh, sw, OH, OW):
    """Float64 sums of the (OH, OW) windows of kh x kw at strides (sh, sw) on the
    last two axes of z, already padded with zeros (which change at most the
    sign of a zero sum): each window row's taps added left to right, then the
    rows top to bottom."""
    cols = np.arange(OW) * sw
    rows = z[..., :, cols]
    for j in range(1, kw):
        rows = rows + z[..., :, cols + j]
    starts = np.arange(OH) * sh
    total = rows[..., starts, :]
    for i in range(1, kh):
        total = total + rows[..., starts + i, :]
    return total


@settings(max_examples=examples(150), **COMMON)
@given(kernel=st.tuples(st.integers(1, 9), st.integers(1, 19)),
       extra=st.tuples(st.integers(0, 3), st.integers(0, 5)), data=st.data(),
       ceil_mode=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       planes=st.integers(1, 3), channels=st.sampled_from([3, 8, 64, 75]),
       reverse=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_windows_that_share_no_row_add_row_sums_then_rows(kernel, extra, data, ceil_mode, dtype,
                                                         planes, channels, reverse, seed):
    """Windows no two output rows share (the stride along H at least the
    window's height), a column stride of 2 or more and at least 4 output
    columns: channels_first takes _window_sums.h's transposes on AVX-512
    CPUs, channels_last sums each window straight from the input. Both keep
    the documented order (each row's taps left to right, then the rows): the
    sums are the reference's in that order, bit for bit, and the layouts
    agree bit for bit. Terms of 2**60 among ordinary ones make any other
    order show; padding and ceil_mode give edge windows with missing taps;
    reversed rows; channel counts that fill 8 or 64 lanes and leave a rest."""
    kh, kw = kernel
    sh, sw = kh + extra[0], max(2, kw - 2 + extra[1])   # columns may overlap
    ph = data.draw(st.integers(0, kh // 2), label="ph")
    pw = data.draw(st.integers(0, kw // 2), label="pw")
    rng = np.random.default_rng(seed)
    H = int(rng.integers(kh, kh + 3 * sh))
    # At least 4 output columns: narrower rows take the general paths, whose
    # channels_first order is row-major over the whole window (README).
    W = int(rng.integers(kw + 3 * sw, 4 * sw + 3 * kw + 20))
    shape = (planes, channels, H, W)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(dtype)
    x[rng.random(shape) < 0.1] *= dtype(2.0 ** 60)
    if reverse:
        x = x[:, :, ::-1, :]
    args = dict(kernel_size=kernel, stride=(sh, sw), padding=(ph, pw), ceil_mode=ceil_mode,
                dtype=np.float64)
    first = pypool.avg_pool2d(x, divisor_override=1, **args)
    OH, OW = first.shape[-2:]
    z = np.zeros(shape[:2] + (OH * sh + kh, OW * sw + kw))
    z[..., ph:ph + H, pw:pw + W] = x
    expected = _row_sums_then_rows(z, kh, kw, sh, sw, OH, OW) + 0.0
    np.testing.assert_array_equal(first.view(np.int64), expected.view(np.int64))
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for kw_ in (dict(divisor_override=1), dict(count_include_pad=False), {}):
        a = pypool.avg_pool2d(x, **args, **kw_)
        b = pypool.avg_pool2d(xl, layout="channels_last", **args, **kw_)
        np.testing.assert_array_equal(b.transpose(0, 3, 1, 2).view(np.int64), a.view(np.int64))


def _padded_window_sums(x, kh, kw, dil, pad):
    """Float64 window sums of the channels_first plane path, in its order: each
    input row's taps left to right, then the window's rows top to bottom (zeros
    stand for the padding: they change at most the sign of a zero sum)."""
    z = np.pad(x.astype(np.float64), [(0, 0)] * (x.ndim - 2) + [(pad, pad), (pad, pad)])
    OH = z.shape[-2] - (kh - 1) * dil
    OW = z.shape[-1] - (kw - 1) * dil
    rows = z[..., :, 0:OW].copy()
    for j in range(1, kw):
        rows = rows + z[..., :, j * dil:j * dil + OW]
    total = rows[..., 0:OH, :].copy()
    for i in range(1, kh):
        total = total + rows[..., i * dil:i * dil + OH, :]
    return total


def _tap_counts(L, k, dil, pad):
    """In-bounds taps of each stride-1 window along one axis."""
    starts = np.arange(L + 2 * pad - (k - 1) * dil) - pad
    taps = starts[:, None] + dil * np.arange(k)[None, :]
    return ((taps >= 0) & (taps < L)).sum(axis=1).astype(np.float64)


@settings(max_examples=examples(60), **COMMON)
@given(kernel=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
       size=st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(7, 75)),
       stride=st.sampled_from([(1, 1, 1), (2, 1, 1), (1, 2, 1), (2, 2, 2)]),
       padded=st.booleans(), threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_3d_average_adds_row_sums_then_rows_in_order(kernel, size, stride, padded, threads, seed):
    """3-D (and many-row) averages on the channels_first plane path: each
    input row's taps left to right, then the window's rows in (depth, row)
    order, divided once, bit for bit, with float64 results. The rows' sums
    are kept in slots for whole depth slices and the window's rows added in
    one pass (_window_sums.h); terms of 2**60 make any other order show, and
    row lengths around 8 and 32 outputs reach every part of that pass.
    (Rows of fewer than 4 outputs take general paths, whose order is
    row-major over the whole window, and windows of 5 or more rows at
    stride 1 running sums: README.)"""
    kd, kh, kw = kernel
    D, H, W = size
    pads = tuple(k // 2 if padded else 0 for k in kernel)
    assume(all(n + 2 * p >= k for n, p, k in zip(size, pads, kernel)))
    assume((W + 2 * pads[2] - kw) // stride[2] + 1 >= 4)
    rng = np.random.default_rng(seed)
    shape = (2, 3, D, H, W)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(np.float32)
    x[rng.random(shape) < 0.1] *= np.float32(2.0 ** 60)
    got = pypool.avg_pool3d(x, kernel, stride, pads, dtype=np.float64, num_threads=threads)
    z = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(p, p) for p in pads])
    sd, sh, sw = stride
    OD, OH, OW = got.shape[2:]
    rows = z[..., 0:(OW - 1) * sw + 1:sw].copy()
    for j in range(1, kw):
        rows = rows + z[..., j:j + (OW - 1) * sw + 1:sw]
    total = None
    for jd in range(kd):
        for jh in range(kh):
            r = rows[:, :, jd:jd + (OD - 1) * sd + 1:sd, jh:jh + (OH - 1) * sh + 1:sh]
            total = r.copy() if total is None else total + r
    expected = (total + 0.0) / float(kd * kh * kw)
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


@pytest.mark.parametrize("kernel,dilation,padding", [(3, 1, 1), (3, 2, 2), ((2, 3), 1, 1), (3, 1, 0)])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", ["int64", "float32 -> float64"])
def test_stride_1_average_is_the_exact_quotient(kernel, dilation, padding, count_include_pad, case):
    """Stride-1 averages on the plane path run fused loops over zero-padded row
    copies: the result must still be the float64 sum, in the documented order,
    divided once, bit for bit. Float64 results show it (another order, or a
    reciprocal multiply instead of the division, is one ulp off in a good
    share of these outputs; float32 results would round that away)."""
    rng = np.random.default_rng(11)
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
    pad = padding
    shape = (2, 3, 9, 37)
    if case == "int64":
        x = rng.integers(-2**40, 2**40, shape)      # sums stay exact in float64
        got = pypool.avg_pool2d(x, (kh, kw), 1, pad, dilation=dilation,
                                count_include_pad=count_include_pad)
    else:
        x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(np.float32)
        got = pypool.avg_pool2d(x, (kh, kw), 1, pad, dilation=dilation,
                                count_include_pad=count_include_pad, dtype=np.float64)
    assert pad < (min(kh, kw) - 1) * dilation + 1
    total = _padded_window_sums(x, kh, kw, dilation, pad)
    if count_include_pad:
        divisor = float(kh * kw)
    else:
        divisor = np.outer(_tap_counts(shape[2], kh, dilation, pad),
                           _tap_counts(shape[3], kw, dilation, pad))
    expected = (total + 0.0) / divisor
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


def _in_layout_as_view(x, layout, view):
    """(N, C, H, W) x in its layout, (N, C, H, W) or (N, H, W, C), as a view
    that keeps the layout's rows (channels_first) or positions (channels_last)
    contiguous, the kernels' condition, but moves rows or planes apart: rows
    apart, reversed rows, planes apart (or contiguous)."""
    hax = 2 if layout == "channels_first" else 1    # the row axis
    if layout == "channels_last":
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if view == "rows apart":
        holder = np.zeros(x.shape[:hax] + (2 * x.shape[hax],) + x.shape[hax + 1:], x.dtype)
        np.moveaxis(holder, hax, 0)[::2] = np.moveaxis(x, hax, 0)
        x = np.moveaxis(np.moveaxis(holder, hax, 0)[::2], 0, hax)
    elif view == "reversed rows":
        x = np.flip(np.ascontiguousarray(np.flip(x, hax)), hax)
    elif view == "planes apart":
        x = np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
    return x


@settings(max_examples=examples(300), **COMMON)
@given(layout=st.sampled_from(LAYOUTS), planes=st.integers(1, 3), channels=st.integers(2, 19),
       rows=st.integers(2, 12), cols=st.integers(1, 70),
       pad=st.tuples(st.integers(0, 1), st.integers(0, 1)), count_include_pad=st.booleans(),
       view=st.sampled_from(["contiguous", "rows apart", "reversed rows", "planes apart"]),
       use_out=st.booleans(), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_float32_avg_3x3_stride_1_is_the_documented_sum_rounded_once(
        layout, planes, channels, rows, cols, pad, count_include_pad, view, use_out, threads,
        seed):
    """float32 avg 3x3 stride 1, channels_first on the plane path and
    channels_last (their own kernels on AVX-512 CPUs: whole runs of rows, a
    ring of row sums, 8 outputs or channels per step, the row's or the
    channels' end masked): the float64 sums in the documented order (each
    row's taps left to right, then the rows top to bottom), plus 0.0, divided
    once, rounded to float32, bit for bit. Inputs mix +-2**50..2**70 with
    ordinary values, so another order of the adds (columns first, or b + c
    before a) loses or keeps the small terms and shows in float32 too; NaN
    and infinities; sums of -0 give +0. Views keep each layout's rows
    contiguous (what the kernels take) but move rows and planes apart."""
    rows = max(rows, 3 - 2 * pad[0])    # the window must fit the padded input
    cols = max(cols, 6 - 2 * pad[1])    # output rows of 4 or more: the plane path
    rng = np.random.default_rng(seed)
    shape = (planes, channels, rows, cols)
    x = rng.standard_normal(shape)
    big = rng.random(shape) < 0.25
    x[big] = rng.choice([-1.0, 1.0], big.sum()) * 2.0 ** rng.integers(50, 71, big.sum())
    x = x.astype(np.float32)
    special = rng.random(shape) < 0.02
    x[special] = rng.choice([np.nan, np.inf, -np.inf, -0.0], special.sum())
    with np.errstate(invalid="ignore"):    # inf + -inf
        z = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])])
        OH, OW = z.shape[-2] - 2, z.shape[-1] - 2
        hs = (z[..., :, 0:OW] + z[..., :, 1:OW + 1]) + z[..., :, 2:OW + 2]
        total = (hs[..., 0:OH, :] + hs[..., 1:OH + 1, :]) + hs[..., 2:OH + 2, :]
        if count_include_pad:
            divisor = 9.0
        else:
            divisor = np.outer(_tap_counts(rows, 3, 1, pad[0]), _tap_counts(cols, 3, 1, pad[1]))
        expected = ((total + 0.0) / divisor).astype(np.float32)
    x = _in_layout_as_view(x, layout, view)
    if layout == "channels_last":
        expected = np.moveaxis(expected, 1, -1)
    snapshot = x.copy()
    out = np.full(expected.shape, 7.0, np.float32) if use_out else None
    got = pypool.avg_pool2d(x, 3, 1, pad, count_include_pad=count_include_pad, out=out,
                            num_threads=threads, layout=layout)
    # Bit for bit, except a NaN's sign and payload (inf + -inf makes one, and
    # NumPy and the CPU may pick different ones).
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], expected.view(np.uint32)[~nan])
    np.testing.assert_array_equal(x, snapshot)


@settings(max_examples=examples(250), **COMMON)
@given(layout=st.sampled_from(LAYOUTS), planes=st.integers(1, 3), channels=st.integers(1, 40),
       rows=st.integers(1, 10), cols=st.integers(4, 75),
       kernel=st.tuples(st.integers(1, 4), st.integers(1, 5)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 2)), pad_share=st.tuples(
           st.floats(0, 1), st.floats(0, 1)), ceil_mode=st.booleans(),
       values=st.sampled_from(["ties", "zeros", "nan", "infinities", "all -inf"]),
       view=st.sampled_from(["contiguous", "rows apart", "reversed rows", "planes apart"]),
       use_out=st.booleans(), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_float32_max_with_indices_is_the_row_major_first_maximum(
        layout, planes, channels, rows, cols, kernel, stride, pad_share, ceil_mode, values, view,
        use_out, threads, seed):
    """float32 max pooling with indices, with the kernels of AVX-512 CPUs in
    mind: channels_first with contiguous rows (16 outputs per step, each
    window row reduced on its own and the rows then taken in order, the edges
    tap by tap) and channels_last with contiguous channels (32 channels per
    step); both take "greater" alone and redo a step that saw a NaN with the
    NaN rule. Values bit for bit and indices as the reference's, which walks
    every window's taps in row-major order. Few distinct values make ties
    everywhere (between rows, columns, +0 and -0); NaN must win at its first
    place; a window of -inf points at its first tap. Widths up to 75 and
    channels up to 40 cover every 16-output and 32-channel tail."""
    if layout == "channels_first":
        channels = min(channels, 4)    # planes; the channels' count matters for channels_last
    else:
        rows, cols = min(rows, 6), min(cols, 12)    # the oracle loops over positions
    kh, kw = kernel
    rows, cols = max(rows, kh), max(cols, kw)
    pad = tuple(int(share * (k // 2)) for share, k in zip(pad_share, kernel))
    rng = np.random.default_rng(seed)
    shape = (planes, channels, rows, cols)
    if values == "ties":
        x = rng.integers(-2, 3, shape).astype(np.float32)
    elif values == "zeros":
        x = rng.choice(np.array([0.0, -0.0, -1.0], np.float32), shape)
    elif values == "nan":
        x = rng.integers(-2, 3, shape).astype(np.float32)
        x[rng.random(shape) < 0.05] = np.nan
        x[rng.random(shape) < 0.02] = -np.float32(np.nan)
    elif values == "infinities":
        x = rng.choice(np.array([np.inf, -np.inf, 1.0, -1.0], np.float32), shape)
    else:
        x = np.full(shape, -np.inf, np.float32)
    expected, expected_idx = ref_max_pool(x, kernel, stride, pad, ceil_mode=ceil_mode)
    x = _in_layout_as_view(x, layout, view)
    if layout == "channels_last":
        expected, expected_idx = np.moveaxis(expected, 1, -1), np.moveaxis(expected_idx, 1, -1)
    snapshot = x.copy()
    out = None
    if use_out:
        out = (np.full(expected.shape, 7.0, np.float32), np.full(expected.shape, 7, np.int64))
    got, got_idx = pypool.max_pool2d(x, kernel, stride, pad, ceil_mode=ceil_mode, layout=layout,
                                     return_indices=True, out=out, num_threads=threads)
    np.testing.assert_array_equal(got_idx, expected_idx)
    # Bit for bit (a zero's sign included), except a NaN's sign and payload,
    # which the README does not promise (some paths give another NaN's).
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], expected.view(np.uint32)[~nan])
    np.testing.assert_array_equal(snapshot, x)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), ((2, 3), 1, (1, 0)), (3, 2, 1),
                                                    ((3, 1), (2, 1), 0), (2, 2, 0), (4, 1, 1)])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("channels", [3, 8, 130])
def test_channels_last_average_adds_in_the_channels_first_order(kernel, stride, padding,
                                                                count_include_pad, channels):
    """channels_last 2-D averages (dilation 1) add each input row's taps left to
    right, then the rows, as the channels_first plane path does, so the two
    layouts agree bit for bit. Float64 results of float32 inputs spread over
    many magnitudes show it: adding the taps in plain row-major order instead
    is one ulp off in a good share of the outputs."""
    rng = np.random.default_rng(12)
    shape = (2, channels, 9, 21)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(np.float32)
    kwargs = dict(count_include_pad=count_include_pad, dtype=np.float64)
    first = pypool.avg_pool2d(x, kernel, stride, padding, **kwargs)
    last = pypool.avg_pool2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), kernel, stride,
                             padding, layout="channels_last", **kwargs)
    np.testing.assert_array_equal(last.transpose(0, 3, 1, 2).view(np.int64), first.view(np.int64))
    # The stride-1 windows are the documented sums, divided once.
    if stride == 1 and np.isscalar(kernel) and count_include_pad:
        total = _padded_window_sums(x, kernel, kernel, 1, padding)
        np.testing.assert_array_equal(first, (total + 0.0) / float(kernel * kernel))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (2, 2, 0), (3, 2, 1), (9, 1, 4),
                                                    ((1, 9), 1, (0, 4))])
def test_average_is_the_exact_quotient_of_its_sum(layout, kernel, stride, padding):
    """Whatever the path (plane, lanes, running; AVX2 builds get quotients from
    a reciprocal and an FMA correction instead of dividing), an average is its
    float64 sum divided once, correctly rounded: the sum itself is the
    average with divisor_override=1. Divisors past 2**31 take the plain
    division. A product by the reciprocal alone is off in about a quarter of
    these outputs."""
    rng = np.random.default_rng(13)
    shape = (2, 5, 12, 40)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(np.float32)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def avg(a, **kw):
        return pypool.avg_pool2d(a, kernel, stride, padding, layout=layout, dtype=np.float64, **kw)

    total = avg(x, divisor_override=1)
    for d in (3, 7, 9, 49, 1000003, 2**31 + 11):
        np.testing.assert_array_equal(avg(x, divisor_override=d).view(np.int64),
                                      (total / d).view(np.int64))
    taps = avg(np.ones_like(x), divisor_override=1)    # in-bounds taps per window
    np.testing.assert_array_equal(avg(x, count_include_pad=False).view(np.int64),
                                  (total / taps).view(np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_stride_1_average_of_infinities_and_nans(dtype):
    """Infinite sums average to +-inf, and NaN appears only where the window has a
    NaN or both infinities, on the fused stride-1 path too."""
    x = np.zeros((1, 2, 8, 40), dtype=np.float64)
    x[0, 0, 2, 5] = np.inf
    x[0, 0, 6, 20] = -np.inf
    x[0, 1, 3, 30] = np.nan
    x[0, 1, 3, 33] = np.inf
    x[0, 1, 3, 35] = -np.inf
    if dtype == np.int64:
        x = np.nan_to_num(x, nan=0, posinf=2**62, neginf=-2**62).astype(np.int64)
    else:
        x = x.astype(dtype)
    for include in (True, False):
        got = pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=include, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            total = _padded_window_sums(x, 3, 3, 1, 1)
        divisor = 9.0 if include else np.outer(_tap_counts(8, 3, 1, 1), _tap_counts(40, 3, 1, 1))
        expected = (total + 0.0) / divisor
        np.testing.assert_array_equal(got, expected)
        assert np.isinf(got).any() == (dtype == np.float32)


@pytest.mark.parametrize("kernel,stride", [((2, 2), (2, 2)), ((2, 2, 2), (2, 2, 2)), ((3,), (2,)),
                                           ((1, 3), (1, 2)), ((4, 2), (1, 2)),
                                           ((4, 1, 2), (1, 1, 2)), ((3, 2), (1, 2))])
def test_max_values_keep_the_first_maximum_sign_of_zero(kernel, stride):
    """Max values of the 2-wide and 3-wide stride-2 fast paths are the window's
    first maximum in row-major order, down to the sign of a zero, and NaN
    wherever the window holds one. (Windows of several rows and columns fold
    columns first, so between +0 and -0 they keep the column-major first one:
    see README, Max.)"""
    rng = np.random.default_rng(3)
    nd = len(kernel)
    shape = (2, 3) + (5, 6, 19)[3 - nd:]
    x = rng.choice(np.array([-0.0, 0.0, -1.0, np.nan], np.float32), shape, p=[0.4, 0.4, 0.15, 0.05])
    got = pypool.max_pool(x, kernel, stride, layout="channels_first")
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(2, 2 + nd)))
    win = win[(Ellipsis,) + tuple(slice(None, None, s) for s in stride) + (slice(None),) * nd]
    taps = win.reshape(got.shape + (-1,))
    expected = np.empty(got.shape, np.float32)
    flat_e = expected.reshape(-1)
    for i, t in enumerate(taps.reshape(-1, taps.shape[-1])):
        flat_e[i] = np.nan if np.isnan(t).any() else t[np.flatnonzero(t == t.max())[0]]
    nan = np.isnan(expected)
    assert (np.isnan(got) == nan).all()
    np.testing.assert_array_equal(got[~nan].view(np.int32), expected[~nan].view(np.int32))


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("padding,ceil_mode,dilation", [(0, False, 1), (1, False, 1), (1, True, 1),
                                                        (0, True, 2), (1, False, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_max_3_wide_stride_2_windows_over_several_rows(nd, padding, ceil_mode, dilation, dtype):
    """Values of 3-wide stride-2 windows over 2 or more rows (max 3x3 s2, the
    column-maxima path): equal to the reference with padding, ceil_mode
    overhang, dilated rows, NaN and infinities, over row lengths around the
    vector widths; and between +0 and -0 the column-major first zero (columns
    are folded first, as on the general path: README, Max)."""
    rng = np.random.default_rng(11)
    kernel = (3,) * nd
    dil = (dilation,) * (nd - 1) + (1,)   # dilated rows, unit column steps
    for W in (7, 8, 17, 40, 64, 113):
        shape = (2, 3) + (4, 9, W)[3 - nd:]
        if dtype == np.int16:
            x = rng.integers(-30000, 30000, shape).astype(np.int16)
        else:
            x = rng.standard_normal(shape).astype(dtype)
            x.flat[rng.choice(x.size, 6, replace=False)] = [np.nan, np.inf, -np.inf, np.nan, 5.0, -5.0]
        got = pypool.max_pool(x, kernel, 2, padding, dilation=dil, ceil_mode=ceil_mode)
        expected, _ = ref_max_pool(x, kernel, (2,) * nd, (padding,) * nd, dil, ceil_mode)
        nan = np.isnan(expected) if dtype != np.int16 else np.zeros(expected.shape, bool)
        if dtype != np.int16:
            assert (np.isnan(got) == nan).all(), W
        np.testing.assert_array_equal(got[~nan], expected[~nan])
    if dtype != np.int16:
        # Windows reaching into the padding hold nothing above -inf (padding is no value).
        x = np.full((2, 3) + (4, 9, 40)[3 - nd:], -np.inf, dtype)
        got = pypool.max_pool(x, kernel, 2, padding, dilation=dil, ceil_mode=ceil_mode)
        assert got.size and (got == -np.inf).all()
    # Signs of zeros: the first maximum in column-major order (no padding: all taps inside).
    x = rng.choice(np.array([-0.0, 0.0, -1.0], np.float32), (2, 3) + (5, 7, 19)[3 - nd:])
    got = pypool.max_pool(x, kernel, 2)
    win = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(2, 2 + nd)))
    win = win[(Ellipsis,) + (slice(None, None, 2),) * nd + (slice(None),) * nd]
    rows_by_column = np.swapaxes(win.reshape(got.shape + (-1, 3)), -1, -2).reshape(got.shape + (-1,))
    expected = np.take_along_axis(rows_by_column, (rows_by_column == 0).argmax(-1)[..., None], -1)[..., 0]
    np.testing.assert_array_equal(got.view(np.int32), expected.view(np.int32))


@pytest.mark.parametrize("layout,channels", [("channels_first", 3), ("channels_last", 3),
                                             ("channels_last", 37)])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (2, 1), (3, 1), (2, 2)])
def test_max_values_are_the_values_at_their_indices(layout, channels, kernel, stride):
    """With return_indices, each value is bit for bit the input at its index
    (a zero's sign included), and the index is the row-major first maximum
    (37 channels_last channels: 16-lane register blocks and a lane-by-lane rest)."""
    rng = np.random.default_rng(4)
    x = rng.choice(np.array([-0.0, 0.0, -1.0, np.nan], np.float32), (2, channels, 7, 19),
                   p=[0.4, 0.4, 0.15, 0.05])
    xin = _channels_last(x) if layout == "channels_last" else x
    v, i = pypool.max_pool2d(xin, kernel, stride, layout=layout, return_indices=True)
    if layout == "channels_last":
        v, i = np.moveaxis(v, -1, 1), np.moveaxis(i, -1, 1)
    at = np.take_along_axis(x.reshape(2, channels, -1), i.reshape(2, channels, -1),
                            -1).reshape(v.shape)
    nan = np.isnan(v)
    assert (np.isnan(at) == nan).all()
    np.testing.assert_array_equal(v[~nan].view(np.int32), at[~nan].view(np.int32))
    win = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))
    taps = win[:, :, ::stride, ::stride].reshape(v.shape + (-1,))
    first = np.array([np.flatnonzero(np.isnan(t))[0] if np.isnan(t).any()
                      else np.flatnonzero(t == t.max())[0] for t in taps.reshape(-1, taps.shape[-1])])
    oh, ow = np.indices(v.shape[2:])
    r0 = (oh * stride)[None, None] + np.zeros(v.shape, int)
    c0 = (ow * stride)[None, None] + np.zeros(v.shape, int)
    expected = (r0 + first.reshape(v.shape) // kernel) * x.shape[3] + c0 + first.reshape(v.shape) % kernel
    np.testing.assert_array_equal(i, expected)


@pytest.mark.parametrize("channels", [8, 20, 32, 45, 69, 130])
@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (2, 1, 0), (5, 1, 2)])
@pytest.mark.parametrize("nan_share", [0.05, 0.0005])
def test_channels_last_max_values_match_the_indexed_values(channels, kernel, stride, padding,
                                                           nan_share):
    """channels_last float32 max values (kept in registers: on AVX-512 CPUs 64
    lanes at a time, the last block in 1-4 vectors, masked, a block with a NaN
    redone; else 32 and 8 lanes at a time, the rest lane by lane) equal, bit
    for bit, the
    values of the indices path, which takes each window's row-major first
    maximum; NaN propagates."""
    rng = np.random.default_rng(channels)
    x = rng.choice(np.array([-0.0, 0.0, -1.0, 2.0, np.nan], np.float32), (2, 9, 11, channels),
                   p=[0.35, 0.35, 0.1, 0.15 + 0.05 - nan_share, nan_share])
    assert_values_equal_indexed_values(x, kernel, stride, padding, "channels_last")
    # ... and the reference: a block of lanes without a NaN (rare NaNs leave
    # most blocks without) is not redone.
    want, _ = ref_max_pool(x, (kernel, kernel), (stride, stride), padding, layout="channels_last")
    got = pypool.max_pool2d(x, kernel, stride, padding, layout="channels_last")
    np.testing.assert_array_equal(got.view(np.int32)[~np.isnan(want)],
                                  want.view(np.int32)[~np.isnan(want)])
    assert (np.isnan(got) == np.isnan(want)).all()


def assert_values_equal_indexed_values(x, kernel, stride, padding, layout):
    """float32 max values equal, bit for bit (the sign of zero included), the
    values the indices path gives (each window's row-major first maximum);
    NaN where that has NaN."""
    got = pypool.max_pool2d(x, kernel, stride, padding, layout=layout)
    ref, _ = pypool.max_pool2d(x, kernel, stride, padding, layout=layout, return_indices=True)
    nan = np.isnan(ref)
    assert (np.isnan(got) == nan).all()
    np.testing.assert_array_equal(got[~nan].view(np.int32), ref[~nan].view(np.int32))


@settings(max_examples=examples(150), **COMMON)
@given(dtype=st.sampled_from([np.float32, np.float64, np.int16]), planes=st.integers(1, 5),
       length=st.integers(3, 300), row_stride=st.sampled_from([1, 2]), two_d=st.booleans(),
       nan_share=st.sampled_from([0.0, 0.01, 0.3]), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_max_3_wide_stride_2_over_long_rows(dtype, planes, length, row_stride, two_d, nan_share,
                                            threads, seed):
    """Max windows 3 wide at column stride 2 over one input row each (1-D, or
    1-high 2-D windows): these rows go out in 16-output vectors (float32 on
    AVX-512 CPUs, _row_max.h) and 32-output pieces with prefetches between
    them, so lengths up to 300 (up to 149 outputs: every vector, piece and
    tail) are drawn, which the general test's short rows never reach. Ties
    (few distinct values, zeros of both signs) and NaN; compared with the
    reference bit for bit, the sign of zero included."""
    rng = np.random.default_rng(seed)
    shape = (planes, 3, length) if not two_d else (planes, 3, 4, length)
    x = rng.integers(-3, 4, shape).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        x[(x == 0) & (rng.random(shape) < 0.5)] = -0.0
        if nan_share:
            x[rng.random(shape) < nan_share] = np.nan
    snapshot = x.copy()
    if two_d:
        kernel, stride = (1, 3), (row_stride, 2)
        got = pypool.max_pool2d(x, kernel, stride, num_threads=threads)
    else:
        kernel, stride = (3,), (2,)
        got = pypool.max_pool1d(x, 3, 2, num_threads=threads)
    expected, _ = ref_max_pool(x, kernel, stride)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == dtype
    if np.issubdtype(dtype, np.floating):
        same = ~np.isnan(expected)
        np.testing.assert_array_equal(np.signbit(got[same]), np.signbit(expected[same]))
    np.testing.assert_array_equal(x.view(np.uint8), snapshot.view(np.uint8))


@settings(max_examples=examples(120), **COMMON)
@given(planes=st.integers(1, 4), rows=st.integers(1, 7), length=st.integers(1, 90),
       col_stride=st.sampled_from([1, 2]), row_stride=st.sampled_from([1, 2]),
       padding=st.sampled_from([0, 1]), row_dilation=st.sampled_from([1, 2]),
       ceil_mode=st.booleans(), nan_share=st.sampled_from([0.0, 0.01, 0.3]),
       threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_max_3x3_over_2_or_3_rows(planes, rows, length, col_stride, row_stride, padding,
                                  row_dilation, ceil_mode, nan_share, threads, seed):
    """float32 max 3x3 at column stride 1 or 2 (each output row from 2 or 3
    input rows, column maxima in registers on AVX-512 CPUs, _row_max.h):
    every row length around the 16-output vectors, padding, ceil mode and
    dilated rows. Equal to the reference (a zero maximum's sign aside: these
    paths fold columns first, README), NaN where it has NaN, and bit for bit
    the float64 path's result, which folds columns first as well."""
    assume(length + 2 * padding >= 3 and rows + 2 * padding >= 2 * row_dilation + 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (planes, 2, rows, length)).astype(np.float32)
    x[(x == 0) & (rng.random(x.shape) < 0.5)] = -0.0
    if nan_share:
        x[rng.random(x.shape) < nan_share] = np.nan
    geometry = dict(kernel_size=3, stride=(row_stride, col_stride), padding=padding,
                    dilation=(row_dilation, 1), ceil_mode=ceil_mode)
    got = pypool.max_pool2d(x, num_threads=threads, **geometry)
    expected, _ = ref_max_pool(x, (3, 3), (row_stride, col_stride), padding, (row_dilation, 1),
                               ceil_mode)
    np.testing.assert_array_equal(got, expected)   # (NaN where expected has NaN; -0 == +0)
    wide = pypool.max_pool2d(x.astype(np.float64), num_threads=threads, **geometry)
    np.testing.assert_array_equal(got.view(np.int32), wide.astype(np.float32).view(np.int32))


@settings(max_examples=examples(80), **COMMON)
@given(depth=st.integers(1, 5), rows=st.integers(1, 5), length=st.integers(1, 70),
       kernel_depth=st.sampled_from([2, 3]), padding=st.sampled_from([0, 1]),
       ceil_mode=st.booleans(), nan_share=st.sampled_from([0.0, 0.01, 0.3]),
       threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_max3d_3_wide_stride_2_over_many_rows(depth, rows, length, kernel_depth, padding,
                                              ceil_mode, nan_share, threads, seed):
    """float32 max of 3-D windows 3 wide at column stride 2: the column maxima
    of all the window's rows (depth slices' rows in order) in registers on
    AVX-512 CPUs (pypool_max3_s2_many_rows_f32). Equal to the reference (a
    zero maximum's sign aside, README), and bit for bit the float64 path."""
    kernel = (kernel_depth, 3, 3)
    assume(depth + 2 * padding >= kernel_depth and rows + 2 * padding >= 3
           and length + 2 * padding >= 3 and 2 * padding <= kernel_depth)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (2, 2, depth, rows, length)).astype(np.float32)
    x[(x == 0) & (rng.random(x.shape) < 0.5)] = -0.0
    if nan_share:
        x[rng.random(x.shape) < nan_share] = np.nan
    got = pypool.max_pool3d(x, kernel, 2, padding, ceil_mode=ceil_mode, num_threads=threads)
    expected, _ = ref_max_pool(x, kernel, (2, 2, 2), padding, None, ceil_mode)
    np.testing.assert_array_equal(got, expected)
    wide = pypool.max_pool3d(x.astype(np.float64), kernel, 2, padding, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(got.view(np.int32), wide.astype(np.float32).view(np.int32))


@settings(max_examples=examples(100), **COMMON)
@given(planes=st.integers(1, 4), rows=st.integers(1, 6), length=st.integers(1, 90),
       padding=st.sampled_from([0, 1]), ceil_mode=st.booleans(),
       count_include_pad=st.booleans(), special=st.sampled_from([0.0, 0.02]),
       norm=st.sampled_from([None, 1, 2]), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_sums_3_wide_stride_2_over_long_rows(planes, rows, length, padding, ceil_mode,
                                             count_include_pad, special, norm, threads, seed):
    """float32 averages (norm None) and Lp norms (p = 1, 2) of windows 3 wide
    at column stride 2: each input row's window sums go 16 at a time from
    permuted loads on AVX-512 CPUs (_window_sums.h), the taps outside the row
    counted as +0. Every row length around the vectors, both paddings and
    ceil mode; zeros of both signs, large values, NaN and infinities.
    Averages: bit for bit the reference. Lp: bit for bit the float64 path
    (the same sums in the same order, its result rounded to float32), and
    the reference within float32 rounding."""
    assume(length + 2 * padding >= 3 and rows + 2 * padding >= 3)
    assume(norm is None or not count_include_pad)   # (Lp has no such option)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (planes, 2, rows, length)).astype(np.float32) * np.float32(0.375)
    x[(x == 0) & (rng.random(x.shape) < 0.5)] = -0.0
    if special:
        x[rng.random(x.shape) < special] = np.float32(3e38)
        x[rng.random(x.shape) < special] = np.nan
        x[rng.random(x.shape) < special] = -np.inf
    if norm is None:
        got = pypool.avg_pool2d(x, 3, 2, padding, ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad, num_threads=threads)
        expected = ref_avg_pool(x, (3, 3), (2, 2), padding, None, ceil_mode, count_include_pad)
        np.testing.assert_array_equal(got, expected)
    else:
        got = pypool.lp_pool2d(x, norm, 3, 2, padding, ceil_mode=ceil_mode,
                               num_threads=threads)
        with np.errstate(over="ignore"):    # (3e38 squared: inf in both)
            expected = pypool.lp_pool2d(x.astype(np.float64), norm, 3, 2, padding,
                                        ceil_mode=ceil_mode).astype(np.float32)
        np.testing.assert_allclose(got, ref_lp_pool(x, norm, (3, 3), (2, 2), padding, 1,
                                                    ceil_mode), rtol=2e-7)
    same = ~np.isnan(expected)
    assert (np.isnan(got) == ~same).all()
    np.testing.assert_array_equal(got.view(np.int32)[same], expected.view(np.int32)[same])


@settings(max_examples=examples(100), **COMMON)
@given(planes=st.integers(1, 5), rows=st.integers(1, 5), row_stride=st.integers(1, 3),
       vectors=st.integers(0, 11), past=st.integers(-3, 3), padding=st.sampled_from([0, 1]),
       ceil_mode=st.booleans(), count_include_pad=st.booleans(),
       special=st.sampled_from([0.0, 0.02]), one_d=st.booleans(),
       threads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_avg_3_wide_stride_1_one_row_high(planes, rows, row_stride, vectors, past, padding,
                                         ceil_mode, count_include_pad, special, one_d, threads,
                                         seed):
    """float32 averages of windows 3 wide at stride 1, one row high (avg1d k3
    s1, and 1x3 windows at any row stride): on AVX-512 CPUs straight from the
    row, the vectors at its ends from a copy padded with zeros
    (_avg3_plane.h). Every row length around the vectors, both paddings,
    ceil mode; zeros of both signs, subnormals, large values, NaN and
    infinities. Bit for bit the reference (one row's sum is its taps in
    order) and the float64 path rounded to float32."""
    length = 8 * vectors + past    # (every row length within 3 of whole vectors)
    assume(length >= 1 and length + 2 * padding >= 3)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (planes, 2, rows, length)).astype(np.float32) * np.float32(0.375)
    x[(x == 0) & (rng.random(x.shape) < 0.5)] = -0.0
    x[rng.random(x.shape) < 0.05] = np.float32(-1e-45)    # a quotient that rounds to -0
    if special:
        x[rng.random(x.shape) < special] = np.float32(3e38)
        x[rng.random(x.shape) < special] = np.nan
        x[rng.random(x.shape) < special] = -np.inf
    opts = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    if one_d:
        x = x.reshape(planes * 2 * rows, length)[None]
        got = pypool.avg_pool1d(x, 3, 1, padding, num_threads=threads, **opts)
        expected = ref_avg_pool(x, (3,), (1,), padding, None, ceil_mode, count_include_pad)
        wide = pypool.avg_pool1d(x.astype(np.float64), 3, 1, padding, **opts)
    else:
        got = pypool.avg_pool2d(x, (1, 3), (row_stride, 1), (0, padding), num_threads=threads,
                                **opts)
        expected = ref_avg_pool(x, (1, 3), (row_stride, 1), (0, padding), None, ceil_mode,
                                count_include_pad)
        wide = pypool.avg_pool2d(x.astype(np.float64), (1, 3), (row_stride, 1), (0, padding),
                                 **opts)
    for want in (expected, wide.astype(np.float32)):
        same = ~np.isnan(want)
        assert (np.isnan(got) == ~same).all()
        np.testing.assert_array_equal(got.view(np.int32)[same], want.view(np.int32)[same])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("plane", [(1, 1), (1, 3), (2, 4), (3, 3), (7, 7), (5, 13), (14, 14)])
def test_global_max_of_contiguous_planes(dtype, plane):
    """Global max (values) of contiguous planes goes by vectors (_plane_max.h)
    where no NaN and no zero maximum is in the way: every plane size around the
    vector lengths, a NaN anywhere, maxima of +0 and -0 (the row-major first
    zero's sign), all-negative planes; bit-equal to the reference at 1-3 threads."""
    rng = np.random.default_rng(plane[0] * 100 + plane[1])
    n = 96
    x = rng.standard_normal((n,) + plane).astype(dtype)
    flat = x.reshape(n, -1)
    size = flat.shape[1]
    if np.dtype(dtype).kind == "f":
        flat[:32] = -np.abs(flat[:32])                    # all negative
        for i in range(8, 32):                            # ... and zeros of both signs
            k = rng.integers(1, size + 1)
            spots = rng.choice(size, k, replace=False)
            flat[i, spots] = np.where(rng.random(k) < 0.5, 0.0, -0.0)
        for i in range(32, 48):                           # a NaN, anywhere
            flat[i, rng.integers(0, size)] = np.nan
    snapshot = x.copy()
    ref, _ = ref_global_max_pool(x[None], "channels_first", False)
    for threads in (1, 2, 3):
        got = pypool.global_max_pool(x[None], num_threads=threads)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got, ref)
        if np.dtype(dtype).kind == "f":
            same = ~np.isnan(ref)
            np.testing.assert_array_equal(np.signbit(got[same]), np.signbit(ref[same]))
    np.testing.assert_array_equal(x.view(np.uint8), snapshot.view(np.uint8))
