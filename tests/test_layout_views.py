"""Inputs whose memory is in the other layout, and channels_last rows of few channels.

A channels_first view of NHWC memory (``x.transpose(0, 3, 1, 2)``), or a
channels_last view of NCHW memory, is pooled in its own layout and the result
transposed into place (pypool/_dispatch.py, other_layout). Whatever path it
takes, the result must be the one the same values give as a contiguous array:
bit for bit, indices included, into fresh results and into out= of any
strides, at any thread count, with the input untouched.

channels_last max and averages over fewer than 16 channels pool their rows
with positions and channels flattened (running.pxi, few_lane_windows): they
are checked against the NumPy oracle, ties between +0 and -0 included.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pypool
from reference import ref_avg_pool, ref_max_pool
from test_forward_reference import COMMON, assert_avg_matches, assert_same_max


def _values(shape, dtype, seed):
    """Eighths in [-8, 8) (every window sum exact, whatever its order), zeros of
    both signs, and a NaN for float dtypes."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-64, 64, shape).astype(np.float64) / 8
    x[rng.random(shape) < 0.1] = -0.0
    if np.dtype(dtype).kind == "f":
        x.flat[rng.integers(0, x.size)] = np.nan
        return x.astype(dtype)
    if np.dtype(dtype).kind == "b":
        return x > 0
    return (x * 8 % 100).astype(dtype)


OPS = {
    "max": lambda x, **kw: pypool.max_pool2d(x, 3, 2, 1, **kw),
    "max_indices": lambda x, **kw: pypool.max_pool2d(x, 3, 2, 1, return_indices=True, **kw),
    "max_ceil": lambda x, **kw: pypool.max_pool2d(x, (2, 3), (2, 1), ceil_mode=True, **kw),
    "avg": lambda x, **kw: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False, **kw),
    "avg_2x2": lambda x, **kw: pypool.avg_pool2d(x, 2, 2, **kw),
    "lp": lambda x, **kw: pypool.lp_pool2d(x, 2, 3, 2, **kw),
    "adaptive_avg": lambda x, **kw: pypool.adaptive_avg_pool2d(x, (4, 5), **kw),
    "adaptive_max": lambda x, **kw: pypool.adaptive_max_pool2d(x, (4, 5), return_indices=True,
                                                               **kw),
    "global_avg": lambda x, **kw: pypool.global_avg_pool(x, **kw),
    "global_max": lambda x, **kw: pypool.global_max_pool(x, return_indices=True, **kw),
    "max_large": lambda x, **kw: pypool.max_pool2d(x, 9, 1, 4, **kw),
    "avg_large": lambda x, **kw: pypool.avg_pool2d(x, 11, 1, 5, **kw),
}
MAX_ONLY = {"max", "max_indices", "max_ceil", "adaptive_max", "global_max", "max_large"}
WITH_INDICES = {"max_indices", "adaptive_max", "global_max"}


def _as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def _zeros_as_plus(a):
    """-0 as +0: max values without indices may take a tie's sign of zero from
    another zero of the window, depending on the path (README, Max)."""
    a = np.array(a)
    if a.dtype.kind == "f":
        a[a == 0] = 0
    return a


def _assert_bits_equal(got, expected, zeros_alike=False):
    for g, e in zip(_as_tuple(got), _as_tuple(expected)):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert g.flags.c_contiguous
        if zeros_alike:
            g, e = _zeros_as_plus(g), _zeros_as_plus(e)
        np.testing.assert_array_equal(np.ascontiguousarray(g).view(np.uint8),
                                      np.ascontiguousarray(e).view(np.uint8))


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.uint8, np.bool_])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_views_of_the_other_layout_match_contiguous_input(op, dtype, layout):
    if op not in MAX_ONLY and dtype in (np.uint8, np.bool_):
        dtype = np.int16 if dtype == np.uint8 else dtype   # (averages of integers: float64)
    # memory in the other layout, viewed in this one
    if layout == "channels_first":
        memory = _values((2, 13, 17, 5), dtype, seed=1)              # N, H, W, C
        x = memory.transpose(0, 3, 1, 2)
    else:
        memory = _values((2, 5, 13, 17), dtype, seed=2)              # N, C, H, W
        x = memory.transpose(0, 2, 3, 1)
    assert not x.flags.c_contiguous
    snapshot = memory.copy()
    run = OPS[op]
    alike = op in MAX_ONLY and op not in WITH_INDICES
    expected = run(np.ascontiguousarray(x), layout=layout)
    for threads in (1, 2, 3):
        _assert_bits_equal(run(x, layout=layout, num_threads=threads), expected, alike)
    # into out=: C-contiguous, and spaced (every other element of a larger array)
    fresh = tuple(np.empty_like(e) for e in _as_tuple(expected))
    spaced = tuple(np.empty(e.shape[:-1] + (2 * e.shape[-1],), e.dtype)[..., ::2]
                   for e in _as_tuple(expected))
    for outs in (fresh, spaced):
        got = run(x, layout=layout, out=outs if len(outs) > 1 else outs[0], num_threads=2)
        for g, o in zip(_as_tuple(got), outs):
            assert g is o
        _assert_bits_equal(tuple(np.ascontiguousarray(o) for o in outs), expected, alike)
    np.testing.assert_array_equal(memory.view(np.uint8), snapshot.view(np.uint8))


def test_large_views_reuse_scratch_safely():
    """Results of a view large enough for the kept scratch arrays (1 MB and up):
    the same bits call after call, and from threads calling at once."""
    import threading
    memory = _values((4, 80, 80, 64), np.float32, seed=3)
    x = memory.transpose(0, 3, 1, 2)
    expected_avg = pypool.avg_pool2d(np.ascontiguousarray(x), 3, 1, 1)
    expected_max = pypool.max_pool2d(np.ascontiguousarray(x), 3, 2, 1, return_indices=True)
    failures = []

    def work(i):
        for _ in range(3):
            if i % 2:
                got = pypool.avg_pool2d(x, 3, 1, 1, num_threads=2)
                ok = np.array_equal(got.view(np.uint32), expected_avg.view(np.uint32))
            else:
                got = pypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=2)
                ok = all(np.array_equal(g.view(np.uint8), e.view(np.uint8))
                         for g, e in zip(got, expected_max))
            if not ok:
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@st.composite
def few_channel_cases(draw):
    channels = draw(st.integers(1, 15))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    ceil_mode = draw(st.booleans())
    h = draw(st.integers(kh, 12))
    w = draw(st.integers(kw, 40))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return (draw(st.integers(1, 2)), h, w, channels), (kh, kw), (sh, sw), (ph, pw), ceil_mode, dtype


@settings(max_examples=60, **COMMON)
@given(case=few_channel_cases(), seed=st.integers(0, 2**16))
def test_few_channel_rows_match_reference(case, seed):
    shape, kernel, stride, padding, ceil_mode, dtype = case
    x = _values(shape, dtype, seed)
    x[x == 0] = np.where(np.random.default_rng(seed).random((x == 0).sum()) < 0.5, 0.0, -0.0)
    snapshot = x.copy()
    kw = dict(layout="channels_last", ceil_mode=ceil_mode)
    got = pypool.max_pool2d(x, kernel, stride, padding, **kw)
    ref, _ = ref_max_pool(x, kernel, stride, padding, None, ceil_mode, "channels_last")
    assert_same_max(got, ref)
    if shape[-1] > 1:    # +0 / -0 ties: the row-major first (one channel pools as channels_first)
        assert np.array_equal(np.signbit(got), np.signbit(ref))
    got = pypool.avg_pool2d(x, kernel, stride, padding, **kw)
    ref64 = ref_avg_pool(x, kernel, stride, padding, None, ceil_mode, True, None,
                         "channels_last", keep_float64=True)
    assert_avg_matches(got, ref64, dtype)
    for threads in (2, 3):
        np.testing.assert_array_equal(
            pypool.avg_pool2d(x, kernel, stride, padding, num_threads=threads, **kw).view(np.uint8),
            got.view(np.uint8))
    np.testing.assert_array_equal(x.view(np.uint8), snapshot.view(np.uint8))
