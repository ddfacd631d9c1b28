"""Strided inputs packed on the kernels' threads (pypool/_dispatch.py,
packable_rows, kernel_input; pyx/relayout.pxi, gather_rows).

A view whose last axis is stepped or reversed (x[..., ::2], x[..., ::-1])
and whose other axes merge is packed into contiguous scratch, in pieces
along the batch when large, and pooled by the contiguous paths: the results
must be those of pooling NumPy's contiguous copy, bit for bit, and the input
must be left as it was.
"""

import numpy as np
import pytest

import pypool
from pypool import _dispatch, _native

RNG = np.random.default_rng(23)

OPS = [
    ("max", lambda x, **kw: pypool.max_pool2d(x, 3, 2, 1, **kw)),
    ("max_indices", lambda x, **kw: pypool.max_pool2d(x, 2, 2, return_indices=True, **kw)),
    ("avg", lambda x, **kw: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False, **kw)),
    ("lp", lambda x, **kw: pypool.lp_pool2d(x, 3, 3, 2, **kw)),
    ("adaptive_max", lambda x, **kw: pypool.adaptive_max_pool2d(x, (5, 3), **kw)),
]

VIEWS = {
    "column slice": lambda a: a[..., ::2],
    "reversed columns": lambda a: a[..., ::-1],
    "every third column": lambda a: a[..., 1::3],
    "row and column slice": lambda a: a[:, :, ::2, ::2],
    # (axis 1 stepped too: the axes before the last do not merge into rows,
    # so this one is not packed)
    "axis 1 and column slice": lambda a: a[:, ::2, :, ::2],
}


def _data(shape, dtype):
    if np.dtype(dtype).kind == "f":
        x = RNG.standard_normal(shape).astype(dtype)
        x.reshape(-1)[RNG.integers(0, x.size, 20)] = np.nan
        x.reshape(-1)[RNG.integers(0, x.size, 20)] = -0.0
        return x
    if np.dtype(dtype).kind == "b":
        return RNG.integers(0, 2, shape).astype(bool)
    return RNG.integers(0, 100, shape).astype(dtype)


def _same(got, expected):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(np.ascontiguousarray(g).view(np.uint8),
                                      np.ascontiguousarray(e).view(np.uint8))


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("name, run", OPS)
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_strided_views_pool_as_their_copies(monkeypatch, view, name, run, layout):
    """Small sizes for packing and pieces, so that both happen here (a last
    piece too small to pack takes the strided paths)."""
    monkeypatch.setattr(_dispatch, "PACK_MIN_BYTES", 1 << 12)
    monkeypatch.setattr(_dispatch, "PIECE_BYTES", 1 << 15)
    gathered = []
    real = _native.gather_rows

    def counting(*args):
        gathered.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(_native, "gather_rows", counting)
    shape = (3, 8, 30, 44) if layout == "channels_first" else (3, 30, 44, 8)
    base = _data(shape, np.float32)
    x = VIEWS[view](base)
    snapshot = base.copy()
    expected = run(np.ascontiguousarray(x), layout=layout)
    for threads in (1, 2):
        gathered.clear()
        _same(run(x, layout=layout, num_threads=threads), expected)
        assert bool(gathered) == (view != "axis 1 and column slice")
    np.testing.assert_array_equal(base.view(np.uint32), snapshot.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float64, np.uint8, np.int16, np.bool_, np.int64])
def test_strided_views_of_other_dtypes(monkeypatch, dtype):
    monkeypatch.setattr(_dispatch, "PACK_MIN_BYTES", 1 << 12)
    base = _data((2, 6, 20, 40), dtype)
    x = base[..., ::2]
    expected = pypool.max_pool2d(np.ascontiguousarray(x), 3, 2, 1, return_indices=True)
    _same(pypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=2), expected)
    if np.dtype(dtype).kind != "b":
        expected = pypool.avg_pool2d(np.ascontiguousarray(x), 2, 2)
        _same(pypool.avg_pool2d(x, 2, 2, num_threads=2), expected)


def test_gather_rows_checks_its_arguments():
    src = np.arange(24, dtype=np.uint32).reshape(4, 6)[:, ::2]
    dst = np.empty((4, 3), np.uint32)
    _native.gather_rows(src, dst, 2)
    np.testing.assert_array_equal(dst, src)
    with pytest.raises(ValueError, match="shapes"):
        _native.gather_rows(src, np.empty((4, 4), np.uint32), 1)


def test_broadcast_views_are_not_packed(monkeypatch):
    """A stride of 0 repeats memory: its packed copy could be far larger than
    the memory (test_huge.py has such views), so it is pooled in place."""
    monkeypatch.setattr(_dispatch, "PACK_MIN_BYTES", 1 << 10)
    gathered = []
    real = _native.gather_rows
    monkeypatch.setattr(_native, "gather_rows", lambda *a: gathered.append(1) or real(*a))
    base = _data((2, 4, 30, 1), np.float32)
    for x in (np.broadcast_to(base, (2, 4, 30, 40)), np.broadcast_to(base[:1], (3, 4, 30, 1))):
        expected = pypool.avg_pool2d(np.ascontiguousarray(x), (2, 1), 1)
        _same(pypool.avg_pool2d(x, (2, 1), 1), expected)
        expected = pypool.max_pool2d(np.ascontiguousarray(x), 1, 1)
        _same(pypool.max_pool2d(x, 1, 1), expected)
    assert gathered == []
