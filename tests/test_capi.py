"""pypool's C-level and Cython API (SPEC §6), exercised by real consumers.

Three consumers are compiled once per module against the installed pypool
(headers from ``pypool.get_include()``, ``pypool/capi.pxd`` from the
package): a C extension (tests/capi/consumer_c.c), a Cython module that
``cimport``s pypool.capi (tests/capi/consumer_cy.pyx) and a C program that
embeds Python (tests/capi/embed.c). Their results must equal the Python
API's bit for bit, for every op, both layouts, every dtype and inputs and
outputs of any strides; bad arguments must give the documented status and
message without writing anything; a table of another ABI or an older API
level must be refused with a clear ImportError.
"""

import concurrent.futures
import importlib.util
import math
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pypool
from pypool import _args, _native
from strategies import examples

_spec = importlib.util.spec_from_file_location(
    "capi_build", os.path.join(os.path.dirname(__file__), "capi", "build.py"))
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


# Averages of full-range integers into float16 overflow to inf, as they should.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning",
                                        "ignore:invalid value encountered in cast:RuntimeWarning")


# ----------------------------------------------------------------------------- the header's numbers

HEADER = os.path.join(pypool.get_include(), "pypool", "pypool.h")


def _header_constants():
    with open(HEADER) as f:
        text = f.read()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"\b(PYPOOL_[A-Z0-9_]+)\s*=\s*(-?\d+)", text)}


H = _header_constants()
DTYPES = [np.dtype(n) for n in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
                                "uint32", "uint64", "float16", "float32", "float64")]
DTYPE_CODE = {dt: H["PYPOOL_" + dt.name.upper()] for dt in DTYPES}
FLOATS = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
LAYOUTS = ("channels_first", "channels_last")
OK = H["PYPOOL_OK"]


def err(name):
    return H["PYPOOL_ERR_" + name]


# ----------------------------------------------------------------------------- consumers

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("capi_consumers"))


@pytest.fixture(scope="module")
def c_consumer(workdir):
    return build.build_c_consumer(workdir)


@pytest.fixture(scope="module")
def cy_consumer(workdir):
    return build.build_cython_consumer(workdir)


@pytest.fixture(params=["c", "cython"])
def consumer(request):
    return request.getfixturevalue("c_consumer" if request.param == "c" else "cy_consumer")


# ----------------------------------------------------------------------------- parameters

def c_params(rank, layout="channels_first", window=None, **fields):
    """The pypool_params of a call (as a dict the consumers turn into the struct)."""
    p = {"rank": int(rank), "layout": LAYOUTS.index(layout)}
    if window is not None:
        k = window["kernel_size"]
        p["kernel_size"] = k
        p["stride"] = window["stride"] if window["stride"] is not None else (0,) * len(k)
        p["dilation"] = window["dilation"]
        pad = window["padding"]
        if pad in ("same", "same_lower"):
            p["pad_mode"] = H["PYPOOL_PAD_SAME_UPPER" if pad == "same" else "PYPOOL_PAD_SAME_LOWER"]
        else:
            pairs = [(0, 0)] * len(k) if pad == "valid" else [
                q if isinstance(q, tuple) else (q, q)
                for q in (pad if isinstance(pad, tuple) else (pad,) * len(k))]
            p["pad_begin"] = tuple(a for a, _ in pairs)
            p["pad_end"] = tuple(b for _, b in pairs)
        p["ceil_mode"] = int(window["ceil_mode"])
    p.update(fields)
    return p


def window_args(w):
    return (w["kernel_size"], w["stride"], w["padding"], w["dilation"], w["ceil_mode"])


# ----------------------------------------------------------------------------- random cases

def draw_shape(rng, rank, layout, lead_max=3, size_max=None):
    """(full shape, spatial) with 0-2 lead axes and a channel axis for channels_last."""
    size_max = size_max or {1: 12, 2: 8, 3: 5}[rank]
    lead = tuple(int(rng.integers(1, lead_max + 1)) for _ in range(int(rng.integers(0, 3))))
    spatial = tuple(int(rng.integers(1, size_max + 1)) for _ in range(rank))
    tail = (int(rng.integers(1, 6)),) if layout == "channels_last" else ()
    return lead + spatial + tail, spatial


def draw_window(rng, shape, rank, layout):
    """Window arguments (Python style) that are valid for this shape, or None."""
    for _ in range(100):
        k = tuple(int(rng.integers(1, 5)) for _ in range(rank))
        stride = None if rng.random() < 0.2 else tuple(int(rng.integers(1, 4)) for _ in range(rank))
        dil = tuple(int(rng.integers(1, 3)) for _ in range(rank))
        ext = [(a - 1) * d + 1 for a, d in zip(k, dil)]
        form = rng.choice(["pairs", "int", "same", "same_lower", "valid"])
        if form == "pairs":
            padding = tuple((int(rng.integers(0, e)), int(rng.integers(0, e))) for e in ext)
        elif form == "int":
            padding = int(rng.integers(0, min(ext)))
        else:
            padding = str(form)
        w = dict(kernel_size=k, stride=stride, padding=padding, dilation=dil,
                 ceil_mode=bool(rng.random() < 0.4))
        try:
            pypool.pooled_shape(shape, *window_args(w), layout=layout)
        except ValueError:
            continue
        return w
    return None


def draw_values(rng, shape, dtype):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if rng.random() < 0.5:     # few distinct values: ties
            return rng.integers(max(info.min, -3), min(info.max, 3), shape, endpoint=True).astype(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    v = rng.standard_normal(shape) * (4.0 if dt == np.float16 else 1e3)
    if rng.random() < 0.3:
        v = np.round(v)            # ties
    if v.size and rng.random() < 0.3:
        flat = v.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 10))] = rng.choice([np.nan, np.inf, -np.inf])
    return v.astype(dt)


class Layouts:
    """Arrays with the values asked for in random memory layouts; for outputs, remembers
    the memory around strided views to check that nothing outside them is written."""

    SENTINEL = 0xA5

    def __init__(self, rng):
        self.rng = rng
        self.guards = []

    def input(self, arr):
        return self._relayout(arr, kinds=6)

    def output(self, shape, dtype):
        base = np.empty(shape, dtype)
        base.view(np.uint8).reshape(-1)[:] = self.SENTINEL
        return self._relayout(base, kinds=5)

    def _relayout(self, arr, kinds):
        rng = self.rng
        kind = int(rng.integers(0, kinds))
        if arr.ndim == 0 or arr.size == 0 or kind == 0:
            return np.array(arr, copy=True)
        ax = int(rng.integers(0, arr.ndim))
        if kind == 1:
            return np.asfortranarray(arr)
        if kind == 2:                      # negative strides
            return np.flip(np.flip(arr, ax).copy(), ax)
        if kind == 3:                      # every other element of a bigger buffer
            big = list(arr.shape)
            big[ax] *= 2
            base = np.empty(big, arr.dtype)
            base.view(np.uint8).reshape(-1)[:] = self.SENTINEL
            view = base[(slice(None),) * ax + (slice(None, None, 2),)]
            view[...] = arr
            gaps = base[(slice(None),) * ax + (slice(1, None, 2),)]
            self.guards.append(gaps)
            return view
        if kind == 4:                      # axes in another memory order
            perm = rng.permutation(arr.ndim)
            return np.ascontiguousarray(arr.transpose(perm)).transpose(np.argsort(perm))
        # kind 5 (inputs only): a broadcast axis with stride 0
        if arr.shape[ax] < 2:
            return np.array(arr, copy=True)
        return np.broadcast_to(arr.take([0], axis=ax), arr.shape)

    def check_guards(self):
        for gaps in self.guards:
            assert (np.ascontiguousarray(gaps).view(np.uint8) == self.SENTINEL).all(), \
                "memory between the elements of a strided output was written"


def assert_same_bits(got, want, what=""):
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    g, w = np.ascontiguousarray(got), np.ascontiguousarray(want)
    if not np.array_equal(g.view(np.uint8), w.view(np.uint8)):
        np.testing.assert_array_equal(g, w, err_msg=what)
        raise AssertionError(f"{what}: equal values with different bits (signed zeros, NaN payloads)")


# Each builder draws one call: (op, params, arrays, [(output array, expected)]).

def case_window_forward(rng, lay, op):
    rank = int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    shape, _ = draw_shape(rng, rank, layout)
    if rng.random() < 0.05:
        shape = (0,) + shape               # empty results of the right shape
    w = draw_window(rng, shape, rank, layout)
    if w is None:
        return None
    if op == "max_pool":
        dt = DTYPES[int(rng.integers(0, len(DTYPES)))]
        x = lay.input(draw_values(rng, shape, dt))
        v, i = pypool.max_pool(x, *window_args(w), layout=layout, return_indices=True)
        out = lay.output(v.shape, v.dtype)
        if rng.random() < 0.3:
            return op, c_params(rank, layout, w), (x, out), [(out, v)]
        ind = lay.output(i.shape, i.dtype)
        return op, c_params(rank, layout, w), (x, out, ind), [(out, v), (ind, i)]
    dt = DTYPES[int(rng.integers(0, len(DTYPES)))]
    res = FLOATS[int(rng.integers(0, 3))]
    x = lay.input(draw_values(rng, shape, dt))
    if op == "avg_pool":
        cip = bool(rng.random() < 0.5)
        div = None if rng.random() < 0.7 else int(rng.integers(1, 6))
        want = pypool.avg_pool(x, *window_args(w), cip, div, layout=layout, dtype=res)
        params = c_params(rank, layout, w, count_include_pad=int(cip), divisor_override=div or 0)
    else:
        p = float(rng.choice([1.0, 2.0, 3.0, 0.5, 1.5, np.inf]))
        want = pypool.lp_pool(x, p, *window_args(w), layout=layout, dtype=res)
        params = c_params(rank, layout, w, norm_type=p)
    out = lay.output(want.shape, want.dtype)
    return op, params, (x, out), [(out, want)]


def case_adaptive_forward(rng, lay, op):
    rank = int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    shape, spatial = draw_shape(rng, rank, layout)
    sizes = tuple(int(rng.integers(1, L + 3)) for L in spatial)
    dt = DTYPES[int(rng.integers(0, len(DTYPES)))]
    x = lay.input(draw_values(rng, shape, dt))
    if op == "adaptive_max_pool":
        v, i = pypool.adaptive_max_pool(x, sizes, layout=layout, return_indices=True)
        out, ind = lay.output(v.shape, v.dtype), lay.output(i.shape, i.dtype)
        return op, c_params(rank, layout), (x, out, ind), [(out, v), (ind, i)]
    res = FLOATS[int(rng.integers(0, 3))]
    want = pypool.adaptive_avg_pool(x, sizes, layout=layout, dtype=res)
    out = lay.output(want.shape, want.dtype)
    return op, c_params(rank, layout), (x, out), [(out, want)]


def draw_global_shape(rng, layout):
    ndim = int(rng.integers(3, 6))
    return tuple(int(rng.integers(1, 5)) for _ in range(ndim))


def case_global_forward(rng, lay, op):
    layout = str(rng.choice(LAYOUTS))
    shape = draw_global_shape(rng, layout)
    keep = bool(rng.random() < 0.5)
    dt = DTYPES[int(rng.integers(0, len(DTYPES)))]
    x = lay.input(draw_values(rng, shape, dt))
    if op == "global_max_pool":
        v, i = pypool.global_max_pool(x, layout=layout, keepdims=keep, return_indices=True)
        out, ind = lay.output(v.shape, v.dtype), lay.output(i.shape, i.dtype)
        return op, c_params(len(shape) - 2, layout), (x, out, ind), [(out, v), (ind, i)]
    want = pypool.global_avg_pool(x, layout=layout, keepdims=keep,
                                  dtype=FLOATS[int(rng.integers(0, 3))])
    out = lay.output(want.shape, want.dtype)
    return op, c_params(len(shape) - 2, layout), (x, out), [(out, want)]


def case_max_unpool(rng, lay, op):
    rank = int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    shape, spatial = draw_shape(rng, rank, layout, size_max=4)
    out_spatial = tuple(int(rng.integers(1, 7)) for _ in range(rank))
    plane = math.prod(out_spatial)
    dt = DTYPES[int(rng.integers(0, len(DTYPES)))]
    x = lay.input(draw_values(rng, shape, dt))
    ind = lay.input(rng.integers(0, plane, shape).astype(np.int64))
    want = pypool.max_unpool(x, ind, (2,) * rank, output_size=out_spatial, layout=layout)
    out = lay.output(want.shape, want.dtype)
    return op, c_params(rank, layout), (x, ind, out), [(out, want)]


def grad_dtype(rng):
    return (FLOATS + [np.dtype(np.int32), np.dtype(np.uint8)])[int(rng.integers(0, 5))]


def case_max_pool_backward(rng, lay, op):
    layout = str(rng.choice(LAYOUTS))
    source = rng.choice(["window", "adaptive", "global"])
    if source == "global":
        shape = draw_global_shape(rng, layout)
        rank = len(shape) - 2
        x = draw_values(rng, shape, np.float64)
        _, ind = pypool.global_max_pool(x, layout=layout, keepdims=bool(rng.random() < 0.5),
                                        return_indices=True)
    else:
        rank = int(rng.integers(1, 4))
        shape, spatial = draw_shape(rng, rank, layout)
        x = draw_values(rng, shape, np.float32)
        if source == "adaptive":
            sizes = tuple(int(rng.integers(1, L + 2)) for L in spatial)
            _, ind = pypool.adaptive_max_pool(x, sizes, layout=layout, return_indices=True)
        else:
            w = draw_window(rng, shape, rank, layout)
            if w is None:
                return None
            _, ind = pypool.max_pool(x, *window_args(w), layout=layout, return_indices=True)
    g = lay.input(draw_values(rng, ind.shape, grad_dtype(rng)))
    ind = lay.input(ind)
    want = pypool.max_pool_backward(g, ind, shape, ndim=rank, layout=layout)
    dx = lay.output(want.shape, want.dtype)
    return op, c_params(rank, layout), (g, ind, dx), [(dx, want)]


def case_avg_pool_backward(rng, lay, op):
    rank = int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    shape, _ = draw_shape(rng, rank, layout)
    w = draw_window(rng, shape, rank, layout)
    if w is None:
        return None
    gshape = pypool.pooled_shape(shape, *window_args(w), layout=layout)
    g = lay.input(draw_values(rng, gshape, grad_dtype(rng)))
    cip = bool(rng.random() < 0.5)
    div = None if rng.random() < 0.7 else int(rng.integers(1, 6))
    want = pypool.avg_pool_backward(g, shape, *window_args(w), cip, div, layout=layout)
    dx = lay.output(want.shape, want.dtype)
    params = c_params(rank, layout, w, count_include_pad=int(cip), divisor_override=div or 0)
    return op, params, (g, dx), [(dx, want)]


def case_lp_pool_backward(rng, lay, op):
    rank = int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    shape, _ = draw_shape(rng, rank, layout)
    w = draw_window(rng, shape, rank, layout)
    if w is None:
        return None
    gshape = pypool.pooled_shape(shape, *window_args(w), layout=layout)
    xdt = (FLOATS + [np.dtype(np.int16)])[int(rng.integers(0, 4))]
    x = lay.input(draw_values(rng, shape, xdt))
    g = lay.input(draw_values(rng, gshape, grad_dtype(rng)))
    p = float(rng.choice([1.0, 2.0, 3.0, 1.5, 0.75, np.inf]))
    with np.errstate(all="ignore"):
        want = pypool.lp_pool_backward(g, x, p, *window_args(w), layout=layout)
    dx = lay.output(want.shape, want.dtype)
    return op, c_params(rank, layout, w, norm_type=p), (g, x, dx), [(dx, want)]


def case_adaptive_avg_pool_backward(rng, lay, op):
    rank = int(rng.integers(1, 4))
    layout = str(rng.choice(LAYOUTS))
    shape, spatial = draw_shape(rng, rank, layout)
    nlead = len(shape) - rank - (layout == "channels_last")
    sizes = tuple(int(rng.integers(1, L + 3)) for L in spatial)
    gshape = shape[:nlead] + sizes + shape[nlead + rank:]
    g = lay.input(draw_values(rng, gshape, grad_dtype(rng)))
    want = pypool.adaptive_avg_pool_backward(g, shape, ndim=rank, layout=layout)
    dx = lay.output(want.shape, want.dtype)
    return op, c_params(rank, layout), (g, dx), [(dx, want)]


def case_global_avg_pool_backward(rng, lay, op):
    layout = str(rng.choice(LAYOUTS))
    shape = draw_global_shape(rng, layout)
    keep = pypool.global_avg_pool(np.zeros(shape), layout=layout, keepdims=bool(rng.random() < 0.5))
    g = lay.input(draw_values(rng, keep.shape, grad_dtype(rng)))
    want = pypool.global_avg_pool_backward(g, shape, layout=layout)
    dx = lay.output(want.shape, want.dtype)
    return op, c_params(len(shape) - 2, layout), (g, dx), [(dx, want)]


BUILDERS = {
    "max_pool": case_window_forward,
    "avg_pool": case_window_forward,
    "lp_pool": case_window_forward,
    "adaptive_max_pool": case_adaptive_forward,
    "adaptive_avg_pool": case_adaptive_forward,
    "global_max_pool": case_global_forward,
    "global_avg_pool": case_global_forward,
    "max_unpool": case_max_unpool,
    "max_pool_backward": case_max_pool_backward,
    "avg_pool_backward": case_avg_pool_backward,
    "lp_pool_backward": case_lp_pool_backward,
    "adaptive_avg_pool_backward": case_adaptive_avg_pool_backward,
    "global_avg_pool_backward": case_global_avg_pool_backward,
}


def draw_case(rng, op):
    lay = Layouts(rng)
    case = None
    while case is None:
        case = BUILDERS[op](rng, lay, op)
    return case + (lay,)


def check_call(consumer, case, label):
    op, params, arrays, expected, lay = case
    inputs = [a.copy() for a in arrays]
    status = consumer.run(op, params, arrays)
    assert status == OK, f"{label}: status {status} ({consumer.message(status)}: {consumer.detail()})"
    for got, want in expected:
        assert_same_bits(got, want, label)
    lay.check_guards()
    written = {id(got) for got, _ in expected}
    for before, after in zip(inputs, arrays):
        if id(after) not in written:
            assert_same_bits(after, before, f"{label}: an input was modified")


# ----------------------------------------------------------------------------- results

@pytest.mark.parametrize("op", sorted(BUILDERS))
def test_results_equal_the_python_api(consumer, op):
    """Random calls of every op (both layouts, every dtype, any strides) give the
    Python API's results bit for bit, and write nothing outside their outputs."""
    rng = np.random.default_rng(sorted(BUILDERS).index(op) + 1000)
    for n in range(examples(40)):
        case = draw_case(rng, op)
        check_call(consumer, case, f"{op} case {n}: params {case[1]}, shapes "
                                   f"{[a.shape for a in case[2]]}, strides "
                                   f"{[a.strides for a in case[2]]}, dtypes {[a.dtype for a in case[2]]}")


def test_global_average_adds_in_the_python_layer_order(consumer):
    """The one order that depends on strides: a global average adds a contiguous plane
    with 8 partial sums and a strided one term by term. C callers get the Python
    layer's order for the same memory (views where NumPy's reshape gives views,
    copies where it copies), so float64 results agree to the last bit."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((3, 4, 10, 46))
    inputs = [base, base[..., ::2], base[:, :, 3, ::-1], base[:, ::2, :, 1::3],
              base.transpose(0, 1, 3, 2), np.asfortranarray(base)]
    for n, x in enumerate(inputs):
        want = pypool.global_avg_pool(x)
        out = np.empty(want.shape)
        assert consumer.run("global_avg_pool", c_params(x.ndim - 2), (x, out)) == OK
        assert_same_bits(out, want, f"input {n}, strides {x.strides}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adaptive_averages_of_equal_cells_add_as_sliding_ones(consumer, layout):
    """Adaptive averages whose cells all have one size per axis take the sliding
    paths from C too (test_calls.py has the Python side): the sliding average's
    bits, where terms of 2**60 among ordinary ones make any other order show."""
    rng = np.random.default_rng(9)
    shape = (2, 5, 24, 36) if layout == "channels_first" else (2, 24, 36, 5)
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)
    x[rng.random(shape) < 0.1] *= 2.0 ** 60
    want = pypool.avg_pool(x, (4, 4), layout=layout)
    assert_same_bits(pypool.adaptive_avg_pool(x, (6, 9), layout=layout), want, "Python")
    out = np.empty(want.shape)
    assert consumer.run("adaptive_avg_pool", c_params(2, layout), (x, out)) == OK
    assert_same_bits(out, want, "C API")


def test_float16_conversions_match_numpy(c_consumer):
    """float16 data go through the C API's own conversions: widening every one of the
    65536 bit patterns, and narrowing doubles (ties, subnormals, overflow, NaN
    payloads) give NumPy's bits."""
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(-1, 1, 1)
    back = np.empty((halves.shape[0], 1), np.float16)
    assert c_consumer.run("global_max_pool", c_params(1), (halves, back)) == OK
    assert_same_bits(back, halves.reshape(-1, 1), "float16 max (through float32 and back)")
    # An average adds to 0.0 (so -0.0 becomes 0.0 and signaling NaNs go quiet):
    # the same bits as Python, the same values as NumPy's conversion.
    out = np.empty((halves.shape[0], 1), np.float64)
    assert c_consumer.run("global_avg_pool", c_params(1), (halves, out)) == OK
    assert_same_bits(out, pypool.global_avg_pool(halves, dtype=np.float64), "float16 -> float64")
    np.testing.assert_array_equal(out, halves.astype(np.float64).reshape(-1, 1))
    rng = np.random.default_rng(9)
    h = rng.integers(0, 1 << 16, 200000).astype(np.uint16).view(np.float16)
    h = h[np.isfinite(h)].astype(np.float64)
    with np.errstate(over="ignore"):      # the spacing above 65504 is inf
        ulp = np.spacing(np.abs(h).astype(np.float16)).astype(np.float64)
    doubles = np.concatenate([
        h, h + ulp / 2, h - ulp / 2,                      # exact ties: round half to even
        h + ulp * rng.uniform(-1, 1, h.size),             # everything in between
        rng.standard_normal(100000) * np.exp2(rng.integers(-40, 20, 100000)),
        [65504.0, 65519.99, 65520.0, 1e300, -1e-300, 2.0**-25, 2.0**-24 * 1.5, 0.0, -0.0,
         np.inf, -np.inf],
        np.array([0x7FF0000000000001, 0xFFF8000000000123, 0x7FF4000000000000],
                 np.uint64).view(np.float64)])
    x = doubles.reshape(-1, 1, 1)
    got = np.empty((x.shape[0], 1), np.float16)
    assert c_consumer.run("global_avg_pool", c_params(1), (x, got)) == OK
    assert_same_bits(got, pypool.global_avg_pool(x, dtype=np.float16), "float64 -> float16")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, doubles.astype(np.float16).reshape(-1, 1))


def big_case(rng, op, layout):
    """Calls large enough to run on several OpenMP threads."""
    lay = Layouts(rng)
    shape = (4, 16, 64, 64) if layout == "channels_first" else (4, 64, 64, 16)
    x = lay.input(rng.standard_normal(shape).astype(np.float32))
    w = dict(kernel_size=(3, 3), stride=(2, 2), padding=1, dilation=(1, 1), ceil_mode=False)
    if op == "max_pool":
        v, i = pypool.max_pool(x, *window_args(w), layout=layout, return_indices=True)
        out, ind = lay.output(v.shape, v.dtype), lay.output(i.shape, i.dtype)
        return op, c_params(2, layout, w, num_threads=2), (x, out, ind), [(out, v), (ind, i)], lay
    want = pypool.avg_pool(x, *window_args(w), layout=layout)
    out = lay.output(want.shape, want.dtype)
    return op, c_params(2, layout, w, num_threads=2), (x, out), [(out, want)], lay


@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
def test_calls_from_several_pthreads_at_once(c_consumer, op):
    """The C consumer runs 6 calls on 6 pthreads at once, GIL released, each with a
    2-thread OpenMP team; every result equals the Python API's."""
    rng = np.random.default_rng(7)
    cases = [big_case(rng, op, LAYOUTS[n % 2]) for n in range(6)]
    for layout in (0, 1):
        group = [c for c in cases if c[1]["layout"] == layout]
        statuses = c_consumer.run_threads(op, group[0][1], [c[2] for c in group])
        assert statuses == [OK] * len(group), [c_consumer.message(s) for s in statuses]
        for n, case in enumerate(group):
            for got, want in case[3]:
                assert_same_bits(got, want, f"{op} thread {n}")
            case[4].check_guards()


def test_cython_calls_from_several_python_threads(cy_consumer):
    """Python threads call the Cython consumer, which runs pypool with the GIL released."""
    rng = np.random.default_rng(8)
    cases = [big_case(rng, op, layout) for op in ("max_pool", "avg_pool") for layout in LAYOUTS]
    cases += [draw_case(rng, op) for op in sorted(BUILDERS) for _ in range(2)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda c: cy_consumer.run(c[0], c[1], c[2]), cases))
    assert statuses == [OK] * len(cases)
    for case in cases:
        for got, want in case[3]:
            assert_same_bits(got, want, case[0])


def test_cython_typed_memoryview_example(cy_consumer):
    """The README's Cython example (typed memoryviews, C-contiguous strides=NULL)."""
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 8)).astype(np.float32)
    assert_same_bits(cy_consumer.max_pool2d_nchw(x, 2), pypool.max_pool2d(x, 2))
    with pytest.raises(ValueError, match="kernel_size"):
        cy_consumer.max_pool2d_nchw(x, 0)


def test_embedding_program_pools_its_own_buffers(workdir):
    """A C program embeds Python, imports the API, and pools malloc'ed buffers
    (SPEC §8's example) from its own threads, without the GIL."""
    exe = build.build_embedding_program(workdir)
    run = subprocess.run([exe], capture_output=True, text=True, timeout=120,
                         env=build.embedding_environment())
    assert run.returncode == 0, run.stdout + run.stderr
    assert "max: 6 8 3 4  ok" in run.stdout
    assert "avg (thread): 3.25 5.25 2 2  ok" in run.stdout
    assert "global avg: 3.125  ok" in run.stdout
    assert "max (2 threads): same as 1 thread  ok" in run.stdout
    assert "all ok" in run.stdout


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "README.md")


def readme_block(first_line):
    """The README code block that starts with this line."""
    with open(README) as f:
        text = f.read()
    for match in re.finditer(r"```\w*\n(.*?)```", text, re.S):
        if match.group(1).startswith(first_line):
            return match.group(1)
    raise AssertionError(f"README has no code block starting with {first_line!r}")


def test_readme_c_example(workdir):
    """The README's C extension, compiled as written, pools its image."""
    src = os.path.join(workdir, "mypool.c")
    with open(src, "w") as f:
        f.write(readme_block("/* mypool.c */"))
    module = build.load_module("mypool", build.build_extension("mypool", src, workdir))
    assert module.demo() == (6.0, 8.0, 3.0, 4.0)


def test_readme_cython_example(workdir):
    """The README's Cython module, compiled as written, equals pypool.max_pool2d."""
    src = os.path.join(workdir, "mypool_cy.pyx")
    with open(src, "w") as f:
        f.write(readme_block("# mypool_cy.pyx"))
    path = build.build_extension("mypool_cy", src, workdir, cython=True)
    module = build.load_module("mypool_cy", path)
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 10)).astype(np.float32)
    assert_same_bits(module.max_pool2d(x, 2), pypool.max_pool2d(x, 2))
    assert_same_bits(module.max_pool2d(x, 3), pypool.max_pool2d(x, 3))
    with pytest.raises(ValueError, match="kernel_size"):
        module.max_pool2d(x, 0)


# ----------------------------------------------------------------------------- geometry helpers

def test_geometry_helpers_agree_with_python(c_consumer):
    """pooled_shape / resolve_padding / unpooled_shape run the Python layer's checks:
    the same calls succeed with the same numbers, and the same calls fail."""
    rng = np.random.default_rng(11)
    for _ in range(examples(300)):
        rank = int(rng.integers(1, 4))
        layout = str(rng.choice(LAYOUTS))
        shape, _ = draw_shape(rng, rank, layout)
        k = tuple(int(rng.integers(0, 6)) for _ in range(rank))
        w = dict(kernel_size=k, stride=tuple(int(rng.integers(1, 4)) for _ in range(rank)),
                 dilation=tuple(int(rng.integers(1, 3)) for _ in range(rank)),
                 padding=rng.choice(["same", "same_lower", "valid", "pairs"]),
                 ceil_mode=bool(rng.random() < 0.5))
        if w["padding"] == "pairs":
            w["padding"] = tuple((int(rng.integers(0, 5)), int(rng.integers(0, 5))) for _ in k)
        w["padding"] = str(w["padding"]) if isinstance(w["padding"], np.str_) else w["padding"]
        params = c_params(rank, layout, w)
        try:
            want_shape = pypool.pooled_shape(shape, *window_args(w), layout=layout)
            want_pads = pypool.resolve_padding(shape, *window_args(w), layout=layout)
        except ValueError:
            want_shape = want_pads = None
        status, got = c_consumer.geometry("pooled_shape", params, shape)
        assert (status == OK) == (want_shape is not None), (shape, w, c_consumer.detail())
        assert got == want_shape
        status, got = c_consumer.geometry("resolve_padding", params, shape)
        assert got == want_pads
        if isinstance(w["padding"], str) and w["padding"] != "valid":
            continue
        x = np.zeros(shape)
        try:
            want = pypool.max_unpool(x, np.zeros(shape, np.int64), w["kernel_size"], w["stride"],
                                     w["padding"], layout=layout).shape
        except ValueError:
            want = None
        status, got = c_consumer.geometry("unpooled_shape", params, shape)
        assert got == want, (shape, w, c_consumer.detail())


def test_resolve_axis_entry(c_consumer):
    assert c_consumer.resolve_axis(10, 3, 2, 1, 1, 1, 0, 0) == (OK, 5, 1, 1)
    assert c_consumer.resolve_axis(10, 4, 3, 1, 0, 0, H["PYPOOL_PAD_SAME_UPPER"], 0) == (OK, 4, 1, 2)
    assert c_consumer.resolve_axis(10, 4, 3, 1, 0, 0, H["PYPOOL_PAD_SAME_LOWER"], 0) == (OK, 4, 2, 1)
    status, out, *_ = c_consumer.resolve_axis(3, 4, 1, 1, 0, 0, 0, 0)
    assert status == err("EMPTY_OUTPUT") and out == -1   # nothing written on error
    assert c_consumer.detail() == ("axis (in_size 3, kernel 4, stride 1, dilation 1, pads (0, 0)): "
                                   "an output size would be below 1")
    assert c_consumer.resolve_axis(10, 3, 1, 1, 0, 0, 7, 0)[0] == err("ARGUMENT")


# ----------------------------------------------------------------------------- error paths

X = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
P2 = c_params(2, window=dict(kernel_size=(2, 2), stride=None, padding=0, dilation=(1, 1),
                             ceil_mode=False))


def raw(arr, *, address=None, dtype=None, ndim=None, shape="same", strides="same"):
    """A raw tensor description of an array, with any field overridden."""
    return (arr.__array_interface__["data"][0] if address is None else address,
            DTYPE_CODE[arr.dtype] if dtype is None else dtype,
            arr.ndim if ndim is None else ndim,
            tuple(arr.shape) if shape == "same" else shape,
            tuple(s // arr.itemsize for s in arr.strides) if strides == "same" else strides)


def sentinel(shape, dtype):
    out = np.empty(shape, dtype)
    out.view(np.uint8).reshape(-1)[:] = 0x5A
    return out


def assert_untouched(arr):
    assert (np.ascontiguousarray(arr).view(np.uint8) == 0x5A).all(), "a failed call wrote memory"


def with_params(**changes):
    p = dict(P2)
    p.update(changes)
    return p


ERROR_CASES = [
    # (label, op, params, arrays builder, status, words in the detail)
    ("kernel 0", "max_pool", with_params(kernel_size=(2, 0)), None, "KERNEL", ["kernel_size[1]", "0"]),
    ("stride -1", "avg_pool", with_params(stride=(-1, 2)), None, "STRIDE", ["stride[0]", "-1"]),
    ("dilation 0", "max_pool", with_params(dilation=(1, 0)), None, "DILATION", ["dilation[1]"]),
    ("negative pad", "max_pool", with_params(pad_begin=(0, -1)), None, "PAD_NEGATIVE",
     ["padding (-1, 0)", "spatial axis 1"]),
    ("pad too large", "avg_pool", with_params(pad_end=(2, 0)), None, "PAD_TOO_LARGE",
     ["padding (0, 2)", "spatial axis 0", "= 2"]),
    ("empty output", "max_pool", with_params(kernel_size=(9, 2)), None, "EMPTY_OUTPUT",
     ["spatial axis 0", "input size 8"]),
    ("overflow", "max_pool", with_params(kernel_size=(2**40, 2), dilation=(2**40, 1)), None,
     "OVERFLOW", ["overflow"]),
    ("rank 4", "max_pool", with_params(rank=4), None, "RANK", ["params.rank is 4"]),
    ("rank 0", "adaptive_avg_pool", with_params(rank=0), None, "RANK", ["params.rank is 0"]),
    ("layout", "avg_pool", with_params(layout=7), None, "LAYOUT", ["params.layout is 7"]),
    ("pad mode", "max_pool", with_params(pad_mode=9), None, "ARGUMENT", ["pad_mode is 9"]),
    ("threads", "max_pool", with_params(num_threads=-1), None, "ARGUMENT", ["num_threads is -1"]),
    ("divisor", "avg_pool", with_params(divisor_override=-2), None, "ARGUMENT",
     ["divisor_override is -2"]),
    ("norm 0", "lp_pool", with_params(norm_type=0.0), None, "ARGUMENT", ["norm_type"]),
    ("norm nan", "lp_pool", with_params(norm_type=float("nan")), None, "ARGUMENT", ["norm_type"]),
    ("params NULL", "max_pool", None, None, "NULL", ["params is NULL"]),
    ("x NULL", "max_pool", P2, lambda out: (None, out), "NULL", ["x is NULL"]),
    ("out NULL", "avg_pool", P2, lambda out: (X,), "NULL", ["out is NULL"]),
    ("x.data NULL", "max_pool", P2, lambda out: (raw(X, address=0), out), "NULL",
     ["x.data is NULL"]),
    ("x.shape NULL", "max_pool", P2, lambda out: (raw(X, shape=None), out), "NULL",
     ["x.shape is NULL"]),
    ("unknown dtype", "max_pool", P2, lambda out: (raw(X, dtype=99), out), "DTYPE",
     ["x.dtype is 99"]),
    ("out dtype", "max_pool", P2, lambda out: (X.astype(np.float64), out), "DTYPE",
     ["out has dtype float32", "float64"]),
    ("integer average", "avg_pool", P2, lambda out: (X, out.astype(np.int32)), "DTYPE",
     ["out has dtype int32"]),
    ("int32 indices", "max_pool", P2,
     lambda out: (X, out, np.empty(out.shape, np.int32)), "DTYPE", ["indices has dtype int32"]),
    ("out shape", "max_pool", P2, lambda out: (X, out[..., :3]), "SHAPE",
     ["out has shape (2, 3, 4, 3)", "(2, 3, 4, 4)"]),
    ("negative size", "max_pool", P2, lambda out: (raw(X, shape=(2, 3, -8, 8)), out), "SHAPE",
     ["x.shape[2] is -8"]),
    ("too many dims", "max_pool", P2, lambda out: (raw(X, ndim=70, shape=None), out), "SHAPE",
     ["x.ndim is 70"]),
    ("too few dims", "max_pool", P2, lambda out: (X[0, 0, 0], out), "SHAPE",
     ["x has shape (8,)", "at least 2"]),
    ("huge", "max_pool", P2, lambda out: (raw(X, shape=(2**40, 2**40, 8, 8)), out), "OVERFLOW",
     ["more than 2**62"]),
    ("misaligned", "max_pool", P2,
     lambda out: (raw(X, address=X.__array_interface__["data"][0] + 1), out), "ARGUMENT",
     ["aligned"]),
    ("out is x", "max_pool", with_params(kernel_size=(1, 1)), lambda out: (X, X), "OVERLAP",
     ["out overlaps x"]),
    ("out has stride 0", "max_pool", P2, lambda out: (X, raw(out, strides=(48, 16, 4, 0))),
     "OVERLAP", ["out has overlapping elements"]),
]


@pytest.mark.parametrize("label,op,params,make,status,words", ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_bad_arguments_give_status_and_detail(c_consumer, label, op, params, make, status, words):
    out = sentinel((2, 3, 4, 4), np.float32)
    arrays = make(out) if make else (X, out)
    got = c_consumer.run(op, params, arrays)
    assert got == err(status), (label, got, c_consumer.message(got), c_consumer.detail())
    assert c_consumer.message(got) != c_consumer.message(OK)
    detail = c_consumer.detail()
    for word in words:
        assert word in detail, f"{label}: {word!r} not in {detail!r}"
    assert_untouched(out)
    # the detail belongs to the failed call: a good call clears it
    assert c_consumer.run("max_pool", P2, (X, sentinel((2, 3, 4, 4), np.float32))) == OK
    assert c_consumer.detail() == ""


def test_outputs_may_not_share_memory(c_consumer, cy_consumer):
    xi = X.astype(np.int64)
    buf = sentinel((2, 2, 3, 4, 4), np.int64)
    assert c_consumer.run("max_pool", P2, (xi, buf[0], buf[0])) == err("OVERLAP")
    assert "indices overlaps out" in c_consumer.detail()
    assert cy_consumer.run("max_pool", P2, (xi, buf[0], buf[1])) == OK   # apart: fine
    assert_same_bits(buf[0], pypool.max_pool2d(xi, 2))


def test_cython_consumer_gets_the_same_errors(cy_consumer):
    out = sentinel((2, 3, 4, 4), np.float32)
    assert cy_consumer.run("max_pool", with_params(kernel_size=(2, 0)), (X, out)) == err("KERNEL")
    assert "kernel_size[1] is 0" in cy_consumer.detail()
    assert cy_consumer.run("avg_pool", P2, (X, out.astype(np.int8))) == err("DTYPE")
    assert cy_consumer.message(err("DTYPE")) == "a dtype the operation does not take"
    assert_untouched(out)


def test_index_checks_come_before_any_write(c_consumer):
    x = np.ones((1, 2, 3), np.float32)
    ind = np.array([[[0, 1, 2], [3, 4, 99]]])
    out = sentinel((1, 2, 6), np.float32)
    assert c_consumer.run("max_unpool", c_params(1), (x, ind, out)) == err("INDEX")
    assert "indices holds 1 value(s) outside [0, 6)" in c_consumer.detail()
    assert "e.g. 99" in c_consumer.detail()
    assert_untouched(out)
    dx = sentinel((1, 2, 6), np.float32)
    ind[0, 1, 2] = -2
    assert c_consumer.run("max_pool_backward", c_params(1), (x, ind, dx)) == err("INDEX")
    assert "outside [-1, 6)" in c_consumer.detail()
    assert_untouched(dx)
    ind[0, 1, 2] = -1       # an empty window's index is fine for backward
    assert c_consumer.run("max_pool_backward", c_params(1), (x, ind, dx)) == OK
    assert_same_bits(dx, pypool.max_pool_backward(x, ind, (1, 2, 6), ndim=1))


def test_backward_dtype_rules(c_consumer):
    g = np.ones((2, 3, 4, 4), np.int32)
    dx = sentinel(X.shape, np.float32)
    assert c_consumer.run("avg_pool_backward", P2, (g, dx)) == err("DTYPE")
    assert "grad_input has dtype float32; expected float64 for a int32 grad_output" \
        in c_consumer.detail()
    assert c_consumer.run("lp_pool_backward", with_params(norm_type=2.0),
                          (g.astype(np.float64), X.astype(np.int8), dx)) == err("DTYPE")
    assert_untouched(dx)


def test_every_status_has_its_own_message(c_consumer):
    codes = sorted(v for k, v in H.items() if k.startswith("PYPOOL_ERR_")) + [OK]
    messages = [c_consumer.message(c) for c in codes]
    assert all(messages) and len(set(messages)) == len(codes)
    assert c_consumer.message(-999) == "unknown pypool status code"
    assert [_native.status_message(c) for c in codes] == messages


def test_error_detail_is_per_thread(c_consumer):
    """A failure on another thread does not show in this thread's detail."""
    assert c_consumer.run("max_pool", P2, (X, sentinel((2, 3, 4, 4), np.float32))) == OK
    bad = with_params(kernel_size=(0, 2))
    statuses = c_consumer.run_threads("max_pool", bad, [(X, sentinel((2, 3, 4, 4), np.float32))])
    assert statuses == [err("KERNEL")]
    assert c_consumer.detail() == ""


# ----------------------------------------------------------------------------- versions

def test_versions_match_the_header(c_consumer, cy_consumer):
    table, header = c_consumer.versions()
    assert table == header
    assert cy_consumer.versions() == (table, header)
    with open(HEADER) as f:
        text = f.read()
    abi = int(re.search(r"#define PYPOOL_ABI_VERSION (\d+)", text).group(1))
    level = int(re.search(r"#define PYPOOL_API_LEVEL (\d+)", text).group(1))
    assert table == (abi, level)


def test_python_layer_status_codes_match_the_header():
    assert (_args._OK, _args._ERR_PAD_TOO_LARGE, _args._ERR_EMPTY, _args._ERR_OVERFLOW,
            _args._ERR_SHAPE) == (OK, err("PAD_TOO_LARGE"), err("EMPTY_OUTPUT"), err("OVERFLOW"),
                                  err("SHAPE"))


def test_abi_mismatch_is_refused(c_consumer, monkeypatch):
    abi, level = c_consumer.versions()[0]
    monkeypatch.setattr(_native, "_C_API", c_consumer.fake_capsule(abi + 98, level))
    with pytest.raises(ImportError) as info:
        c_consumer.import_api()
    msg = str(info.value)
    assert "ABI version mismatch" in msg
    assert f"ABI version {abi}," in msg and f"ABI version {abi + 98}" in msg
    assert "rebuild" in msg


def test_older_api_level_is_refused_and_newer_accepted(c_consumer, monkeypatch):
    abi, level = c_consumer.versions()[0]
    monkeypatch.setattr(_native, "_C_API", c_consumer.fake_capsule(abi, level - 1))
    with pytest.raises(ImportError, match=f"needs API level {level}, the installed pypool "
                                          f"provides API level {level - 1}"):
        c_consumer.import_api()
    monkeypatch.setattr(_native, "_C_API", c_consumer.fake_capsule(abi, level + 3))
    assert c_consumer.import_api() == (abi, level + 3)     # slots are only appended


def test_missing_or_foreign_capsule_is_refused(c_consumer, monkeypatch):
    monkeypatch.delattr(_native, "_C_API")
    with pytest.raises(ImportError, match="has no _C_API"):
        c_consumer.import_api()
    monkeypatch.setattr(_native, "_C_API", object(), raising=False)
    with pytest.raises(ImportError, match='not a capsule named "pypool._native._C_API"'):
        c_consumer.import_api()


MISMATCH_AT_IMPORT = """
import importlib.util
from pypool import _native

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

c = load("pypool_consumer_c", {c_path!r})
_native._C_API = c.fake_capsule(99, 1)
try:
    load("consumer_cy", {cy_path!r})
except ImportError as exc:
    print("refused:", exc)
"""


def test_modules_refuse_to_import_against_another_abi(c_consumer, cy_consumer):
    """A Cython module built for another ABI fails at import with the clear message."""
    code = MISMATCH_AT_IMPORT.format(c_path=c_consumer.__file__, cy_path=cy_consumer.__file__)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "refused: pypool C API ABI version mismatch" in run.stdout
    assert "provides ABI version 99" in run.stdout


# ----------------------------------------------------------------------------- processes, packaging

FORK_SCRIPT = """
import os, importlib.util
import numpy as np
spec = importlib.util.spec_from_file_location("pypool_consumer_c", {path!r})
c = importlib.util.module_from_spec(spec)
spec.loader.exec_module(c)
x = np.random.default_rng(0).standard_normal((16, 64, 64, 64)).astype(np.float32)
params = dict(rank=2, kernel_size=(3, 3), stride=(2, 2), pad_begin=(1, 1), pad_end=(1, 1),
              num_threads=2)
expected = np.empty((16, 64, 32, 32), np.float32)
assert c.run("max_pool", params, (x, expected)) == 0     # the parent starts an OpenMP team
pid = os.fork()
if pid == 0:
    got = np.empty_like(expected)
    ok = c.run("max_pool", params, (x, got)) == 0 and np.array_equal(got, expected)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
print("fork ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_c_calls_in_a_forked_child_do_not_hang(c_consumer):
    """A forked child's C calls run serially (libgomp would hang there)."""
    run = subprocess.run([sys.executable, "-c", FORK_SCRIPT.format(path=c_consumer.__file__)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "fork ok" in run.stdout


def test_header_compiles_as_plain_c99(workdir):
    """The header alone (no Python.h) is strict C99: C code can use the types."""
    src = os.path.join(workdir, "plain.c")
    with open(src, "w") as f:
        f.write(textwrap.dedent("""
            #include <pypool/pypool.h>
            int main(void) {
                pypool_params p;
                pypool_tensor t = {0, PYPOOL_FLOAT32, 0, 0, 0};
                pypool_params_init(&p, 2);
                return (int)p.rank + t.ndim - 2 + (int)sizeof(pypool_api) * 0;
            }
        """))
    cc = os.environ.get("CC", "cc")
    run = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I",
                          pypool.get_include(), src, "-o", os.path.join(workdir, "plain")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert subprocess.run([os.path.join(workdir, "plain")]).returncode == 0


def test_headers_and_declarations_are_shipped():
    assert os.path.isfile(HEADER)
    package = os.path.dirname(pypool._native.__file__)
    assert os.path.isfile(os.path.join(package, "capi.pxd"))
