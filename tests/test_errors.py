"""Bad arguments raise TypeError/ValueError whose message names the argument and value."""

import numpy as np
import pytest

import pypool

X = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)


def raises(exc, *words):
    """Context manager: ``exc`` raised and every word present in its message."""
    class _Check:
        def __enter__(self):
            self.cm = pytest.raises(exc)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a):
            out = self.cm.__exit__(*a)
            msg = str(self.info.value)
            for w in words:
                assert w in msg, f"{w!r} not in message {msg!r}"
            return out
    return _Check()


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, "U3", "S3",
                                   "datetime64[s]", "timedelta64[s]", np.longdouble])
def test_unsupported_dtype_is_type_error(dtype):
    if np.dtype(dtype) == np.float64:  # platforms where longdouble is double
        pytest.skip("longdouble is float64 here")
    x = np.zeros((1, 1, 4, 4), dtype=dtype)
    for call in (lambda: pypool.max_pool2d(x, 2), lambda: pypool.avg_pool2d(x, 2),
                 lambda: pypool.global_avg_pool(x), lambda: pypool.global_max_pool(x)):
        with raises(TypeError, "x has dtype", str(np.dtype(dtype))):
            call()


def test_ragged_array_like_is_rejected():
    with pytest.raises((TypeError, ValueError)):
        pypool.max_pool1d([[1, 2], [3]], 2)


def test_rank_generic_needs_a_kernel_tuple():
    with raises(TypeError, "kernel_size", "3"):
        pypool.max_pool(X, 3)
    with raises(ValueError, "kernel_size", "1 to 3"):
        pypool.max_pool(X, (2, 2, 2, 2))
    with raises(ValueError, "kernel_size", "1 to 3"):
        pypool.avg_pool(X, ())


@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation"])
@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_window_parameter(name, bad):
    kwargs = {"kernel_size": 2, name: bad}
    with raises(ValueError, name, str(bad), ">= 1"):
        pypool.max_pool2d(X, **kwargs)
    with raises(ValueError, name, str(bad)):
        pypool.avg_pool2d(X, **kwargs)


@pytest.mark.parametrize("name", ["kernel_size", "stride", "dilation", "padding"])
@pytest.mark.parametrize("bad", [2.0, "2x", True, None])
def test_window_parameter_of_wrong_type(name, bad):
    if name in ("stride",) and bad is None:
        return  # None is stride's default
    kwargs = {"kernel_size": 2, name: bad}
    with pytest.raises((TypeError, ValueError)) as info:
        pypool.max_pool2d(X, **kwargs)
    assert name in str(info.value)


def test_absurdly_large_window_parameter():
    with raises(ValueError, "kernel_size", "2**62"):
        pypool.max_pool2d(X, 2**70)
    with raises(ValueError, "overflow"):
        pypool.max_pool2d(X, 2**40, dilation=2**40)


def test_wrong_number_of_per_axis_entries():
    with raises(ValueError, "stride", "2 entries"):
        pypool.max_pool2d(X, 2, stride=(1, 1, 1))
    with raises(ValueError, "dilation", "2 entries"):
        pypool.avg_pool(X, (2, 2), dilation=(1,))
    with raises(ValueError, "padding", "2 entries"):
        pypool.avg_pool(X, (2, 2), padding=(1, 1, 1))


def test_bad_padding_forms():
    with raises(ValueError, "padding", "'full'"):
        pypool.max_pool2d(X, 2, padding="full")
    with raises(ValueError, "padding", "-1"):
        pypool.max_pool2d(X, 3, padding=-1)
    with raises(ValueError, "padding[0][1]", "-1"):
        pypool.max_pool2d(X, 3, padding=((0, -1), (0, 0)))
    with raises(ValueError, "padding[1]", "(begin, end)"):
        pypool.max_pool2d(X, 3, padding=(1, (1, 1, 1)))


def test_pad_must_be_smaller_than_effective_kernel():
    # k=2, dilation=1: extent 2, so pad 2 is refused but pad 1 (wider than torch's k/2? no, equal) works
    with raises(ValueError, "padding (2, 2)", "spatial axis 0", "= 2"):
        pypool.max_pool2d(X, 2, padding=2)
    pypool.max_pool2d(X, 3, padding=2)  # 2 < 3: allowed (ONNX), though torch refuses it
    with raises(ValueError, "padding (0, 5)", "= 5"):
        pypool.avg_pool2d(X, 3, padding=((0, 0), (0, 5)), dilation=2)


def test_output_below_one_names_the_axis():
    x = np.zeros((1, 1, 8, 3))
    with raises(ValueError, "spatial axis 1", "input size 3", "would be 0"):
        pypool.max_pool2d(x, (2, 4))
    with raises(ValueError, "spatial axis 0", "input size 2"):
        pypool.avg_pool1d(np.zeros(2), 3)


def test_too_few_dims():
    with raises(ValueError, "x has shape (8,)", "2-D pool", "at least 2"):
        pypool.max_pool2d(np.zeros(8), 2)
    with raises(ValueError, "at least 3", "channels_last"):
        pypool.max_pool2d(np.zeros((4, 4)), 2, layout="channels_last")
    with raises(ValueError, "global pooling", "at least 3"):
        pypool.global_avg_pool(np.zeros((4, 4)))
    with raises(ValueError, "non-empty spatial"):
        pypool.global_max_pool(np.zeros((2, 3, 0)))


def test_bad_layout():
    with raises(ValueError, "layout", "'NCHW'"):
        pypool.max_pool2d(X, 2, layout="NCHW")
    with raises(ValueError, "layout"):
        pypool.global_avg_pool(X, layout=None)


def test_bad_flags():
    with raises(TypeError, "ceil_mode", "1"):
        pypool.max_pool2d(X, 2, ceil_mode=1)
    with raises(TypeError, "count_include_pad", "'yes'"):
        pypool.avg_pool2d(X, 2, count_include_pad="yes")
    with raises(TypeError, "return_indices"):
        pypool.max_pool2d(X, 2, return_indices=None)
    with raises(TypeError, "keepdims"):
        pypool.global_avg_pool(X, keepdims=0)


def test_bad_divisor_override():
    with raises(ValueError, "divisor_override", "0"):
        pypool.avg_pool2d(X, 2, divisor_override=0)
    with raises(TypeError, "divisor_override", "1.5"):
        pypool.avg_pool2d(X, 2, divisor_override=1.5)


def test_bad_result_dtype():
    with raises(TypeError, "dtype", "int32"):
        pypool.avg_pool2d(X, 2, dtype=np.int32)
    with raises(TypeError, "dtype"):
        pypool.global_avg_pool(X, dtype="not-a-dtype")
    with raises(TypeError, "dtype", "complex"):
        pypool.avg_pool2d(X, 2, dtype=np.complex64)


def test_bad_out():
    good = np.empty((2, 3, 4, 4), np.float32)
    with raises(TypeError, "out", "list"):
        pypool.max_pool2d(X, 2, out=[0])
    with raises(ValueError, "out has shape (2, 3, 4, 5)", "(2, 3, 4, 4)"):
        pypool.max_pool2d(X, 2, out=np.empty((2, 3, 4, 5), np.float32))
    with raises(TypeError, "out has dtype float64", "float32"):
        pypool.max_pool2d(X, 2, out=np.empty((2, 3, 4, 4)))
    ro = good.copy()
    ro.setflags(write=False)
    with raises(ValueError, "out", "read-only"):
        pypool.avg_pool2d(X, 2, out=ro)
    buf = np.zeros((2, 3, 8, 8), np.float32)
    with raises(ValueError, "out", "overlaps"):
        pypool.max_pool2d(buf, 2, out=buf[:, :, :4, :4])
    with raises(TypeError, "out[1] has dtype int32"):
        pypool.max_pool2d(X, 2, return_indices=True, out=(good, np.empty(good.shape, np.int32)))


def test_out_index_array_may_not_alias_values():
    vals = np.empty((2, 3, 4, 4), np.int64)
    x = X.astype(np.int64)
    with raises(ValueError, "out[1]", "overlaps"):
        pypool.max_pool2d(x, 2, return_indices=True, out=(vals, vals))


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                     ("2", TypeError), (True, TypeError)])
def test_bad_num_threads(bad, exc):
    with raises(exc, "num_threads", repr(bad) if exc is TypeError else str(bad)):
        pypool.max_pool2d(X, 2, num_threads=bad)
    with raises(exc, "num_threads"):
        pypool.global_avg_pool(X, num_threads=bad)


def test_bad_shape_arguments_of_shape_helpers():
    with raises(TypeError, "input_shape"):
        pypool.pooled_shape(5, (2,))
    with raises(ValueError, "input_shape[1]", "-3"):
        pypool.pooled_shape((1, -3), (2,))
    with raises(ValueError, "spatial axis 0"):
        pypool.resolve_padding((1, 1), (3,))
