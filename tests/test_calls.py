"""How calls behave: out=, num_threads, GIL release, input views, empty batches."""


import os
import sys

import numpy as np
import pytest

import pypool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

RNG = np.random.default_rng(1234)


def big_input(dtype=np.float32, shape=(4, 8, 64, 64)):
    x = RNG.standard_normal(shape).astype(dtype)
    x.flat[::97] = np.nan if np.dtype(dtype).kind == "f" else 0
    return x


# Every public forward op as (name, call(x, **kw)); each accepts out= and num_threads=.
OPS = [
    ("max", lambda x, **kw: pypool.max_pool2d(x, 3, 2, 1, **kw)),
    ("max_dilated_ceil", lambda x, **kw: pypool.max_pool2d(x, 3, 2, 2, dilation=2, ceil_mode=True, **kw)),
    ("avg", lambda x, **kw: pypool.avg_pool2d(x, 3, 2, 1, **kw)),
    ("avg_excl_ceil", lambda x, **kw: pypool.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False, **kw)),
    ("avg3d_same", lambda x, **kw: pypool.avg_pool3d(x, 2, 1, "same", **kw)),
    ("global_avg", lambda x, **kw: pypool.global_avg_pool(x, **kw)),
    ("global_max", lambda x, **kw: pypool.global_max_pool(x, **kw)),
]


@pytest.mark.parametrize("name,op", OPS)
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_results_are_bit_identical_for_every_thread_count(name, op, layout):
    x = big_input()
    ref = op(x, layout=layout, num_threads=1)
    for n in (2, 3, 8):
        got = op(x, layout=layout, num_threads=n)
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got.view(np.uint8), ref.view(np.uint8))


def test_indices_are_bit_identical_for_every_thread_count():
    x = big_input()
    _, ref = pypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=1)
    for n in (2, 5):
        _, got = pypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=n)
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name,op", OPS)
def test_input_is_never_modified(name, op):
    x = big_input()
    before = x.copy()
    op(x)
    op(x, layout="channels_last")
    np.testing.assert_array_equal(x.view(np.uint8), before.view(np.uint8))


@pytest.mark.parametrize("name,op", OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.bool_])
def test_out_receives_the_result_and_is_returned(name, op, dtype):
    x = big_input(np.float32, (2, 3, 9, 10)) if dtype != np.bool_ else RNG.random((2, 3, 9, 10)) > 0.5
    x = np.nan_to_num(x).astype(dtype)
    expected = op(x)
    # A strided destination that cannot be reshaped without a copy, and a plain one.
    big = np.full(expected.shape[:-1] + (2 * expected.shape[-1],), 7, dtype=expected.dtype)
    untouched = big[..., 1::2].copy()
    for out in (np.empty_like(expected), big[..., ::2], np.empty(expected.shape[::-1], expected.dtype).T):
        got = op(x, out=out)
        assert got is out
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(big[..., 1::2], untouched, err_msg="out= wrote outside its view")


def test_out_pair_for_values_and_indices():
    x = big_input()
    v_ref, i_ref = pypool.max_pool2d(x, 2, return_indices=True)
    v, i = np.empty_like(v_ref), np.empty_like(i_ref)
    got = pypool.max_pool2d(x, 2, return_indices=True, out=(v, i))
    assert got[0] is v and got[1] is i
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(i, i_ref)
    gv, gi = pypool.global_max_pool(x, return_indices=True)
    v2, i2 = np.empty_like(gv), np.empty_like(gi)
    pypool.global_max_pool(x, return_indices=True, out=(v2, i2))
    np.testing.assert_array_equal(i2, gi)


def test_results_are_new_c_contiguous_arrays():
    x = big_input()[:, :, ::-1, ::3]
    for y in (pypool.max_pool2d(x, 2), pypool.avg_pool2d(x, 2), pypool.global_avg_pool(x),
              pypool.max_pool2d(x, 2, return_indices=True)[1]):
        assert y.flags.c_contiguous and y.flags.owndata


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_strided_views_give_the_same_result_as_copies(layout):
    base = big_input(np.float64, (3, 10, 12, 5))
    views = [base[::-1], base[:, ::2, ::-1], base.transpose(1, 0, 2, 3), base[..., ::-2],
             np.broadcast_to(base[:1], base.shape), np.asfortranarray(base)]
    for v in views:
        ro = v.view()
        ro.setflags(write=False)
        for op in (lambda a: pypool.max_pool2d(a, 3, 1, 1, layout=layout, return_indices=True),
                   lambda a: pypool.avg_pool2d(a, 2, 1, ((0, 1), (1, 0)), layout=layout),
                   lambda a: pypool.global_avg_pool(a, layout=layout)):
            got, want = op(ro), op(np.ascontiguousarray(v))
            for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
                np.testing.assert_array_equal(g, w)


def test_byte_swapped_and_array_like_inputs():
    x = big_input(np.float64, (2, 5, 6))
    np.testing.assert_array_equal(pypool.avg_pool1d(x.astype(">f8"), 2), pypool.avg_pool1d(x, 2))
    np.testing.assert_array_equal(pypool.max_pool1d(x.tolist(), 2), pypool.max_pool1d(x, 2))
    assert pypool.max_pool1d([1, 5, 2, 3], 2).tolist() == [5, 3]


def test_zero_size_batch_gives_empty_result_of_the_right_shape():
    x = np.zeros((0, 3, 8, 8), np.float32)
    assert pypool.max_pool2d(x, 2).shape == (0, 3, 4, 4)
    v, i = pypool.max_pool2d(x, 2, return_indices=True)
    assert i.shape == (0, 3, 4, 4) and i.dtype == np.int64
    assert pypool.avg_pool2d(x, 3, 1, 1).shape == (0, 3, 8, 8)
    assert pypool.avg_pool2d(np.zeros((2, 8, 8, 0)), 2, layout="channels_last").shape == (2, 4, 4, 0)
    assert pypool.global_avg_pool(x).shape == (0, 3)
    assert pypool.global_max_pool(np.zeros((0, 5, 5, 2)), layout="channels_last", keepdims=True).shape == (0, 1, 1, 2)


def test_bare_image_and_many_lead_axes():
    img = big_input(np.float64, (9, 9))
    assert pypool.max_pool2d(img, 3).shape == (3, 3)
    many = big_input(np.float64, (2, 3, 4, 9, 9))
    np.testing.assert_array_equal(pypool.max_pool2d(many, 3)[1, 2, 3], pypool.max_pool2d(many[1, 2, 3], 3))


def test_global_pooling_over_more_than_three_spatial_axes():
    x = big_input(np.float64, (2, 3, 2, 3, 4, 5))
    x = np.nan_to_num(x)
    np.testing.assert_allclose(pypool.global_avg_pool(x), x.mean(axis=(2, 3, 4, 5)), rtol=1e-13)
    v, i = pypool.global_max_pool(x, return_indices=True)
    flat = x.reshape(2, 3, -1)
    np.testing.assert_array_equal(i, flat.argmax(-1))
    np.testing.assert_array_equal(v, flat.max(-1))


def test_show_config_reports_the_build(capsys):
    pypool.show_config()
    text = capsys.readouterr().out
    assert pypool.__version__ in text
    assert "OpenMP" in text and "compiler" in text


def test_worked_example_via_main_module(capsys):
    from pypool.__main__ import main
    main()
    text = capsys.readouterr().out
    assert "[[6. 8.]" in text and "3.25" in text and "3.125" in text


@pytest.mark.parametrize("bad", [dict(kernel_size=2.0), dict(kernel_size=True),
                                 dict(kernel_size=2, ceil_mode=1),
                                 dict(kernel_size=(2, 2), stride=(True, 1)),
                                 dict(kernel_size=(2, 2), padding=((0, 0), (0.0, 0)))])
def test_geometry_cache_keeps_kinds_apart(bad):
    """Valid plain-int geometry is cached; values equal to it but of another kind
    (True == 1, 2.0 == 2) must still be checked and refused."""
    x = np.ones((1, 1, 4, 4))
    good = dict(kernel_size=2, stride=(1, 1), padding=((0, 0), (0, 0)), ceil_mode=True)
    pypool.max_pool2d(x, **good)
    pypool.max_pool2d(x, **{**good, **dict(kernel_size=(2, 2))})
    with pytest.raises(TypeError):
        pypool.max_pool2d(x, **bad)
    # and the cached result is still right
    np.testing.assert_array_equal(pypool.max_pool2d(x, **good), np.ones((1, 1, 3, 3)))



# (name, input dtype, input shape, call, reference: a tuple of the call's results)
REMEMBERED = [
    ("max int16 channels_last", np.int16, (2, 9, 8, 3),
     lambda x: pypool.max_pool2d(x, 3, 2, 1, layout="channels_last"),
     lambda x: ref.ref_max_pool(x, (3, 3), (2, 2), (1, 1), layout="channels_last")[:1]),
    ("max float64 indices", np.float64, (2, 3, 9, 8),
     lambda x: pypool.max_pool2d(x, (2, 3), (1, 2), ((1, 0), (0, 1)), return_indices=True),
     lambda x: ref.ref_max_pool(x, (2, 3), (1, 2), ((1, 0), (0, 1)))),
    ("max1d uint8 ceil", np.uint8, (2, 3, 11),
     lambda x: pypool.max_pool1d(x, 3, 2, ceil_mode=True),
     lambda x: ref.ref_max_pool(x, (3,), (2,), ceil_mode=True)[:1]),
    ("avg float32 excl-pad", np.float32, (2, 3, 9, 8),
     lambda x: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
     lambda x: (ref.ref_avg_pool(x, (3, 3), (1, 1), (1, 1), count_include_pad=False),)),
    ("avg int32 divisor", np.int32, (2, 3, 9, 8),
     lambda x: pypool.avg_pool2d(x, 2, divisor_override=3),
     lambda x: (ref.ref_avg_pool(x, (2, 2), divisor_override=3),)),
    ("avg3d float64 same", np.float64, (2, 3, 5, 6, 7),
     lambda x: pypool.avg_pool3d(x, 2, 1, "same"),
     lambda x: (ref.ref_avg_pool(x, (2, 2, 2), (1, 1, 1), "same"),)),
]


@pytest.mark.parametrize("name,dtype,shape,op,reference", REMEMBERED,
                         ids=[r[0] for r in REMEMBERED])
def test_remembered_calls_match_the_reference(name, dtype, shape, op, reference):
    """Small calls with plain arguments are planned once and replayed (_plans): the
    replays must give the reference's results, each time in new arrays."""
    from pypool import _plans
    # (multiples of 1/64: float64 sums are exact in any order, as the reference's)
    x = (np.round(RNG.standard_normal(shape) * 20 * 64) / 64).astype(dtype)
    want = reference(x)
    _plans._PLANS.clear()
    first = op(x)
    assert len(_plans._PLANS) == 1    # the call was planned
    previous = first if isinstance(first, tuple) else (first,)
    for _ in range(3):
        got = op(x)
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(want)
        for g, w, old in zip(got, want, previous):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w)
            assert not np.shares_memory(g, old)
        previous = got


@pytest.mark.parametrize("bad", [dict(divisor_override=True), dict(count_include_pad=1),
                                 dict(ceil_mode=0), dict(kernel_size=(2, 2.0))])
def test_remembered_calls_keep_kinds_apart(bad):
    """A planned call must not answer a call whose arguments only compare equal to it."""
    x = np.ones((1, 1, 4, 4), np.float32)
    good = dict(kernel_size=(2, 2), divisor_override=1, count_include_pad=True, ceil_mode=False)
    for _ in range(2):
        np.testing.assert_array_equal(pypool.avg_pool2d(x, **good), 4 * np.ones((1, 1, 2, 2)))
    with pytest.raises(TypeError):
        pypool.avg_pool2d(x, **{**good, **bad})


def test_remembered_calls_keep_num_threads_apart():
    """num_threads is part of a plan's key: True (== 1) and 0 are still refused
    after a call with num_threads=1 was planned, and results stay identical."""
    x = RNG.standard_normal((2, 3, 40, 40)).astype(np.float32)
    first = pypool.max_pool2d(x, 3, 2, 1, num_threads=1)
    for n in (1, 1, 2, None):
        np.testing.assert_array_equal(pypool.max_pool2d(x, 3, 2, 1, num_threads=n), first)
    with pytest.raises(TypeError):
        pypool.max_pool2d(x, 3, 2, 1, num_threads=True)
    with pytest.raises(ValueError):
        pypool.max_pool2d(x, 3, 2, 1, num_threads=0)
    with pytest.raises(TypeError):
        pypool.avg_pool2d(x, 3, 2, 1, num_threads=1.0)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_adaptive_pooling_to_one_cell_is_global_pooling(layout, rank, dtype, monkeypatch):
    """Adaptive pooling to one cell per axis runs the global kernels
    (pypool._pooling._one_cell): the reference's averages (the terms are
    multiples of 1/8, so float64 sums are exact in any order), maxima and
    indices, NaN included, for a reversed view, a strided out= and 1 or 2
    threads."""
    import reference_ops as R
    from pypool import _pooling
    calls = []
    for name in ("run_reduce", "run_max"):
        real = getattr(_pooling, name)
        monkeypatch.setattr(_pooling, name,
                            lambda *a, _real=real, **k: calls.append(k) or _real(*a, **k))
    rng = np.random.default_rng(rank * 7 + len(layout))
    spatial = (9, 6, 5)[:rank]
    shape = (3, 4) + spatial if layout == "channels_first" else (3,) + spatial + (4,)
    x = (rng.integers(-40, 40, shape) / (8 if np.dtype(dtype).kind == "f" else 1)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan
    ones = (1,) * rank
    for view in (x, x[..., ::-1]):
        want = R.ref_adaptive_avg_pool(view, ones, layout=layout)
        holder = np.full(want.shape + (2,), 7.0, want.dtype)
        got = pypool.adaptive_avg_pool(view, ones, layout=layout, out=holder[..., 0])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(
            pypool.adaptive_avg_pool(view, ones, layout=layout, num_threads=2), want)
        want_v, want_i = R.ref_adaptive_max_pool(view, ones, layout=layout)
        for threads in (1, 2):
            got_v, got_i = pypool.adaptive_max_pool(view, ones, layout=layout, return_indices=True,
                                                    num_threads=threads)
            np.testing.assert_array_equal(got_v, want_v)
            np.testing.assert_array_equal(got_i, want_i)
    assert calls and not any(k.get("adaptive") for k in calls)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_averages_of_equal_cells_are_sliding_averages(layout, rank, dtype):
    """Adaptive average pooling whose cells all have one size per axis (each
    input size a multiple of the output size) runs as the sliding-window
    average of that size and stride (the kernels' sliding_if_equal_cells),
    so it gives its bits, which follow the documented order of the sliding
    paths: terms of 2**60 among ordinary ones make the adaptive path's
    row-major order differ. Also the reference's values (to rounding), for a
    reversed view, 2 threads and the C API's twin (tests/test_capi.py)."""
    import reference_ops as R
    rng = np.random.default_rng(rank * 11 + len(layout))
    spatial, cells = {1: ((96,), (4,)), 2: ((24, 36), (4, 4)), 3: ((12, 8, 20), (3, 2, 5))}[rank]
    out_size = tuple(s // c for s, c in zip(spatial, cells))
    shape = (2, 5) + spatial if layout == "channels_first" else (2,) + spatial + (5,)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)).astype(dtype)
    x[rng.random(shape) < 0.1] *= dtype(2.0 ** 60)
    for view in (x, x[..., ::-1]):
        got = pypool.adaptive_avg_pool(view, out_size, layout=layout, dtype=np.float64)
        sliding = pypool.avg_pool(view, cells, layout=layout, dtype=np.float64)
        np.testing.assert_array_equal(got.view(np.int64), sliding.view(np.int64))
        np.testing.assert_array_equal(
            pypool.adaptive_avg_pool(view, out_size, layout=layout, dtype=np.float64,
                                     num_threads=2).view(np.int64), sliding.view(np.int64))
        want = R.ref_adaptive_avg_pool(view, out_size, layout=layout, keep_float64=True)
        scale = R.ref_adaptive_avg_pool(np.abs(view), out_size, layout=layout, keep_float64=True)
        assert (np.abs(got - want) <= 1e-13 * scale).all()
