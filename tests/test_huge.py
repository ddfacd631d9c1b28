"""Huge inputs: views with more than 2**31 (and 2**32) elements, and window
parameters near the 2**62 limit, pool exactly; no 32-bit (or overflowing
64-bit) index or size arithmetic is used anywhere on the way.

The inputs cost (almost) no memory: np.broadcast_to and as_strided views with
zero or overlapping strides over small bases. Geometries are chosen so that
outputs are small and each call reads few elements (big strides, dilations,
few taps) - except the handful of tests that must sum or scan more than 2**31
elements, which take a few seconds each.

Expected results never come from pypool: either the oracles' own helpers
(tests/reference.py, tests/reference_ops.py) applied tap by tap to the view,
or a closed form computed with NumPy on the small base the view is built from.

Tests marked ``huge_memory`` allocate a real buffer of about 2 GiB (mostly
untouched zero pages); deselect them with ``-m "not huge_memory"``.
"""

import itertools
import math
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import pypool
import pypool._dispatch
from reference import (_max_over, ref_avg_pool, ref_global_avg_pool, ref_global_max_pool,
                       ref_max_pool)
from reference_ops import (_divisor, _inside, _taps, adaptive_bounds, lp_geometry,
                           ref_adaptive_avg_pool, ref_adaptive_avg_pool_backward,
                           ref_adaptive_max_pool, ref_avg_pool_backward,
                           ref_global_avg_pool_backward, ref_lp_pool, ref_lp_pool_backward,
                           ref_max_pool_backward, ref_max_unpool)

G31 = 2**31
G32 = 2**32
BIG = 2**62 - 1          # largest window parameter pypool accepts

LAYOUTS = ("channels_first", "channels_last")


# ----------------------------------------------------------------------------- helpers

def plane_views(x, nd, layout):
    """(lead shape, [plane view for each lead index]) - a channels_last input's
    channel is a lead index too; nothing is copied."""
    if layout == "channels_last":
        x = np.moveaxis(x, -1, x.ndim - nd - 1)
    lead = x.shape[:x.ndim - nd]
    return lead, [x[idx] for idx in np.ndindex(*lead)]


def from_planes(res, lead, layout):
    """(P, *out) results of plane_views' planes -> the op's result layout."""
    res = res.reshape(lead + res.shape[1:])
    return np.moveaxis(res, len(lead) - 1, -1) if layout == "channels_last" else res


def window_oracle(x, op, kernel, stride=None, padding=0, dilation=1, ceil_mode=False,
                  layout="channels_first", count_include_pad=True, p=None):
    """Expected max (values, indices), avg or lp of a pool with few outputs and few taps.

    Uses the oracles' geometry (lp_geometry, _taps, _divisor) and reads only
    the in-bounds taps of each window from the (possibly huge) view; sums are
    float64 in row-major tap order, cast once.
    """
    nd = len(kernel)
    lead, views = plane_views(x, nd, layout)
    spatial = views[0].shape
    kernel, stride, dilation, pads, outs = lp_geometry(spatial, kernel, stride, padding,
                                                       dilation, ceil_mode)
    P = len(views)
    assert math.prod(outs) * P <= 4096 and math.prod(kernel) <= 4096, "oracle meant for small pools"
    if op == "max":
        vals = np.empty((P,) + outs, x.dtype)
        inds = np.empty((P,) + outs, np.int64)
    else:
        res = np.empty((P,) + outs, np.float64)
    for pi, plane in enumerate(views):
        plane = plane[None]      # _max_over pools a stack of planes
        for opos in itertools.product(*[range(o) for o in outs]):
            taps = [t for t in _taps(opos, kernel, stride, dilation, pads) if _inside(t, spatial)]
            at = (pi,) + opos
            if op == "max":
                v, i = _max_over(plane, taps, spatial, x.dtype)
                vals[at], inds[at] = v[0], i[0]
                continue
            total = 0.0
            for t in taps:
                v = float(plane[(0,) + t])
                total = total + (v if op == "avg" else abs(v) ** p)
            if op == "avg":
                res[at] = total / _divisor(opos, spatial, kernel, stride, dilation, pads,
                                           count_include_pad, None)
            else:
                res[at] = total ** (1.0 / p)
    if op == "max":
        return from_planes(vals, lead, layout), from_planes(inds, lead, layout)
    out_dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    return from_planes(res, lead, layout).astype(out_dtype)


def assert_same(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype,
                                                                 want.shape, want.dtype)
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- window parameters near 2**62
# Tiny inputs, but dilations and pads close to the 2**62 limit: the tap counts of
# a window (how many taps fall inside the input, or inside the padding for the
# divisor) were computed as ceil((L - start) / d) with "+ d - 1", which wrapped
# past 2**63 and made the in-bounds tap vanish.

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("L,stride", [(100, 1000), (400, 100)])   # lanes path, plane path
def test_window_tap_counts_near_the_2_62_limit(layout, L, stride):
    x = np.arange(1.0, L + 1.0).reshape(1, L)
    if layout == "channels_last":
        x = np.stack([x, -x, 2 * x], axis=-1)
    args = ((2,), (stride,), ((BIG, 0),), (BIG,))   # tap 0 in the begin padding, tap 1 at x[0]
    v, i = pypool.max_pool(x, *args, layout=layout, return_indices=True)
    rv, ri = ref_max_pool(x, *args, layout=layout)
    assert_same(v, rv)
    assert_same(i, ri)
    assert (np.take(i, 0, axis=1) == 0).all()    # the first window's only tap is x[0]
    for cip in (False, True):
        got = pypool.avg_pool(x, *args, count_include_pad=cip, layout=layout)
        assert_same(got, ref_avg_pool(x, *args, count_include_pad=cip, layout=layout))
    assert_same(pypool.lp_pool(x, 1, *args, layout=layout),
                ref_lp_pool(x, 1, *args, layout=layout))
    # The divisor counts padded taps too: pads on both sides, as large as the sum
    # allows. The second window's taps lie in the begin and the end padding.
    pads = ((BIG, 2**61),)
    for cip in (False, True):
        got = pypool.avg_pool(x, (2,), (2**61,), pads, (BIG,), count_include_pad=cip,
                              layout=layout)
        want = ref_avg_pool(x, (2,), (2**61,), pads, (BIG,), count_include_pad=cip,
                            layout=layout)
        assert got.shape[1] == 2
        assert_same(got, want)


def test_avg_backward_tap_counts_near_the_2_62_limit():
    L = 50
    args = ((2,), (7,), ((BIG, 0),), (BIG,))
    shape = pypool.pooled_shape((3, L), *args)
    g = np.arange(1.0, 1.0 + math.prod(shape)).reshape(shape)
    for cip in (False, True):
        got = pypool.avg_pool_backward(g, (3, L), *args, count_include_pad=cip)
        want = ref_avg_pool_backward(g, (3, L), *args, count_include_pad=cip)
        assert_same(got, want)
        assert got[:, 0].any()


# ----------------------------------------------------------------------------- running-window scratch
# Large kernels with strides of a few thousand took the running-window path,
# whose per-task scratch holds the whole input block of a task's output rows:
# here 3 buffers of 140 million doubles (3.4 GB) for an input that is a broadcast
# view. The child process caps its address space 1 GiB above what it already
# uses, so such a request fails (MemoryError) instead of quietly eating memory.
# (Large 3-D windows may ask for up to 1 GiB and fall back when refused.)

RUNNING_SCRATCH_CHILD = """
import resource, sys
import numpy as np
import pypool

pypool.max_pool2d(np.zeros((2, 64, 64)), 3, 1, num_threads=2)   # threads started, pages touched
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))

sh, kh = 2**14, 2**15 + 3            # kernel >= 2 * stride + 3: the running-window rule
H, W = kh + sh, 128                   # 2 output rows, 128 output columns
a = np.random.default_rng(5).integers(-1000, 1000, H).astype(np.float64)
x = np.broadcast_to(a[:, None], (1, H, W))
rows = [a[o * sh:o * sh + kh] for o in range(2)]
avg = pypool.avg_pool2d(x, (kh, 1), (sh, 1))
mx = pypool.max_pool2d(x, (kh, 1), (sh, 1))
lp = pypool.lp_pool2d(x, 1, (kh, 1), (sh, 1))
want_avg = np.array([r.sum() / kh for r in rows])[None, :, None]   # integer sums: exact
assert avg.shape == (1, 2, W) and (avg == want_avg).all(), (avg[:, :, 0], want_avg)
assert (mx == np.array([r.max() for r in rows])[None, :, None]).all(), mx[:, :, 0]
assert (lp == np.array([np.abs(r).sum() for r in rows])[None, :, None]).all(), lp[:, :, 0]

# A large 3-D window pools the depth first into an intermediate of whole planes:
# here 8 x 4096 x 4096 doubles, 1 GiB, which the cap refuses. The call must then
# take the direct paths (a few taps per output) instead of failing.
D = 65
a3 = np.random.default_rng(6).integers(-1000, 1000, D).astype(np.float64)
x3 = np.broadcast_to(a3[:, None, None], (1, D, 4096, 4096))
wins = [a3[o * 8:o * 8 + 9] for o in range(8)]
avg3 = pypool.avg_pool3d(x3, (9, 2, 2), (8, 64, 64))
mx3 = pypool.max_pool3d(x3, (9, 2, 2), (8, 64, 64))
assert avg3.shape == mx3.shape == (1, 8, 64, 64)
assert (avg3 == np.array([w.sum() * 4 / 36 for w in wins])[None, :, None, None]).all()
assert (mx3 == np.array([w.max() for w in wins])[None, :, None, None]).all()
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer reserves terabytes of address space: no RLIMIT_AS cap fits")
def test_large_kernels_do_not_need_gigabytes_of_scratch(tmp_path):
    script = tmp_path / "running_scratch.py"
    script.write_text(RUNNING_SCRATCH_CHILD)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path))
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


# ----------------------------------------------------------------------------- views are never copied
# A broadcast batch (N, C, H, W) of a (C, H, W) image cannot be reshaped to the
# kernels' (N * C, H, W) batch without a copy; neither can a plane whose inner
# axis is broadcast be merged for global pooling. Those copies used to be made
# (64 GiB here: MemoryError); now the batch axes are looped over (computed once
# along stride-0 axes) and a global pool keeps the spatial axes apart.

def broadcast_batch(n, base):
    """(n, *base.shape) read-only view repeating ``base``: no memory."""
    return np.broadcast_to(base, (n,) + base.shape)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_broadcast_batch_of_2_33_elements_is_pooled_without_a_copy(layout):
    rng = np.random.default_rng(11)
    if layout == "channels_first":
        base = rng.integers(-50, 50, (2, 256, 256)).astype(np.float64)      # (C, H, W)
        x = broadcast_batch(2**16, base)                                    # (N, C, H, W)
    else:
        base = rng.integers(-50, 50, (2, 256, 256, 2)).astype(np.float64)   # (G, H, W, C)
        x = broadcast_batch(2**15, base)                                    # (N, G, H, W, C)
    assert x.size == 2**33
    n = x.shape[0]
    kw = dict(layout=layout)
    checks = [
        (lambda a: pypool.max_pool2d(a, 64, 48, 8, return_indices=True, **kw)),
        (lambda a: pypool.avg_pool2d(a, 64, 48, 8, count_include_pad=False, **kw)),
        (lambda a: pypool.lp_pool2d(a, 2, 64, 48, **kw)),
        (lambda a: pypool.adaptive_avg_pool2d(a, (3, 5), **kw)),
        (lambda a: pypool.adaptive_max_pool2d(a, (3, 5), return_indices=True, **kw)),
    ]
    for op in checks:
        got = op(x)
        want = op(base[None])      # one copy of the image, pooled by the usual path
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            assert g.shape == (n,) + w.shape[1:]
            np.testing.assert_array_equal(g[[0, 1, n // 2, -1]], np.repeat(w, 4, axis=0))
            assert (g == g[:1]).all()
    # Global pooling of a broadcast batch: (N, C, H, W) or (N, H, W, C).
    base = base if layout == "channels_first" else base[0]
    xg = broadcast_batch(2**16, base)
    gavg = pypool.global_avg_pool(xg, layout=layout)
    gmax, gidx = pypool.global_max_pool(xg, layout=layout, return_indices=True)
    planes = base.reshape(2, -1) if layout == "channels_first" else base.reshape(-1, 2).T
    np.testing.assert_array_equal(gavg, np.broadcast_to(planes.sum(1) / planes.shape[1], gavg.shape))
    np.testing.assert_array_equal(gmax, np.broadcast_to(planes.max(1), gmax.shape))
    np.testing.assert_array_equal(gidx, np.broadcast_to(planes.argmax(1), gidx.shape))


def test_lead_axes_that_do_not_merge_give_the_results_of_a_copy(monkeypatch):
    """Lead axes with non-zero strides that cannot merge (a transposed batch) are
    looped over, every piece by the usual kernels: results equal a copy's bit for bit.
    (Small views are copied; the limit is lowered so that these are not.)"""
    monkeypatch.setattr(pypool._dispatch, "COPY_LIMIT", 0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 4, 33, 20)).astype(np.float32).transpose(1, 0, 2, 3, 4)
    xc = np.ascontiguousarray(x)
    for op in (lambda a: pypool.max_pool2d(a, 3, 2, 1, return_indices=True),
               lambda a: pypool.avg_pool2d(a, 3, 2, 1),
               lambda a: pypool.lp_pool2d(a, 3.0, 2),
               lambda a: pypool.adaptive_avg_pool2d(a, (5, 3)),
               lambda a: pypool.adaptive_max_pool3d(a, (2, 5, 3), return_indices=True),
               lambda a: pypool.global_avg_pool(a),
               lambda a: pypool.global_max_pool(a, return_indices=True)):
        got, want = op(x), op(xc)
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            assert_same(g, w)
    # with out= as well
    out = np.full((3, 5, 4, 17, 10), np.nan, np.float32)
    assert pypool.avg_pool2d(x, 3, 2, 1, out=out) is out
    assert_same(out, pypool.avg_pool2d(xc, 3, 2, 1))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_global_pool_of_a_plane_with_a_broadcast_axis_makes_no_copy(layout):
    rng = np.random.default_rng(8)
    H, W, C = 2**12, 2**12, 3          # 805 MB if copied: above the copy limit
    col = rng.integers(0, 10**6, (C, H)).astype(np.float64)      # values vary along H only
    if layout == "channels_first":   # (2, C, H, W), strides (0, H*8, 8, 0)
        x = as_strided(col, (2, C, H, W), (0, H * 8, 8, 0), writeable=False)
    else:                            # (2, H, W, C), strides (0, 8, 0, H*8)
        x = as_strided(col, (2, H, W, C), (0, 8, 0, H * 8), writeable=False)
    tracemalloc.start()
    try:
        avg = pypool.global_avg_pool(x, layout=layout)
        mx, idx = pypool.global_max_pool(x, layout=layout, return_indices=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes traced: the {x.nbytes}-byte view was copied"
    want_avg = (col.sum(1) * W) / (H * W)          # integer sums: exact
    want_idx = col.argmax(1) * W                   # first maximum: first column of that row
    np.testing.assert_array_equal(avg, np.broadcast_to(want_avg, (2, C)))
    np.testing.assert_array_equal(mx, np.broadcast_to(col.max(1), (2, C)))
    np.testing.assert_array_equal(idx, np.broadcast_to(want_idx, (2, C)))


# ----------------------------------------------------------------------------- planes of more than 2**32 elements
# Zero-memory views: a constant (broadcast) 1-D axis, and "Toeplitz" views
# x[..., d, h, w] = base[d + h + w] (as_strided with equal strides over a small
# base), so values differ along every axis and ties are frequent. Small
# windows with huge strides and dilations keep the reads few; the windows
# sit at positions past 2**31 and 2**32, so the indices do too.

def toeplitz(base, shape):
    """View with x[i0, i1, ...] = base[i0 + i1 + ...] (base long enough)."""
    assert sum(n - 1 for n in shape) < base.size
    return as_strided(base, shape, (base.itemsize,) * len(shape), writeable=False)


def check_windows(x, nd, layout, kernel, stride, padding, dilation, ceil_mode=False):
    """max (values and indices), avg (both divisors) and lp of one geometry against
    window_oracle; returns the indices."""
    args = (kernel, stride, padding, dilation, ceil_mode)
    v, i = pypool.max_pool(x, *args, layout=layout, return_indices=True)
    rv, ri = window_oracle(x, "max", *args, layout=layout)
    assert_same(v, rv)
    assert_same(i, ri)
    for cip in (True, False):
        got = pypool.avg_pool(x, *args, count_include_pad=cip, layout=layout)
        assert_same(got, window_oracle(x, "avg", *args, layout=layout, count_include_pad=cip))
    for p in (1.0, 2.0):
        got = pypool.lp_pool(x, p, *args, layout=layout)
        assert_same(got, window_oracle(x, "lp", *args, layout=layout, p=p))
    return i


@pytest.mark.parametrize("layout", LAYOUTS)
def test_1d_constant_view_indices_past_2_32(layout):
    L = G32 + 2**20 + 7
    if layout == "channels_first":
        x = np.broadcast_to(np.float32(2.5), (2, L))
    else:
        x = np.broadcast_to(np.array([1.5, -2.0, 3.0], np.float32), (2, L, 3))
    # ties everywhere: each index is its window's first in-bounds tap
    i = check_windows(x, 1, layout, (3,), (2**30 + 1,), ((1, 0),), (5,), True)
    assert i.max() > G32
    i = check_windows(x, 1, layout, (4,), (G31 + 5,), ((G31, G31),), (2**30 + 1,))
    assert i.max() > G31


@pytest.mark.parametrize("layout", LAYOUTS)
def test_2d_plane_of_2_32_elements_indices_and_sums(layout):
    rng = np.random.default_rng(21)
    H, W = 2**16 + 5, 2**16 + 3                          # 2**32 + 8 * 2**16 + 15 per plane
    base = rng.integers(-20, 20, H + W + 4).astype(np.float64)   # small range: many ties
    x = toeplitz(base, (2, H, W)) if layout == "channels_first" else toeplitz(base, (1, H, W, 3))
    i = check_windows(x, 2, layout, (3, 4), (2**14 + 1, 2**15 - 3), ((1, 2), (0, 3)), (2, 5),
                      True)
    assert i.max() > G32
    # windows over rows h-1 .. h+1, whose flat indices straddle 2**32
    h = G32 // W
    i = check_windows(x, 2, layout, (3, 5), (h - 1, W // 2), 0, 1)
    assert i.min() < G32 <= i.max()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_3d_plane_of_2_32_elements_indices_and_sums(layout):
    rng = np.random.default_rng(22)
    D, H, W = 2**10 + 1, 2**11 + 3, 2**11 + 5
    base = rng.integers(0, 50, D + H + W + 4).astype(np.float32)
    x = toeplitz(base, (1, D, H, W)) if layout == "channels_first" else toeplitz(base, (D, H, W, 2))
    i = check_windows(x, 3, layout, (2, 3, 2), (2**9 - 1, 2**10 - 1, 2**10 + 7),
                      ((1, 1), (0, 2), (2, 0)), (3, 2, 4), True)
    assert i.max() > G32


# ----------------------------------------------------------------------------- sums of more than 2**31 elements
# "Column" views x[h, w, c] = base[h, c] (as_strided with a zero W stride) read
# 2**31 + elements per call, 64 lanes at a time (channels side by side, or 64
# channels_first planes interleaved in memory), so each call takes well under a
# second. Integer-valued data keeps every float64 partial sum exact: expected
# values are closed forms over the base, computed with NumPy.

COL_H, COL_W, COL_C = 2**12, 2**13 + 1, 64            # H * W * C > 2**31


@pytest.fixture(scope="module")
def column_base():
    return np.random.default_rng(31).integers(-100, 101, (COL_H, COL_C)).astype(np.float64)


def column_view(base, layout):
    H, C = base.shape
    if layout == "channels_last":    # (1, H, W, C): x[0, h, w, c] = base[h, c]
        return as_strided(base, (1, H, COL_W, C), (0, C * 8, 0, 8), writeable=False)
    return as_strided(base, (C, H, COL_W), (8, C * 8, 0), writeable=False)   # x[c, h, w]


def per_channel(values, layout, out_shape):
    """(C, *spatial) expected values -> the op's result layout."""
    values = np.asarray(values)
    return np.moveaxis(values, 0, -1).reshape(out_shape) if layout == "channels_last" else \
        values.reshape(out_shape)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_window_sums_over_2_31_elements(column_base, layout):
    x = column_view(column_base, layout)
    assert x.size > G31
    kh, sh, ph = 2**11 + 1, 2**10 - 3, 5
    rows = [(max(o * sh - ph, 0), min(o * sh - ph + kh, COL_H))
            for o in range((COL_H + 2 * ph - kh) // sh + 1)]
    sums = np.array([column_base[a:b].sum(0) for a, b in rows]).T * COL_W       # (C, OH)
    squares = np.array([(column_base[a:b] ** 2).sum(0) for a, b in rows]).T * COL_W
    absol = np.array([np.abs(column_base[a:b]).sum(0) for a, b in rows]).T * COL_W
    inside = np.array([(b - a) * COL_W for a, b in rows])
    padded = np.array([(min(o * sh - ph + kh, COL_H + ph) - (o * sh - ph)) * COL_W
                       for o in range(len(rows))])
    kw = dict(layout=layout)
    geom = ((kh, COL_W), (sh, 1), (ph, 0))
    shape = pypool.pooled_shape(x.shape, *geom, **kw)
    assert shape == (per_channel(sums[..., None], layout, shape)).shape
    got = pypool.avg_pool2d(x, *geom, count_include_pad=True, **kw)
    assert_same(got, per_channel((sums / padded)[..., None], layout, shape))
    got = pypool.avg_pool2d(x, *geom, count_include_pad=False, **kw)
    assert_same(got, per_channel((sums / inside)[..., None], layout, shape))
    assert_same(pypool.lp_pool2d(x, 2, *geom, **kw),
                per_channel(np.sqrt(squares)[..., None], layout, shape))
    assert_same(pypool.lp_pool2d(x, 1, *geom, **kw), per_channel(absol[..., None], layout, shape))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adaptive_pooling_over_2_31_elements(column_base, layout):
    x = column_view(column_base, layout)
    O = (5, 3)                                   # uneven cells on both axes
    hs = [adaptive_bounds(i, COL_H, O[0]) for i in range(O[0])]
    ws = [adaptive_bounds(j, COL_W, O[1]) for j in range(O[1])]
    avg = np.empty((COL_C,) + O)
    mx = np.empty((COL_C,) + O)
    idx = np.empty((COL_C,) + O, np.int64)
    for i, (h0, h1) in enumerate(hs):
        cell = column_base[h0:h1]                                 # (rows, C)
        for j, (w0, w1) in enumerate(ws):
            avg[:, i, j] = cell.sum(0) * (w1 - w0) / ((h1 - h0) * (w1 - w0))
            mx[:, i, j] = cell.max(0)
            idx[:, i, j] = (h0 + cell.argmax(0)) * COL_W + w0   # first max: its row, first column
    got = pypool.adaptive_avg_pool2d(x, O, layout=layout)
    assert_same(got, per_channel(avg, layout, got.shape))
    v, i = pypool.adaptive_max_pool2d(x, O, layout=layout, return_indices=True)
    assert_same(v, per_channel(mx, layout, v.shape))
    assert_same(i, per_channel(idx, layout, i.shape))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_global_pooling_over_2_31_elements(column_base, layout):
    x = column_view(column_base, layout)
    if layout == "channels_first":
        x = x[None]                              # (1, C, H, W)
    avg = pypool.global_avg_pool(x, layout=layout)
    v, i = pypool.global_max_pool(x, layout=layout, return_indices=True, keepdims=True)
    assert_same(avg, (column_base.sum(0) * COL_W / (COL_H * COL_W))[None])
    want_v = column_base.max(0)[None]
    want_i = (column_base.argmax(0) * COL_W)[None]
    assert_same(v, want_v.reshape(v.shape) if layout == "channels_last" else want_v[..., None, None])
    assert_same(i, want_i.reshape(i.shape) if layout == "channels_last" else want_i[..., None, None])


def test_one_window_of_more_than_2_31_elements():
    """A single average over (2**16 - 1) * (2**15 + 1) in-bounds taps with a divisor
    of 2**31 + 2**17 (one lane: several seconds)."""
    H, W = 2**16, 2**15 + 2
    a = np.random.default_rng(41).integers(0, 1000, H).astype(np.float64)
    x = np.broadcast_to(a[:, None], (H, W))                       # x[h, w] = a[h]
    got = pypool.avg_pool2d(x, (H, W), padding=1, count_include_pad=True)
    assert (H - 1) * (W - 1) > G31
    assert_same(got, np.array([[(W - 1) * a[:H - 1].sum() / (H * W)]]))


def test_global_average_of_one_broadcast_plane_of_more_than_2_31_elements():
    x = np.broadcast_to(np.float64(0.375), (1, 1, 2**16, 2**15 + 1))
    assert_same(pypool.global_avg_pool(x), np.array([[0.375]]))
    assert_same(pypool.global_avg_pool(x, dtype=np.float32), np.array([[0.375]], np.float32))


# ----------------------------------------------------------------------------- a real 2 GiB buffer
# Views spread over a 2 GiB buffer: byte (and, for uint8, element) offsets
# past 2**31 in every kernel family, forward and backward, inputs and out=.
# np.zeros maps untouched zero pages, so only the few written pages and the
# max_unpool result below cost memory.

BUFFER = G31 + 2**22


@pytest.fixture(scope="module")
def zeros_2g():
    return np.zeros(BUFFER, np.uint8)


@pytest.fixture
def big_buffer(zeros_2g):
    """The module's 2 GiB buffer, all zeros; views made by ``spread`` during the
    test are zeroed again afterwards."""
    _written.clear()
    yield zeros_2g
    for v in _written:
        v[...] = 0
    _written.clear()


_written = []


def spread(buf, dtype, offset, shape, strides):
    """Writable view of ``buf`` (bytes ``offset`` on) with the given byte strides."""
    dtype = np.dtype(dtype)
    assert offset % dtype.itemsize == 0 and all(s % dtype.itemsize == 0 for s in strides)
    last = offset + sum((n - 1) * abs(s) for n, s in zip(shape, strides)) + dtype.itemsize
    assert last <= buf.size
    view = as_strided(buf[offset:].view(dtype), shape, strides)
    _written.append(view)
    return view


def spread_views(buf, dtype, layout, offset=0, reach=G31):
    """A view whose last element lies past byte ``offset + reach``, in three variants:
    contiguous rows (plane path), strided rows (lanes path) and both axes reversed."""
    it = np.dtype(dtype).itemsize
    if layout == "channels_first":
        shape = (2, 17, 40)
        rows = reach // 16
        contiguous = (2**20, rows, it)
        strided = (2**20, rows, 3 * it)
    else:
        shape = (1, 17, 12, 3)
        rows = reach // 16
        contiguous = (0, rows, 3 * it, it)
        strided = (0, rows, 2**16, 2**12)
    a = spread(buf, dtype, offset, shape, contiguous)
    b = spread(buf, dtype, offset, shape, strided)
    sl = (slice(None), slice(None, None, -1), slice(None, None, -1))
    return [a, b, b[sl]]


def reach(view, buf):
    """Byte offset, from the start of ``buf``, just past the view's farthest element."""
    ptr = view.__array_interface__["data"][0]
    far = sum((n - 1) * s for n, s in zip(view.shape, view.strides) if s > 0)
    return ptr - buf.__array_interface__["data"][0] + far + view.itemsize


def fill(view, rng, dtype, low=0, high=100):
    view[...] = rng.integers(low, high, view.shape).astype(dtype)
    c = np.ascontiguousarray(view)
    return c


@pytest.mark.huge_memory
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_forward_ops_on_views_spread_over_2_gib(big_buffer, layout, dtype):
    rng = np.random.default_rng(51)
    for v in spread_views(big_buffer, dtype, layout):
        c = fill(v, rng, dtype)
        assert reach(v, big_buffer) > G31
        kw = dict(layout=layout)
        got = pypool.max_pool2d(v, 3, 2, 1, return_indices=True, **kw)
        want = ref_max_pool(c, (3, 3), (2, 2), 1, (1, 1), **kw)
        assert_same(got[0], want[0])
        assert_same(got[1], want[1])
        assert_same(pypool.avg_pool2d(v, 3, 2, 1, count_include_pad=False, **kw),
                    ref_avg_pool(c, (3, 3), (2, 2), 1, (1, 1), count_include_pad=False, **kw))
        assert_same(pypool.lp_pool2d(v, 2, 2, **kw), ref_lp_pool(c, 2, (2, 2), **kw))
        assert_same(pypool.adaptive_avg_pool2d(v, (3, 5), **kw),
                    ref_adaptive_avg_pool(c, (3, 5), **kw))
        got = pypool.adaptive_max_pool2d(v, (3, 5), return_indices=True, **kw)
        want = ref_adaptive_max_pool(c, (3, 5), **kw)
        assert_same(got[0], want[0])
        assert_same(got[1], want[1])
        assert_same(pypool.global_avg_pool(v, **kw), ref_global_avg_pool(c, **kw))
        got = pypool.global_max_pool(v, return_indices=True, **kw)
        want = ref_global_max_pool(c, **kw)
        assert_same(got[0], want[0])
        assert_same(got[1], want[1])


@pytest.mark.huge_memory
@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_ops_and_unpool_write_out_views_past_2_gib(big_buffer, layout):
    """Gradients and unpooled values written through out= views whose last element
    lies past byte 2**31; inputs are views of the first GiB (no overlap)."""
    rng = np.random.default_rng(52)
    kw = dict(layout=layout)
    lower = spread_views(big_buffer, np.float64, layout, 0, 2**29)
    upper = spread_views(big_buffer, np.float64, layout, 2**30, G31 - 2**30 + 2**21)
    for xv, out in zip(lower, upper):
        shape = xv.shape
        x = fill(xv, rng, np.float64, -50, 50)
        out[...] = np.nan
        assert reach(out, big_buffer) > G31

        g = rng.integers(-9, 10, pypool.pooled_shape(shape, (3, 3), 2, 1, **kw)).astype(np.float64)
        assert pypool.avg_pool_backward(g, shape, (3, 3), 2, 1, out=out, **kw) is out
        assert_same(out, ref_avg_pool_backward(g, shape, (3, 3), (2, 2), 1, **kw))

        plane = shape[-2] * shape[-3] if layout == "channels_last" else shape[-1] * shape[-2]
        idx = rng.integers(-1, plane, g.shape)
        pypool.max_pool_backward(g, idx, shape, ndim=2, out=out, **kw)
        assert_same(out, ref_max_pool_backward(g, idx, shape, ndim=2, **kw))

        ga = rng.integers(-9, 10, pypool.adaptive_avg_pool2d(x, (3, 5), **kw).shape).astype(np.float64)
        pypool.adaptive_avg_pool_backward(ga, shape, ndim=2, out=out, **kw)
        assert_same(out, ref_adaptive_avg_pool_backward(ga, shape, ndim=2, **kw))

        gg = rng.integers(-9, 10, pypool.global_avg_pool(x, **kw).shape).astype(np.float64)
        pypool.global_avg_pool_backward(gg, shape, out=out, **kw)
        assert_same(out, ref_global_avg_pool_backward(gg, shape, **kw))

        gl = rng.integers(-9, 10, pypool.pooled_shape(shape, (2, 2), **kw)).astype(np.float64)
        pypool.lp_pool_backward(gl, xv, 2, (2, 2), out=out, **kw)
        np.testing.assert_allclose(out, ref_lp_pool_backward(gl, x, 2, (2, 2), **kw),
                                   rtol=1e-13, atol=0)

    # max_unpool: uint8 values and an out= view whose element offsets pass 2**31
    xs = rng.integers(1, 256, (2, 5, 6) if layout == "channels_first" else (1, 5, 6, 3))
    xs = xs.astype(np.uint8)
    full = pypool.pooled_shape((2, 10, 12) if layout == "channels_first" else (1, 10, 12, 3),
                               (2, 2), **kw)
    assert full == xs.shape
    # distinct positions of each (10, 12) output plane, one plane per batch / channel
    idx = np.stack([rng.permutation(10 * 12)[:30].reshape(5, 6) for _ in range(xs.size // 30)])
    idx = idx if layout == "channels_first" else np.moveaxis(idx, 0, -1)[None]
    out_shape = (2, 10, 12) if layout == "channels_first" else (1, 10, 12, 3)
    rows = (2**30 + 2**21) // 9                 # row 9 starts 2**21 bytes past 2**31
    strides = (2**20, rows, 2**16) if layout == "channels_first" else (0, rows, 2**16, 2**12)
    out = spread(big_buffer, np.uint8, 2**30, out_shape, strides)
    assert reach(out, big_buffer) > G31
    out[...] = 7
    assert pypool.max_unpool2d(xs, idx, 2, out=out, **kw) is out
    assert_same(out, ref_max_unpool(xs, idx, (2, 2), **kw))


@pytest.mark.huge_memory
def test_1d_plane_of_more_than_2_31_real_elements(big_buffer):
    """The whole buffer as one uint8 plane: peaks past 2**31, window and global max
    (with indices), global average - checked against NumPy on the same buffer.
    """
    far, near = G31 + 1234567, 2**30 + 89
    assert not big_buffer[far - 10:far + 10].any() and not big_buffer[near - 10:near + 10].any()
    big_buffer[far] = 255
    big_buffer[near] = 254
    _written.extend([big_buffer[far:far + 1], big_buffer[near:near + 1]])
    x = big_buffer[None]                       # (1, 2**31 + 2**22)
    d = 2**20 + 1
    for args in [((3,), (far - 2 * d,), 0, (d,), False),          # window 1's last tap is `far`
                 ((2,), (G31 + 3,), ((3, 3),), (2**21 + 1,), True)]:
        v, i = pypool.max_pool(x, *args, return_indices=True)
        rv, ri = window_oracle(x, "max", *args)
        assert_same(v, rv)
        assert_same(i, ri)
        assert i.max() >= G31
    v, i = pypool.max_pool1d(x, 3, (far - 1) // 2, 1, return_indices=True)
    assert i[0, 2] == far and v[0, 2] == 255
    gv, gi = pypool.global_max_pool(x[None], return_indices=True)
    assert_same(gv, np.array([[big_buffer.max()]], np.uint8))
    assert_same(gi, np.array([[big_buffer.argmax()]]))
    assert gi[0, 0] == far
    ga = pypool.global_avg_pool(x[None])
    assert_same(ga, np.array([[int(big_buffer.sum(dtype=np.uint64)) / BUFFER]]))


@pytest.mark.huge_memory
def test_max_unpool_into_a_plane_of_more_than_2_31_elements():
    """A fresh 2 GiB uint8 result (zeroed by pypool), values at indices past 2**31."""
    n = G31 + 2**20
    idx = np.array([[[5, 2**30, G31 - 1, G31, G31 + 77, n - 1]]], np.int64)
    vals = np.array([[[1, 2, 3, 4, 5, 6]]], np.uint8)
    y = pypool.max_unpool1d(vals, idx, 3, output_size=(n,))
    try:
        assert y.shape == (1, 1, n) and y.dtype == np.uint8
        np.testing.assert_array_equal(y[0, 0, idx[0, 0]], vals[0, 0])
        assert np.count_nonzero(y) == vals.size
    finally:
        del y
