"""Remembered calls: the per-call cost of small max and average pools.

On a (1, 1, 4, 4) input the kernel itself takes well under a microsecond;
the checks, the geometry and the 5-D views took four times as long. A call
on a C-contiguous, aligned, native ndarray without ``out=`` (and, for
averages, without ``dtype=``), whose every other argument is a plain Python
value - int, str, None, tuples of ints and of int pairs, flags exactly True
or False - is checked and planned the normal way once. Its plan (result
shape, 5-D shapes, kernel, per-axis tuple, work) is kept under the call's
key, and later identical calls only allocate, reshape and run. The thread
count is worked out on every call (the OpenMP default may change).

The key holds the input's shape and dtype and every argument; arguments of
any other type (NumPy integers, lists, floats that compare equal to ints,
1 for True) never make or find a plan, so a call that the checks would
reject is never answered from one. Plans are never changed once stored;
the bounded dict is cleared when full.
"""

import numpy as np

from . import _native
from ._args import _plain, result_array, shape5, thread_count

_PLANS = {}
_PLANS_MAX = 256
_INT64 = np.dtype(np.int64)


def plain_args(args, flags):
    """Whether every argument may be part of a key (see the module docstring):
    ``args`` plain values (an int never a bool), ``flags`` bools."""
    for f in flags:
        if type(f) is not bool:
            return False
    for a in args:
        t = type(a)
        if t is int or t is str or a is None:
            continue
        if not _plain(a):
            return False
    return True


def call_key(kind, x, args, flags):
    """The key of a call that may use a plan, else None."""
    if type(x) is not np.ndarray:
        return None
    xflags = x.flags
    if not (xflags.c_contiguous and xflags.aligned) or not plain_args(args, flags):
        return None
    return (kind, x.shape, x.dtype) + args + flags


def lookup(key):
    return None if key is None else _PLANS.get(key)


def _store(key, plan):
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[key] = plan


def _plannable(x, g):
    """Calls with outputs to compute. (Which inputs the kernels read as they
    are - no widening of bool or float16, no byte swap - the callers settle:
    the input passed check_input unchanged and its dtype has a kernel.)"""
    return x.size > 0 and 0 not in g.out_shape()


class MaxPlan:
    __slots__ = ("out_shape", "dtype", "x5", "y5", "kernel", "axes", "work")

    def run(self, x, num_threads, return_indices):
        values = result_array(None, self.out_shape, self.dtype, None)
        indices = result_array(None, self.out_shape, _INT64, None) if return_indices else None
        nthreads = thread_count(num_threads, self.work)
        self.kernel(x.reshape(self.x5), values.reshape(self.y5),
                    None if indices is None else indices.reshape(self.y5),
                    return_indices, self.axes, False, nthreads)
        return (values, indices) if return_indices else values


class AveragePlan:
    __slots__ = ("out_shape", "dtype", "x5", "y5", "kernel", "axes", "work",
                 "count_include_pad", "divisor")

    def run(self, x, num_threads):
        result = result_array(None, self.out_shape, self.dtype, None)
        nthreads = thread_count(num_threads, self.work)
        self.kernel(0, x.reshape(self.x5), result.reshape(self.y5), self.axes, False,
                    self.count_include_pad, self.divisor, 1.0, nthreads)
        return result


def _fill(plan, x, g, dtype, kernel):
    lanes = g.channels if g.channels_last else 1
    plan.out_shape, plan.dtype, plan.kernel = g.out_shape(), dtype, kernel
    plan.x5 = shape5(g.lead, g.spatial, lanes)
    plan.y5 = shape5(g.lead, g.out_spatial, lanes)
    plan.axes, plan.work = g.axes(), g.work()


def remember_max(key, x, g):
    """Keep the plan of a max call that just ran the normal way."""
    kernel = _native.max_pool_forward_for.get(x.dtype)
    if key is None or kernel is None or not _plannable(x, g):
        return
    plan = MaxPlan()
    _fill(plan, x, g, x.dtype, kernel)
    _store(key, plan)


def remember_average(key, x, g, result_dtype, count_include_pad, divisor):
    """Keep the plan of an average call (float32 / float64 result) that just ran."""
    kernel = _native.reduce_pool_forward_for.get((x.dtype, result_dtype))
    if key is None or kernel is None or not _plannable(x, g):
        return
    plan = AveragePlan()
    _fill(plan, x, g, result_dtype, kernel)
    plan.count_include_pad, plan.divisor = count_include_pad, divisor
    _store(key, plan)
