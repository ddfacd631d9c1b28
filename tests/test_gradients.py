"""Backward ops against calculus, independently of any oracle.

1. Every backward op is compared with central finite differences of its
   forward op in float64: for a random cotangent g and the scalar
   L(x) = <forward(x), g>, dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h.
   Inputs avoid the kinks of the piecewise ops: values are distinct (max,
   and |x| distinct for Lp with p = inf) and nonzero (Lp), with gaps far
   larger than h.
2. The linear ops (avg_pool, adaptive_avg_pool, global_avg_pool) must be the
   exact adjoints of their backward ops: <op(x), g> == <x, op_backward(g)>
   to 1e-12 relative, for every parameter combination.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pypool
from strategies import examples, paddings

LAYOUTS = ("channels_first", "channels_last")
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.filter_too_much])
MAX_EXTENT = {1: 7, 2: 5, 3: 3}
H = 1e-4


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

@st.composite
def layouts_and_shapes(draw, global_op=False):
    """(nd, layout, shape, spatial, lead_part, channel_part)."""
    nd = draw(st.integers(1, 3))
    layout = draw(st.sampled_from(LAYOUTS))
    spatial = tuple(draw(st.lists(st.integers(1, MAX_EXTENT[nd]), min_size=nd, max_size=nd)))
    if global_op:
        N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        lead = (N, C) if layout == "channels_first" else (N,)
        tail = () if layout == "channels_first" else (C,)
    else:
        lead = tuple(draw(st.lists(st.integers(1, 2), min_size=0, max_size=2)))
        tail = () if layout == "channels_first" else (draw(st.integers(1, 2)),)
    return nd, layout, lead + spatial + tail, spatial, lead, tail


@st.composite
def window_params(draw, nd, dilation=True, same=True):
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    dil = (tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)))
           if dilation and draw(st.booleans()) else (1,) * nd)
    stride = draw(st.one_of(st.none(), st.lists(st.integers(1, 3), min_size=nd,
                                                   max_size=nd).map(tuple)))
    ext = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    padding = draw(paddings(ext, same))
    return dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dil,
                ceil_mode=draw(st.booleans()))


def distinct_values(rng, shape, nonzero=False):
    """Distinct float64 values with gaps >= 0.1 (distinct magnitudes if nonzero)."""
    n = int(np.prod(shape))
    mags = (rng.permutation(n) + 1.0) * 0.1 + rng.uniform(0, 0.01)
    if nonzero:
        signs = rng.choice([-1.0, 1.0], size=n)
        return (mags * signs).reshape(shape)
    return (mags - mags.mean()).reshape(shape)


def finite_difference(forward, x, g):
    """Gradient of <forward(x), g> w.r.t. x by central differences."""

    def loss(v):
        y = np.asarray(forward(v), dtype=np.float64)
        return float(np.sum(np.where(np.isfinite(y), y * g, 0.0)))

    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp = x.copy()
        xp[i] += H
        xm = x.copy()
        xm[i] -= H
        grad[i] = (loss(xp) - loss(xm)) / (2 * H)
    return grad


def assert_grad(got, expected, rtol=1e-6, atol=1e-6):
    assert got.dtype == np.float64
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def assert_adjoint(lhs, rhs, scale):
    """|lhs - rhs| <= 1e-12 * max(|lhs|, scale) (scale: sum of |terms|)."""
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), abs(rhs), scale), (lhs, rhs, scale)


def _geometry_ok(shape, params, layout):
    try:
        pypool.pooled_shape(shape, layout=layout, **params)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# finite differences
# ---------------------------------------------------------------------------

@settings(max_examples=examples(80), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_max_pool_backward_fd(data, seed):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    params = data.draw(window_params(nd))
    assume(_geometry_ok(shape, params, layout))
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, shape)
    y, idx = pypool.max_pool(x, layout=layout, return_indices=True, **params)
    g = rng.standard_normal(y.shape)
    got = pypool.max_pool_backward(g, idx, x.shape, ndim=nd, layout=layout)
    fd = finite_difference(lambda v: pypool.max_pool(v, layout=layout, **params), x, g)
    assert_grad(got, fd)


@settings(max_examples=examples(80), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_adaptive_max_pool_backward_fd(data, seed):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    sizes = tuple(data.draw(st.one_of(st.none(), st.integers(1, L + 2))) for L in spatial)
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, shape)
    y, idx = pypool.adaptive_max_pool(x, sizes, layout=layout, return_indices=True)
    g = rng.standard_normal(y.shape)
    got = pypool.max_pool_backward(g, idx, x.shape, ndim=nd, layout=layout)
    fd = finite_difference(lambda v: pypool.adaptive_max_pool(v, sizes, layout=layout), x, g)
    assert_grad(got, fd)


@settings(max_examples=examples(50), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_global_max_pool_backward_fd(data, seed):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes(global_op=True))
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, shape)
    y, idx = pypool.global_max_pool(x, layout=layout, keepdims=True, return_indices=True)
    g = rng.standard_normal(y.shape)
    got = pypool.max_pool_backward(g, idx, x.shape, layout=layout)
    fd = finite_difference(lambda v: pypool.global_max_pool(v, layout=layout, keepdims=True),
                           x, g)
    assert_grad(got, fd)


@settings(max_examples=examples(80), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_avg_pool_backward_fd(data, seed):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    params = data.draw(window_params(nd))
    assume(_geometry_ok(shape, params, layout))
    cip = data.draw(st.booleans())
    dov = data.draw(st.one_of(st.none(), st.integers(1, 5)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = pypool.avg_pool(x, count_include_pad=cip, divisor_override=dov, layout=layout, **params)
    g = rng.standard_normal(y.shape)
    got = pypool.avg_pool_backward(g, x.shape, count_include_pad=cip, divisor_override=dov,
                                   layout=layout, **params)
    fd = finite_difference(lambda v: pypool.avg_pool(v, count_include_pad=cip,
                                                      divisor_override=dov, layout=layout,
                                                      **params), x, g)
    assert_grad(got, fd)


@settings(max_examples=examples(120), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1),
       p=st.sampled_from([0.5, 1, 1.5, 2, 3, 4.5, math.inf]))
def test_lp_pool_backward_fd(data, seed, p):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    params = data.draw(window_params(nd))
    assume(_geometry_ok(shape, params, layout))
    rng = np.random.default_rng(seed)
    x = distinct_values(rng, shape, nonzero=True)
    y = pypool.lp_pool(x, p, layout=layout, **params)
    g = rng.standard_normal(y.shape)
    got = pypool.lp_pool_backward(g, x, p, layout=layout, **params)
    fd = finite_difference(lambda v: pypool.lp_pool(v, p, layout=layout, **params), x, g)
    assert_grad(got, fd, rtol=1e-5, atol=1e-5)


@settings(max_examples=examples(60), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_global_avg_pool_backward_fd(data, seed):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes(global_op=True))
    keepdims = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = pypool.global_avg_pool(x, layout=layout, keepdims=keepdims)
    g = rng.standard_normal(y.shape)
    got = pypool.global_avg_pool_backward(g, x.shape, layout=layout)
    fd = finite_difference(lambda v: pypool.global_avg_pool(v, layout=layout, keepdims=keepdims),
                           x, g)
    assert_grad(got, fd)


@settings(max_examples=examples(80), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_adaptive_avg_pool_backward_fd(data, seed):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    sizes = tuple(data.draw(st.one_of(st.none(), st.integers(1, L + 2))) for L in spatial)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    y = pypool.adaptive_avg_pool(x, sizes, layout=layout)
    g = rng.standard_normal(y.shape)
    got = pypool.adaptive_avg_pool_backward(g, x.shape, ndim=nd, layout=layout)
    fd = finite_difference(lambda v: pypool.adaptive_avg_pool(v, sizes, layout=layout), x, g)
    assert_grad(got, fd)


# ---------------------------------------------------------------------------
# adjoint identities
# ---------------------------------------------------------------------------

def _operands(rng, shape, out_shape, positive):
    if positive:
        return rng.uniform(0.5, 2.0, shape), rng.uniform(0.5, 2.0, out_shape)
    return rng.standard_normal(shape), rng.standard_normal(out_shape)


def _check_adjoint(y, x, g, gx):
    """<y, g> vs <x, gx>; windows with no in-bounds tap (NaN averages) are left out."""
    mask = np.isfinite(y)
    lhs = float(np.sum(np.where(mask, y, 0.0) * g))
    rhs = float(np.sum(x * gx))
    scale = float(np.sum(np.abs(np.where(mask, y, 0.0) * g)))
    if np.all(x > 0) and np.all(g > 0):
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=0)
    assert_adjoint(lhs, rhs, scale)


@settings(max_examples=examples(300), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), positive=st.booleans())
def test_avg_pool_adjoint(data, seed, positive):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    params = data.draw(window_params(nd))
    assume(_geometry_ok(shape, params, layout))
    cip = data.draw(st.booleans())
    dov = data.draw(st.one_of(st.none(), st.none(), st.integers(1, 7)))
    rng = np.random.default_rng(seed)
    out_shape = pypool.pooled_shape(shape, layout=layout, **params)
    x, g = _operands(rng, shape, out_shape, positive)
    y = pypool.avg_pool(x, count_include_pad=cip, divisor_override=dov, layout=layout, **params)
    gx = pypool.avg_pool_backward(g, shape, count_include_pad=cip, divisor_override=dov,
                                  layout=layout, **params)
    assert gx.shape == shape and gx.dtype == np.float64
    _check_adjoint(y, x, g, gx)


@settings(max_examples=examples(160), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), positive=st.booleans())
def test_adaptive_avg_pool_adjoint(data, seed, positive):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes())
    sizes = tuple(data.draw(st.one_of(st.none(), st.integers(1, L + 3))) for L in spatial)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
    y = pypool.adaptive_avg_pool(x, sizes, layout=layout)
    g = rng.uniform(0.5, 2.0, y.shape) if positive else rng.standard_normal(y.shape)
    gx = pypool.adaptive_avg_pool_backward(g, shape, ndim=nd, layout=layout)
    assert gx.shape == shape and gx.dtype == np.float64
    _check_adjoint(y, x, g, gx)


@settings(max_examples=examples(80), **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), positive=st.booleans())
def test_global_avg_pool_adjoint(data, seed, positive):
    nd, layout, shape, spatial, _, _ = data.draw(layouts_and_shapes(global_op=True))
    keepdims = data.draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, shape) if positive else rng.standard_normal(shape)
    y = pypool.global_avg_pool(x, layout=layout, keepdims=keepdims)
    g = rng.uniform(0.5, 2.0, y.shape) if positive else rng.standard_normal(y.shape)
    gx = pypool.global_avg_pool_backward(g, shape, layout=layout)
    assert gx.shape == shape and gx.dtype == np.float64
    _check_adjoint(y, x, g, gx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 1])
def test_max_backward_of_a_large_gradient(dtype, offset):
    # Above 16 MB the gradient is written with streaming stores: rows of 258
    # elements, and an output shifted by one element, exercise their unaligned
    # ends. The oracle adds in float64 in the same (row-major) order.
    rng = np.random.default_rng(11)
    shape = (4, 32, 130, 258)
    planes = shape[0] * shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    _, ind = pypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(ind.shape).astype(dtype)
    buf = np.full(x.size + 1, np.nan, dtype=dtype)
    out = buf[offset:offset + x.size].reshape(shape)
    got = pypool.max_pool_backward(g, ind, shape, out=out)
    ref = np.zeros((planes, shape[2] * shape[3]))
    np.add.at(ref, (np.arange(planes)[:, None], ind.reshape(planes, -1)),
              g.reshape(planes, -1).astype(np.float64))
    assert got is out
    np.testing.assert_array_equal(got, ref.reshape(shape).astype(dtype))


@settings(max_examples=examples(200), **SETTINGS)
@given(planes=st.integers(1, 3), rows=st.integers(2, 13), cols=st.integers(2, 60),
       strided=st.booleans(), threads=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**32 - 1))
def test_float32_avg_2x2_stride_2_backward_rounds_once(planes, rows, cols, strided, threads,
                                                       seed):
    """float32 avg 2x2 s2 backward (the plane path's pairs loop): each input
    element is 0.0 + g * 0.25 in float64 rounded once to float32, bit for bit, over gradients from 2**-150 to 2**100 (so
    products underflow: -tiny * 0.25 rounds to -0.0, only a -0.0 gradient
    gives +0.0), NaN and infinities; the rows and columns no window reads
    are +0.0."""
    rng = np.random.default_rng(seed)
    oh, ow = rows // 2, cols // 2
    g = rng.standard_normal((planes, 3, oh, ow)) * 2.0 ** rng.integers(-150, 100, (planes, 3, oh, ow))
    g = g.astype(np.float32)
    special = rng.random(g.shape) < 0.05
    g[special] = rng.choice([np.nan, np.inf, -np.inf, -0.0], special.sum())
    if strided:
        holder = np.zeros((planes, 3, 2 * oh, ow + 2), np.float32)
        holder[:, :, ::2, 1:ow + 1] = g
        g = holder[:, :, ::2, 1:ow + 1]
    expected = np.zeros((planes, 3, rows, cols), np.float32)
    quarter = (0.0 + g.astype(np.float64) * 0.25).astype(np.float32)
    for a in range(2):
        for b in range(2):
            expected[:, :, a:2 * oh:2, b:2 * ow:2] = quarter
    got = pypool.avg_pool_backward(g, expected.shape, (2, 2), (2, 2), num_threads=threads)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], expected.view(np.uint32)[~nan])
