"""pypool in child processes: os.fork() after parallel pooling, and multiprocessing.

Each scenario runs in a fresh interpreter with a timeout, so a hang (the
known libgomp-after-fork failure) fails the test instead of stalling the suite.
"""

import subprocess
import sys
import textwrap

import pytest

FORK_AFTER_PARALLEL_USE = """
import os
import numpy as np
import pypool

x = np.random.default_rng(0).standard_normal((16, 64, 64, 64)).astype(np.float32)
expected = pypool.max_pool2d(x, 3, 2, 1, num_threads=2)   # the parent starts an OpenMP team
pid = os.fork()
if pid == 0:
    got = pypool.max_pool2d(x, 3, 2, 1)                   # would hang in libgomp
    avg = pypool.avg_pool2d(x, 2, num_threads=2)
    ok = np.array_equal(got, expected) and np.array_equal(avg, pypool.avg_pool2d(x, 2, num_threads=1))
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WEXITSTATUS(status) == 0, status
print("fork ok")
"""

FORK_DURING_PARALLEL_CALLS = """
import os, threading, warnings
import numpy as np
import pypool

warnings.simplefilter("ignore", DeprecationWarning)   # fork() with threads alive (3.12+)
x = np.random.default_rng(1).standard_normal((8, 32, 64, 64)).astype(np.float32)
expected = pypool.avg_pool2d(x, 3, 1, 1, num_threads=1)
stop = threading.Event()


def keep_pooling():   # OpenMP teams start and finish all the time in the parent
    while not stop.is_set():
        pypool.avg_pool2d(x, 3, 1, 1, num_threads=2)


busy = threading.Thread(target=keep_pooling)
busy.start()
for round in range(5):
    pid = os.fork()
    if pid == 0:
        ok = np.array_equal(pypool.avg_pool2d(x, 3, 1, 1), expected)
        grandchild = os.fork()   # and once more, from the child
        if grandchild == 0:
            os._exit(0 if np.array_equal(pypool.avg_pool2d(x, 3, 1, 1), expected) else 3)
        _, status = os.waitpid(grandchild, 0)
        os._exit(0 if ok and os.WEXITSTATUS(status) == 0 else 4)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, (round, status)
stop.set()
busy.join()
print("fork during parallel calls ok")
"""

MULTIPROCESSING = """
import multiprocessing as mp
import numpy as np
import pypool


def work(seed):
    x = np.random.default_rng(seed).standard_normal((8, 32, 48, 48)).astype(np.float32)
    return pypool.max_pool2d(x, 3, 2, 1).sum(), pypool.avg_pool2d(x, 2).sum()


if __name__ == "__main__":
    x = np.random.default_rng(0).standard_normal((8, 32, 48, 48)).astype(np.float32)
    pypool.max_pool2d(x, 3, 2, 1, num_threads=2)          # parent used OpenMP first
    serial = [work(s) for s in range(4)]
    ctx = mp.get_context({method!r})
    with ctx.Pool(2) as pool:
        parallel = pool.map(work, range(4))
    assert parallel == serial, (parallel, serial)
    print("{method} ok")
"""


def run_script(code, tmp_path, name):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_child_of_fork_can_pool_after_parent_used_threads(tmp_path):
    result = run_script(FORK_AFTER_PARALLEL_USE, tmp_path, "fork_child.py")
    assert result.returncode == 0, result.stderr
    assert "fork ok" in result.stdout


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_fork_while_another_thread_runs_parallel_calls(tmp_path):
    """Forks (and a fork of the child) taken while the parent's OpenMP teams come and go."""
    result = run_script(FORK_DURING_PARALLEL_CALLS, tmp_path, "fork_busy.py")
    assert result.returncode == 0, result.stderr
    assert "fork during parallel calls ok" in result.stdout


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_start_methods(tmp_path, method):
    import multiprocessing as mp
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform")
    result = run_script(MULTIPROCESSING.format(method=method), tmp_path, f"mp_{method}.py")
    assert result.returncode == 0, result.stderr
    assert f"{method} ok" in result.stdout
