"""No leaks over many calls: memory (RSS and tracemalloc) and references.

Each public op family is called CALLS times on small inputs, round-robin over
its variants: a new result, out= (and other argument forms), and error paths
that raise TypeError or ValueError at different stages (some after the
result was already allocated). After a warm-up,

* tracemalloc must see no growth over the second half of TRACED_CALLS calls
  (Python objects and NumPy buffers are both traced; the first half lets
  one-time caches - NumPy's, the interpreter's - fill up),
* the resident set size must not grow over the remaining calls (C-level
  allocations the kernels make and must free: window tables, scratch),
* the reference counts of the inputs, out= arrays and argument tuples must be
  where they were, and every fresh result must be referenced by its caller
  only (checked on every call).

The RSS check reads /proc/self/statm (else the peak RSS from ``resource``);
it is skipped only where neither exists.
"""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import pypool

CALLS = 100_000                  # calls per op family
WARMUP = 1_000
TRACED_CALLS = CALLS // 10       # the first calls after warm-up run under tracemalloc
TRACED_SLACK = 32 * 1024         # bytes tracemalloc may hold more after the second half of them
RSS_SLACK = 2 * 1024 * 1024      # bytes the resident set may grow over the other calls
# Under tools/sanitize.sh the RSS check cannot work (ASan's allocator quarantines
# freed memory); the tracemalloc and reference-count checks still run there.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_bytes():
    """Current resident set size, else the peak one (it too grows with a leak), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ----------------------------------------------------------------------------- op families
# Each builder returns (variants, watched): variants are (kind, zero-argument
# callable) with kind "new" (returns fresh arrays), "out" (returns the out=
# object given) or "error" (raises TypeError / ValueError); watched are the
# objects whose reference counts must not change.

def _inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))          # channels_last copy
    view = x[:, :, ::-1, ::2]                                     # strided view
    half = x.astype(np.float16)                                   # goes through scratch copies
    return rng, x, xl, view, half


def _max_pool():
    _, x, xl, view, half = _inputs()
    k, s, p = (3, 3), (2, 2), (1, 1)
    out = np.empty((2, 3, 4, 4), np.float32)
    bad = np.zeros((2, 3, 8, 8), np.complex64)
    return [
        ("new", lambda: pypool.max_pool(x, k, s, p)),
        ("new", lambda: pypool.max_pool2d(view, 2, ceil_mode=True)),
        ("new", lambda: pypool.max_pool2d(half, 3, 1, 1, layout="channels_first")),
        ("out", lambda: pypool.max_pool(x, k, s, p, out=out)),
        ("new", lambda: pypool.max_pool(xl, k, s, p, layout="channels_last")),
        ("error", lambda: pypool.max_pool(bad, k)),                       # TypeError: dtype
        ("error", lambda: pypool.max_pool(x, (0, 3))),                    # ValueError: kernel
        ("error", lambda: pypool.max_pool(x, k, s, p, out=out[:1])),      # ValueError: out shape
    ], [x, xl, view, half, out, bad, k, s, p]


def _max_pool_indices():
    _, x, xl, view, half = _inputs()
    k, s, p = (3, 3), (2, 2), (1, 1)
    pair = (np.empty((2, 3, 4, 4), np.float32), np.empty((2, 3, 4, 4), np.int64))
    return [
        ("new", lambda: pypool.max_pool(x, k, s, p, return_indices=True)),
        ("new", lambda: pypool.max_pool1d(view, 2, 1, dilation=2, return_indices=True)),
        ("new", lambda: pypool.max_pool3d(half, 2, return_indices=True)),
        ("out", lambda: pypool.max_pool(x, k, s, p, return_indices=True, out=pair)),
        ("error", lambda: pypool.max_pool(x, k, s, p, return_indices=True, out=pair[:1])),
        ("error", lambda: pypool.max_pool(x, k, s, p, return_indices="yes")),   # TypeError
    ], [x, xl, view, half, pair, pair[0], pair[1], k, s, p]


def _avg_pool():
    _, x, xl, view, half = _inputs()
    k, s, p = (3, 3), (2, 2), ((1, 0), (0, 1))
    out = np.empty((2, 3, 4, 4), np.float32)
    out64 = np.empty((2, 4, 4, 3))
    return [
        ("new", lambda: pypool.avg_pool(x, k, s, p)),
        ("new", lambda: pypool.avg_pool2d(view, 2, count_include_pad=False, padding=1)),
        ("new", lambda: pypool.avg_pool2d(half, 3, 1, "same", divisor_override=7)),
        ("out", lambda: pypool.avg_pool(x, k, s, p, out=out)),
        ("out", lambda: pypool.avg_pool(xl, k, s, p, layout="channels_last", dtype=np.float64,
                                        out=out64)),
        ("error", lambda: pypool.avg_pool(x, k, s, p, divisor_override=0)),   # ValueError
        ("error", lambda: pypool.avg_pool(x, k, s, p, dtype=np.int32)),       # TypeError
        ("error", lambda: pypool.avg_pool(x, k, s, p, out=x)),                # ValueError: overlap
    ], [x, xl, view, half, out, out64, k, s, p]


def _lp_pool():
    _, x, xl, view, half = _inputs()
    k = (2, 2)
    out = np.empty((2, 3, 4, 4), np.float32)
    return [
        ("new", lambda: pypool.lp_pool(x, 2, k)),
        ("new", lambda: pypool.lp_pool2d(view, 3.5, 2, 1, padding=1)),
        ("new", lambda: pypool.lp_pool2d(half, float("inf"), 3, ceil_mode=True)),
        ("out", lambda: pypool.lp_pool(x, 1, k, out=out)),
        ("new", lambda: pypool.lp_pool(xl, 2, k, layout="channels_last")),
        ("error", lambda: pypool.lp_pool(x, -1, k)),          # ValueError: norm_type
        ("error", lambda: pypool.lp_pool(x, "2", k)),         # TypeError: norm_type
    ], [x, xl, view, half, out, k]


def _global_avg_pool():
    _, x, xl, view, half = _inputs()
    out = np.empty((2, 3, 1, 1), np.float32)
    return [
        ("new", lambda: pypool.global_avg_pool(x)),
        ("new", lambda: pypool.global_avg_pool(view, dtype=np.float64)),
        ("new", lambda: pypool.global_avg_pool(half)),
        ("out", lambda: pypool.global_avg_pool(x, keepdims=True, out=out)),
        ("new", lambda: pypool.global_avg_pool(xl, layout="channels_last")),
        ("error", lambda: pypool.global_avg_pool(x[0, 0])),            # ValueError: 2 dims
        ("error", lambda: pypool.global_avg_pool(x, keepdims=1)),      # TypeError
    ], [x, xl, view, half, out]


def _global_max_pool():
    _, x, xl, view, half = _inputs()
    pair = (np.empty((2, 3), np.float32), np.empty((2, 3), np.int64))
    return [
        ("new", lambda: pypool.global_max_pool(x, return_indices=True)),
        ("new", lambda: pypool.global_max_pool(view, keepdims=True)),
        ("new", lambda: pypool.global_max_pool(half, return_indices=True)),
        ("out", lambda: pypool.global_max_pool(x, return_indices=True, out=pair)),
        ("new", lambda: pypool.global_max_pool(xl, layout="channels_last", return_indices=True)),
        ("error", lambda: pypool.global_max_pool(x, layout="NCHW")),                  # ValueError
        ("error", lambda: pypool.global_max_pool(x, return_indices=True,
                                                 out=(pair[0], pair[0]))),   # TypeError: dtype
    ], [x, xl, view, half, pair, pair[0], pair[1]]


def _adaptive_avg_pool():
    _, x, xl, view, half = _inputs()
    size = (3, 5)
    out = np.empty((2, 3, 3, 5), np.float32)
    return [
        ("new", lambda: pypool.adaptive_avg_pool(x, size)),
        ("new", lambda: pypool.adaptive_avg_pool2d(view, (None, 3))),
        ("new", lambda: pypool.adaptive_avg_pool3d(half, 2)),
        ("out", lambda: pypool.adaptive_avg_pool(x, size, out=out)),
        ("new", lambda: pypool.adaptive_avg_pool(xl, size, layout="channels_last")),
        ("error", lambda: pypool.adaptive_avg_pool(x, (3, 0))),      # ValueError
        ("error", lambda: pypool.adaptive_avg_pool(x, 3)),           # TypeError: needs a tuple
    ], [x, xl, view, half, out, size]


def _adaptive_max_pool():
    _, x, xl, view, half = _inputs()
    size = (3, 5)
    pair = (np.empty((2, 3, 3, 5), np.float32), np.empty((2, 3, 3, 5), np.int64))
    return [
        ("new", lambda: pypool.adaptive_max_pool(x, size, return_indices=True)),
        ("new", lambda: pypool.adaptive_max_pool2d(view, 3)),
        ("new", lambda: pypool.adaptive_max_pool1d(half, 5, return_indices=True)),
        ("out", lambda: pypool.adaptive_max_pool(x, size, return_indices=True, out=pair)),
        ("new", lambda: pypool.adaptive_max_pool(xl, size, layout="channels_last")),
        ("error", lambda: pypool.adaptive_max_pool(x, (3, 5, 7, 9))),   # ValueError: rank 4
        ("error", lambda: pypool.adaptive_max_pool(x, size, out=pair)), # TypeError: a pair
    ], [x, xl, view, half, pair, pair[0], pair[1], size]


def _max_unpool():
    _, x, xl, view, half = _inputs()
    v, i = pypool.max_pool2d(x, 2, return_indices=True)
    vl, il = pypool.max_pool2d(xl, 2, return_indices=True, layout="channels_last")
    bad = i.copy()
    bad[1, 2, 3, 3] = 64                         # outside the 8x8 plane
    i32 = i.astype(np.int32)
    out = np.empty((2, 3, 8, 8), np.float32)
    k = (2, 2)
    return [
        ("new", lambda: pypool.max_unpool(v, i, k)),
        ("new", lambda: pypool.max_unpool2d(v.astype(np.float16), i32, 2, output_size=(9, 9))),
        ("out", lambda: pypool.max_unpool(v, i, k, out=out)),
        ("new", lambda: pypool.max_unpool(vl, il, k, layout="channels_last")),
        ("error", lambda: pypool.max_unpool(v, bad, k)),            # ValueError after allocating
        ("error", lambda: pypool.max_unpool(v, i.astype(np.float64), k)),   # TypeError
    ], [v, i, vl, il, bad, i32, out, k]


def _max_pool_backward():
    rng, x, xl, view, half = _inputs()
    v, i = pypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(v.shape).astype(np.float32)
    gv, gi = pypool.global_max_pool(x, return_indices=True)
    bad = i.copy()
    bad[0, 0, 0, 0] = -2
    out = np.empty_like(x)
    shape = x.shape
    return [
        ("new", lambda: pypool.max_pool_backward(g, i, shape)),
        ("new", lambda: pypool.max_pool_backward(gv, gi, shape)),
        ("new", lambda: pypool.max_pool_backward(g.astype(np.float16), i, shape)),
        ("out", lambda: pypool.max_pool_backward(g, i, shape, out=out)),
        ("error", lambda: pypool.max_pool_backward(g, bad, shape)),     # ValueError after allocating
        ("error", lambda: pypool.max_pool_backward(g, i, (2, 3, 8))),   # ValueError: shapes
        ("error", lambda: pypool.max_pool_backward(g, i, shape, ndim="2")),   # TypeError
    ], [x, v, i, g, gv, gi, bad, out, shape]


def _avg_pool_backward():
    rng, x, xl, view, half = _inputs()
    k, s, p = (3, 3), (2, 2), (1, 1)
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    gl = rng.standard_normal((2, 4, 4, 3))
    out = np.empty_like(x)
    shape, shapel = x.shape, xl.shape
    return [
        ("new", lambda: pypool.avg_pool_backward(g, shape, k, s, p)),
        ("new", lambda: pypool.avg_pool_backward(gl, shapel, k, s, p, count_include_pad=False,
                                                 layout="channels_last")),
        ("out", lambda: pypool.avg_pool_backward(g, shape, k, s, p, out=out)),
        ("error", lambda: pypool.avg_pool_backward(gl, shape, k, s, p)),      # ValueError
        ("error", lambda: pypool.avg_pool_backward(g, shape, 3.0, s, p)),     # TypeError
    ], [x, g, gl, out, shape, shapel, k, s, p]


def _lp_pool_backward():
    rng, x, xl, view, half = _inputs()
    k = (2, 2)
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    out = np.empty_like(x)
    return [
        ("new", lambda: pypool.lp_pool_backward(g, x, 2, k)),
        ("new", lambda: pypool.lp_pool_backward(g, x, float("inf"), k)),
        ("out", lambda: pypool.lp_pool_backward(g, x, 3, k, out=out)),
        ("error", lambda: pypool.lp_pool_backward(g[:1], x, 2, k)),          # ValueError
        ("error", lambda: pypool.lp_pool_backward(g, x, None, k)),           # TypeError
    ], [x, g, out, k]


def _global_avg_pool_backward():
    rng, x, xl, view, half = _inputs()
    g = rng.standard_normal((2, 3)).astype(np.float32)
    gk = g.reshape(2, 3, 1, 1)
    out = np.empty_like(x)
    shape = x.shape
    return [
        ("new", lambda: pypool.global_avg_pool_backward(g, shape)),
        ("new", lambda: pypool.global_avg_pool_backward(gk, shape)),
        ("out", lambda: pypool.global_avg_pool_backward(g, shape, out=out)),
        ("error", lambda: pypool.global_avg_pool_backward(g, (2, 4, 8, 8))),     # ValueError
        ("error", lambda: pypool.global_avg_pool_backward(g, shape, out=[0])),   # TypeError
    ], [x, g, gk, out, shape]


def _adaptive_avg_pool_backward():
    rng, x, xl, view, half = _inputs()
    g = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)
    out = np.empty_like(x)
    shape = x.shape
    return [
        ("new", lambda: pypool.adaptive_avg_pool_backward(g, shape)),
        ("new", lambda: pypool.adaptive_avg_pool_backward(g[:, :, :, :2], shape, ndim=2)),
        ("out", lambda: pypool.adaptive_avg_pool_backward(g, shape, out=out)),
        ("error", lambda: pypool.adaptive_avg_pool_backward(g[0], shape)),           # ValueError
        ("error", lambda: pypool.adaptive_avg_pool_backward(g, shape, layout=1)),    # ValueError
        ("error", lambda: pypool.adaptive_avg_pool_backward(g, shape, ndim=2.0)),    # TypeError
    ], [x, g, out, shape]


FAMILIES = {
    "max_pool": _max_pool,
    "max_pool_indices": _max_pool_indices,
    "avg_pool": _avg_pool,
    "lp_pool": _lp_pool,
    "global_avg_pool": _global_avg_pool,
    "global_max_pool": _global_max_pool,
    "adaptive_avg_pool": _adaptive_avg_pool,
    "adaptive_max_pool": _adaptive_max_pool,
    "max_unpool": _max_unpool,
    "max_pool_backward": _max_pool_backward,
    "avg_pool_backward": _avg_pool_backward,
    "lp_pool_backward": _lp_pool_backward,
    "global_avg_pool_backward": _global_avg_pool_backward,
    "adaptive_avg_pool_backward": _adaptive_avg_pool_backward,
}


# ----------------------------------------------------------------------------- the runner

def _fresh_refcount():
    """getrefcount of an array held the way _run holds a fresh result."""
    results = (np.empty(1),)
    for a in results:
        return sys.getrefcount(a)


def _run(variants, n, start, fresh):
    """Calls start .. start + n - 1 (round-robin over the variants), checking each
    result: fresh arrays referenced by the caller only, out= given back, errors raised."""
    outs = {}
    for i in range(start, start + n):
        kind, fn = variants[i % len(variants)]
        if kind == "error":
            try:
                fn()
            except (TypeError, ValueError):
                continue
            raise AssertionError(f"variant {i % len(variants)} did not raise")
        results = fn()
        if not isinstance(results, tuple):
            results = (results,)
        for a in results:
            assert isinstance(a, np.ndarray)
            if kind == "new":
                count = sys.getrefcount(a)
                assert count == fresh, (
                    f"variant {i % len(variants)}: a fresh result has {count} references, "
                    f"expected {fresh}: something else keeps it")
        if kind == "out":   # the same object(s) every time
            ids = tuple(id(a) for a in results)
            assert outs.setdefault(i % len(variants), ids) == ids
        del results


@pytest.mark.parametrize("family", list(FAMILIES))
def test_no_leak_over_many_calls(family):
    variants, watched = FAMILIES[family]()
    kinds = {k for k, _ in variants}
    assert kinds == {"new", "out", "error"}, kinds
    fresh = _fresh_refcount()
    _run(variants, WARMUP, 0, fresh)
    gc.collect()
    counts = [sys.getrefcount(w) for w in watched]

    tracemalloc.start()
    try:
        _run(variants, TRACED_CALLS // 2, 0, fresh)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        _run(variants, TRACED_CALLS - TRACED_CALLS // 2, TRACED_CALLS // 2, fresh)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        if grown > TRACED_SLACK:
            top = tracemalloc.take_snapshot().statistics("lineno")[:5]
    finally:
        tracemalloc.stop()
    assert grown <= TRACED_SLACK, (
        f"{family}: {grown} more bytes traced after {TRACED_CALLS // 2} calls; top: {top}")

    gc.collect()
    rss0 = rss_bytes()
    _run(variants, CALLS - TRACED_CALLS, TRACED_CALLS, fresh)
    gc.collect()
    rss1 = rss_bytes()

    after = [sys.getrefcount(w) for w in watched]
    changed = [(i, a - b) for i, (a, b) in enumerate(zip(after, counts)) if a != b]
    assert not changed, f"{family}: reference counts of watched objects changed: {changed}"
    if UNDER_ASAN:
        return   # ASan keeps freed blocks in quarantine: RSS grows without a leak
    if rss0 is None:
        pytest.skip("no way to read the resident set size on this platform")
    assert rss1 - rss0 <= RSS_SLACK, (
        f"{family}: resident set grew by {rss1 - rss0} bytes over "
        f"{CALLS - TRACED_CALLS} calls")
