"""Differential tests of pypool's newer ops against PyTorch (CPU).

Skipped when torch is not installed.  Forward values and indices are
compared with torch's functional ops, backward ops with torch autograd.  Both
layouts: torch always sees (N, C, *spatial); for channels_last pypool gets
the same data moved to (N, *spatial, C) and its results are moved back.

Where the SPEC and torch knowingly differ, the inputs stay out of the
difference (see the notes at each test):

* lp_pool: torch raises x to the power p (not |x|), has no padding or
  dilation, and rescales ceil_mode windows that overhang the input by
  kernel_numel / in-bounds count.  Inputs are non-negative (or p is even /
  inf), and only windows fully inside the input are compared.
* max pooling with several NaNs in a window: torch points at the last NaN,
  the SPEC at the first.  No NaN here.
* max_pool windows with no in-bounds tap (dilation): the SPEC gives -inf with
  index -1, torch gives an arbitrary index.  Such geometries are skipped.
* max_unpool with duplicate indices: the SPEC (and single-threaded torch) keep
  the last element; torch 2.13 splits a single plane across threads, which
  makes the winner racy.  torch runs single-threaded here.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import pypool  # noqa: E402
from strategies import examples  # noqa: E402

LAYOUTS = ("channels_first", "channels_last")
DTYPES = (np.float32, np.float64)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.filter_too_much])
MAX_EXTENT = {1: 9, 2: 7, 3: 5}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def to_layout(a, layout):
    """(N, C, *S) -> the layout pypool is called with."""
    a = np.asarray(a)
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)) if layout == "channels_last" else a


def from_layout(a, layout):
    a = np.asarray(a)
    return np.moveaxis(a, -1, 1) if layout == "channels_last" else a


def torch_sizes(sizes, spatial):
    """torch's 1-D adaptive ops reject None: spell out 'keep this axis'."""
    return tuple(L if o is None else o for o, L in zip(sizes, spatial))


def tol(dtype):
    if np.dtype(dtype) == np.float32:
        return dict(rtol=2e-5, atol=2e-6)
    return dict(rtol=1e-12, atol=1e-13)


@st.composite
def cases(draw, max_nd=3, min_extent=1):
    nd = draw(st.integers(1, max_nd))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(min_extent, MAX_EXTENT[nd]), min_size=nd,
                                  max_size=nd)))
    return dict(nd=nd, shape=(N, C) + spatial, spatial=spatial,
                layout=draw(st.sampled_from(LAYOUTS)), dtype=draw(st.sampled_from(DTYPES)),
                seed=draw(st.integers(0, 2**32 - 1)))


def random_input(c, ties=False, positive=False):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal(c["shape"])
    if ties:
        x = np.round(2 * x) / 2
    if positive:
        x = np.abs(x) + 0.125
    return x.astype(c["dtype"]), rng


@st.composite
def torch_windows(draw, nd, dilation=True):
    """Window parameters torch accepts: symmetric pads <= kernel // 2."""
    kernel = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dil = (tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
           if dilation else (1,) * nd)
    return kernel, stride, pad, dil, draw(st.booleans())


def torch_call(fn, *args, **kwargs):
    """Call a torch op; reject the example when torch refuses the geometry.

    torch's 3-D pooling wants the unpadded input at least as large as the
    kernel, which the SPEC does not ask.
    """
    try:
        return fn(*args, **kwargs)
    except RuntimeError as e:
        if "smaller than kernel size" in str(e):
            assume(False)
        raise


def _out_ok(spatial, kernel, stride, pad, dil, ceil_mode):
    try:
        pypool.pooled_shape((1, 1) + tuple(spatial), kernel, stride, pad, dil, ceil_mode)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# adaptive pooling
# ---------------------------------------------------------------------------

@settings(max_examples=examples(80), **SETTINGS)
@given(c=cases(), data=st.data())
def test_adaptive_avg_pool_vs_torch(c, data):
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    sizes = tuple(data.draw(st.one_of(st.none(), st.integers(1, L + 3))) for L in c["spatial"])
    x, rng = random_input(c)
    xt = torch.tensor(x, requires_grad=True)
    yt = getattr(F, "adaptive_avg_pool%dd" % nd)(xt, torch_sizes(sizes, c["spatial"]))
    alias = getattr(pypool, "adaptive_avg_pool%dd" % nd)
    y = alias(to_layout(x, layout), sizes, layout=layout)
    assert y.dtype == dtype
    np.testing.assert_allclose(from_layout(y, layout), yt.detach().numpy(), **tol(dtype))
    g = rng.standard_normal(yt.shape).astype(dtype)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = pypool.adaptive_avg_pool_backward(to_layout(g, layout), to_layout(x, layout).shape,
                                           ndim=nd, layout=layout)
    assert gx.dtype == dtype
    np.testing.assert_allclose(from_layout(gx, layout), gt.numpy(), **tol(dtype))


@settings(max_examples=examples(80), **SETTINGS)
@given(c=cases(), data=st.data(), ties=st.booleans())
def test_adaptive_max_pool_vs_torch(c, data, ties):
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    sizes = tuple(data.draw(st.one_of(st.none(), st.integers(1, L + 3))) for L in c["spatial"])
    x, rng = random_input(c, ties=ties)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = getattr(F, "adaptive_max_pool%dd" % nd)(xt, torch_sizes(sizes, c["spatial"]),
                                                     return_indices=True)
    y, i = getattr(pypool, "adaptive_max_pool%dd" % nd)(to_layout(x, layout), sizes,
                                                        layout=layout, return_indices=True)
    assert y.dtype == dtype and i.dtype == np.int64
    np.testing.assert_array_equal(from_layout(y, layout), yt.detach().numpy())
    np.testing.assert_array_equal(from_layout(i, layout), it.numpy())
    g = rng.standard_normal(yt.shape).astype(dtype)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = pypool.max_pool_backward(to_layout(g, layout), i, to_layout(x, layout).shape,
                                  ndim=nd, layout=layout)
    assert gx.dtype == dtype
    np.testing.assert_allclose(from_layout(gx, layout), gt.numpy(), **tol(dtype))


@settings(max_examples=examples(40), **SETTINGS)
@given(c=cases())
def test_global_pooling_vs_torch(c):
    """global_max_pool indices / global backward ops against adaptive pooling to size 1."""
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    x, rng = random_input(c)
    xt = torch.tensor(x, requires_grad=True)
    ones = (1,) * nd
    yt, it = getattr(F, "adaptive_max_pool%dd" % nd)(xt, ones, return_indices=True)
    xl = to_layout(x, layout)
    y, i = pypool.global_max_pool(xl, layout=layout, keepdims=True, return_indices=True)
    np.testing.assert_array_equal(from_layout(i, layout), it.numpy())
    g = rng.standard_normal(yt.shape).astype(dtype)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = pypool.max_pool_backward(to_layout(g, layout), i, xl.shape, layout=layout)
    np.testing.assert_allclose(from_layout(gx, layout), gt.numpy(), **tol(dtype))
    at = xt.mean(dim=tuple(range(2, 2 + nd)))
    (ga,) = torch.autograd.grad(at, xt, torch.tensor(g.reshape(at.shape)))
    gx = pypool.global_avg_pool_backward(g.reshape(at.shape), xl.shape, layout=layout)
    assert gx.dtype == dtype
    np.testing.assert_allclose(from_layout(gx, layout), ga.numpy(), **tol(dtype))


# ---------------------------------------------------------------------------
# Lp pooling
# ---------------------------------------------------------------------------

def _full_window_mask(out_spatial, spatial, kernel, stride):
    """True where the window lies inside the input (torch and the SPEC agree there)."""
    mask = np.ones(out_spatial, dtype=bool)
    for axis, (o, L, k, s) in enumerate(zip(out_spatial, spatial, kernel, stride)):
        inside = np.arange(o) * s + k <= L
        shape = [1] * len(out_spatial)
        shape[axis] = o
        mask &= inside.reshape(shape)
    return mask


@settings(max_examples=examples(120), **SETTINGS)
@given(c=cases(max_nd=2), data=st.data(),
       p=st.sampled_from([1, 2, 3, math.inf]), signed=st.booleans())
def test_lp_pool_vs_torch(c, data, p, signed):
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    kernel = tuple(data.draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    stride = tuple(data.draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    ceil_mode = data.draw(st.booleans())
    assume(_out_ok(c["spatial"], kernel, stride, 0, 1, ceil_mode))
    # torch computes x**p: negative inputs only where p is even or inf
    x, rng = random_input(c, positive=not (signed and p in (2, math.inf)))
    xt = torch.tensor(x, requires_grad=True)
    targs = (kernel[0], stride[0]) if nd == 1 else (kernel, stride)
    yt = getattr(F, "lp_pool%dd" % nd)(xt, p, *targs, ceil_mode=ceil_mode)
    alias = getattr(pypool, "lp_pool%dd" % nd)
    y = alias(to_layout(x, layout), p, kernel, stride, ceil_mode=ceil_mode, layout=layout)
    assert y.dtype == dtype
    y = from_layout(y, layout)
    assert y.shape == tuple(yt.shape)
    mask = _full_window_mask(y.shape[2:], c["spatial"], kernel, stride)
    if math.isinf(p):
        mask[...] = True  # torch's inf path is max_pool(|x|): no rescaling
    np.testing.assert_allclose(y[..., mask], yt.detach().numpy()[..., mask], **tol(dtype))
    g = (rng.standard_normal(yt.shape) * mask).astype(dtype)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = pypool.lp_pool_backward(to_layout(g, layout), to_layout(x, layout), p, kernel, stride,
                                 ceil_mode=ceil_mode, layout=layout)
    assert gx.dtype == dtype
    t = tol(dtype)
    if dtype == np.float32:
        t = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(from_layout(gx, layout), gt.numpy(), **t)


# ---------------------------------------------------------------------------
# max_unpool
# ---------------------------------------------------------------------------

@settings(max_examples=examples(100), **SETTINGS)
@given(c=cases(), data=st.data(), source=st.sampled_from(["pool", "random"]))
def test_max_unpool_vs_torch(c, data, source):
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    kernel, stride, pad, _, ceil_mode = data.draw(torch_windows(nd, dilation=False))
    assume(_out_ok(c["spatial"], kernel, stride, pad, 1, ceil_mode))
    x, rng = random_input(c)
    y, it = torch_call(getattr(F, "max_pool%dd" % nd), torch.tensor(x), kernel, stride, pad,
                       ceil_mode=ceil_mode, return_indices=True)
    in_spatial = tuple(y.shape[2:])
    default = tuple((L - 1) * s - 2 * p_ + k for L, s, p_, k in zip(in_spatial, stride, pad,
                                                                      kernel))
    assume(min(default) >= 1)
    choice = data.draw(st.sampled_from(["default", "input", "near"]))
    if choice == "input":
        output_size = c["spatial"]  # where the pooled indices come from
        assume(all(abs(o - d) < s for o, d, s in zip(output_size, default, stride)))
    elif choice == "near":
        output_size = tuple(max(1, d + data.draw(st.integers(-s + 1, s - 1)))
                            for d, s in zip(default, stride))
    else:
        output_size = None
    outs = default if output_size is None else output_size
    if source == "random" or choice == "near":
        top = data.draw(st.sampled_from([math.prod(outs) - 1, min(3, math.prod(outs) - 1)]))
        idx = rng.integers(0, top + 1, size=tuple(y.shape))  # duplicates: the last one wins
    else:
        idx = it.numpy()
        assume(idx.max(initial=0) < math.prod(outs))
    vals = rng.standard_normal(tuple(y.shape)).astype(dtype)
    ut = getattr(F, "max_unpool%dd" % nd)(torch.tensor(vals), torch.tensor(idx), kernel, stride,
                                          pad, output_size=output_size)
    alias = getattr(pypool, "max_unpool%dd" % nd)
    if output_size is not None and data.draw(st.booleans()):
        shape = to_layout(np.empty((vals.shape[:2]) + tuple(output_size)), layout).shape
        output_size = shape  # the full output shape is accepted too
    u = alias(to_layout(vals, layout), to_layout(idx, layout), kernel, stride, pad,
              output_size=output_size, layout=layout)
    assert u.dtype == dtype
    np.testing.assert_array_equal(from_layout(u, layout), ut.numpy())


# ---------------------------------------------------------------------------
# avg_pool / max_pool backward
# ---------------------------------------------------------------------------

@settings(max_examples=examples(120), **SETTINGS)
@given(c=cases(), data=st.data(), cip=st.booleans())
def test_avg_pool_backward_vs_torch(c, data, cip):
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    kernel, stride, pad, _, ceil_mode = data.draw(torch_windows(nd, dilation=False))
    assume(_out_ok(c["spatial"], kernel, stride, pad, 1, ceil_mode))
    dov = data.draw(st.one_of(st.none(), st.integers(1, 6))) if nd > 1 else None
    x, rng = random_input(c)
    xt = torch.tensor(x, requires_grad=True)
    kw = {"divisor_override": dov} if nd > 1 else {}
    yt = torch_call(getattr(F, "avg_pool%dd" % nd), xt, kernel, stride, pad, ceil_mode, cip, **kw)
    xl = to_layout(x, layout)
    y = pypool.avg_pool(xl, kernel, stride, pad, 1, ceil_mode, cip, dov, layout=layout)
    np.testing.assert_allclose(from_layout(y, layout), yt.detach().numpy(), **tol(dtype))
    g = rng.standard_normal(yt.shape).astype(dtype)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = pypool.avg_pool_backward(to_layout(g, layout), xl.shape, kernel, stride, pad, 1,
                                  ceil_mode, cip, dov, layout=layout)
    assert gx.dtype == dtype
    np.testing.assert_allclose(from_layout(gx, layout), gt.numpy(), **tol(dtype))


@settings(max_examples=examples(120), **SETTINGS)
@given(c=cases(), data=st.data(), ties=st.booleans())
def test_max_pool_backward_vs_torch(c, data, ties):
    nd, layout, dtype = c["nd"], c["layout"], c["dtype"]
    kernel, stride, pad, dil, ceil_mode = data.draw(torch_windows(nd))
    assume(_out_ok(c["spatial"], kernel, stride, pad, dil, ceil_mode))
    x, rng = random_input(c, ties=ties)
    xl = to_layout(x, layout)
    y, i = pypool.max_pool(xl, kernel, stride, pad, dil, ceil_mode, layout=layout,
                           return_indices=True)
    # a window with no in-bounds tap: index -1 here, an arbitrary index in torch
    assume(i.min(initial=0) >= 0)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch_call(getattr(F, "max_pool%dd" % nd), xt, kernel, stride, pad, dil, ceil_mode,
                        return_indices=True)
    np.testing.assert_array_equal(from_layout(y, layout), yt.detach().numpy())
    np.testing.assert_array_equal(from_layout(i, layout), it.numpy())
    g = rng.standard_normal(yt.shape).astype(dtype)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = pypool.max_pool_backward(to_layout(g, layout), i, xl.shape, ndim=nd, layout=layout)
    assert gx.dtype == dtype
    np.testing.assert_allclose(from_layout(gx, layout), gt.numpy(), **tol(dtype))


# ---------------------------------------------------------------------------
# the NumPy oracle of test_ops_reference.py agrees with torch too
# ---------------------------------------------------------------------------

@settings(max_examples=examples(60), **SETTINGS)
@given(c=cases(), data=st.data())
def test_oracle_matches_torch(c, data):
    """reference_ops against torch in float64, where both define the op."""
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
    import reference_ops as R

    nd, layout = c["nd"], c["layout"]
    c = dict(c, dtype=np.float64)
    x, rng = random_input(c, ties=data.draw(st.booleans()))
    xt = torch.tensor(x, requires_grad=True)
    xl = to_layout(x, layout)
    sizes = tuple(data.draw(st.integers(1, L + 3)) for L in c["spatial"])
    # adaptive average / max, forward and backward
    yt = getattr(F, "adaptive_avg_pool%dd" % nd)(xt, sizes)
    np.testing.assert_allclose(from_layout(R.ref_adaptive_avg_pool(xl, sizes, layout), layout),
                               yt.detach().numpy(), rtol=1e-13, atol=1e-15)
    g = rng.standard_normal(yt.shape)
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    np.testing.assert_allclose(
        from_layout(R.ref_adaptive_avg_pool_backward(to_layout(g, layout), xl.shape, nd, layout),
                    layout), gt.numpy(), rtol=1e-12, atol=1e-14)
    yt, it = getattr(F, "adaptive_max_pool%dd" % nd)(xt, sizes, return_indices=True)
    rv, ri = R.ref_adaptive_max_pool(xl, sizes, layout)
    np.testing.assert_array_equal(from_layout(rv, layout), yt.detach().numpy())
    np.testing.assert_array_equal(from_layout(ri, layout), it.numpy())
    (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    np.testing.assert_allclose(
        from_layout(R.ref_max_pool_backward(to_layout(g, layout), ri, xl.shape, nd, layout),
                    layout), gt.numpy(), rtol=1e-12, atol=1e-14)
    # avg_pool backward
    kernel, stride, pad, _, ceil_mode = data.draw(torch_windows(nd, dilation=False))
    if _out_ok(c["spatial"], kernel, stride, pad, 1, ceil_mode):
        cip = data.draw(st.booleans())
        dov = data.draw(st.one_of(st.none(), st.integers(1, 5))) if nd > 1 else None
        kw = {"divisor_override": dov} if nd > 1 else {}
        yt = torch_call(getattr(F, "avg_pool%dd" % nd), xt, kernel, stride, pad, ceil_mode, cip,
                        **kw)
        g = rng.standard_normal(yt.shape)
        (gt,) = torch.autograd.grad(yt, xt, torch.tensor(g))
        ref = R.ref_avg_pool_backward(to_layout(g, layout), xl.shape, kernel, stride, pad, 1,
                                      ceil_mode, cip, dov, layout)
        np.testing.assert_allclose(from_layout(ref, layout), gt.numpy(), rtol=1e-12, atol=1e-14)
        # max_unpool of torch's own pooling indices, default output size
        y, it = torch_call(getattr(F, "max_pool%dd" % nd), torch.tensor(x), kernel, stride, pad,
                           ceil_mode=ceil_mode, return_indices=True)
        default = R.unpool_default_size(tuple(y.shape[2:]), kernel, stride,
                                        [(p_, p_) for p_ in pad])
        if min(default) >= 1:
            idx = rng.integers(0, min(3, math.prod(default) - 1) + 1, size=tuple(y.shape))
            ut = getattr(F, "max_unpool%dd" % nd)(y, torch.tensor(idx), kernel, stride, pad)
            ref = R.ref_max_unpool(to_layout(y.numpy(), layout), to_layout(idx, layout), kernel,
                                   stride, pad, None, layout)
            np.testing.assert_array_equal(from_layout(ref, layout), ut.numpy())
    # lp pooling (non-negative input, no padding), full windows only
    if nd <= 2:
        p = data.draw(st.sampled_from([1, 2, 3, 1.5, math.inf]))
        xa = np.abs(x) + 0.125
        xat = torch.tensor(xa, requires_grad=True)
        if _out_ok(c["spatial"], kernel, stride, 0, 1, ceil_mode):
            targs = (kernel[0], stride[0]) if nd == 1 else (kernel, stride)
            yt = getattr(F, "lp_pool%dd" % nd)(xat, p, *targs, ceil_mode=ceil_mode)
            ref = R.ref_lp_pool(xa, p, kernel, stride, 0, 1, ceil_mode)
            mask = _full_window_mask(ref.shape[2:], c["spatial"], kernel, stride)
            np.testing.assert_allclose(ref[..., mask], yt.detach().numpy()[..., mask],
                                       rtol=1e-12)
            g = rng.standard_normal(yt.shape) * mask
            (gt,) = torch.autograd.grad(yt, xat, torch.tensor(g))
            np.testing.assert_allclose(R.ref_lp_pool_backward(g, xa, p, kernel, stride, 0, 1,
                                                              ceil_mode),
                                       gt.numpy(), rtol=1e-10, atol=1e-12)
