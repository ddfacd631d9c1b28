"""pypool next to other OpenMP users: threadpoolctl and PyTorch.

threadpoolctl must see pypool's OpenMP runtime (the vendored copy in a
repaired wheel) and its limits must apply to pypool's default thread count.
PyTorch carries its own OpenMP runtime; both libraries must work in one
process whichever is imported first. The PyTorch checks run in fresh
interpreters (the import order matters only in a new process) with a timeout,
since a clash of OpenMP runtimes shows up as a crash or a hang.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pypool
from pypool import _args, _config

openmp_build = pytest.mark.skipif(not _config.config()["openmp"],
                                  reason="pypool was built without OpenMP (PYPOOL_DISABLE_OPENMP)")


def _same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


@openmp_build
def test_threadpoolctl_lists_pypools_openmp_runtime():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    runtime = _config.config()["openmp_runtime"]
    openmp = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "openmp"]
    assert any(_same_file(lib["filepath"], runtime) for lib in openmp), (runtime, openmp)


@openmp_build
def test_threadpool_limits_set_pypools_default_thread_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = _config.config()["default_threads"]
    big = 10 ** 9   # work large enough that pypool would use every default thread
    for limit in (1, 3):
        with threadpoolctl.threadpool_limits(limits=limit, user_api="openmp"):
            assert _config.config()["default_threads"] == limit
            assert _args.thread_count(None, big) == limit
            x = np.random.default_rng(0).standard_normal((4, 8, 64, 64))
            np.testing.assert_array_equal(pypool.max_pool2d(x, 2), pypool.max_pool2d(x, 2, num_threads=1))
    assert _config.config()["default_threads"] == before


def test_serial_build_reports_one_thread():
    # Without OpenMP there is nothing to limit: pypool runs every call on one thread.
    if _config.config()["openmp"]:
        pytest.skip("pypool was built with OpenMP")
    assert _config.config()["default_threads"] == 1
    assert _args.thread_count(None, 10 ** 9) == 1
    assert _args.thread_count(4, 10 ** 9) == 1


# ------------------------------------------------------------------ PyTorch in the same process

TORCH_AND_PYPOOL = textwrap.dedent("""
    import json
    import sys
    import threading

    if sys.argv[1] == "torch_first":
        import torch
        import pypool
    else:
        import pypool
        import torch
    import numpy as np
    import torch.nn.functional as F

    torch.set_num_threads(2)
    x = np.random.default_rng(1).standard_normal((8, 16, 96, 96)).astype(np.float32)
    t = torch.from_numpy(x)
    mismatches = []

    def compare(rounds):
        for _ in range(rounds):
            if not np.array_equal(pypool.max_pool2d(x, 3, 2, 1, num_threads=2),
                                  F.max_pool2d(t, 3, 2, 1).numpy()):
                mismatches.append("max_pool2d")
            if not np.allclose(pypool.avg_pool2d(x, 2, num_threads=2), F.avg_pool2d(t, 2).numpy(),
                               rtol=1e-6, atol=1e-7):
                mismatches.append("avg_pool2d")
            if not np.allclose(pypool.adaptive_avg_pool2d(x, (5, 7)),
                               F.adaptive_avg_pool2d(t, (5, 7)).numpy(), rtol=1e-5, atol=1e-6):
                mismatches.append("adaptive_avg_pool2d")

    compare(3)
    # Both runtimes' thread teams busy at once, from two Python threads.
    workers = [threading.Thread(target=compare, args=(3,)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cfg = pypool._config.config()
    print(json.dumps({"mismatches": mismatches, "runtime": cfg["openmp_runtime"],
                      "torch_threads": torch.get_num_threads(), "pypool_file": pypool.__file__,
                      "torch_dir": os.path.dirname(os.path.realpath(torch.__file__))}))
""").replace("import json\n", "import json\nimport os\n", 1)

OWN_RUNTIME = "import pypool; print(pypool._config.config()['openmp_runtime'])"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
@pytest.mark.parametrize("order", ["torch_first", "pypool_first"])
def test_pypool_and_torch_work_in_one_process(tmp_path, order):
    script = tmp_path / "both.py"
    script.write_text(TORCH_AND_PYPOOL)
    run = subprocess.run([sys.executable, str(script), order], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["mismatches"] == []
    assert report["torch_threads"] == 2
    assert _same_file(report["pypool_file"], pypool.__file__)
    # pypool's runtime in an interpreter without torch.
    alone = subprocess.run([sys.executable, "-c", OWN_RUNTIME], capture_output=True, text=True,
                           timeout=120, cwd=str(tmp_path))
    assert alone.returncode == 0, alone.stderr
    own = alone.stdout.strip()
    if not _config.config()["openmp"]:
        assert report["runtime"] is None and own == "None"
    elif order == "pypool_first":
        assert report["runtime"] == own
    else:
        # torch loads its libgomp with RTLD_GLOBAL; pypool's OpenMP calls may bind to it
        # (one runtime for both), or to pypool's own copy. show_config says which.
        under_torch = os.path.commonpath([report["runtime"], report["torch_dir"]]) == report["torch_dir"]
        assert report["runtime"] == own or under_torch, (report["runtime"], own)
