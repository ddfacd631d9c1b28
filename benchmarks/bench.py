"""pypool benchmark suite: medians, ratios to the memory roofline and to peers.

Usage (from the repository root, with pypool installed):

    python benchmarks/bench.py                    # 1 and 2 threads, writes RESULTS.md + chart
    python benchmarks/bench.py --threads 2 --quick --no-write

For every case and thread count the suite times, in one run:
  * pypool (median of --repeat calls), returning a fresh array and with out=,
  * the roofline: a parallel copy (same thread count) of as many bytes as the
    case reads plus writes — a pass can take no less than that; its samples
    alternate with those of pypool's out= call, so both medians see the
    same moments of the machine,
  * PyTorch CPU with torch.set_num_threads(n), when torch is installed,
  * a plain-NumPy implementation (sliding_window_view), single-threaded.
It prints and records ratios (time / roofline, peer time / pypool time), never
bare times alone: the machines are shared and noisy.
"""

import argparse
import os

# The suite never uses BLAS; idle OpenBLAS threads would only compete for cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import pypool  # noqa: E402
from pypool import _config, _native  # noqa: E402

try:
    import torch
except ImportError:  # the suite runs without torch, leaving its columns empty
    torch = None

HERE = os.path.dirname(os.path.abspath(__file__))
F32 = np.float32


# ----------------------------------------------------------------------------- timing

def median_time(fn, repeat, warmup=1, inner=1):
    """Median wall time of ``inner`` calls of fn, over ``repeat`` samples."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def paired_median_times(fn_a, fn_b, repeat, warmup=1):
    """Medians of fn_a's and fn_b's wall times, sampled alternately (a, b, a, b,
    ...), so that both see the same moments of a shared machine: the
    memory bandwidth a copy gets here varied by 2x between runs."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        t2 = time.perf_counter()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return statistics.median(a), statistics.median(b)


_COPY_BUFFERS = {}


def roofline_copy(nbytes, threads):
    """A parallel copy moving ``nbytes`` in total (nbytes/2 read, nbytes/2 written)."""
    half = max(1, int(nbytes // 2))
    if half not in _COPY_BUFFERS:
        _COPY_BUFFERS.clear()
        src = np.ones(half, np.uint8)
        _COPY_BUFFERS[half] = (src, np.empty_like(src))
    src, dst = _COPY_BUFFERS[half]
    return lambda: _native.parallel_copy(src, dst, threads)


# ----------------------------------------------------------------------------- NumPy peers

def np_pool(x, k, s, p, op, channels_last=False, count_include_pad=True):
    """Plain-NumPy pooling over the trailing spatial axes (channels before or after)."""
    nd = len(k)
    if channels_last:
        x = np.moveaxis(x, -1, 1)
    lead = x.ndim - nd
    fill = -np.inf if op == "max" else 0.0
    pad = [(0, 0)] * lead + [(pp, pp) for pp in p]
    xp = np.pad(x, pad, constant_values=fill) if any(p) else x
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=tuple(range(lead, x.ndim)))
    win = win[(Ellipsis,) + tuple(slice(None, None, ss) for ss in s) + (slice(None),) * nd]
    axes = tuple(range(-nd, 0))
    if op == "max":
        y = win.max(axis=axes)
    else:
        y = win.sum(axis=axes, dtype=np.float64)
        if count_include_pad or not any(p):
            y = y / np.prod(k)
        else:
            ones = np.pad(np.ones(x.shape[lead:]), [(pp, pp) for pp in p])
            cw = np.lib.stride_tricks.sliding_window_view(ones, k)
            cw = cw[tuple(slice(None, None, ss) for ss in s)]
            y = y / cw.sum(axis=axes)
        y = y.astype(x.dtype)
    if channels_last:
        y = np.moveaxis(y, 1, -1)
    return y


# ----------------------------------------------------------------------------- cases

class Case:
    """One benchmark: how to run it in pypool, torch and NumPy, and its bytes moved."""

    def __init__(self, name, make, run, torch_run=None, numpy_run=None, nbytes=None, overhead=False):
        self.name, self.make, self.run = name, make, run
        self.torch_run, self.numpy_run = torch_run, numpy_run
        self.nbytes, self.overhead = nbytes, overhead


def _tensor(x, channels_last=False):
    """torch view of a NumPy input; channels_last arrays become channels_last tensors."""
    t = torch.from_numpy(x)
    if channels_last:
        t = t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))
    return t


def cases():
    rng = np.random.default_rng(0)
    F = torch.nn.functional if torch is not None else None

    def rand(*shape, dtype=F32):
        return rng.standard_normal(shape).astype(dtype)

    out = []

    def add(name, shape, fn, tfn, nfn, out_shape, extra_bytes=0, channels_last=False):
        def make():
            return rand(*shape)

        def nbytes(x):
            return x.nbytes + int(np.prod(out_shape)) * x.itemsize + extra_bytes
        out.append(Case(name, make, fn,
                        (lambda x: tfn(_tensor(x, channels_last))) if tfn else None,
                        nfn, nbytes))

    add("max2d 2x2 s2 NCHW (32,64,112,112)", (32, 64, 112, 112),
        lambda x, n, **kw: pypool.max_pool2d(x, 2, num_threads=n, **kw),
        lambda t: F.max_pool2d(t, 2), lambda x: np_pool(x, (2, 2), (2, 2), (0, 0), "max"),
        (32, 64, 56, 56))
    add("max2d 3x3 s2 p1 NCHW (32,64,112,112)", (32, 64, 112, 112),
        lambda x, n, **kw: pypool.max_pool2d(x, 3, 2, 1, num_threads=n, **kw),
        lambda t: F.max_pool2d(t, 3, 2, 1), lambda x: np_pool(x, (3, 3), (2, 2), (1, 1), "max"),
        (32, 64, 56, 56))
    add("max2d 3x3 s2 p1 NCHW +indices", (32, 64, 112, 112),
        lambda x, n, **kw: pypool.max_pool2d(x, 3, 2, 1, return_indices=True, num_threads=n, **kw),
        lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True), None,
        (32, 64, 56, 56), extra_bytes=32 * 64 * 56 * 56 * 8)
    add("max2d 3x3 s2 p1 NHWC (32,112,112,64)", (32, 112, 112, 64),
        lambda x, n, **kw: pypool.max_pool2d(x, 3, 2, 1, layout="channels_last", num_threads=n, **kw),
        lambda t: F.max_pool2d(t, 3, 2, 1),
        lambda x: np_pool(x, (3, 3), (2, 2), (1, 1), "max", channels_last=True),
        (32, 56, 56, 64), channels_last=True)
    add("max2d 3x3 s2 p1 NHWC +indices", (32, 112, 112, 64),
        lambda x, n, **kw: pypool.max_pool2d(x, 3, 2, 1, layout="channels_last", return_indices=True,
                                       num_threads=n, **kw),
        lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True), None,
        (32, 56, 56, 64), extra_bytes=32 * 64 * 56 * 56 * 8, channels_last=True)
    add("avg2d 2x2 s2 NCHW (32,128,56,56)", (32, 128, 56, 56),
        lambda x, n, **kw: pypool.avg_pool2d(x, 2, num_threads=n, **kw),
        lambda t: F.avg_pool2d(t, 2), lambda x: np_pool(x, (2, 2), (2, 2), (0, 0), "avg"),
        (32, 128, 28, 28))
    add("avg2d 3x3 s1 p1 excl-pad NCHW (32,128,56,56)", (32, 128, 56, 56),
        lambda x, n, **kw: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False, num_threads=n, **kw),
        lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False),
        lambda x: np_pool(x, (3, 3), (1, 1), (1, 1), "avg", count_include_pad=False),
        (32, 128, 56, 56))
    # Not in #4's list: the same average channels_last ("every layout").
    add("avg2d 3x3 s1 p1 excl-pad NHWC (32,56,56,128)", (32, 56, 56, 128),
        lambda x, n, **kw: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False, layout="channels_last",
                                       num_threads=n, **kw),
        lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False),
        lambda x: np_pool(x, (3, 3), (1, 1), (1, 1), "avg", count_include_pad=False, channels_last=True),
        (32, 56, 56, 128), channels_last=True)
    add("global avg NCHW (64,2048,7,7)", (64, 2048, 7, 7),
        lambda x, n, **kw: pypool.global_avg_pool(x, num_threads=n, **kw),
        lambda t: F.adaptive_avg_pool2d(t, 1), lambda x: x.mean(axis=(2, 3), dtype=np.float64).astype(F32),
        (64, 2048))
    add("global avg NHWC (64,7,7,2048)", (64, 7, 7, 2048),
        lambda x, n, **kw: pypool.global_avg_pool(x, layout="channels_last", num_threads=n, **kw),
        lambda t: F.adaptive_avg_pool2d(t, 1), lambda x: x.mean(axis=(1, 2), dtype=np.float64).astype(F32),
        (64, 2048), channels_last=True)
    add("max1d k3 s2 (64,256,4096)", (64, 256, 4096),
        lambda x, n, **kw: pypool.max_pool1d(x, 3, 2, num_threads=n, **kw),
        lambda t: F.max_pool1d(t, 3, 2), lambda x: np_pool(x, (3,), (2,), (0,), "max"),
        (64, 256, 2047))
    add("max3d 2x2x2 s2 (8,32,32,64,64)", (8, 32, 32, 64, 64),
        lambda x, n, **kw: pypool.max_pool3d(x, 2, num_threads=n, **kw),
        lambda t: F.max_pool3d(t, 2), lambda x: np_pool(x, (2, 2, 2), (2, 2, 2), (0, 0, 0), "max"),
        (8, 32, 16, 32, 32))
    add("max2d 13x13 s1 p6 NCHW (8,128,64,64)", (8, 128, 64, 64),
        lambda x, n, **kw: pypool.max_pool2d(x, 13, 1, 6, num_threads=n, **kw),
        lambda t: F.max_pool2d(t, 13, 1, 6), None, (8, 128, 64, 64))
    add("avg2d 15x15 s1 p7 NCHW (8,128,64,64)", (8, 128, 64, 64),
        lambda x, n, **kw: pypool.avg_pool2d(x, 15, 1, 7, num_threads=n, **kw),
        lambda t: F.avg_pool2d(t, 15, 1, 7), None, (8, 128, 64, 64))

    # Backward cases: inputs are (grad, indices) or grad; bytes = grad + indices + grad_input.
    def max_bwd_make():
        x = rand(32, 64, 112, 112)
        _, idx = pypool.max_pool2d(x, 3, 2, 1, return_indices=True)
        return (rand(32, 64, 56, 56), idx, x)

    def max_bwd_torch(a):
        g, idx, x = a
        return torch.ops.aten.max_pool2d_with_indices_backward(
            torch.from_numpy(g), torch.from_numpy(x), [3, 3], [2, 2], [1, 1], [1, 1], False,
            torch.from_numpy(idx))
    out.append(Case("max2d backward 3x3 s2 p1 NCHW (32,64,112,112)", max_bwd_make,
                    lambda a, n, **kw: pypool.max_pool_backward(a[0], a[1], a[2].shape, num_threads=n, **kw),
                    max_bwd_torch if torch is not None else None, None,
                    lambda a: a[0].nbytes + a[1].nbytes + a[2].nbytes))

    def avg_bwd_make():
        return (rand(32, 128, 28, 28), np.empty((32, 128, 56, 56), F32))

    def avg_bwd_torch(a):
        g, x = a
        return torch.ops.aten.avg_pool2d_backward(torch.from_numpy(g), torch.from_numpy(x), [2, 2],
                                                  [2, 2], [0, 0], False, True, None)
    out.append(Case("avg2d backward 2x2 s2 NCHW (32,128,56,56)", avg_bwd_make,
                    lambda a, n, **kw: pypool.avg_pool_backward(a[0], a[1].shape, (2, 2), num_threads=n, **kw),
                    avg_bwd_torch if torch is not None else None, None,
                    lambda a: a[0].nbytes + a[1].nbytes))

    small = Case("per-call overhead: max2d 2x2 on (1,1,4,4)", lambda: rand(1, 1, 4, 4),
                 lambda x, n, **kw: pypool.max_pool2d(x, 2, num_threads=n, **kw),
                 (lambda x: F.max_pool2d(torch.from_numpy(x), 2)) if torch is not None else None,
                 lambda x: np_pool(x, (2, 2), (2, 2), (0, 0), "max"),
                 lambda x: 0, overhead=True)
    out.append(small)
    return out


# ----------------------------------------------------------------------------- running

def _empty_like_result(result):
    if isinstance(result, tuple):
        return tuple(np.empty_like(r) for r in result)
    return np.empty_like(result)


def run_suite(threads, repeat, quick, only=None):
    rows = []
    for case in cases():
        if only and only not in case.name:
            continue
        data = case.make()
        inner = 2000 if case.overhead else 1
        reps = repeat if not quick else max(3, repeat // 2)
        t_pp = median_time(lambda: case.run(data, threads), reps, inner=inner)
        row = {"case": case.name, "threads": threads, "pypool_ms": t_pp * 1e3}
        if not case.overhead:
            # The roofline copy writes into memory it already owns; so does
            # pypool with out= (a fresh result also pays the OS for new pages).
            out = _empty_like_result(case.run(data, threads))
            t_out, t_roof = paired_median_times(lambda: case.run(data, threads, out=out),
                                                roofline_copy(case.nbytes(data), threads), reps)
            row["out_ms"] = t_out * 1e3
            row["roofline_ms"] = t_roof * 1e3
            row["x_roofline"] = t_out / t_roof
        if case.torch_run is not None:
            torch.set_num_threads(threads)
            t_t = median_time(lambda: case.torch_run(data), max(3, reps // 2), inner=inner)
            row["torch_ms"] = t_t * 1e3
            row["vs_torch"] = t_t / t_pp
        if case.numpy_run is not None and not quick:
            t_n = median_time(lambda: case.numpy_run(data), 3 if not case.overhead else reps,
                              inner=200 if case.overhead else 1)
            row["numpy_ms"] = t_n * 1e3
            row["vs_numpy"] = t_n / t_pp
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def _fmt(v, unit=""):
    return "—" if v is None else (f"{v:.3f}{unit}" if v < 10 else f"{v:.1f}{unit}")


def format_row(r):
    return (f"| {r['case']} | {r['threads']} | {_fmt(r['pypool_ms'])} | {_fmt(r.get('out_ms'))} | "
            f"{_fmt(r.get('roofline_ms'))} | "
            f"{_fmt(r.get('x_roofline'), 'x')} | {_fmt(r.get('torch_ms'))} | {_fmt(r.get('vs_torch'), 'x')} | "
            f"{_fmt(r.get('numpy_ms'))} | {_fmt(r.get('vs_numpy'), 'x')} |")


HEADER = ("| case | threads | pypool ms | pypool out= ms | roofline ms | out= / roofline | "
          "torch ms | torch / pypool | numpy ms | numpy / pypool |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    facts = _config.config()
    tv = torch.__version__ if torch is not None else "not installed"
    return (f"- CPU: {cpu}, {os.cpu_count()} logical cores\n"
            f"- Python {platform.python_version()}, NumPy {np.__version__}, PyTorch {tv}\n"
            f"- pypool {pypool.__version__}, OpenMP {'on' if facts['openmp'] else 'off'}, "
            f"{facts['compiler']} {facts['compiler_version']}, flags `{facts['compile_flags']}`\n"
            f"- date: {time.strftime('%Y-%m-%d')}")


def chart(rows, path):
    """Bars: pypool / roofline and torch / pypool per case and thread count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["case"] for r in rows if r["threads"] == rows[0]["threads"]]
    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(15, 0.45 * len(names) + 2), sharey=True)
    ypos = np.arange(len(names))
    width = 0.8 / len(threads)
    for k, t in enumerate(threads):
        sel = {r["case"]: r for r in rows if r["threads"] == t}
        roof = [sel.get(n, {}).get("x_roofline", np.nan) for n in names]
        vs = [sel.get(n, {}).get("vs_torch", np.nan) for n in names]
        axes[0].barh(ypos + k * width, roof, width, label=f"{t} thread(s)")
        axes[1].barh(ypos + k * width, vs, width, label=f"{t} thread(s)")
    axes[0].axvline(1.0, color="k", lw=0.8)
    axes[0].axvline(1.5, color="r", lw=0.8, ls="--")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("pypool (out=) time / memory roofline (lower is better, log scale; 1 = copy speed)")
    axes[1].axvline(1.0, color="k", lw=0.8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("PyTorch time / pypool time (higher is better, log scale)")
    axes[0].set_yticks(ypos + width * (len(threads) - 1) / 2)
    axes[0].set_yticklabels(names, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rows_from_results(path):
    """Read the rows back from a RESULTS.md table (to redraw the chart without re-measuring)."""
    keys = ["case", "threads", "pypool_ms", "out_ms", "roofline_ms", "x_roofline", "torch_ms",
            "vs_torch",
            "numpy_ms", "vs_numpy"]
    rows = []
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != len(keys) or not cells[1].isdigit():
                continue
            row = {"case": cells[0], "threads": int(cells[1])}
            for k, c in zip(keys[2:], cells[2:]):
                if c != "—":
                    row[k] = float(c.rstrip("x"))
            rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--repeat", type=int, default=7, help="samples per median (default 7)")
    ap.add_argument("--quick", action="store_true", help="fewer samples, skip NumPy peers")
    ap.add_argument("--only", help="run only cases whose name contains this text")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md / chart")
    ap.add_argument("--chart-only", action="store_true",
                    help="redraw results.png from RESULTS.md without measuring")
    args = ap.parse_args(argv)
    if args.chart_only:
        chart(rows_from_results(os.path.join(HERE, "RESULTS.md")), os.path.join(HERE, "results.png"))
        return []
    print(machine_description())
    print(HEADER)
    rows = []
    for t in [int(v) for v in args.threads.split(",")]:
        rows += run_suite(t, args.repeat, args.quick, args.only)
    if not args.no_write:
        with open(os.path.join(HERE, "RESULTS.md"), "w") as f:
            f.write("# pypool benchmark results\n\n")
            f.write("Written by `python benchmarks/bench.py`. Times are medians; the roofline is a\n"
                    "parallel copy of the case's bytes (read + written) with the same thread\n"
                    "count, measured in the same run, its samples alternating with those of\n"
                    "`pypool out=` (the copy's speed on this shared machine varied 2x between\n"
                    "runs). Ratios, not bare times, are what to compare.\n"
                    "`pypool ms` returns a fresh array, as torch and NumPy do (the peers' ratios use\n"
                    "it); `pypool out= ms` writes into a preallocated result, as the roofline copy\n"
                    "does, and is what the roofline ratio uses. The gap between the two is the\n"
                    "operating system handing out (and zeroing) new pages.\n\n")
            f.write(machine_description() + "\n\n" + HEADER + "\n")
            f.write("\n".join(format_row(r) for r in rows) + "\n\n![ratios](results.png)\n")
        try:
            chart(rows, os.path.join(HERE, "results.png"))
        except ImportError:
            print("matplotlib not installed: no chart (pip install matplotlib)", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
