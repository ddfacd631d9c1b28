"""Differential test against PyTorch (skipped when torch is not installed).

Cases are drawn inside PyTorch's domain: padding <= kernel_size // 2 per axis
(symmetric), dilation only for max pooling, no divisor_override for 1-D
average pooling, and for 3-D average pooling every spatial size at least the
kernel size (torch's avg_pool3d rejects smaller inputs even when padding would
make the window fit).

Where the SPEC deliberately differs from torch, the comparison is relaxed:

* a window holding NaN: both must give NaN, but SPEC's index is the first NaN
  while torch may point at another one, so that index is not compared;
* a window with no in-bounds tap (only possible with dilation): SPEC says
  index -1; torch leaves an arbitrary index, so that index is not compared
  (the value, -inf, is).
"""

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import ref_avg_pool, ref_pooled_shape  # noqa: E402
from strategies import examples  # noqa: E402

import pypool  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])
MAX_FN = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_FN = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
MAX_DIM = {1: 10, 2: 7, 3: 5}


@st.composite
def torch_cases(draw, op):
    nd = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, MAX_DIM[nd])) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * nd)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    if op == "max" and draw(st.booleans()):
        dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    else:
        dilation = (1,) * nd
    ceil_mode = draw(st.booleans())
    if op == "avg" and nd == 3:
        assume(all(L >= k for L, k in zip(spatial, kernel)))
    N = draw(st.integers(1, 2))
    C = draw(st.integers(1, 3))
    shape = (N, C) + spatial
    out_shape = ref_pooled_shape(shape, kernel, stride, padding, dilation, ceil_mode)
    assume(min(out_shape[2:]) >= 1)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    with_nan = draw(st.integers(0, 4)) == 0
    values = st.floats(-100, 100, width=32)
    if draw(st.booleans()):
        values = st.integers(-3, 3).map(float)  # ties
    if with_nan:
        values = st.one_of(values, st.sampled_from([np.nan, np.inf, -np.inf]))
    x = draw(hnp.arrays(np.float64, shape, elements=values)).astype(dtype)
    layout = draw(st.sampled_from(["channels_first", "channels_last"]))
    return dict(nd=nd, x=x, kernel=kernel, stride=stride, padding=padding,
                dilation=dilation, ceil_mode=ceil_mode, layout=layout,
                out_shape=out_shape)


def _run_pypool(fn, case, **kw):
    """Call pypool in the case's layout and return channels_first results."""
    x = case["x"]
    if case["layout"] == "channels_last":
        x = np.moveaxis(x, 1, -1)  # (N, *spatial, C), a non-contiguous view
    res = fn(x, case["kernel"], case["stride"], case["padding"], layout=case["layout"], **kw)
    if case["layout"] == "channels_last":
        if isinstance(res, tuple):
            return tuple(np.moveaxis(r, -1, 1) for r in res)
        return np.moveaxis(res, -1, 1)
    return res


@settings(max_examples=examples(400), **SETTINGS)
@given(case=torch_cases("max"))
def test_max_pool_matches_torch(case):
    tv, ti = MAX_FN[case["nd"]](
        torch.from_numpy(case["x"].copy()), case["kernel"], case["stride"] or case["kernel"],
        case["padding"], case["dilation"], ceil_mode=case["ceil_mode"], return_indices=True)
    tv, ti = tv.numpy(), ti.numpy()
    values, indices = _run_pypool(pypool.max_pool, case, dilation=case["dilation"],
                                  ceil_mode=case["ceil_mode"], return_indices=True)
    assert values.shape == tv.shape
    assert values.dtype == tv.dtype
    np.testing.assert_array_equal(values, tv)
    assert indices.dtype == np.int64
    compare = ~np.isnan(values) & (indices != -1)
    np.testing.assert_array_equal(indices[compare], ti[compare])
    # a -1 index only for a window with no in-bounds tap, whose value is -inf
    assert np.all(values[indices == -1] == -np.inf)


@settings(max_examples=examples(400), **SETTINGS)
@given(case=torch_cases("avg"), count_include_pad=st.booleans(),
       divisor_override=st.one_of(st.none(), st.integers(1, 9)))
def test_avg_pool_matches_torch(case, count_include_pad, divisor_override):
    if case["nd"] == 1:
        divisor_override = None  # avg_pool1d has no divisor_override
    kw = dict(ceil_mode=case["ceil_mode"], count_include_pad=count_include_pad)
    if case["nd"] > 1:
        kw["divisor_override"] = divisor_override
    tv = AVG_FN[case["nd"]](torch.from_numpy(case["x"].copy()), case["kernel"],
                            case["stride"] or case["kernel"], case["padding"], **kw).numpy()
    got = _run_pypool(pypool.avg_pool, case, ceil_mode=case["ceil_mode"],
                      count_include_pad=count_include_pad, divisor_override=divisor_override)
    assert got.shape == tv.shape
    assert got.dtype == tv.dtype
    # torch sums float32 in float32, pypool in float64: bound the difference by
    # (taps * eps) times the mean of |x| over the window
    x = case["x"]
    eps = np.finfo(x.dtype).eps
    scale = ref_avg_pool(np.abs(x.astype(np.float64)), case["kernel"], case["stride"],
                         case["padding"], None, case["ceil_mode"], count_include_pad,
                         divisor_override, keep_float64=True)
    bound = 4 * eps * (np.prod(case["kernel"]) + 1) * np.where(np.isfinite(scale), scale, 0)
    both_nan = np.isnan(got) & np.isnan(tv)
    with np.errstate(invalid="ignore"):
        close = (got == tv) | (np.abs(got.astype(np.float64) - tv.astype(np.float64)) <= bound)
    assert np.all(both_nan | close), (got, tv)


@settings(max_examples=examples(150), **SETTINGS)
@given(nd=st.integers(1, 3), data=st.data())
def test_global_pools_match_torch(nd, data):
    spatial = tuple(data.draw(st.integers(1, MAX_DIM[nd])) for _ in range(nd))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))) + spatial
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x = data.draw(hnp.arrays(np.float64, shape,
                             elements=st.integers(-3, 3).map(float))).astype(dtype)
    layout = data.draw(st.sampled_from(["channels_first", "channels_last"]))
    xin = x if layout == "channels_first" else np.moveaxis(x, 1, -1)
    t = torch.from_numpy(x.copy())
    spatial_dims = tuple(range(2, 2 + nd))
    np.testing.assert_allclose(pypool.global_avg_pool(xin, layout=layout),
                               t.mean(dim=spatial_dims).numpy(),
                               rtol=1e-6 if dtype == np.float32 else 1e-13)
    tv, ti = [F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d][nd - 1](
        t, 1, return_indices=True)
    v, i = pypool.global_max_pool(xin, layout=layout, keepdims=True, return_indices=True)
    if layout == "channels_last":
        v, i = np.moveaxis(v, -1, 1), np.moveaxis(i, -1, 1)
    np.testing.assert_array_equal(v, tv.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
