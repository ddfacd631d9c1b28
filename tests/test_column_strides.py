"""Column strides of 3 and more on channels_first planes.

Max without indices folds each input row whole and reads the taps at the
stride once per output row (strided_max in pyx/forward.pxi); float32 window
sums at column strides 3 and 4 with kernels no wider pick their taps by
permutes, 16 outputs at a time (pypool_window_sums_s34_f32 in
pyx/_window_sums.h, on AVX-512 CPUs). Rows here are long enough for several
groups of 16 outputs and a partial last one, with padding (edge outputs)
and every kernel width up to the stride; the NumPy oracle decides.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pypool
from reference import ref_avg_pool, ref_max_pool
from test_forward_reference import COMMON


@st.composite
def strided_geometries(draw):
    sw = draw(st.integers(3, 5))
    kw = draw(st.integers(1, sw))
    kh = draw(st.integers(1, 4))
    sh = draw(st.integers(1, 4))
    W = draw(st.integers(kw, 110))
    H = draw(st.integers(kh, 9))
    pad = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    return dict(kernel=(kh, kw), stride=(sh, sw), padding=pad, spatial=(H, W),
                ceil_mode=draw(st.booleans()), planes=draw(st.integers(1, 3)))


def _input(draw, geom, dtype):
    """Small integers (sums exact in float64), NaNs now and then for floats;
    no -0, so the sign of a zero maximum cannot depend on the order."""
    shape = (1, geom["planes"]) + geom["spatial"]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-40, 41, shape).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x = x / 8
        if draw(st.booleans()):
            x.reshape(-1)[rng.integers(0, x.size, 2)] = np.nan
    return x.astype(dtype)


def _args(geom):
    return geom["kernel"], geom["stride"], geom["padding"]


@settings(max_examples=150, **COMMON)
@given(geom=strided_geometries(), dtype=st.sampled_from([np.float32, np.float64]),
       data=st.data())
def test_averages_at_column_strides_3_and_more(geom, dtype, data):
    x = _input(data.draw, geom, dtype)
    for include in (True, False):
        got = pypool.avg_pool2d(x, *_args(geom), ceil_mode=geom["ceil_mode"],
                                count_include_pad=include)
        ref = ref_avg_pool(x.astype(np.float64), *_args(geom), ceil_mode=geom["ceil_mode"],
                           count_include_pad=include)
        # exact sums: the float64 mean rounded once is the kernel's result
        np.testing.assert_array_equal(got, ref.astype(dtype))


@settings(max_examples=150, **COMMON)
@given(geom=strided_geometries(),
       dtype=st.sampled_from([np.float32, np.float64, np.uint8, np.int16]), data=st.data())
def test_max_at_column_strides_3_and_more(geom, dtype, data):
    x = _input(data.draw, geom, dtype)
    got = pypool.max_pool2d(x, *_args(geom), ceil_mode=geom["ceil_mode"])
    ref_values, ref_indices = ref_max_pool(x, *_args(geom), ceil_mode=geom["ceil_mode"])
    assert got.dtype == ref_values.dtype
    np.testing.assert_array_equal(got, ref_values)
    values, indices = pypool.max_pool2d(x, *_args(geom), ceil_mode=geom["ceil_mode"],
                                        return_indices=True)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(indices, ref_indices)
