"""Fuzzing every public function: a correct result or a clean TypeError/ValueError.

Each example builds a call of one public function from random geometry,
dtypes and memory layouts (the strategies of test_ops_reference), then
either leaves it as drawn, re-spells one argument in an equivalent form
(NumPy integers, lists, 1-D arrays, NumPy bools), or replaces one argument
with a malformed value of its kind. Then:

* a malformed call must raise exactly TypeError, ValueError or MemoryError,
  with a message naming the argument;
* a drawn or re-spelled call must give the NumPy oracle's result, or raise
  ValueError exactly when the oracle finds the geometry invalid;
* inputs are never modified, and ``out=`` is left as it was on error.

The budget is bounded for CI: $PYPOOL_FUZZ_EXAMPLES examples per function
(default 120); raise it for a long bug hunt.
"""

import math
import os
import sys

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as RF  # noqa: E402
import reference_ops as R  # noqa: E402
from test_ops_reference import (AVG_DTYPES, GRAD_DTYPES, MAX_DTYPES, SETTINGS,  # noqa: E402
                                Frozen, adaptive_sizes, arrays, assert_close, assert_exact,
                                elements, full_shape, geometry_or_none, grad_elements,
                                lead_axes, shapes, windows)

import pypool  # noqa: E402

EXAMPLES = int(os.environ.get("PYPOOL_FUZZ_EXAMPLES", "120"))
CLEAN = (TypeError, ValueError, MemoryError)


class Call:
    """One call: ordered positional arguments, keywords, each argument's kind,
    and the oracle (which raises ValueError for an invalid geometry)."""

    def __init__(self, fn, positional, keywords, kinds, oracle, compare):
        self.fn, self.positional, self.keywords = fn, dict(positional), dict(keywords)
        self.order = [name for name, _ in positional]
        self.kinds, self.oracle, self.compare = kinds, oracle, compare

    def run(self):
        return self.fn(*[self.positional[n] for n in self.order], **self.keywords)

    def get(self, name):
        return self.positional[name] if name in self.positional else self.keywords.get(name)

    def set(self, name, value):
        (self.positional if name in self.positional else self.keywords)[name] = value


def _exact(got, ref):
    if isinstance(ref, tuple):
        assert isinstance(got, tuple) and len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_exact(g, r)
    else:
        assert_exact(got, ref)


def _close(dtype, bound=None):
    return lambda got, ref: assert_close(got, ref, dtype, bound=bound)


def _rank_fn(draw, name, nd):
    """The rank-generic function or its alias: (function, uses_alias)."""
    if draw(st.booleans()):
        return getattr(pypool, name), False
    return getattr(pypool, "%s%dd" % (name, nd)), True


def _max_call(draw, fn, positional, kw, kinds, values_and_indices):
    """A max-type call: return_indices drawn, the oracle's pair cut to match."""
    ri = draw(st.booleans())
    kw["return_indices"] = ri
    kinds["return_indices"] = "flag"

    def oracle():
        v, i = values_and_indices()
        return (v, i) if ri else v
    return Call(fn, positional, kw, kinds, oracle, _exact)


# ---------------------------------------------------------------- call builders

@st.composite
def _window_call(draw, op):
    nd, layout, shape, spatial = draw(shapes())
    w = draw(windows(nd, spatial, allow_dilation=op != "max_unpool"))
    dtype = draw(st.sampled_from(MAX_DTYPES if op == "max_pool" else AVG_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype, specials=op == "max_pool")))
    fn, _ = _rank_fn(draw, op, nd)
    win = [("kernel_size", w["kernel"]), ("stride", w["stride"]), ("padding", w["padding"]),
           ("dilation", w["dilation"]), ("ceil_mode", w["ceil_mode"])]
    kinds = dict(x="array", kernel_size="sizes", stride="sizes", padding="padding",
                 dilation="sizes", ceil_mode="flag", layout="layout", num_threads="threads")
    kw = dict(layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    args = (w["kernel"], w["stride"], w["padding"], w["dilation"], w["ceil_mode"])
    if op == "max_pool":
        return (_max_call(draw, fn, [("x", x)] + win, kw, kinds,
                          lambda: RF.ref_max_pool(x, *args, layout=layout)), [x, owner])
    if op == "avg_pool":
        cip = draw(st.booleans())
        dov = draw(st.one_of(st.none(), st.integers(1, 9)))
        kw.update(dtype=draw(st.sampled_from([None, np.float32, np.float64])))
        kinds.update(count_include_pad="flag", divisor_override="divisor", dtype="result_dtype")
        out_dtype = RF.avg_result_dtype(x.dtype, kw["dtype"])

        def oracle():
            if geometry_or_none(spatial, w) is None:
                raise ValueError("geometry")
            return RF.ref_avg_pool(x, *args, cip, dov, layout=layout, keep_float64=True)
        return (Call(fn, [("x", x)] + win + [("count_include_pad", cip), ("divisor_override", dov)],
                     kw, kinds, oracle, _close(out_dtype)), [x, owner])
    p = draw(st.sampled_from([1, 2, 3, 1.5, math.inf]))
    kw.update(dtype=draw(st.sampled_from([None, np.float64])))
    kinds.update(norm_type="norm", dtype="result_dtype")
    out_dtype = R.float_result_dtype(x.dtype, kw["dtype"])

    def oracle():
        return R.ref_lp_pool(x, p, *args, layout=layout, keep_float64=True)
    return (Call(fn, [("x", x), ("norm_type", p)] + win, kw, kinds, oracle, _close(out_dtype)),
            [x, owner])


@st.composite
def _global_call(draw, op):
    layout = draw(st.sampled_from(["channels_first", "channels_last"]))
    nd = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (n, c) + spatial if layout == "channels_first" else (n,) + spatial + (c,)
    dtype = draw(st.sampled_from(MAX_DTYPES if op == "global_max_pool" else AVG_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype)))
    keep = draw(st.booleans())
    kw = dict(layout=layout, keepdims=keep, num_threads=draw(st.sampled_from([None, 1, 2])))
    kinds = dict(x="array", layout="layout", keepdims="flag", num_threads="threads")
    fn = getattr(pypool, op)
    if op == "global_max_pool":
        return (_max_call(draw, fn, [("x", x)], kw, kinds,
                          lambda: RF.ref_global_max_pool(x, layout, keep)), [x, owner])
    kw["dtype"] = draw(st.sampled_from([None, np.float64]))
    kinds["dtype"] = "result_dtype"
    out_dtype = RF.avg_result_dtype(x.dtype, kw["dtype"])
    return (Call(fn, [("x", x)], kw, kinds,
                 lambda: RF.ref_global_avg_pool(x, layout, keep, np.float64), _close(out_dtype)),
            [x, owner])


@st.composite
def _adaptive_call(draw, op):
    nd, layout, shape, spatial = draw(shapes())
    sizes = draw(adaptive_sizes(spatial))
    dtype = draw(st.sampled_from(MAX_DTYPES if op == "adaptive_max_pool" else AVG_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype)))
    fn, _ = _rank_fn(draw, op, nd)
    kw = dict(layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    kinds = dict(x="array", output_size="output_size", layout="layout", num_threads="threads")
    if op == "adaptive_max_pool":
        return (_max_call(draw, fn, [("x", x), ("output_size", sizes)], kw, kinds,
                          lambda: R.ref_adaptive_max_pool(x, sizes, layout)), [x, owner])
    out_dtype = R.float_result_dtype(x.dtype, None)
    return (Call(fn, [("x", x), ("output_size", sizes)], kw, kinds,
                 lambda: R.ref_adaptive_avg_pool(x, sizes, layout, keep_float64=True),
                 _close(out_dtype)), [x, owner])


@st.composite
def _unpool_call(draw):
    nd, layout, shape, spatial = draw(shapes())
    kernel = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    stride = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    outs = R.unpool_default_size(spatial, kernel, stride, [(0, 0)] * nd)
    plane = math.prod(outs)
    dtype = draw(st.sampled_from(MAX_DTYPES))
    x, owner = draw(arrays(dtype, shape, elements(dtype)))
    idx = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, max(plane - 1, 0))))
    fn, _ = _rank_fn(draw, "max_unpool", nd)
    kw = dict(layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    kinds = dict(x="array", indices="indices", kernel_size="sizes", stride="sizes",
                 layout="layout", num_threads="threads")
    call = Call(fn, [("x", x), ("indices", idx), ("kernel_size", kernel), ("stride", stride)], kw,
                kinds, lambda: R.ref_max_unpool(x, idx, kernel, stride, 0, None, layout), _exact)
    call.plane = plane
    return call, [x, owner, idx]


@st.composite
def _backward_call(draw, op):
    nd, layout, shape, spatial = draw(shapes())
    lead = lead_axes(shape, nd, layout)
    gdtype = draw(st.sampled_from(GRAD_DTYPES))
    kw = dict(layout=layout, num_threads=draw(st.sampled_from([None, 1, 2])))
    kinds = dict(grad_output="array", input_shape="shape", layout="layout",
                 num_threads="threads")
    if op == "max_pool_backward":
        outs = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
        gshape = full_shape(lead, outs, layout, shape[-1])
        grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
        plane = math.prod(spatial)
        idx = draw(hnp.arrays(np.int64, gshape, elements=st.integers(-1, plane - 1)))
        kw["ndim"] = nd
        kinds.update(indices="indices", ndim="ndim")
        call = Call(pypool.max_pool_backward,
                    [("grad_output", grad), ("indices", idx), ("input_shape", shape)], kw, kinds,
                    lambda: R.ref_max_pool_backward(grad, idx, shape, nd, layout), _exact)
        call.plane = plane
        return call, [grad, gowner, idx]
    if op == "global_avg_pool_backward":
        n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        shape = (n, c) + spatial if layout == "channels_first" else (n,) + spatial + (c,)
        gshape = (n, c) if draw(st.booleans()) else (
            (n, c) + (1,) * nd if layout == "channels_first" else (n,) + (1,) * nd + (c,))
        grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
        ref = lambda: R.ref_global_avg_pool_backward(grad, shape, layout)  # noqa: E731
        bound = R.ref_global_avg_pool_backward(np.abs(grad.astype(np.float64)), shape, layout)
        return (Call(pypool.global_avg_pool_backward,
                     [("grad_output", grad), ("input_shape", shape)], kw, kinds, ref,
                     _close(R.float_result_dtype(grad.dtype), bound)), [grad, gowner])
    if op == "adaptive_avg_pool_backward":
        outs = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
        gshape = full_shape(lead, outs, layout, shape[-1])
        grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
        kw["ndim"] = nd
        kinds["ndim"] = "ndim"
        ref = lambda: R.ref_adaptive_avg_pool_backward(grad, shape, nd, layout,  # noqa: E731
                                                       keep_float64=True)
        bound = R.ref_adaptive_avg_pool_backward(np.abs(grad.astype(np.float64)), shape, nd,
                                                 layout, keep_float64=True)
        return (Call(pypool.adaptive_avg_pool_backward,
                     [("grad_output", grad), ("input_shape", shape)], kw, kinds, ref,
                     _close(R.float_result_dtype(grad.dtype), bound)), [grad, gowner])
    # avg_pool_backward / lp_pool_backward: a valid window, grads of its pooled shape
    w = draw(windows(nd, spatial))
    geom = geometry_or_none(spatial, w)
    outs = geom[-1] if geom is not None else (1,) * nd
    gshape = full_shape(lead, outs, layout, shape[-1])
    grad, gowner = draw(arrays(gdtype, gshape, grad_elements(gdtype)))
    args = (w["kernel"], w["stride"], w["padding"], w["dilation"], w["ceil_mode"])
    win = [("kernel_size", w["kernel"]), ("stride", w["stride"]), ("padding", w["padding"]),
           ("dilation", w["dilation"]), ("ceil_mode", w["ceil_mode"])]
    kinds.update(kernel_size="sizes", stride="sizes", padding="padding", dilation="sizes",
                 ceil_mode="flag")
    absg = np.abs(grad.astype(np.float64))
    if op == "avg_pool_backward":
        cip = draw(st.booleans())
        kinds.update(count_include_pad="flag")

        def ref():
            if geom is None:
                raise ValueError("geometry")
            return R.ref_avg_pool_backward(grad, shape, *args, cip, None, layout=layout,
                                           keep_float64=True)
        bound = (R.ref_avg_pool_backward(absg, shape, *args, cip, None, layout=layout,
                                         keep_float64=True) if geom is not None else None)
        return (Call(pypool.avg_pool_backward,
                     [("grad_output", grad), ("input_shape", shape)] + win
                     + [("count_include_pad", cip)], kw, kinds, ref,
                     _close(R.float_result_dtype(grad.dtype), bound)), [grad, gowner])
    xdtype = draw(st.sampled_from([np.float32, np.float64]))
    x, owner = draw(arrays(xdtype, shape, st.integers(-4, 4).map(float)))
    p = draw(st.sampled_from([1, 2, 3, math.inf]))
    kinds.pop("input_shape")
    kinds.update(x="array", norm_type="norm")

    def ref():
        if geom is None:
            raise ValueError("geometry")
        return R.ref_lp_pool_backward(grad, x, p, *args, layout=layout, keep_float64=True)
    bound = (R.ref_lp_pool_backward(absg, np.abs(x), p, *args, layout=layout, keep_float64=True)
             if geom is not None else None)
    return (Call(pypool.lp_pool_backward,
                 [("grad_output", grad), ("x", x), ("norm_type", p)] + win, kw, kinds, ref,
                 _close(R.float_result_dtype(x.dtype), bound)), [grad, gowner, x, owner])


@st.composite
def _shape_helper_call(draw, op):
    nd, layout, shape, spatial = draw(shapes())
    w = draw(windows(nd, spatial))
    fn = getattr(pypool, op)
    win = [("kernel_size", w["kernel"]), ("stride", w["stride"]), ("padding", w["padding"]),
           ("dilation", w["dilation"]), ("ceil_mode", w["ceil_mode"])]
    kinds = dict(input_shape="shape", kernel_size="sizes", stride="sizes", padding="padding",
                 dilation="sizes", ceil_mode="flag", layout="layout")

    def ref():
        geom = geometry_or_none(spatial, w)
        if geom is None:
            raise ValueError("geometry")
        if op == "resolve_padding":
            return tuple(tuple(p) for p in geom[3])
        return full_shape(lead_axes(shape, nd, layout), geom[4], layout, shape[-1])

    def compare(got, expected):
        assert got == expected
    return (Call(fn, [("input_shape", shape)] + win, dict(layout=layout), kinds, ref, compare),
            [])


BUILDERS = {
    "max_pool": lambda: _window_call("max_pool"),
    "avg_pool": lambda: _window_call("avg_pool"),
    "lp_pool": lambda: _window_call("lp_pool"),
    "global_avg_pool": lambda: _global_call("global_avg_pool"),
    "global_max_pool": lambda: _global_call("global_max_pool"),
    "adaptive_avg_pool": lambda: _adaptive_call("adaptive_avg_pool"),
    "adaptive_max_pool": lambda: _adaptive_call("adaptive_max_pool"),
    "max_unpool": _unpool_call,
    "max_pool_backward": lambda: _backward_call("max_pool_backward"),
    "avg_pool_backward": lambda: _backward_call("avg_pool_backward"),
    "lp_pool_backward": lambda: _backward_call("lp_pool_backward"),
    "global_avg_pool_backward": lambda: _backward_call("global_avg_pool_backward"),
    "adaptive_avg_pool_backward": lambda: _backward_call("adaptive_avg_pool_backward"),
    "pooled_shape": lambda: _shape_helper_call("pooled_shape"),
    "resolve_padding": lambda: _shape_helper_call("resolve_padding"),
}


def test_every_public_function_is_fuzzed():
    public = {n for n in pypool.__all__ if callable(getattr(pypool, n))
              and not n[-2:] in ("1d", "2d", "3d")} - {"get_include", "show_config"}
    assert public == set(BUILDERS)


# ---------------------------------------------------------------- argument variants

def _malformed(kind, value, call):
    """Values that are wrong for an argument of this kind, whatever the rest of the call."""
    if kind == "array":
        shape = np.shape(value)
        return [value.astype(np.complex128), value.astype(object), np.full(shape, "ab"),
                np.zeros(shape, "datetime64[s]"), None, np.zeros(()), [[1.0, 2.0], [3.0]]]
    if kind == "sizes":
        return [0, -1, 2.5, "2", True, 2**70, (1, 1, 1, 1), np.float64(2.0), [1.5, 2]]
    if kind == "padding":
        return [-1, "full", 2.5, True, 2**70, (0, 0, 0, 0), ((1, 2, 3),) * 3, [object()]]
    if kind == "flag":
        return [1, "yes", 1.0, np.array([True, False])]
    if kind == "layout":
        return ["NCHW", None, 1, ""]
    if kind == "threads":
        return [0, -1, 1.5, "2", True, np.float64(2.0)]
    if kind == "result_dtype":
        return [np.int32, "c8", "not-a-dtype", object, np.bool_]
    if kind == "divisor":
        return [0, -3, 1.5, "2", True]
    if kind == "norm":
        return [0, -1.0, math.nan, "2", 1j, True, -math.inf, None, 10**400]
    if kind == "output_size":
        return [0, -1, 1.5, "2", True, (1, 1, 1, 1)]
    if kind == "indices":
        idx = np.asarray(value)
        bad = [idx.astype(np.float64), idx.astype(np.complex64), idx[..., :0] if idx.shape[-1] > 0
               else idx[..., None]]
        if idx.size:
            for v in (call.plane, -2, 2**40):
                flat = idx.copy().reshape(-1)
                flat[-1] = v
                bad.append(flat.reshape(idx.shape))
        return bad
    if kind == "shape":
        return [(-1,) + tuple(value)[1:], "abc", 5, (1.5,) * len(value), None]
    if kind == "ndim":
        return [0, -1, "2", 1.5, True]
    raise AssertionError(kind)


def _respelled(kind, value):
    """Equivalent spellings of a valid value (the result must not change)."""
    if kind in ("sizes", "output_size") and isinstance(value, tuple) and None not in value:
        return [list(value), np.array(value, dtype=np.int64), tuple(np.intc(v) for v in value)]
    if kind == "sizes" and isinstance(value, int) and not isinstance(value, bool):
        return [np.int64(value), np.uint8(value)]
    if kind == "padding" and isinstance(value, tuple):
        return [list(value)]
    if kind == "padding" and isinstance(value, int):
        return [np.int32(value)]
    if kind == "flag":
        return [np.bool_(value)]
    if kind == "threads":
        return [np.int64(3), 1, None]
    if kind == "norm":
        return [np.float64(value)]
    if kind == "shape":
        return [list(value), np.array(value, dtype=np.int64)]
    if kind == "ndim":
        return [np.int64(value)]
    if kind == "array" and value.dtype in (np.float64, np.int64, np.bool_) and value.dtype.isnative:
        return [value.tolist()]
    return []


# ---------------------------------------------------------------- the fuzz test

@pytest.mark.parametrize("op", sorted(BUILDERS))
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_fuzz(op, data):
    draw = data.draw
    call, inputs = draw(BUILDERS[op]())
    frozen = Frozen(*inputs)
    mode = draw(st.sampled_from(["drawn", "respelled", "malformed", "malformed", "malformed"]))
    name = draw(st.sampled_from(sorted(call.kinds)))
    kind = call.kinds[name]
    if mode == "malformed":
        call.set(name, draw(st.sampled_from(_malformed(kind, call.get(name), call))))
    elif mode == "respelled":
        options = _respelled(kind, call.get(name))
        if options:
            call.set(name, draw(st.sampled_from(options)))
        else:
            mode = "drawn"
    try:
        got = call.run()
    except CLEAN as e:
        event(f"{mode}: {type(e).__name__}")
        assert type(e) in CLEAN, f"{type(e).__name__} is not a clean error: {e}"
        assert str(e), "an error without a message"
        if mode == "malformed":
            if name not in str(e):   # then an invalid drawn geometry was reported first
                with pytest.raises(ValueError):
                    call.oracle()
        else:
            # valid arguments: only an invalid geometry may be refused, as the oracle does
            with pytest.raises(ValueError):
                call.oracle()
            assert type(e) is ValueError, e
        frozen.check()
        return
    event(f"{mode}: result")
    assert mode != "malformed", f"{name}={call.get(name)!r} was accepted"
    call.compare(got, call.oracle())
    frozen.check()
