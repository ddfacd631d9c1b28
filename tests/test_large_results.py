"""Large results: kernels write results of 16 MB and more (STREAM_MIN_BYTES)
with streaming stores, which bypass the caches and have alignment rules of
their own. Every value must still land where it belongs, whatever the
result's alignment, row length or channel count, and nothing around the
result may be touched.

(The band path's large max results are covered in test_large_windows.py.)

Inputs are standard normal float32 values: the float64 sum of nine of them
is exact, so the oracle below may add in any order and still match the
kernels, which add in a fixed one.
"""

import os
import sys

import numpy as np
import pytest

import pypool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import ref_max_pool  # noqa: E402
from reference_ops import ref_max_pool_backward  # noqa: E402

STREAM_MIN_BYTES = 16 << 20


def _avg3_oracle(x, padding):
    """avg 3x3 stride 1 over the last two axes, padding excluded from the count."""
    p = padding
    lead = [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x.astype(np.float64), lead + [(p, p), (p, p)])
    ones = np.pad(np.ones(x.shape[-2:]), [(p, p), (p, p)])
    oh, ow = xp.shape[-2] - 2, xp.shape[-1] - 2
    total = sum(xp[..., i:i + oh, j:j + ow] for i in range(3) for j in range(3))
    count = sum(ones[i:i + oh, j:j + ow] for i in range(3) for j in range(3))
    return (total / count).astype(np.float32)


def _out_at(nbytes_offset, shape, fill, dtype=np.float32):
    """A result view of ``shape`` whose address is ``nbytes_offset`` (mod 16)
    past a 16-byte boundary, in a buffer filled with ``fill``."""
    size, item = int(np.prod(shape)), np.dtype(dtype).itemsize
    buf = np.full(size + 32 // item, fill, dtype)
    start = (-buf.ctypes.data % 16 + nbytes_offset) // item
    return buf, start, buf[start:start + size].reshape(shape)


def _untouched(buf, start, size, fill):
    np.testing.assert_array_equal(np.delete(buf, np.arange(start, start + size)), fill)


@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("layout,shape,padding", [
    ("channels_first", (4, 64, 128, 128), 1),   # rows of 128: every row 64-byte multiple
    ("channels_first", (8, 64, 90, 100), 1),    # rows of 100: a masked end, lines across rows
    ("channels_first", (8, 64, 90, 100), 0),    # rows of 98: every other row off 16 bytes
    ("channels_last", (4, 128, 128, 64), 1),    # 64 channels a position
    ("channels_last", (8, 150, 150, 24), 1),    # 24: lines across positions
    ("channels_last", (8, 170, 170, 20), 0),    # 20: not whole vectors, stored plainly
])
def test_avg3_of_a_large_result(layout, shape, padding, misaligned):
    """The avg 3x3 stride 1 kernels stream results of 16 MB and more."""
    rng = np.random.default_rng(sum(shape) + padding)
    x = rng.standard_normal(shape, dtype=np.float32)
    x.reshape(-1)[rng.integers(0, x.size, 30)] = np.nan
    planes = x if layout == "channels_first" else np.moveaxis(x, -1, 1)
    ref = _avg3_oracle(planes, padding)
    if layout == "channels_last":
        ref = np.moveaxis(ref, 1, -1)
    assert ref.nbytes >= STREAM_MIN_BYTES
    buf, start, out = _out_at(4 if misaligned else 0, ref.shape, 7.0)
    got = pypool.avg_pool2d(x, 3, 1, padding, count_include_pad=False, layout=layout,
                            out=out, num_threads=2)
    assert got is out
    np.testing.assert_array_equal(got, ref)
    _untouched(buf, start, ref.size, 7.0)
    # a fresh result (NumPy's own alignment) and one thread give the same bits
    np.testing.assert_array_equal(
        pypool.avg_pool2d(x, 3, 1, padding, count_include_pad=False, layout=layout,
                          num_threads=1), ref)


def _separable_avg_oracle(x, k, p):
    """avg k x k stride 1 over the last two axes, padding p excluded from the count."""
    lead = [(0, 0)] * (x.ndim - 2)
    xp = np.pad(x.astype(np.float64), lead + [(p, p), (p, p)])
    ones = np.pad(np.ones(x.shape[-2:]), [(p, p), (p, p)])
    oh, ow = xp.shape[-2] - k + 1, xp.shape[-1] - k + 1
    rows = sum(xp[..., i:i + oh, :] for i in range(k))
    total = sum(rows[..., j:j + ow] for j in range(k))
    orows = sum(ones[i:i + oh, :] for i in range(k))
    count = sum(orows[:, j:j + ow] for j in range(k))
    return (total / count).astype(np.float32)


@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("shape", [
    (4, 32, 140, 260),   # rows of 260 floats: 16-byte multiples, streamed when aligned
    (4, 32, 140, 258),   # rows of 258: every other row off 16 bytes, stored plainly
])
def test_large_window_average_of_a_large_result(shape, misaligned):
    """The sum band path (channels_first float32 averages of large windows) streams
    results of 16 MB and more. Inputs are multiples of 1/8, so the float64 window
    sums are exact in any order."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.integers(-64, 64, shape) / 8).astype(np.float32)
    x.reshape(-1)[rng.integers(0, x.size, 30)] = np.nan
    ref = _separable_avg_oracle(x, 15, 7)
    assert ref.nbytes >= STREAM_MIN_BYTES
    buf, start, out = _out_at(4 if misaligned else 0, ref.shape, 7.0)
    got = pypool.avg_pool2d(x, 15, 1, 7, count_include_pad=False, out=out, num_threads=2)
    assert got is out
    np.testing.assert_array_equal(got, ref)
    _untouched(buf, start, ref.size, 7.0)
    np.testing.assert_array_equal(
        pypool.avg_pool2d(x, 15, 1, 7, count_include_pad=False, num_threads=1), ref)


@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("shape,stride,indices", [
    ((8, 112, 112, 64), 2, True),     # 64 channels: whole blocks of 32
    ((10, 128, 128, 40), 2, True),    # 40 = 32 + 8: a block's second half masked
    ((4, 128, 128, 64), 1, False),
    ((4, 128, 128, 72), 1, False),    # 72 = 2 * 32 + 8: vectors of 8 too
])
def test_channels_last_max_of_a_large_result(shape, stride, indices, misaligned):
    """channels_last float32 max (the lanes kernels of _lanes_max.h) streams
    results of 16 MB and more, values and indices counted together."""
    rng = np.random.default_rng(sum(shape) + stride)
    x = rng.standard_normal(shape, dtype=np.float32)
    x.reshape(-1)[rng.integers(0, x.size, 30)] = np.nan
    x[0, :3, :3, :5] = -np.inf    # windows of -inf alone: the first tap's index
    ref_v, ref_i = ref_max_pool(x, (3, 3), (stride,) * 2, (1, 1), layout="channels_last")
    assert ref_v.nbytes + (ref_i.nbytes if indices else 0) >= STREAM_MIN_BYTES
    off = 4 if misaligned else 0
    vbuf, vstart, vout = _out_at(off, ref_v.shape, 7.0)
    ibuf, istart, iout = _out_at(8 if misaligned else 0, ref_i.shape, -7, np.int64)
    kw = dict(layout="channels_last", num_threads=2)
    if indices:
        got = pypool.max_pool2d(x, 3, stride, 1, return_indices=True, out=(vout, iout), **kw)
        assert got[0] is vout and got[1] is iout
        np.testing.assert_array_equal(iout, ref_i)
        _untouched(ibuf, istart, ref_i.size, -7)
    else:
        assert pypool.max_pool2d(x, 3, stride, 1, out=vout, **kw) is vout
    np.testing.assert_array_equal(vout, ref_v)
    _untouched(vbuf, vstart, ref_v.size, 7.0)


@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("shape,two_d", [
    ((64, 33, 4096), False),     # rows of 2047 outputs: lines across rows, every start moves
    ((40, 52, 4098), False),     # rows of 2048: each row whole lines when the result is aligned
    ((8, 33, 8, 4096), True),    # 1-high windows of max_pool2d: the same row kernel
])
def test_max_3_wide_stride_2_of_a_large_result(shape, two_d, misaligned):
    """Max 3 wide at stride 2 along rows (float32 on AVX-512 CPUs, _row_max.h)
    streams results of 16 MB and more, whole lines only: bit for bit the
    reference's values (NaN, and zeros of both signs), nothing around the
    result touched, and the same bits from a fresh result and one thread."""
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-3, 4, shape).astype(np.float32)
    x[(x == 0) & (rng.random(shape) < 0.5)] = -0.0
    x.reshape(-1)[rng.integers(0, x.size, 300)] = np.nan
    kernel, stride = ((1, 3), (1, 2)) if two_d else ((3,), (2,))
    ref, _ = ref_max_pool(x, kernel, stride)
    assert ref.nbytes >= STREAM_MIN_BYTES
    buf, start, out = _out_at(4 if misaligned else 0, ref.shape, 7.0)
    pool = pypool.max_pool2d if two_d else pypool.max_pool1d
    assert pool(x, kernel, stride, out=out, num_threads=2) is out
    np.testing.assert_array_equal(out.view(np.uint32), ref.view(np.uint32))
    _untouched(buf, start, ref.size, 7.0)
    np.testing.assert_array_equal(pool(x, kernel, stride, num_threads=1).view(np.uint32),
                                  ref.view(np.uint32))


@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(12, 128, 56, 56), (8, 128, 90, 91)])
def test_avg_backward_2x2_of_a_large_gradient(shape, dtype, misaligned):
    """avg 2x2 stride 2's gradient (each output's share written to its four
    inputs, a last odd column zero) streams gradients of 16 MB and more.
    float64 halves the batch."""
    if dtype == np.float64:
        shape = (shape[0] // 2,) + shape[1:]
    rng = np.random.default_rng(sum(shape))
    oh, ow = shape[2] // 2, shape[3] // 2
    g = rng.standard_normal(shape[:2] + (oh, ow)).astype(dtype)
    g.reshape(-1)[rng.integers(0, g.size, 30)] = np.nan
    g.reshape(-1)[rng.integers(0, g.size, 30)] = -0.0    # shares of +0, not -0
    share = (g.astype(np.float64) / 4 + 0.0).astype(dtype)
    ref = np.zeros(shape, dtype)
    ref[..., :2 * oh, :2 * ow] = np.repeat(np.repeat(share, 2, axis=-1), 2, axis=-2)
    assert ref.nbytes >= STREAM_MIN_BYTES
    item = np.dtype(dtype).itemsize
    buf, start, out = _out_at(item if misaligned else 0, shape, 7.0, dtype)
    got = pypool.avg_pool_backward(g, shape, (2, 2), out=out, num_threads=2)
    assert got is out
    np.testing.assert_array_equal(got, ref)
    assert not np.signbit(got[got == 0]).any()
    _untouched(buf, start, ref.size, 7.0)


@pytest.mark.parametrize("misaligned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,rows_apart", [
    ((8, 64, 96, 91), False),    # planes of 8736: pieces cut on the result's lines
    ((8, 64, 96, 91), True),     # result rows 3 elements apart: drained row by row
    ((6, 37, 152, 150), False),  # 37 channels, planes of 22800
])
def test_max_backward_of_a_large_gradient(shape, rows_apart, dtype, misaligned):
    """Max backward streams gradients of 16 MB and more, draining each plane's
    float64 sums as one run cut at the result's cache lines (or row by row
    when the result's rows are apart). Indices of a real 3x3 stride 2 max,
    some moved anywhere in their plane, some -1, and float64 halves the batch."""
    if dtype == np.float64:
        shape = (shape[0] // 2,) + shape[1:]
    rng = np.random.default_rng(sum(shape) + rows_apart)
    x = rng.standard_normal(shape).astype(dtype)
    y, ind = pypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    plane = shape[-2] * shape[-1]
    moved = rng.random(ind.shape) < 0.01
    ind[moved] = rng.integers(-1, plane, int(moved.sum()))
    g = rng.standard_normal(y.shape).astype(dtype)
    ref = ref_max_pool_backward(g, ind, shape)
    assert ref.nbytes >= STREAM_MIN_BYTES
    item = np.dtype(dtype).itemsize
    wide = shape[:-1] + (shape[-1] + 3,) if rows_apart else shape
    buf, start, whole = _out_at(item if misaligned else 0, wide, 7.0, dtype)
    out = whole[..., :shape[-1]]
    got = pypool.max_pool_backward(g, ind, shape, out=out, num_threads=2)
    assert got is out
    np.testing.assert_array_equal(got, ref)
    if rows_apart:
        np.testing.assert_array_equal(whole[..., shape[-1]:], 7.0)
    _untouched(buf, start, whole.size, 7.0)
    np.testing.assert_array_equal(pypool.max_pool_backward(g, ind, shape, num_threads=1), ref)
