"""The README's table of bad input, one test per row.

Every row of the table "What bad input gets" in README.md has an id; CASES
below holds the call for each id, the exception it must raise and words its
message must contain (the argument's name and the value given). A test
checks that the table and CASES list the same ids, so neither can drift.
"""

import os
import re

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import pypool

X = np.arange(2 * 3 * 8 * 8, dtype=np.float32).reshape(2, 3, 8, 8)
V, I = pypool.max_pool2d(X, 2, return_indices=True)
BUF = X.copy()   # input and out= in one buffer


def _with_index(value, dtype=np.int64):
    idx = I.astype(dtype)
    idx[1, 2, 3, 3] = value   # the very last element: every index is checked
    return idx


def _broadcast_out():
    return as_strided(np.zeros(4, np.float32), (2, 3, 4, 4), (0, 0, 0, 4), writeable=True)


def _read_only_out():
    out = np.empty_like(V)
    out.setflags(write=False)
    return out


# id, exception, words in the message, call
CASES = [
    ("dtype-complex", TypeError, ["x has dtype complex128", "float64"],
     lambda: pypool.max_pool2d(X.astype(complex), 2)),
    ("dtype-object", TypeError, ["x has dtype object"],
     lambda: pypool.avg_pool2d(X.astype(object), 2)),
    ("dtype-string", TypeError, ["x has dtype <U3"],
     lambda: pypool.global_avg_pool(np.full((1, 1, 2, 2), "abc"))),
    ("dtype-datetime", TypeError, ["x has dtype datetime64[s]"],
     lambda: pypool.global_max_pool(np.zeros((1, 1, 2, 2), "datetime64[s]"))),
    ("not-an-array", ValueError, ["x cannot be read as an array"],
     lambda: pypool.max_pool1d([[1.0, 2.0], [3.0]], 2)),
    ("rank-too-few-dims", ValueError, ["x has shape (8,)", "2-D pool", "at least 2"],
     lambda: pypool.max_pool2d(np.zeros(8), 2)),
    ("rank-kernel-length", ValueError, ["kernel_size", "1 to 3 entries", "4"],
     lambda: pypool.max_pool(X, (2, 2, 2, 2))),
    ("rank-kernel-int", TypeError, ["kernel_size", "tuple", "3"],
     lambda: pypool.avg_pool(X, 3)),
    ("kernel-zero", ValueError, ["kernel_size", ">= 1", "0"],
     lambda: pypool.max_pool2d(X, 0)),
    ("stride-negative", ValueError, ["stride", ">= 1", "-2"],
     lambda: pypool.avg_pool2d(X, 2, stride=-2)),
    ("dilation-zero", ValueError, ["dilation[1]", ">= 1", "0"],
     lambda: pypool.max_pool2d(X, 2, dilation=(1, 0))),
    ("size-not-int", TypeError, ["kernel_size", "2.0", "float"],
     lambda: pypool.max_pool2d(X, 2.0)),
    ("size-bool", TypeError, ["stride", "True"],
     lambda: pypool.max_pool2d(X, 2, stride=True)),
    ("size-huge", ValueError, ["kernel_size", "2**62", str(2**70)],
     lambda: pypool.max_pool2d(X, 2**70)),
    ("size-overflow", ValueError, ["overflow", "dilation " + str(2**40)],
     lambda: pypool.max_pool2d(X, 2**40, dilation=2**40)),
    ("entries-count", ValueError, ["stride", "2 entries", "3"],
     lambda: pypool.max_pool2d(X, 2, stride=(1, 1, 1))),
    ("padding-word", ValueError, ["padding", "'full'", "'same'"],
     lambda: pypool.max_pool2d(X, 2, padding="full")),
    ("padding-negative", ValueError, ["padding[0][1]", "-1"],
     lambda: pypool.max_pool2d(X, 3, padding=((0, -1), (0, 0)))),
    ("padding-form", ValueError, ["padding[1]", "(begin, end)", "(1, 1, 1)"],
     lambda: pypool.max_pool2d(X, 3, padding=(1, (1, 1, 1)))),
    ("padding-too-large", ValueError, ["padding (2, 2)", "spatial axis 0", "= 2"],
     lambda: pypool.max_pool2d(X, 2, padding=2)),
    ("output-empty", ValueError, ["spatial axis 1", "input size 3", "would be 0"],
     lambda: pypool.max_pool2d(np.zeros((1, 1, 8, 3)), (2, 4))),
    ("global-empty", ValueError, ["x has shape (2, 3, 0, 4)", "non-empty"],
     lambda: pypool.global_max_pool(np.zeros((2, 3, 0, 4)))),
    ("adaptive-size-zero", ValueError, ["output_size[1]", ">= 1", "0"],
     lambda: pypool.adaptive_avg_pool2d(X, (2, 0))),
    ("adaptive-empty-input", ValueError, ["size 0 on spatial axis 0", "non-empty"],
     lambda: pypool.adaptive_max_pool2d(np.zeros((2, 3, 0, 4)), 2)),
    ("layout", ValueError, ["layout", "'NHWC'", "channels_last"],
     lambda: pypool.max_pool2d(X, 2, layout="NHWC")),
    ("flag-not-bool", TypeError, ["ceil_mode", "bool", "1"],
     lambda: pypool.max_pool2d(X, 2, ceil_mode=1)),
    ("divisor-zero", ValueError, ["divisor_override", "0"],
     lambda: pypool.avg_pool2d(X, 2, divisor_override=0)),
    ("result-dtype", TypeError, ["dtype", "int32", "float16"],
     lambda: pypool.avg_pool2d(X, 2, dtype=np.int32)),
    ("norm-type-value", ValueError, ["norm_type", "> 0", "-1"],
     lambda: pypool.lp_pool2d(X, -1, 2)),
    ("norm-type-kind", TypeError, ["norm_type", "'2'"],
     lambda: pypool.lp_pool2d(X, "2", 2)),
    ("norm-type-huge", ValueError, ["norm_type", "too large for a float"],
     lambda: pypool.lp_pool2d(X, 10**400, 2)),
    ("out-not-array", TypeError, ["out", "list"],
     lambda: pypool.max_pool2d(X, 2, out=[0.0])),
    ("out-shape", ValueError, ["out has shape (2, 3, 4, 5)", "(2, 3, 4, 4)"],
     lambda: pypool.max_pool2d(X, 2, out=np.empty((2, 3, 4, 5), np.float32))),
    ("out-dtype", TypeError, ["out has dtype float64", "float32"],
     lambda: pypool.max_pool2d(X, 2, out=np.empty((2, 3, 4, 4)))),
    ("out-read-only", ValueError, ["out", "read-only"],
     lambda: pypool.avg_pool2d(X, 2, out=_read_only_out())),
    ("out-overlaps-input", ValueError, ["out", "overlaps an input"],
     lambda: pypool.max_pool2d(BUF, 2, out=BUF[:, :, :4, :4])),
    ("out-self-overlap", ValueError, ["out has strides (0, 0, 0, 4)", "share memory"],
     lambda: pypool.max_pool2d(X, 2, out=_broadcast_out())),
    ("out-pair", ValueError, ["out", "(values, indices) pair", "tuple of 1"],
     lambda: pypool.max_pool2d(X, 2, return_indices=True, out=(np.empty_like(V),))),
    ("out-index-dtype", TypeError, ["out[1] has dtype int32", "int64"],
     lambda: pypool.max_pool2d(X, 2, return_indices=True,
                               out=(np.empty_like(V), np.empty(V.shape, np.int32)))),
    ("threads-zero", ValueError, ["num_threads", ">= 1", "0"],
     lambda: pypool.max_pool2d(X, 2, num_threads=0)),
    ("threads-kind", TypeError, ["num_threads", "1.5"],
     lambda: pypool.global_avg_pool(X, num_threads=1.5)),
    ("unpool-index-range", ValueError, ["indices", "outside [0, 64)", "64"],
     lambda: pypool.max_unpool2d(V, _with_index(64), 2)),
    ("unpool-index-negative", ValueError, ["indices", "outside [0, 64)", "-1"],
     lambda: pypool.max_unpool2d(V, _with_index(-1), 2)),
    ("unpool-index-dtype", TypeError, ["indices has dtype float64", "integer"],
     lambda: pypool.max_unpool2d(V, I.astype(float), 2)),
    ("unpool-index-shape", ValueError, ["indices has shape (2, 3, 4, 2)", "(2, 3, 4, 4)"],
     lambda: pypool.max_unpool2d(V, I[..., :2], 2)),
    ("unpool-index-beyond-int64", ValueError, ["indices holds", str(2**63 + 5), "int64"],
     lambda: pypool.max_unpool2d(V, _with_index(2**63 + 5, np.uint64), 2)),
    ("unpool-output-size", ValueError, ["output_size", "2 entries", "3"],
     lambda: pypool.max_unpool2d(V, I, 2, output_size=(8, 8, 8))),
    ("backward-index-range", ValueError, ["indices", "outside [-1, 64)", "64"],
     lambda: pypool.max_pool_backward(V, _with_index(64), X.shape)),
    ("backward-index-negative", ValueError, ["indices", "outside [-1, 64)", "-2"],
     lambda: pypool.max_pool_backward(V, _with_index(-2), X.shape)),
    ("backward-index-dtype", TypeError, ["indices has dtype float32", "integer"],
     lambda: pypool.max_pool_backward(V, I.astype(np.float32), X.shape)),
    ("backward-index-shape", ValueError, ["indices has shape (1, 3, 4, 4)", "grad_output"],
     lambda: pypool.max_pool_backward(V, I[:1], X.shape)),
    ("backward-input-shape", ValueError, ["input_shape[2]", ">= 0", "-8"],
     lambda: pypool.max_pool_backward(V, I, (2, 3, -8, 8))),
    ("backward-grad-shape", ValueError, ["grad_output has shape (2, 3, 3, 4)", "(2, 3, 4, 4)"],
     lambda: pypool.avg_pool_backward(V[:, :, :3], X.shape, (2, 2))),
    ("backward-ndim", ValueError, ["ndim", ">= 1", "0"],
     lambda: pypool.max_pool_backward(V, I, X.shape, ndim=0)),
    ("impossible-allocation", MemoryError, ["result would have shape", "bytes"],
     lambda: pypool.max_unpool2d(np.ones((1, 1, 2, 2), np.float32),
                                 np.zeros((1, 1, 2, 2), np.int64), 2**40)),
]

IDS = [case[0] for case in CASES]


@pytest.mark.parametrize("exc,words,call", [case[1:] for case in CASES], ids=IDS)
def test_bad_input_gets_a_clean_error(exc, words, call):
    before = X.copy(), V.copy(), I.copy()
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc   # not a subclass such as OverflowError
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    for kept, now in zip(before, (X, V, I)):
        np.testing.assert_array_equal(kept, now)


def _readme_table_ids():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("### What bad input gets", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.M)


def test_readme_table_lists_exactly_these_cases():
    assert len(set(IDS)) == len(IDS)
    assert _readme_table_ids() == IDS
