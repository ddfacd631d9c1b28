"""Many Python threads calling every op at once get exactly the serial results.

The kernels release the GIL, so these calls really overlap (each may also
start its own OpenMP team); a shared buffer, a static scratch area or a
race in the thread-count logic would show up as a differing result.
"""

import math
import threading
import time

import numpy as np
import pytest

import pypool

RNG = np.random.default_rng(7)


def make_calls(x):
    """Every op family on x (channels_first) and its channels_last copy; f(num_threads)."""
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    v, i = pypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = RNG.standard_normal(v.shape).astype(np.float32)
    return {
        "max_pool": lambda t: pypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=t),
        "max_pool_nhwc": lambda t: pypool.max_pool2d(x_nhwc, 3, 2, 1, layout="channels_last",
                                                     return_indices=True, num_threads=t),
        "avg_pool": lambda t: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False,
                                                num_threads=t),
        "avg_pool_large": lambda t: pypool.avg_pool2d(x, 15, 1, 7, num_threads=t),
        "max_pool_large": lambda t: pypool.max_pool2d(x_nhwc, 13, 1, 6, layout="channels_last",
                                                      num_threads=t),
        "lp_pool": lambda t: pypool.lp_pool2d(x, 2, 3, 2, num_threads=t),
        "global_avg": lambda t: pypool.global_avg_pool(x, num_threads=t),
        "global_max": lambda t: pypool.global_max_pool(x_nhwc, layout="channels_last",
                                                       return_indices=True, num_threads=t),
        "adaptive_avg": lambda t: pypool.adaptive_avg_pool2d(x, (5, 7), num_threads=t),
        "adaptive_max": lambda t: pypool.adaptive_max_pool2d(x, (5, 7), return_indices=True,
                                                             num_threads=t),
        "max_unpool": lambda t: pypool.max_unpool2d(v, i, 3, 2, 1, output_size=x.shape[2:],
                                                    num_threads=t),
        "max_backward": lambda t: pypool.max_pool_backward(g, i, x.shape, num_threads=t),
        "avg_backward": lambda t: pypool.avg_pool_backward(g, x.shape, (3, 3), 2, 1,
                                                           num_threads=t),
        "lp_backward": lambda t: pypool.lp_pool_backward(g, x, 2, (3, 3), 2, 1, num_threads=t),
        "global_avg_backward": lambda t: pypool.global_avg_pool_backward(
            g[:, :, 0, 0], x.shape, num_threads=t),
        "adaptive_avg_backward": lambda t: pypool.adaptive_avg_pool_backward(
            g, x.shape, num_threads=t),
    }


X = RNG.standard_normal((4, 16, 65, 59)).astype(np.float32)   # calls of ~1 ms: they overlap
V, I = pypool.max_pool2d(X, 3, 2, 1, return_indices=True)
G = RNG.standard_normal(V.shape).astype(np.float32)
CALLS = make_calls(X)


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(p, q) for p, q in zip(a, b))
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def test_every_op_from_many_threads_at_once():
    expected = {name: call(1) for name, call in CALLS.items()}
    names = list(CALLS) * 3
    barrier = threading.Barrier(len(names))
    results, errors = [None] * len(names), []

    def work(k):
        try:
            barrier.wait()   # start together, so the calls overlap
            for rep in range(4):
                got = CALLS[names[k]]((None, 1, 2, 3)[(k + rep) % 4])
                if not _same(got, expected[names[k]]):
                    results[k] = f"differs on repetition {rep}"
                    return
            results[k] = "ok"
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    bad = {names[k]: r for k, r in enumerate(results) if r != "ok"}
    assert not bad, bad


@pytest.mark.parametrize("name", ["max_pool", "max_backward", "global_avg", "adaptive_avg"])
def test_errors_in_one_thread_do_not_disturb_the_others(name):
    """Threads raising ValueError (bad indices, bad sizes) beside threads that pool."""
    expected = CALLS[name](1)
    bad_index = I.copy()
    bad_index[-1, -1, -1, -1] = 10**6
    failures = [lambda: pypool.max_unpool2d(V, bad_index, 3, 2, 1),
                lambda: pypool.max_pool_backward(G, bad_index, X.shape),
                lambda: pypool.max_pool2d(X, 100)]
    outcome, errors = [], []

    def good():
        for t in (None, 2, 1, 2):
            outcome.append(_same(CALLS[name](t), expected))

    def bad(k):
        for _ in range(5):
            try:
                failures[k % 3]()
                errors.append("accepted")
            except ValueError:
                pass

    threads = ([threading.Thread(target=good) for _ in range(4)]
               + [threading.Thread(target=bad, args=(k,)) for k in range(6)])
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert outcome and all(outcome) and len(outcome) == 16
    assert not errors


@pytest.mark.parametrize("name", sorted(make_calls(X)))
def test_gil_is_released_by_every_op(name):
    """Another Python thread makes progress while one long call runs on one thread."""
    call = make_calls(RNG.standard_normal((4, 32, 160, 160)).astype(np.float32))[name]
    started = time.perf_counter()
    call(1)
    # Repeat to last ~50 ms. Between two calls the GIL changes hands only after the
    # switch interval (5 ms), so repeating does not let a GIL-holding op pass.
    repeats = max(1, math.ceil(0.05 / (time.perf_counter() - started)))
    call = (lambda once: lambda t: [once(t) for _ in range(repeats)])(call)
    ticks, stop = [], threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0002)

    th = threading.Thread(target=ticker)
    th.start()
    time.sleep(0.005)
    start = time.perf_counter()
    call(1)
    end = time.perf_counter()
    stop.set()
    th.join()
    during = [t for t in ticks if start < t < end]
    # A call holding the GIL would let the ticker in at most once per switch interval
    # (5 ms; a pure-Python loop measured 5 ticks in 55 ms); released, it ticks freely.
    assert len(during) >= max(3, 1.5 * (end - start) / 0.005), (len(during), end - start)
