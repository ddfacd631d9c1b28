"""Large-window cases outside the suite: other layouts, dtypes, strides and
sizes, each against the same roofline copy as bench.py (paired medians of 15).

    python benchmarks/variants.py     (pypool installed, as for bench.py)

Prints one line per case and thread count; writes nothing. Issue #4 asks
that the targets hold beyond the listed cases; these are the ones that do not
yet (README, Performance).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (roofline_copy, paired_median_times; imports pypool)
import pypool  # noqa: E402


def case(name, x, fn, threads, repeat=15):
    """Print fn's out= median and its ratio to the copy of as many bytes."""
    out = np.empty_like(fn(x, None, threads))
    nbytes = x.nbytes + out.nbytes    # (logical bytes: a strided input's lines hold more)
    t, roof = bench.paired_median_times(lambda: fn(x, out, threads),
                                        bench.roofline_copy(nbytes, threads), repeat)
    print(f"{name:34s} {threads} thread(s) {t * 1e3:7.3f} ms  copy {roof * 1e3:6.3f} ms"
          f"  ratio {t / roof:5.2f}x", flush=True)


def avg15(**kw):
    return lambda a, o, t: pypool.avg_pool2d(a, 15, 1, 7, out=o, num_threads=t, **kw)


def max13(**kw):
    return lambda a, o, t: pypool.max_pool2d(a, 13, 1, 6, out=o, num_threads=t, **kw)


def lp13(norm, **kw):
    return lambda a, o, t: pypool.lp_pool2d(a, norm, 13, 1, out=o, num_threads=t, **kw)


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 128, 64, 64), dtype=np.float32)
    nhwc = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    x64 = x.astype(np.float64)
    column_slice = np.repeat(x, 2, axis=3)[..., ::2]    # columns 8 bytes apart
    wide = rng.standard_normal((8, 32, 128, 128), dtype=np.float32)
    nhwc512 = rng.standard_normal((2, 64, 64, 512), dtype=np.float32)    # 4 MB planes
    for threads in (1, 2):
        case("avg 15x15 NCHW float32", x, avg15(), threads)
        case("avg 15x15 NHWC float32", nhwc, avg15(layout="channels_last"), threads)
        case("avg 15x15 NHWC 512 channels", nhwc512, avg15(layout="channels_last"), threads)
        case("avg 15x15 NCHW float64", x64, avg15(), threads)
        case("avg 15x15 NCHW column slice", column_slice, avg15(), threads)
        case("avg 15x15 NCHW excl-pad", x, avg15(count_include_pad=False), threads)
        case("avg 15x15 NCHW (8,32,128,128)", wide, avg15(), threads)
        case("max 13x13 NHWC float32", nhwc, max13(layout="channels_last"), threads)
        case("max 13x13 NCHW float64", x64, max13(), threads)
        case("max 13x13 NHWC 512 channels", nhwc512, max13(layout="channels_last"), threads)
        case("Lp (p=2) 13x13 NCHW float32", x, lp13(2), threads)
        case("Lp (p=3) 13x13 NCHW float32", x, lp13(3), threads)


if __name__ == "__main__":
    main()
