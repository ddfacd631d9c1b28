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

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import pypool
from reference import _max_over, ref_avg_pool, ref_max_pool
from reference_ops import _divisor, _inside, _taps, lp_geometry, ref_lp_pool

G31 = 2**31
G32 = 2**32
BIG = 2**62 - 1          # largest window parameter pypool accepts

LAYOUTS = ("channels_first", "channels_last")


# ----------------------------------------------------------------------------- helpers

def planes_of(x, nd, layout):
    """(P, *spatial) view of x (its channels as planes for channels_last), never a copy."""
    if layout == "channels_last":
        x = np.moveaxis(x, -1, x.ndim - nd - 1)
    lead = x.shape[:x.ndim - nd]
    shape = (math.prod(lead),) + x.shape[x.ndim - nd:]
    # Lead axes are merged by hand (as_strided) so that a huge view is never copied.
    moving = [(n, s) for n, s in zip(lead, x.strides[:len(lead)]) if n != 1]
    assert len(moving) <= 1, "test views keep at most one lead axis of size > 1"
    lead_stride = moving[0][1] if moving else 0
    return as_strided(x, shape, (lead_stride,) + x.strides[x.ndim - nd:], writeable=False)


def from_planes(res, lead, layout):
    """Inverse of planes_of for a small (P, *out) result."""
    if layout == "channels_last":
        res = res.reshape(lead + res.shape[1:])
        return np.moveaxis(res, len(lead) - 1, -1)
    return res.reshape(lead + res.shape[1:])


def lead_of(x, nd, layout):
    return x.shape[:x.ndim - nd - 1] + x.shape[-1:] if layout == "channels_last" else x.shape[:x.ndim - nd]


def window_oracle(x, op, kernel, stride=None, padding=0, dilation=1, ceil_mode=False,
                  layout="channels_first", count_include_pad=True, p=None):
    """Expected max (values, indices), avg or lp of a pool with few outputs and few taps.

    Uses the oracles' geometry (lp_geometry, _taps, _divisor) and reads only
    the in-bounds taps of each window from the (possibly huge) view; sums are
    float64 in row-major tap order, cast once.
    """
    nd = len(kernel)
    planes = planes_of(x, nd, layout)
    spatial = planes.shape[1:]
    kernel, stride, dilation, pads, outs = lp_geometry(spatial, kernel, stride, padding,
                                                       dilation, ceil_mode)
    P = planes.shape[0]
    assert math.prod(outs) <= 4096 and math.prod(kernel) <= 4096, "oracle meant for small pools"
    if op == "max":
        vals = np.empty((P,) + outs, x.dtype)
        inds = np.empty((P,) + outs, np.int64)
    else:
        res = np.empty((P,) + outs, np.float64)
    for opos in itertools.product(*[range(o) for o in outs]):
        taps = [t for t in _taps(opos, kernel, stride, dilation, pads) if _inside(t, spatial)]
        at = (slice(None),) + opos
        if op == "max":
            vals[at], inds[at] = _max_over(planes, taps, spatial, x.dtype)
            continue
        total = np.zeros(P)
        for t in taps:
            v = planes[(slice(None),) + t].astype(np.float64)
            total = total + (v if op == "avg" else np.abs(v) ** p)
        if op == "avg":
            res[at] = total / _divisor(opos, spatial, kernel, stride, dilation, pads,
                                       count_include_pad, None)
        else:
            res[at] = total ** (1.0 / p)
    lead = lead_of(x, nd, layout)
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
    from reference_ops import ref_avg_pool_backward
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
# whose per-task scratch holds the whole input block of 64 output rows: here
# 3 buffers of 140 million doubles (3.4 GB) for an input that is a broadcast
# view. The child process caps its address space 1 GiB above what it already
# uses, so such a request fails (MemoryError) instead of quietly eating memory.

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
print("ok")
"""


def test_large_kernels_do_not_need_gigabytes_of_scratch(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "running_scratch.py"
    script.write_text(RUNNING_SCRATCH_CHILD)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path))
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
