"""Small and medium windows outside the suite: other shapes, dtypes, layouts,
strides and ops, each against the same roofline copy as bench.py (paired
medians of 9; '<<' marks a ratio above the 1.5x target).

    python benchmarks/sweep.py [max|avg|other|layout|all] [threads, e.g. 2,1]

Prints one line per case and thread count; writes nothing. Issue #4 asks that
the targets hold beyond the listed cases; the README (Performance, "Beyond
the listed cases") quotes its last run. Inputs that fit in the caches are
measured against a copy that runs from the caches too.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (roofline_copy, paired_median_times; imports pypool)
import pypool  # noqa: E402

RNG = np.random.default_rng(0)
CL = dict(layout="channels_last")


def case(name, x, fn, threads, repeat=9):
    """Print fn's out= median and its ratio to the copy of as many bytes."""
    first = fn(x, None, threads)
    outs = tuple(np.empty_like(r) for r in (first if isinstance(first, tuple) else (first,)))
    out = outs if isinstance(first, tuple) else outs[0]
    nbytes = x.nbytes + sum(o.nbytes for o in outs)   # (logical bytes)
    t, roof = bench.paired_median_times(lambda: fn(x, out, threads),
                                        bench.roofline_copy(nbytes, threads), repeat)
    flag = " <<" if t / roof > 1.5 else ""
    print(f"{name:44s} {threads} thread(s) {t * 1e3:8.3f} ms  copy {roof * 1e3:7.3f} ms"
          f"  ratio {t / roof:5.2f}x{flag}", flush=True)


def data(shape, dtype=np.float32):
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(0, 100, shape).astype(dtype)


def mp(k, s, p=0, **kw):
    return lambda a, o, t: pypool.max_pool2d(a, k, s, p, out=o, num_threads=t, **kw)


def ap(k, s, p=0, **kw):
    return lambda a, o, t: pypool.avg_pool2d(a, k, s, p, out=o, num_threads=t, **kw)


def max_cases(T):
    case("max3s2p1 NCHW (16,256,56,56)", data((16, 256, 56, 56)), mp(3, 2, 1), T)
    case("max3s2p1 NCHW (1,64,224,224)", data((1, 64, 224, 224)), mp(3, 2, 1), T)
    case("max3s2p1 NCHW (64,64,56,56) f64", data((64, 64, 56, 56), np.float64), mp(3, 2, 1), T)
    case("max3s2p1 NCHW f16", data((32, 64, 112, 112), np.float16), mp(3, 2, 1), T)
    case("max3s2p1 NCHW u8", data((32, 64, 112, 112), np.uint8), mp(3, 2, 1), T)
    case("max3s2p1 NCHW i32", data((32, 64, 112, 112), np.int32), mp(3, 2, 1), T)
    case("max3s2p1 NHWC (16,56,56,256)", data((16, 56, 56, 256)), mp(3, 2, 1, **CL), T)
    case("max3s2p1 NHWC (32,112,112,3)", data((32, 112, 112, 3)), mp(3, 2, 1, **CL), T)
    case("max3s2p1 NHWC (32,112,112,16)", data((32, 112, 112, 16)), mp(3, 2, 1, **CL), T)
    case("max3s2p1 NHWC f64", data((32, 112, 112, 64), np.float64), mp(3, 2, 1, **CL), T)
    case("max3s2p1 NHWC u8", data((32, 112, 112, 64), np.uint8), mp(3, 2, 1, **CL), T)
    case("max2s2 NCHW (32,64,113,113)", data((32, 64, 113, 113)), mp(2, 2), T)
    case("max2s2 NCHW column slice", data((32, 64, 112, 224))[..., ::2], mp(2, 2), T)
    case("max3s1p1 NCHW (32,64,112,112)", data((32, 64, 112, 112)), mp(3, 1, 1), T)
    case("max5s1p2 NCHW (32,64,112,112)", data((32, 64, 112, 112)), mp(5, 1, 2), T)
    case("max3s2p1 ceil NCHW (32,64,111,111)", data((32, 64, 111, 111)),
         mp(3, 2, 1, ceil_mode=True), T)
    case("max3s2 dilation 2 NCHW", data((32, 64, 112, 112)), mp(3, 2, 0, dilation=2), T)
    case("max3s2p1 indices NCHW (16,256,56,56)", data((16, 256, 56, 56)),
         mp(3, 2, 1, return_indices=True), T)
    case("max3s2p1 indices NHWC (16,56,56,256)", data((16, 56, 56, 256)),
         mp(3, 2, 1, return_indices=True, **CL), T)
    case("max2s2 indices NCHW f64", data((32, 64, 112, 112), np.float64),
         mp(2, 2, return_indices=True), T)


def avg_cases(T):
    case("avg2s2 NCHW f64 (32,128,56,56)", data((32, 128, 56, 56), np.float64), ap(2, 2), T)
    case("avg2s2 NHWC (32,56,56,128)", data((32, 56, 56, 128)), ap(2, 2, **CL), T)
    case("avg3s2p1 NCHW (32,64,112,112)", data((32, 64, 112, 112)), ap(3, 2, 1), T)
    case("avg3s2p1 NHWC (32,112,112,64)", data((32, 112, 112, 64)), ap(3, 2, 1, **CL), T)
    case("avg3s2p1 NHWC (32,112,112,3)", data((32, 112, 112, 3)), ap(3, 2, 1, **CL), T)
    case("avg3s1p1 NCHW f64 excl-pad", data((32, 128, 56, 56), np.float64),
         ap(3, 1, 1, count_include_pad=False), T)
    case("avg3s1p1 NCHW f16", data((32, 128, 56, 56), np.float16), ap(3, 1, 1), T)
    case("avg5s1p2 NCHW (32,128,56,56)", data((32, 128, 56, 56)), ap(5, 1, 2), T)
    case("avg5s1p2 NHWC (32,56,56,128)", data((32, 56, 56, 128)), ap(5, 1, 2, **CL), T)
    case("avg7s1p3 NCHW (32,128,56,56)", data((32, 128, 56, 56)), ap(7, 1, 3), T)
    case("avg3s1p1 NCHW column slice", data((32, 128, 56, 112))[..., ::2], ap(3, 1, 1), T)
    case("avg2s2 NCHW u8 -> f64", data((32, 128, 56, 56), np.uint8), ap(2, 2), T)
    case("avg4s4 NCHW (32,128,56,56)", data((32, 128, 56, 56)), ap(4, 4), T)
    case("avg3s3 NCHW (32,128,57,57)", data((32, 128, 57, 57)), ap(3, 3), T)
    case("global avg NCHW (64,512,14,14)", data((64, 512, 14, 14)),
         lambda a, o, t: pypool.global_avg_pool(a, out=o, num_threads=t), T)
    case("global avg NHWC (64,14,14,512)", data((64, 14, 14, 512)),
         lambda a, o, t: pypool.global_avg_pool(a, out=o, num_threads=t, **CL), T)
    case("global max NCHW (64,2048,7,7)", data((64, 2048, 7, 7)),
         lambda a, o, t: pypool.global_max_pool(a, out=o, num_threads=t), T)
    case("adaptive avg 7 NCHW (32,512,28,28)", data((32, 512, 28, 28)),
         lambda a, o, t: pypool.adaptive_avg_pool2d(a, 7, out=o, num_threads=t), T)
    case("adaptive max 7 NCHW (32,512,28,28)", data((32, 512, 28, 28)),
         lambda a, o, t: pypool.adaptive_max_pool2d(a, 7, out=o, num_threads=t), T)


def other_cases(T):
    case("max1d k3s2 (64,256,4096) f64", data((64, 256, 4096), np.float64),
         lambda a, o, t: pypool.max_pool1d(a, 3, 2, out=o, num_threads=t), T)
    case("max1d k2s2 NLC (64,4096,256)", data((64, 4096, 256)),
         lambda a, o, t: pypool.max_pool1d(a, 2, 2, out=o, num_threads=t, **CL), T)
    case("avg1d k3s1p1 (64,256,4096)", data((64, 256, 4096)),
         lambda a, o, t: pypool.avg_pool1d(a, 3, 1, 1, out=o, num_threads=t), T)
    case("max3d 3s2p1 (8,32,32,64,64)", data((8, 32, 32, 64, 64)),
         lambda a, o, t: pypool.max_pool3d(a, 3, 2, 1, out=o, num_threads=t), T)
    case("max3d 2s2 NDHWC (8,32,64,64,32)", data((8, 32, 64, 64, 32)),
         lambda a, o, t: pypool.max_pool3d(a, 2, 2, out=o, num_threads=t, **CL), T)
    case("avg3d 3s1p1 (8,32,32,64,64)", data((8, 32, 32, 64, 64)),
         lambda a, o, t: pypool.avg_pool3d(a, 3, 1, 1, out=o, num_threads=t), T)
    case("lp2 3s2 NCHW (32,128,56,56)", data((32, 128, 56, 56)),
         lambda a, o, t: pypool.lp_pool2d(a, 2, 3, 2, out=o, num_threads=t), T)
    x = data((16, 256, 56, 56))
    y, i = pypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    case("max backward 3s2p1 (16,256,56,56)", y,
         lambda a, o, t: pypool.max_pool_backward(a, i, x.shape, out=o, num_threads=t), T)
    case("avg backward 3s1p1 NCHW (32,128,56,56)", data((32, 128, 56, 56)),
         lambda a, o, t: pypool.avg_pool_backward(a, (32, 128, 56, 56), (3, 3), 1, 1, out=o,
                                                  num_threads=t), T)


def layout_cases(T):
    nhwc = data((32, 112, 112, 64))
    case("max2s2 NCHW view of NHWC memory", nhwc.transpose(0, 3, 1, 2), mp(2, 2), T)
    case("max3s2p1 indices NCHW view of NHWC", nhwc.transpose(0, 3, 1, 2),
         mp(3, 2, 1, return_indices=True), T)
    case("avg3s1p1 NCHW view of NHWC memory", data((32, 56, 56, 128)).transpose(0, 3, 1, 2),
         ap(3, 1, 1), T)
    case("max3s2p1 NHWC view of NCHW memory", data((32, 64, 112, 112)).transpose(0, 2, 3, 1),
         mp(3, 2, 1, **CL), T)


GROUPS = {"max": max_cases, "avg": avg_cases, "other": other_cases, "layout": layout_cases}


def main(argv):
    which = argv[1] if len(argv) > 1 else "all"
    threads = [int(t) for t in (argv[2] if len(argv) > 2 else "1,2").split(",")]
    groups = list(GROUPS.values()) if which == "all" else [GROUPS[which]]
    for t in threads:
        for group in groups:
            group(t)


if __name__ == "__main__":
    main(sys.argv)
