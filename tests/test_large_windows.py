"""Large sliding windows: the running-window (van Herk / Gil-Werman) kernels.

Windows with dilation 1 and a kernel of at least 2 * stride + 3 on an axis
take a separate path (prefix / suffix combinations per block of k, a row
pass and a transposed column pass, tasks of 32 output rows by 128 output
columns, column groups of 32 float32 or 16 float64 lines; channels_first
float max pools along rows by doubling instead of transposing). These tests draw such geometries - kernels up to 20, every
padding form, ceil_mode, outputs wider than one strip and more rows than one
task - and compare max, average and Lp pooling with the NumPy oracle, plus
bit-identity across thread counts.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pypool
from reference import ref_avg_pool, ref_max_pool
from reference_ops import ref_lp_pool
from strategies import examples, paddings
from test_forward_reference import (COMMON, MAX_DTYPES, assert_avg_matches, assert_same_max,
                                    assert_values_equal_indexed_values, input_arrays)

AVG_DTYPES = (np.float32, np.float64, np.float16, np.int16, np.uint8)


@st.composite
def large_geometries(draw):
    # 3-D windows pool the depth first, then the 2-D window (depth_first.pxi);
    # they are kept smaller, for the reference's sake.
    nd = draw(st.integers(1, 3))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    # at least one axis wide enough for running windows
    wide = draw(st.integers(0, nd - 1))
    extra = 12 if nd < 3 else 4
    kernel = tuple(draw(st.integers(2 * s + 3, 2 * s + extra)) if a == wide
                   else draw(st.integers(1, 2 * s + extra - 4)) for a, s in enumerate(stride))
    spatial = tuple(draw(st.integers(1, k + (30 if nd < 3 else 6))) for k in kernel)
    padding = draw(paddings(list(kernel)))
    return dict(nd=nd, spatial=spatial, kernel=kernel, stride=stride, padding=padding,
                ceil_mode=draw(st.booleans()))


def _shape(geom, layout, lead, channels=3):
    return lead + geom["spatial"] + ((channels,) if layout == "channels_last" else ())


def _args(geom):
    return (geom["kernel"], geom["stride"], geom["padding"], 1, geom["ceil_mode"])


def _output_ok(x, geom, layout="channels_first"):
    try:
        pypool.pooled_shape(x.shape, *_args(geom), layout=layout)
    except ValueError:
        return False
    return True


def _draw_case(data, dtypes):
    """A large-window geometry, a layout (channels_first twice as often), a dtype
    and an input drawn with every memory variant."""
    geom = data.draw(large_geometries())
    layout = data.draw(st.sampled_from(["channels_first", "channels_first", "channels_last"]))
    lead = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    dtype = data.draw(st.sampled_from(dtypes))
    # 8 and 16 channels take the vector sweeps (whole vectors of lanes), 3 the generic loops
    channels = data.draw(st.sampled_from([3, 8, 16]))
    x, _ = data.draw(input_arrays(dtype, _shape(geom, layout, lead, channels),
                                  specials=data.draw(st.booleans())))
    return geom, layout, dtype, x


@settings(max_examples=examples(300), **COMMON)
@given(data=st.data())
def test_large_max_matches_reference(data):
    geom, layout, dtype, x = _draw_case(data, MAX_DTYPES)
    if not _output_ok(x, geom, layout):
        return
    ref_v, ref_i = ref_max_pool(x, geom["kernel"], geom["stride"], geom["padding"], None,
                                geom["ceil_mode"], layout)
    assert_same_max(pypool.max_pool(x, *_args(geom), layout=layout), ref_v)
    v, i = pypool.max_pool(x, *_args(geom), layout=layout, return_indices=True)
    assert_same_max(v, ref_v)
    np.testing.assert_array_equal(i, ref_i)


@settings(max_examples=examples(300), **COMMON)
@given(data=st.data())
def test_large_avg_matches_reference(data):
    geom, layout, dtype, x = _draw_case(data, AVG_DTYPES)
    if not _output_ok(x, geom, layout):
        return
    include_pad = data.draw(st.booleans())
    override = data.draw(st.sampled_from([None, None, 1, 7]))
    ref64 = ref_avg_pool(x, geom["kernel"], geom["stride"], geom["padding"], None,
                         geom["ceil_mode"], include_pad, override, layout, keep_float64=True)
    got = pypool.avg_pool(x, *_args(geom), count_include_pad=include_pad,
                          divisor_override=override, layout=layout)
    out_dtype = np.float64 if np.dtype(dtype).kind in "iu" else dtype
    assert_avg_matches(got, ref64, out_dtype)


@st.composite
def sum_band_cases(draw):
    """float32 and float64 channels_first averages that take the sum band path
    (input rows read in place, column stride 1): a running window on either axis, every
    column-window length up to 22 (runs of a, their count b and the positions
    left, k - a*b, all vary), rows as narrow as a vector or narrower (the
    transposing path takes those), zeros of both signs, and NaN or inf."""
    sh = draw(st.integers(1, 3))
    kh = draw(st.integers(1, 2 * sh + 10))
    kw = draw(st.integers(1, 22))
    if not (kh >= 2 * sh + 3 or kw >= 5):
        kw = draw(st.integers(5, 22))
    H = draw(st.integers(1, kh + 40))
    W = draw(st.integers(1, kw + 40))
    padding = draw(paddings([kh, kw], allow_same=False))
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=2, max_size=2)))
    values = draw(st.sampled_from(["normal", "zeros", "specials"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in_dtype = draw(st.sampled_from([np.float32, np.float32, np.float64]))
    x = rng.standard_normal(lead + (H, W)).astype(in_dtype)
    if in_dtype == np.float64:   # multiples of 1/64: sums exact in any order, as the
        x = np.round(x * 64) / 64  # float64 comparison of assert_avg_matches needs
    if values == "zeros":
        x = rng.choice(np.array([-0.0, 0.0, 1.5], in_dtype), x.shape, p=[0.45, 0.45, 0.1])
    elif values == "specials":
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, 3)] = rng.choice(np.array([np.nan, np.inf, -np.inf],
                                                                   in_dtype), 3)
    if draw(st.booleans()):    # rows apart (a column slice): still read in place
        x = np.pad(x, [(0, 0)] * 3 + [(0, draw(st.integers(1, 9)))])[..., :W]
    return dict(x=x, kernel=(kh, kw), stride=(sh, 1), padding=padding,
                ceil_mode=draw(st.booleans()), include_pad=draw(st.booleans()),
                override=draw(st.sampled_from([None, None, 1, 7])),
                dtype=draw(st.sampled_from([None, None, np.float64, np.float16])),
                strided_out=draw(st.booleans()))


@settings(max_examples=examples(200), **COMMON)
@given(case=sum_band_cases())
def test_sum_band_averages_match_reference(case):
    x = case["x"]
    geom = dict(kernel=case["kernel"], stride=case["stride"], padding=case["padding"],
                ceil_mode=case["ceil_mode"])
    if not _output_ok(x, geom):
        return
    kw = dict(count_include_pad=case["include_pad"], divisor_override=case["override"],
              dtype=case["dtype"])
    ref64 = ref_avg_pool(x, geom["kernel"], geom["stride"], geom["padding"], None,
                         geom["ceil_mode"], case["include_pad"], case["override"],
                         keep_float64=True)
    out_dtype = case["dtype"] or x.dtype
    out = None
    if case["strided_out"]:    # columns apart: finished row by row, not in the fused pass
        out = np.zeros(ref64.shape[:-1] + (2 * ref64.shape[-1],), out_dtype)[..., ::2]
    got = pypool.avg_pool(x, *_args(geom), out=out, num_threads=1, **kw)
    assert_avg_matches(got, ref64, out_dtype)
    np.testing.assert_array_equal(
        pypool.avg_pool(x, *_args(geom), num_threads=3, **kw).view(np.uint8),
        np.ascontiguousarray(got).view(np.uint8))


@settings(max_examples=examples(150), **COMMON)
@given(data=st.data())
def test_large_lp_matches_reference(data):
    geom = data.draw(large_geometries())
    lead = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    layout = data.draw(st.sampled_from(["channels_first", "channels_last"]))
    channels = data.draw(st.sampled_from([3, 8]))
    x, _ = data.draw(input_arrays(dtype, _shape(geom, layout, lead, channels),
                                  specials=False))
    if not _output_ok(x, geom, layout):
        return
    p = data.draw(st.sampled_from([1.0, 2.0, 3.0, np.inf]))
    ref = ref_lp_pool(x, p, geom["kernel"], geom["stride"], geom["padding"], 1,
                      geom["ceil_mode"], layout)
    got = pypool.lp_pool(x, p, *_args(geom), layout=layout)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("columns", ["contiguous", "slice"])
def test_lp2_by_sum_bands_matches_reference(columns, dtype):
    """Lp norms of p = 2 on channels_first input take the sum bands (squares
    summed down the rows, then runs along them, square roots at the end):
    large windows of stride 1 along the row on rows read in place or packed
    from a column slice, more rows than a task holds; against the reference,
    bit-equal at 1, 2 and 3 threads, inf and NaN propagated, input untouched."""
    rng = np.random.default_rng(12)
    base = rng.standard_normal((2, 3, 70, 2 * 150)).astype(dtype)
    x = base[..., ::2] if columns == "slice" else np.ascontiguousarray(base[..., ::2])
    x[0, 1, 30, 40] = np.inf
    x[1, 2, 50, 90] = np.nan
    snapshot = x.copy()
    run = lambda threads: pypool.lp_pool2d(x, 2, (13, 11), (2, 1), (6, 5), ceil_mode=True,
                                           num_threads=threads)
    ref = ref_lp_pool(x, 2, (13, 11), (2, 1), (6, 5), 1, True)
    first = run(1)
    assert first.dtype == ref.dtype and first.shape == ref.shape
    np.testing.assert_allclose(first, ref, rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert np.isposinf(first[0, 1, 15, 40]) and np.isnan(first[1, 2, 25, 90])
    for threads in (2, 3):
        np.testing.assert_array_equal(run(threads).view(np.uint8), first.view(np.uint8))
    np.testing.assert_array_equal(x, snapshot)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("op", ["max", "avg", "lp2"])
def test_many_tasks_wide_rows_and_threads(op, layout):
    """More output rows than a task holds (32), rows wider than a strip (128
    outputs; channels_last: about 2048 lanes), tasks that start mid-plane;
    results identical for every thread count. channels_last takes a strided
    view of 16 of 32 channels."""
    rng = np.random.default_rng(7)
    if layout == "channels_first":
        x = rng.integers(-40, 40, (3, 2, 70, 300)).astype(np.float32) / 8
        x[1, 1, 33, 150] = np.nan
    else:
        x = (rng.integers(-40, 40, (2, 70, 300, 32)).astype(np.float32) / 8)[..., ::2]
        x[1, 33, 150, 5] = np.nan
    geom = dict(kernel=(11, 9), stride=(1, 2), padding=((5, 3), (4, 4)), ceil_mode=True)
    kw = dict(layout=layout)
    if op == "max":
        run = lambda t: pypool.max_pool2d(x, *_args(geom), num_threads=t, **kw)
        ref = ref_max_pool(x, *_args(geom)[:3], None, True, layout)[0]
        assert_same_max(run(1), ref)
    elif op == "avg":
        run = lambda t: pypool.avg_pool2d(x, *_args(geom), count_include_pad=False,
                                          num_threads=t, **kw)
        ref = ref_avg_pool(x, *_args(geom)[:3], None, True, False, layout=layout,
                           keep_float64=True)
        assert_avg_matches(run(1), ref, np.float32)
    else:
        run = lambda t: pypool.lp_pool2d(x, 2, *_args(geom), num_threads=t, **kw)
        ref = ref_lp_pool(x, 2, *_args(geom), layout=layout)
        np.testing.assert_allclose(run(1), ref, rtol=1e-6)
    first = run(1)
    for threads in (2, 3, 5):
        np.testing.assert_array_equal(run(threads).view(np.uint32), first.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["max", "avg"])
def test_band_and_transposing_tasks_in_one_call(op, dtype):
    """129 output columns: a strip of 128 takes the band path, the last one
    (2 input columns inside: a 3-column window is not made a running one, so
    no block alignment widens it) the transposing path, whose scratch is then
    allocated mid-call. Both against the reference; every thread count gives
    the same bits."""
    rng = np.random.default_rng(11)
    x = rng.integers(-40, 40, (2, 3, 40, 129)).astype(dtype) / 8    # exact sums
    x[0, 1, 7, 127] = np.nan
    if op == "max":
        run = lambda t: pypool.max_pool2d(x, (7, 3), 1, (3, 1), num_threads=t)
        assert_same_max(run(1), ref_max_pool(x, (7, 3), (1, 1), (3, 1))[0])
    else:
        run = lambda t: pypool.avg_pool2d(x, (7, 3), 1, (3, 1), count_include_pad=False,
                                          num_threads=t)
        ref = ref_avg_pool(x, (7, 3), (1, 1), (3, 1), count_include_pad=False,
                           keep_float64=True)
        assert_avg_matches(run(1), ref, dtype)
    first = run(1)
    for threads in (2, 3):
        np.testing.assert_array_equal(run(threads), first)


def _separable_max(x, kernel, padding):
    """Max over each kernel[0] x kernel[1] window of the last two axes (stride
    1, symmetric padding that never wins): rows, then columns, NaN propagating."""
    (kh, kw), (ph, pw) = kernel, padding
    lowest = np.array(-np.inf, x.dtype)
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)], constant_values=lowest)
    oh, ow = p.shape[-2] - kh + 1, p.shape[-1] - kw + 1
    rows = p[..., :oh, :]
    for i in range(1, kh):
        rows = np.maximum(rows, p[..., i:i + oh, :])
    out = rows[..., :ow]
    for j in range(1, kw):
        out = np.maximum(out, rows[..., j:j + ow])
    return out


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,padding", [
    ((4, 64, 128, 128), (13, 13), (6, 6)),   # 128-wide rows, a doubling remainder (13 = 8 + 5)
    ((8, 64, 222, 37), (16, 9), (8, 4)),     # rows of 38, kernel 9 (8 + 1) ...
    ((8, 64, 222, 37), (7, 16), (3, 8)),     # ... and 16 (no remainder) along the rows
])
def test_large_max_of_a_large_output(shape, kernel, padding, dtype, offset):
    """Results of 16 MB and more (channels_first float max on the band path)
    are written with streaming stores, as one array of rows whose lines are
    whole vectors (a vector crossing into the next row takes lanes of both):
    every row width, row end and the result's alignment (offset by one
    element) must land each value where it belongs. float64 halves the batch."""
    if dtype == np.float64:
        shape = (shape[0] // 2,) + shape[1:]
    rng = np.random.default_rng(sum(shape) + kernel[1] + offset)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[rng.integers(0, x.size, 40)] = np.nan
    ref = _separable_max(x, kernel, padding)
    assert ref.nbytes >= 16 << 20
    buf = np.full(ref.size + 1, 7.0, dtype=dtype)
    out = buf[offset:offset + ref.size].reshape(ref.shape)
    got = pypool.max_pool2d(x, kernel, 1, padding, out=out, num_threads=2)
    assert got is out
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(np.delete(buf, np.arange(offset, offset + ref.size)), 7.0)


def test_running_sum_keeps_small_values_next_to_huge_ones():
    """No running subtraction: a window's sum never sees values outside it."""
    x = np.zeros((1, 1, 1, 40), np.float64)
    x[..., :5] = 1e300
    x[..., 30:] = 1.0
    got = pypool.avg_pool2d(x, (1, 9), 1, count_include_pad=False)
    np.testing.assert_array_equal(got[..., 30:], 1.0)


def _midpoint_windows(n, seed):
    """n windows of 9 float32 values whose exact sum S makes S / 9 land within a
    few float64 units of a float32 rounding midpoint (where multiplying by a
    rounded 1/9 and dividing by 9 can round to different floats)."""
    rng = np.random.default_rng(seed)
    f = (1 + rng.integers(0, 2**23, n) / 2**23).astype(np.float64)   # floats in [1, 2)
    mid = f + 2.0**-24                                                 # halfway to the next one
    k = rng.integers(-6, 7, n).astype(np.float64)
    a = (9 * mid).astype(np.float32)
    r1 = (9 * mid - a).astype(np.float32)
    d = (k * 2.0**-49).astype(np.float32)
    windows = np.zeros((n, 9), np.float32)
    windows[:, 0], windows[:, 4], windows[:, 8] = a, r1, d
    exact = 9 * mid + k * 2.0**-49                   # every partial sum of a window is exact
    assert np.array_equal(windows.astype(np.float64).sum(axis=1), exact)
    return windows, (exact / 9.0).astype(np.float32)


def test_float32_average_rounds_like_the_division_near_midpoints():
    """float32 averages may multiply by a reciprocal only where that provably
    rounds like the float64 division; near midpoints they must divide."""
    windows, expected = _midpoint_windows(4096, 3)
    # plane path: a 3 x (3n) row of non-overlapping 3x3 windows
    x = windows.reshape(-1, 3, 3).transpose(1, 0, 2).reshape(1, 1, 3, -1)
    np.testing.assert_array_equal(pypool.avg_pool2d(x, 3, 3)[0, 0, 0], expected)
    # running path: 1 x 9 windows at stride 1 over rows holding one window each
    rows = np.zeros((4096, 1, 1, 17), np.float32)
    rows[:, 0, 0, 4:13] = windows
    got = pypool.avg_pool2d(rows, (1, 9), 1, (0, 4), count_include_pad=True)
    np.testing.assert_array_equal(got[:, 0, 0, 8], expected)
    # ... and rows of 40 outputs, one window in each of the first four vectors
    # of 8 (on AVX-512 CPUs, tested for risk two vectors at a time)
    rows = np.zeros((1024, 1, 1, 40), np.float32)
    for j, o in enumerate((4, 13, 22, 31)):
        rows[:, 0, 0, o - 4:o + 5] = windows[j::4]
    got = pypool.avg_pool2d(rows, (1, 9), 1, (0, 4), count_include_pad=True)
    for j, o in enumerate((4, 13, 22, 31)):
        np.testing.assert_array_equal(got[:, 0, 0, o], expected[j::4])
    # global average of 3x3 planes
    np.testing.assert_array_equal(pypool.global_avg_pool(windows.reshape(1, -1, 3, 3))[0], expected)
    # channels_last: the windows side by side as channels
    xl = np.ascontiguousarray(windows.reshape(-1, 3, 3).transpose(1, 2, 0))[None]
    got = pypool.avg_pool2d(xl, 3, 3, layout="channels_last")
    np.testing.assert_array_equal(got[0, 0, 0], expected)


def _lp_pairs_near_midpoints(p, seed):
    """Pairs of float32 values (a, b) whose norm (|a|**p + |b|**p) ** (1/p)
    lies near a float32 rounding midpoint, with the float32 rounding of
    libm's pow of their float64 sum: about 8000 within 2**-31 (relative) of
    the midpoint, where the root's estimate cannot decide and pow must, and
    4096 within 2**-26. The terms are formed as the kernels form them:
    |a|**3 and |a|**4 by products, others by pow."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-30, 31, 1 << 20)
    pairs = (rng.uniform(0.5, 1.0, (1 << 20, 2)) * scale[:, None]).astype(np.float32)
    a = np.abs(pairs.astype(np.float64))
    terms = a * a * a if p == 3 else (a * a) * (a * a) if p == 4 else a ** p
    sums = terms[:, 0] + terms[:, 1]
    r = sums ** (1.0 / p)
    f = r.astype(np.float32)
    toward = np.where(r >= f, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)
    mid = (f.astype(np.float64) + np.nextafter(f, toward).astype(np.float64)) / 2
    gap = np.abs(r - mid) / r
    keep = np.concatenate([np.flatnonzero(gap < 2.0**-31),
                           np.flatnonzero((gap >= 2.0**-31) & (gap < 2.0**-26))[:4096]])
    pairs, sums = pairs[keep], sums[keep]
    expected = np.array([math.pow(s, 1.0 / p) for s in sums]).astype(np.float32)
    return pairs, expected


@pytest.mark.parametrize("p", [3.0, 4.0, 1.2, 2.5, 7.0])
def test_float32_lp_roots_round_like_pow_near_midpoints(p):
    """float32 Lp norms take their p-th roots from an estimate (_roots.h)
    where it provably rounds like pow, and from pow near float32 rounding
    midpoints: the results must be pow's, bit for bit, on both finishing
    paths (a row of outputs and a vector of channels), plus the sums that
    always go to pow (zero, inf, NaN) and results below float32's normal
    range."""
    pairs, expected = _lp_pairs_near_midpoints(p, seed=int(p * 10))
    assert len(expected) > 10000
    specials = np.array([[0, 0], [np.inf, 1], [np.nan, 1], [3e-42, 0], [1e-40, 2e-41],
                         [1e38, 3e38], [0, 1e-45]], np.float32)
    pairs = np.concatenate([pairs, specials])
    tail = [math.pow(sum(float(abs(v)) ** p for v in pair), 1.0 / p) for pair in specials]
    with np.errstate(over="ignore"):    # (1e38 and 3e38 have a norm past float32's range)
        expected = np.concatenate([expected, np.array(tail).astype(np.float32)])
    # channels_first: one row of windows of two taps (finish_plane_row)
    x = pairs.reshape(1, 1, 1, -1)
    got = pypool.lp_pool2d(x, p, (1, 2), (1, 2))
    np.testing.assert_array_equal(got[0, 0, 0].view(np.uint32), expected.view(np.uint32))
    # channels_last: the pairs as channels, two columns (finish_lanes)
    xl = np.ascontiguousarray(pairs.T).reshape(1, 1, 2, -1)
    got = pypool.lp_pool2d(xl, p, (1, 2), (1, 2), layout="channels_last")
    np.testing.assert_array_equal(got[0, 0, 0].view(np.uint32), expected.view(np.uint32))


@st.composite
def lane_band_cases(draw):
    """float32 and float64 channels_last averages that take the lane bands
    (lane_bands.pxi): a running window on either axis, channels from one
    vector to several groups (whose last group is smaller), columns packed,
    sliced or with channels left out between them, zeros of both signs, NaN
    and inf."""
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh = draw(st.integers(1, 2 * sh + 10))
    kw = draw(st.integers(1, 2 * sw + 14))
    if not (kh >= 2 * sh + 3 or kw >= 2 * sw + 3):
        kh = draw(st.integers(2 * sh + 3, 2 * sh + 10))
    H = draw(st.integers(1, kh + 12))
    W = draw(st.integers(1, kw + 12))
    V = draw(st.sampled_from([8, 9, 20, 64, 65, 97, 130]))
    padding = draw(paddings([kh, kw], allow_same=False))
    values = draw(st.sampled_from(["normal", "zeros", "specials"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in_dtype = draw(st.sampled_from([np.float32, np.float64]))
    columns = draw(st.sampled_from(["packed", "slice", "spaced"]))
    full = (draw(st.integers(1, 2)), H, 2 * W if columns == "slice" else W,
            V + 3 if columns == "spaced" else V)
    base = np.round(rng.standard_normal(full) * 64) / 64    # sums exact in any order
    if values == "zeros":
        base = rng.choice(np.array([-0.0, 0.0, 1.5]), full, p=[0.45, 0.45, 0.1])
    elif values == "specials":
        flat = base.reshape(-1)
        flat[rng.integers(0, flat.size, 3)] = rng.choice(np.array([np.nan, np.inf, -np.inf]), 3)
    base = base.astype(in_dtype)
    x = base[:, :, ::2] if columns == "slice" else base[..., :V]
    return dict(x=x, base=base, kernel=(kh, kw), stride=(sh, sw), padding=padding,
                ceil_mode=draw(st.booleans()), include_pad=draw(st.booleans()),
                override=draw(st.sampled_from([None, None, 1, 7])),
                dtype=draw(st.sampled_from([None, None, np.float64, np.float32])),
                out=draw(st.sampled_from(["new", "spaced", "channel-strided"])))


@settings(max_examples=examples(150), **COMMON)
@given(case=lane_band_cases())
def test_lane_band_averages_match_reference(case):
    x = case["x"]
    geom = dict(kernel=case["kernel"], stride=case["stride"], padding=case["padding"],
                ceil_mode=case["ceil_mode"])
    if not _output_ok(x, geom, "channels_last"):
        return
    kw = dict(count_include_pad=case["include_pad"], divisor_override=case["override"],
              dtype=case["dtype"], layout="channels_last")
    snapshot = case["base"].copy()
    ref64 = ref_avg_pool(x, geom["kernel"], geom["stride"], geom["padding"], None,
                         geom["ceil_mode"], case["include_pad"], case["override"],
                         layout="channels_last", keep_float64=True)
    out_dtype = case["dtype"] or x.dtype
    out = None
    if case["out"] == "spaced":    # result columns apart (channels still contiguous)
        out = np.zeros(ref64.shape[:-1] + (ref64.shape[-1] + 5,), out_dtype)[..., 2:-3]
    elif case["out"] == "channel-strided":    # (the other paths take these)
        out = np.zeros(ref64.shape[:-1] + (2 * ref64.shape[-1],), out_dtype)[..., ::2]
    got = pypool.avg_pool(x, *_args(geom), out=out, num_threads=1, **kw)
    assert_avg_matches(got, ref64, out_dtype)
    for threads in (2, 3):
        again = pypool.avg_pool(x, *_args(geom), num_threads=threads, **kw)
        np.testing.assert_array_equal(again.view(np.uint8),
                                      np.ascontiguousarray(got).view(np.uint8))
    np.testing.assert_array_equal(case["base"], snapshot)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 21, 40, 512), (2, 40, 20, 97), (2, 30, 140, 64)])
def test_lane_bands_of_many_tasks(shape, dtype):
    """avg 15x15 on channels_last inputs of more tasks than a thread's share,
    so that tasks of other geometries reuse one scratch: 512 channels (8
    groups; before the lane bands such a call was 50-100x slower than one
    with 128 channels), groups of 49 and 48 channels, and two strips of
    columns. The reference's results at 1 and 2 threads."""
    rng = np.random.default_rng(5)
    x = (np.round(rng.standard_normal(shape) * 64) / 64).astype(dtype)
    x[1, 10, 13, shape[3] // 2] = np.nan
    ref64 = ref_avg_pool(x, (15, 15), (1, 1), (7, 7), layout="channels_last",
                         keep_float64=True)
    for threads in (1, 2):
        got = pypool.avg_pool2d(x, 15, 1, 7, layout="channels_last", num_threads=threads)
        assert_avg_matches(got, ref64, dtype)
    assert np.isnan(got[1, 10, 13, shape[3] // 2]) and not np.isnan(got[1, 10, 13, 0])


@pytest.mark.parametrize("offset", [0, 1])
def test_lane_bands_of_a_large_result(offset):
    """A 16 MB float32 result, which the lane bands write by streaming stores
    when every store is 16-byte aligned (offset 0) and by plain ones when not
    (an out= one float off): both the exact averages (multiples of 1/64 sum
    exactly, so a separable float64 sum is the oracle), and the bytes around
    out= untouched."""
    rng = np.random.default_rng(8)
    x = (np.round(rng.standard_normal((2, 64, 64, 512)) * 64) / 64).astype(np.float32)
    padded = np.pad(x.astype(np.float64), [(0, 0), (7, 7), (7, 7), (0, 0)])
    rows = sum(padded[:, j:j + 64] for j in range(15))
    expected = (sum(rows[:, :, j:j + 64] for j in range(15)) / 225.0).astype(np.float32)
    buf = np.full(expected.size + 8, 7.0, np.float32)
    out = buf[offset:offset + expected.size].reshape(expected.shape)
    got = pypool.avg_pool2d(x, 15, 1, 7, layout="channels_last", out=out, num_threads=2)
    assert got is out
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.delete(buf, np.arange(offset, offset + expected.size)), 7.0)


# (shape, kernel, stride, padding): channels_last inputs with so many channels
# that a running task's rows of all of them pass the scratch cap, so the call
# goes by groups of channels (forward.pxi, channel_split) for every op here:
# 600 channels in 5 groups of 120, 520 in 5 of 104, 1000 in 8 of 125.
CHANNEL_GROUP_CASES = [
    ((1, 20, 40, 600), (13, 13), (1, 1), (6, 6)),
    ((2, 18, 40, 520), (11, 13), (1, 1), (5, 6)),
    ((1, 30, 17, 1000), (13, 13), (2, 1), (0, 6)),
]


@pytest.mark.parametrize("case", CHANNEL_GROUP_CASES)
@pytest.mark.parametrize("op", ["max", "lp", "avg"])
def test_channel_groups_match_reference(op, case):
    """Max, Lp (p = 2) and float32 averages on channels_last inputs of
    520-1000 channels, pooled by groups of channels: every channel against
    the reference (max exactly, ties between +0 and -0 and a NaN included;
    averages of multiples of 1/16, whose sums are exact), at 1, 2 and 3
    threads bit-equal, on a contiguous input and on a channel slice (every
    other channel: averages then leave the lane bands for the groups) into an
    out= whose channels are spaced too; the input untouched."""
    shape, kernel, stride, padding = case
    bits = lambda a: np.ascontiguousarray(a).view(np.uint8)
    rng = np.random.default_rng(11)
    wide = rng.standard_normal(shape[:3] + (2 * shape[3],)).astype(np.float32)
    wide[..., ::7] = 0.0
    wide[:, 3, :, ::5] = -0.0
    wide[0, 2, 2, 6] = np.nan
    if op == "avg":
        wide = np.round(wide * 16) / 16
    for x in (np.ascontiguousarray(wide[..., ::2]), wide[..., 1::2]):
        snapshot = x.copy()
        if op == "max":
            ref = ref_max_pool(x, kernel, stride, padding, layout="channels_last")[0]
            run = lambda threads, out=None: pypool.max_pool2d(
                x, kernel, stride, padding, layout="channels_last", num_threads=threads, out=out)
        elif op == "lp":
            ref = ref_lp_pool(x, 2, kernel, stride, 0, 1, False, "channels_last")
            run = lambda threads, out=None: pypool.lp_pool2d(
                x, 2, kernel, stride, layout="channels_last", num_threads=threads, out=out)
        else:
            ref = ref_avg_pool(x, kernel, stride, padding, layout="channels_last",
                               keep_float64=True)
            run = lambda threads, out=None: pypool.avg_pool2d(
                x, kernel, stride, padding, layout="channels_last", num_threads=threads, out=out)
        first = run(1)
        if op == "max":
            assert_same_max(first, ref)
            np.testing.assert_array_equal(np.signbit(first), np.signbit(ref))
        elif op == "lp":
            np.testing.assert_allclose(first, ref, rtol=1e-6)
        else:
            assert_avg_matches(first, ref, np.float32)
        for threads in (2, 3):
            np.testing.assert_array_equal(bits(run(threads)), bits(first))
        spaced = np.full(first.shape[:3] + (2 * first.shape[3],), 5, first.dtype)
        into = spaced[..., ::2]
        assert run(2, into) is into
        np.testing.assert_array_equal(bits(into), bits(first))
        np.testing.assert_array_equal(spaced[..., 1::2], 5)
        np.testing.assert_array_equal(bits(x), bits(snapshot))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("step", [2, 3, -1, 40])
@pytest.mark.parametrize("op", ["max", "avg"])
def test_band_paths_pack_strided_columns(op, step, dtype):
    """Inputs whose columns are not contiguous (a column slice, a reversed or a
    widely spaced view) take the band paths with each row packed first: the
    same results as the reference, whatever the thread count, and the input
    untouched."""
    rng = np.random.default_rng(abs(step))
    W = 70
    base = rng.standard_normal((2, 3, 33, W * abs(step))).astype(dtype)
    if dtype == np.float64:    # (multiples of 1/64: float64 sums exact in any order)
        base = np.round(base * 64) / 64
    base[1, 2, 9, 5 * abs(step)] = np.nan
    x = base[..., ::step] if step > 0 else base[..., ::-1]
    x = x[..., :W] if step > 0 else x
    snapshot = base.copy()
    if op == "max":
        ref = ref_max_pool(x, (13, 13), (1, 1), (6, 6))[0]
        for threads in (1, 2):
            assert_same_max(pypool.max_pool2d(x, 13, 1, 6, num_threads=threads), ref)
    else:
        ref64 = ref_avg_pool(x, (15, 15), (1, 1), (7, 7), count_include_pad=False)
        got = [pypool.avg_pool2d(x, 15, 1, 7, count_include_pad=False, num_threads=threads)
               for threads in (1, 2)]
        assert_avg_matches(got[0], ref64, dtype)
        assert got[0].tobytes() == got[1].tobytes()
    np.testing.assert_array_equal(base, snapshot)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_sum_band_averages_of_infinities(count_include_pad):
    """Sum band float32 averages near infinities: a window holding +inf averages
    to +inf, one holding -inf to -inf, one holding both to NaN; the others stay
    finite and exact. (The quotient's Newton correction, whose residual is NaN
    for an infinite sum, must keep the infinite product.)"""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 30, 70)).astype(np.float32)
    x[0, 0, 4, 5] = np.inf
    x[0, 1, 20, 50] = -np.inf
    x[1, 2, 10, 30], x[1, 2, 14, 36] = np.inf, -np.inf
    ref64 = ref_avg_pool(x, (15, 15), (1, 1), (7, 7), count_include_pad=count_include_pad)
    for threads in (1, 2):
        got = pypool.avg_pool2d(x, 15, 1, 7, count_include_pad=count_include_pad,
                                num_threads=threads)
        assert_avg_matches(got, ref64, np.float32)
    assert np.isposinf(got[0, 0, 4, 5]) and np.isneginf(got[0, 1, 20, 50])
    assert np.isnan(got[1, 2, 12, 33]) and np.isfinite(got[0, 0, 25, 60])


@pytest.mark.parametrize("channels", [8, 13])
@pytest.mark.parametrize("kernel,stride,padding", [(7, 1, 3), ((9, 5), (2, 1), (4, 2))])
def test_large_channels_last_max_ties_follow_row_major_order(channels, kernel, stride, padding):
    """channels_last large windows pool each row first, then across rows, so a
    tie between +0 and -0 keeps the row-major first zero: the values-only
    result equals, bit for bit, the values of the indices path (which takes
    each window's row-major first maximum); NaN propagates."""
    rng = np.random.default_rng(channels)
    x = rng.choice(np.array([-0.0, 0.0, -1.0, np.nan], np.float32), (2, 23, 19, channels),
                   p=[0.45, 0.45, 0.08, 0.02])
    assert_values_equal_indexed_values(x, kernel, stride, padding, "channels_last")


@pytest.mark.parametrize("width", [19, 40])
@pytest.mark.parametrize("kernel,stride,padding", [((7, 7), (1, 1), (3, 3)),
                                                   ((9, 5), (2, 1), (4, 2))])
def test_large_channels_first_max_ties_follow_column_major_order(width, kernel, stride,
                                                                 padding):
    """channels_first float32 large windows go by bands: a running max down the
    rows (16 columns a vector on AVX-512 CPUs), then doubling along them, so a
    tie between +0 and -0 keeps the column-major first zero (README, Max):
    bit for bit the values the indices path (row-major first) gives for the
    transposed input and window. NaN propagates. Widths of one vector and a
    few columns, and of several vectors."""
    rng = np.random.default_rng(width)
    x = rng.choice(np.array([-0.0, 0.0, -1.0, np.nan], np.float32), (2, 3, 29, width),
                   p=[0.45, 0.45, 0.08, 0.02])
    got = pypool.max_pool2d(x, kernel, stride, padding)
    flipped, _ = pypool.max_pool2d(np.ascontiguousarray(x.swapaxes(2, 3)), kernel[::-1],
                                   stride[::-1], padding[::-1], return_indices=True)
    ref = flipped.swapaxes(2, 3)
    nan = np.isnan(ref)
    assert (np.isnan(got) == nan).all()
    np.testing.assert_array_equal(got[~nan].view(np.int32), ref[~nan].view(np.int32))


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode", [
    (7, 1, 3, 1, False),                        # large on every axis
    ((9, 3, 3), (2, 1, 1), (4, 1, 0), 1, True),  # large depth only
    ((3, 9, 2), (1, 1, 2), (1, 4, 1), (2, 1, 1), False),  # large rows, dilated depth
    ((5, 1, 11), 1, (2, 0, 5), (1, 1, 1), True),
])
def test_3d_large_windows_pool_the_depth_first(layout, kernel, stride, padding, dilation,
                                                ceil_mode):
    """Large 3-D windows run as a depth pooling and then a 2-D one
    (depth_first.pxi): max values equal the reference's (NaN and infinities
    included), averages are within an ulp of it and, in float64, exactly the
    divisor_override=1 sum divided once by the 3-D divisor; thread counts
    agree bit for bit; reversed and strided views too."""
    rng = np.random.default_rng(21)
    spatial = (10, 9, 13)
    shape = (2, 3) + spatial if layout == "channels_first" else (2,) + spatial + (3,)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 4, shape)).astype(np.float32)
    x.flat[rng.integers(0, x.size, 6)] = np.nan
    x.flat[rng.integers(0, x.size, 6)] = np.inf
    x.flat[rng.integers(0, x.size, 6)] = -np.inf
    def three(v):
        return (v,) * 3 if np.isscalar(v) else v

    args = (three(kernel), three(stride), three(padding), three(dilation), ceil_mode)
    for view in (x, x[:, ::-1], np.repeat(x, 2, axis=-1)[..., ::2]):
        ref_v, _ = ref_max_pool(view, *args, layout=layout)
        got = pypool.max_pool(view, *args, layout=layout, num_threads=1)
        assert_same_max(got, ref_v)
        assert_same_max(pypool.max_pool(view, *args, layout=layout, num_threads=2), got)
        finite = np.nan_to_num(view, nan=1.0, posinf=2.0, neginf=-3.0)
        for include_pad in (True, False):
            ref64 = ref_avg_pool(finite, *args, count_include_pad=include_pad, layout=layout,
                                 keep_float64=True)
            got = pypool.avg_pool(finite, *args, count_include_pad=include_pad, layout=layout,
                                  num_threads=1)
            assert_avg_matches(got, ref64, np.float32)
            two = pypool.avg_pool(finite, *args, count_include_pad=include_pad, layout=layout,
                                  num_threads=2)
            np.testing.assert_array_equal(two.view(np.uint32), got.view(np.uint32))
        total = pypool.avg_pool(finite, *args, divisor_override=1, layout=layout,
                                dtype=np.float64)
        for d in (7, 343):
            got = pypool.avg_pool(finite, *args, divisor_override=d, layout=layout,
                                  dtype=np.float64)
            np.testing.assert_array_equal(got.view(np.int64), (total / d).view(np.int64))


def _column_major_first_max(x, kernel, stride, padding, ceil_mode, out_shape):
    """Max of each 2-D window taken column by column (the first maximum in
    column-major order, down to the sign of a zero), NaN where the window
    holds one; padding taps are -inf."""
    (pt, pb), (pl, pr) = padding
    oh, ow = out_shape[-2:]
    # pad far enough for ceil_mode's last windows too
    need_h = max(0, (oh - 1) * stride[0] + kernel[0] - (x.shape[-2] + pt + pb))
    need_w = max(0, (ow - 1) * stride[1] + kernel[1] - (x.shape[-1] + pl + pr))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb + need_h), (pl, pr + need_w)),
                constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1]][:, :, :oh, :ow]
    taps = np.swapaxes(win, -1, -2).reshape(win.shape[:4] + (-1,))   # column-major order
    first = np.argmax(taps == taps.max(axis=-1, keepdims=True), axis=-1)
    expected = np.take_along_axis(taps, first[..., None], -1)[..., 0]
    expected[np.isnan(taps).any(axis=-1)] = np.nan
    return expected.astype(x.dtype)


@settings(max_examples=examples(250), **COMMON)
@given(data=st.data())
def test_large_channels_first_max_rows_then_columns(data):
    """channels_first float max with a large window (the band path: input rows
    read in place, columns pooled by doubling): rows narrower and wider than a
    vector and than a task's strip of 128 outputs, windows up to 70 columns
    (past the doubling's 64), column strides 1-3, every padding, ceil_mode,
    strided inputs and results. Values equal, bit for bit, the column-major
    first maximum (a zero's sign included); NaN wherever a window holds one;
    results identical for 1 and 3 threads."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 15)), data.draw(st.integers(1, 70))
    if not (kh >= 2 * sh + 3 or kw >= 2 * sw + 3):
        kw = 2 * sw + 3 + data.draw(st.integers(0, 30))
    wide = kw > 40    # (fewer, shorter rows: the reference holds every tap)
    H = data.draw(st.integers(max(1, kh - 4), kh + (10 if wide else 40)))
    W = data.draw(st.sampled_from([1, 5, 7, 8, 9, 17, 31, 64, 140] + ([] if wide else [300])))
    ph = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kh // 2))
    pw = data.draw(st.integers(0, kw // 2)), data.draw(st.integers(0, kw // 2))
    ceil_mode = data.draw(st.booleans())
    args = ((kh, kw), (sh, sw), (ph, pw), 1, ceil_mode)
    shape = (1, 1, H, W) if wide else (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), H, W)
    try:
        out_shape = pypool.pooled_shape(shape, *args)
    except ValueError:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    pool = np.array([-0.0, 0.0, -1.0, 1.0, 2.0, np.nan, np.inf, -np.inf], dtype)
    x = rng.choice(pool, shape, p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.02, 0.04, 0.04])
    if data.draw(st.booleans()):
        x = x[..., ::-1] if data.draw(st.booleans()) else np.repeat(x, 2, axis=-1)[..., ::2]
    expected = _column_major_first_max(x, (kh, kw), (sh, sw), (ph, pw), ceil_mode,
                                       out_shape)
    out = None
    if data.draw(st.booleans()):
        out = np.zeros(out_shape[:-1] + (2 * out_shape[-1],), dtype)[..., ::2]
    got = pypool.max_pool2d(x, *args, out=out, num_threads=1)
    nan = np.isnan(expected)
    assert (np.isnan(got) == nan).all()
    bits = np.uint32 if dtype == np.float32 else np.uint64
    # Zero signs are pinned where the running path runs: a large axis with more
    # than one output (a single window takes the direct paths, whose ties are
    # row-major first; README, Max).
    running = ((kh >= 2 * sh + 3 and out_shape[2] > 1) or (kw >= 2 * sw + 3 and out_shape[3] > 1))
    if running:
        np.testing.assert_array_equal(got[~nan].view(bits), expected[~nan].view(bits))
    else:
        np.testing.assert_array_equal(got[~nan], expected[~nan])
    np.testing.assert_array_equal(pypool.max_pool2d(x, *args, num_threads=3).view(bits),
                                  got.view(bits))
