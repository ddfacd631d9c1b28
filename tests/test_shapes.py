"""Output shapes and resolved pads, computed by hand (SPEC sections 2, 3, 8).

Every expected number below was worked out on paper from the SPEC formulas;
the arithmetic is written next to each case so it can be re-checked.
Notation: ext = (k - 1) * d + 1, span = L + pb + pe - ext,
floor mode n = span // s + 1, ceil mode n = ceil(span / s) + 1, minus one if
(n - 1) * s >= L + pb.
"""

import numpy as np
import pytest

import pypool


# ---------------------------------------------------------------------------
# pooled_shape
# ---------------------------------------------------------------------------

SHAPE_CASES = [
    # --- basics, stride=None means stride = kernel ----------------------------
    # 1-D: L=9,k=3,s=2: span 6 -> 6//2+1 = 4
    dict(shape=(9,), k=(3,), s=(2,), out=(4,)),
    # L=7,k=3,stride None (=3): span 4 -> 4//3+1 = 2
    dict(shape=(1, 1, 7), k=(3,), out=(1, 1, 2)),
    # same, ceil: ceil(4/3)+1 = 3; last start 2*3=6 < L+pb=7 -> kept
    dict(shape=(1, 1, 7), k=(3,), ceil=True, out=(1, 1, 3)),

    # --- the ceil_mode last-window rule ---------------------------------------
    # L=5,k=2,s=2,pad=1: span 5+2-2=5; floor 5//2+1 = 3
    dict(shape=(1, 1, 5), k=(2,), s=(2,), p=1, out=(1, 1, 3)),
    # ceil: ceil(5/2)+1 = 4, but the 4th window starts at 3*2 = 6 = L+pb -> it
    # would start in the end padding, dropped -> 3
    dict(shape=(1, 1, 5), k=(2,), s=(2,), p=1, ceil=True, out=(1, 1, 3)),
    # L=5,k=2,s=2,pad=0: span 3; floor 3//2+1 = 2
    dict(shape=(1, 1, 5), k=(2,), s=(2,), out=(1, 1, 2)),
    # ceil adds a window: ceil(3/2)+1 = 3; last start 4 < 5 -> kept
    dict(shape=(1, 1, 5), k=(2,), s=(2,), ceil=True, out=(1, 1, 3)),
    # L=6,k=3,s=2,pad=1: span 6+2-3=5; floor 5//2+1 = 3; ceil ceil(5/2)+1 = 4,
    # last start 3*2=6 < L+pb=7 -> kept
    dict(shape=(2, 6), k=(3,), s=(2,), p=1, out=(2, 3)),
    dict(shape=(2, 6), k=(3,), s=(2,), p=1, ceil=True, out=(2, 4)),
    # kernel wider than the input but ceil_mode: L=1,k=2,s=2: span -1,
    # ceil(-1/2)+1 = 1 (start 0 < 1 kept) -- PyTorch gives 1 too
    dict(shape=(1, 1, 1), k=(2,), s=(2,), ceil=True, out=(1, 1, 1)),

    # --- asymmetric pads ------------------------------------------------------
    # L=5,k=3,s=1,(2,0): span 5+2-3 = 4 -> 5
    dict(shape=(1, 5), k=(3,), s=(1,), p=((2, 0),), out=(1, 5)),
    # (2,1): span 5 -> 6
    dict(shape=(1, 5), k=(3,), s=(1,), p=((2, 1),), out=(1, 6)),
    # s=2,(1,2): span 5+3-3 = 5; floor 5//2+1 = 3;
    # ceil ceil(5/2)+1 = 4, last start 6 >= L+pb = 6 -> dropped -> 3
    dict(shape=(1, 5), k=(3,), s=(2,), p=((1, 2),), out=(1, 3)),
    dict(shape=(1, 5), k=(3,), s=(2,), p=((1, 2),), ceil=True, out=(1, 3)),
    # s=2,(2,1): span 5; ceil gives 4, last start 6 < L+pb = 7 -> kept
    dict(shape=(1, 5), k=(3,), s=(2,), p=((2, 1),), ceil=True, out=(1, 4)),
    # 2-D, pads per axis as pairs: H=4,k=2,s=1,(0,1): span 3 -> 4;
    # W=6,k=3,s=2,(2,0): span 5 -> 3
    dict(shape=(3, 4, 6), k=(2, 3), s=(1, 2), p=((0, 1), (2, 0)), out=(3, 4, 3)),
    # tuple of ints: H=4,k=3,p=1,s=1: span 3 -> 4; W=6,k=3,p=0,s=1: span 3 -> 4
    dict(shape=(4, 6), k=(3, 3), s=(1, 1), p=(1, 0), out=(4, 4)),

    # --- dilation ---------------------------------------------------------------
    # L=10,k=3,d=2 (ext 5),s=1: span 5 -> 6
    dict(shape=(1, 10), k=(3,), s=(1,), d=(2,), out=(1, 6)),
    # s=2: floor 5//2+1 = 3; ceil ceil(5/2)+1 = 4, last start 6 < 10 -> kept
    dict(shape=(1, 10), k=(3,), s=(2,), d=(2,), out=(1, 3)),
    dict(shape=(1, 10), k=(3,), s=(2,), d=(2,), ceil=True, out=(1, 4)),
    # L=7,k=3,d=3 (ext 7),p=3 (< ext, beyond PyTorch's k/2),s=2: span 6 -> 4
    dict(shape=(1, 7), k=(3,), s=(2,), p=3, d=(3,), out=(1, 4)),
    # L=2,k=2,d=3 (ext 4),p=(1,1),s=3: span 0 -> 1  (a window with no
    # in-bounds tap: taps at -1 and 2)
    dict(shape=(1, 2), k=(2,), s=(3,), p=1, d=(3,), out=(1, 1)),

    # --- "valid", "same", "same_lower" -----------------------------------------
    # valid == no padding: L=5,k=2,s=2: span 3 -> 2
    dict(shape=(1, 5), k=(2,), s=(2,), p="valid", out=(1, 2)),
    # same: output is ceil(L/s) on every axis
    # L=5,k=3,s=2: out 3, total max(2*2+3-5,0)=2 -> (1,1)
    dict(shape=(1, 5), k=(3,), s=(2,), p="same", out=(1, 3)),
    # L=6,k=3,s=2: out 3, total 2*2+3-6 = 1 (odd)
    dict(shape=(1, 6), k=(3,), s=(2,), p="same", out=(1, 3)),
    dict(shape=(1, 6), k=(3,), s=(2,), p="same_lower", out=(1, 3)),
    # L=7,k=4,s=1: out 7, total 6+4-7 = 3
    dict(shape=(7,), k=(4,), s=(1,), p="same", out=(7,)),
    # L=10,k=1,s=4: out 3, total max(8+1-10,0) = 0
    dict(shape=(1, 10), k=(1,), s=(4,), p="same", out=(1, 3)),
    # 2-D with dilation: H=7,k=3,d=2,s=1: out 7; W=7,k=2,d=1,s=3: out 3
    dict(shape=(2, 7, 7), k=(3, 2), s=(1, 3), d=(2, 1), p="same", out=(2, 7, 3)),
    dict(shape=(2, 7, 7), k=(3, 2), s=(1, 3), d=(2, 1), p="same_lower", out=(2, 7, 3)),
    # same with ceil_mode does not change anything: L=6,k=3,s=2 -> 3
    dict(shape=(1, 6), k=(3,), s=(2,), p="same", ceil=True, out=(1, 3)),

    # --- bare arrays without lead axes ------------------------------------------
    # a plain 4x4 image with a 2x2 pool -> 2x2
    dict(shape=(4, 4), k=(2, 2), out=(2, 2)),
    # 3-D volume, no lead axes: D=5,k=2,s=1,p=1: span 5 -> 6;
    # H=6,k=3,s=2: span 3 -> 2; W=7,k=4,s=3,(2,1): span 6 -> 3
    dict(shape=(5, 6, 7), k=(2, 3, 4), s=(1, 2, 3), p=(1, 0, (2, 1)), out=(6, 2, 3)),
    dict(shape=(1, 2, 5, 6, 7), k=(2, 3, 4), s=(1, 2, 3), p=((1, 1), (0, 0), (2, 1)),
         out=(1, 2, 6, 2, 3)),
    # many lead axes
    dict(shape=(2, 3, 4, 5, 8), k=(2,), s=(2,), out=(2, 3, 4, 5, 4)),

    # --- channels_last ----------------------------------------------------------
    # (N, H, W, C) = (2, 8, 7, 5), k=(3,2), s=2: H (8-3)//2+1 = 3, W (7-2)//2+1 = 3
    dict(shape=(2, 8, 7, 5), k=(3, 2), s=(2, 2), layout="channels_last", out=(2, 3, 3, 5)),
    # the channels_first twin (2, 5, 8, 7) -> (2, 5, 3, 3)
    dict(shape=(2, 5, 8, 7), k=(3, 2), s=(2, 2), out=(2, 5, 3, 3)),
    # 1-D channels_last with only (L, C): L=9,k=3,s=2 -> 4, C=3 kept
    dict(shape=(9, 3), k=(3,), s=(2,), layout="channels_last", out=(4, 3)),
    # channels_last + same + ceil: L=6,k=3,s=2 -> ceil(6/2)=3; L=5 -> 3
    dict(shape=(1, 6, 5, 2), k=(3, 3), s=(2, 2), p="same", ceil=True,
         layout="channels_last", out=(1, 3, 3, 2)),
    # channels_last, 3-D, asymmetric + dilation:
    # D=4,k=2,d=2 (ext 3),(1,1): span 3 -> 4; H=3,k=1: 3; W=9,k=3,s=3,(0,2): span 8 -> 3
    dict(shape=(1, 4, 3, 9, 6), k=(2, 1, 3), s=(1, 1, 3), d=(2, 1, 1),
         p=((1, 1), (0, 0), (0, 2)), layout="channels_last", out=(1, 4, 3, 3, 6)),
]


def _call(fn, c):
    return fn(
        c["shape"], c["k"], c.get("s"), c.get("p", 0), c.get("d", 1), c.get("ceil", False),
        layout=c.get("layout", "channels_first"),
    )


@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: repr(c)[:80])
def test_pooled_shape_by_hand(case):
    got = _call(pypool.pooled_shape, case)
    assert isinstance(got, tuple)
    assert got == case["out"]
    assert all(type(v) is int for v in got)


@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: repr(c)[:80])
def test_result_shape_matches_pooled_shape(case):
    x = np.zeros(case["shape"], dtype=np.float32)
    kw = dict(layout=case.get("layout", "channels_first"))
    args = (case["k"], case.get("s"), case.get("p", 0), case.get("d", 1), case.get("ceil", False))
    assert pypool.max_pool(x, *args, **kw).shape == case["out"]
    assert pypool.avg_pool(x, *args, **kw).shape == case["out"]


def test_ints_broadcast_in_pooled_shape():
    # stride/dilation as a plain int for a 2-D kernel: (8-3)//2+1 = 3, (6-3)//2+1 = 2
    assert pypool.pooled_shape((1, 8, 6), (3, 3), 2) == (1, 3, 2)
    # H=8,k=2,d=2 (ext 3),s=1,p=1: span 7 -> 8; W=6 same: span 5 -> 6
    assert pypool.pooled_shape((1, 8, 6), (2, 2), 1, 1, 2) == (1, 8, 6)


ERROR_CASES = [
    # output size 0: L=2,k=3: span -1 -> -1//1+1 = 0
    dict(shape=(1, 1, 2), k=(3,)),
    # dilation: L=4,k=2,d=4 (ext 5): span -1 -> 0
    dict(shape=(1, 4), k=(2,), d=(4,), s=(1,)),
    # pad not smaller than ext: k=2 (ext 2), pad 2
    dict(shape=(1, 5), k=(2,), p=2),
    # pad pair with the end pad too large
    dict(shape=(1, 5), k=(3,), p=((0, 3),)),
    # negative pad
    dict(shape=(1, 5), k=(3,), p=-1),
    # the second axis is the one that is too small
    dict(shape=(1, 9, 2), k=(2, 3)),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: repr(c)[:80])
def test_pooled_shape_rejects(case):
    with pytest.raises(ValueError):
        _call(pypool.pooled_shape, case)


# ---------------------------------------------------------------------------
# resolve_padding
# ---------------------------------------------------------------------------

PAD_CASES = [
    dict(shape=(1, 1, 8, 8), k=(3, 3), p=1, pads=((1, 1), (1, 1))),
    dict(shape=(1, 1, 8, 8), k=(3, 3), p=(1, 0), pads=((1, 1), (0, 0))),
    dict(shape=(1, 1, 8, 8), k=(3, 3), p=((0, 2), (1, 0)), pads=((0, 2), (1, 0))),
    dict(shape=(1, 1, 8, 8), k=(3, 3), p="valid", pads=((0, 0), (0, 0))),
    # L=5,k=3,s=2: total 2, even -> (1,1) for both same and same_lower
    dict(shape=(1, 5), k=(3,), s=(2,), p="same", pads=((1, 1),)),
    dict(shape=(1, 5), k=(3,), s=(2,), p="same_lower", pads=((1, 1),)),
    # L=6,k=3,s=2: total 1, odd -> the extra pad at the end / at the beginning
    dict(shape=(1, 6), k=(3,), s=(2,), p="same", pads=((0, 1),)),
    dict(shape=(1, 6), k=(3,), s=(2,), p="same_lower", pads=((1, 0),)),
    # L=7,k=4,s=1: total 3
    dict(shape=(7,), k=(4,), s=(1,), p="same", pads=((1, 2),)),
    dict(shape=(7,), k=(4,), s=(1,), p="same_lower", pads=((2, 1),)),
    # L=10,k=1,s=4: total would be -1 -> 0
    dict(shape=(1, 10), k=(1,), s=(4,), p="same", pads=((0, 0),)),
    # dilation: H=7,k=3,d=2 (ext 5),s=1: total 6+5-7 = 4 -> (2,2);
    # W=7,k=2,s=3: out 3, total 2*3+2-7 = 1 -> (0,1) / (1,0)
    dict(shape=(2, 7, 7), k=(3, 2), s=(1, 3), d=(2, 1), p="same", pads=((2, 2), (0, 1))),
    dict(shape=(2, 7, 7), k=(3, 2), s=(1, 3), d=(2, 1), p="same_lower", pads=((2, 2), (1, 0))),
    # stride None (= kernel): L=7,k=3: out ceil(7/3)=3, total 2*3+3-7 = 2 -> (1,1)
    dict(shape=(1, 7), k=(3,), p="same", pads=((1, 1),)),
    # channels_last: spatial axes are (6, 5), the trailing 4 is C.
    # H=6,k=2,s=2: out 3, total 4+2-6 = 0; W=5,k=2,s=2: out 3, total 4+2-5 = 1
    dict(shape=(1, 6, 5, 4), k=(2, 2), p="same", layout="channels_last",
         pads=((0, 0), (0, 1))),
    dict(shape=(1, 6, 5, 4), k=(2, 2), p="same_lower", layout="channels_last",
         pads=((0, 0), (1, 0))),
]


@pytest.mark.parametrize("case", PAD_CASES, ids=lambda c: repr(c)[:80])
def test_resolve_padding_by_hand(case):
    got = _call(pypool.resolve_padding, case)
    assert isinstance(got, tuple)
    assert tuple(tuple(int(v) for v in pair) for pair in got) == case["pads"]
    assert all(len(pair) == 2 for pair in got)


# ---------------------------------------------------------------------------
# SPEC section 8, the worked example
# ---------------------------------------------------------------------------

EXAMPLE = [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_worked_example_max(dtype):
    x = np.array(EXAMPLE, dtype=dtype)
    got = pypool.max_pool(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(got, [[6, 8], [3, 4]])
    assert got.dtype == np.dtype(dtype)
    got2 = pypool.max_pool2d(x, 2)
    np.testing.assert_array_equal(got2, [[6, 8], [3, 4]])
    vals, idx = pypool.max_pool(x, (2, 2), 2, return_indices=True)
    np.testing.assert_array_equal(vals, [[6, 8], [3, 4]])
    # 6 is at (1,1) -> 5, 8 at (1,3) -> 7, 3 at (2,0) -> 8, 4 at (3,3) -> 15
    np.testing.assert_array_equal(idx, [[5, 7], [8, 15]])
    assert idx.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_worked_example_avg(dtype):
    x = np.array(EXAMPLE, dtype=dtype)
    got = pypool.avg_pool(x, (2, 2), (2, 2))
    np.testing.assert_array_equal(got, [[3.25, 5.25], [2.0, 2.0]])
    expected_dtype = np.float32 if dtype == np.float32 else np.float64
    assert got.dtype == expected_dtype
    np.testing.assert_array_equal(pypool.avg_pool2d(x, 2), [[3.25, 5.25], [2.0, 2.0]])


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_worked_example_global(layout):
    x = np.array(EXAMPLE, dtype=np.float64).reshape(1, 1, 4, 4)
    if layout == "channels_last":
        x = x.reshape(1, 4, 4, 1)
    got = pypool.global_avg_pool(x, layout=layout)
    assert got.shape == (1, 1)
    assert got[0, 0] == 3.125
    kept = pypool.global_avg_pool(x, layout=layout, keepdims=True)
    assert kept.shape == ((1, 1, 1, 1))
    assert kept.reshape(-1)[0] == 3.125
    vals, idx = pypool.global_max_pool(x, layout=layout, return_indices=True)
    assert vals.shape == (1, 1) and vals[0, 0] == 8.0
    assert idx[0, 0] == 7  # the 8 sits at row 1, column 3


def test_worked_example_channels_last_stack():
    # the example as channel 0 and its negation as channel 1, channels_last
    a = np.array(EXAMPLE, dtype=np.float64)
    x = np.stack([a, -a], axis=-1)  # (4, 4, 2)
    got = pypool.max_pool(x, (2, 2), layout="channels_last")
    assert got.shape == (2, 2, 2)
    np.testing.assert_array_equal(got[..., 0], [[6, 8], [3, 4]])
    np.testing.assert_array_equal(got[..., 1], [[-1, -2], [-1, 0]])
    avg = pypool.avg_pool(x, (2, 2), layout="channels_last")
    np.testing.assert_array_equal(avg[..., 0], [[3.25, 5.25], [2.0, 2.0]])
    np.testing.assert_array_equal(avg[..., 1], [[-3.25, -5.25], [-2.0, -2.0]])
