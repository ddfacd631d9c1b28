"""The AVX2 and baseline builds of the kernels give bit-identical results.

pypool loads the AVX2 build on CPUs that have it; PYPOOL_DISABLE_AVX2=1 forces
the baseline build. Both must round identically (no FMA contraction), so the
results must match to the last bit for every op family. The AVX2 build's
AVX-512 global-average sums (on CPUs with AVX-512; PYPOOL_DISABLE_AVX512=1
turns them off) must match too.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pypool
from pypool import _native

COMPUTE = textwrap.dedent("""
    import sys
    import numpy as np
    import pypool

    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 23, 37)).astype(np.float32)
    x[0, 0, 3, ::4] = np.nan
    x64 = x.astype(np.float64)
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    results = {}
    for name, arr in (("f32", x), ("f64", x64)):
        v, i = pypool.max_pool2d(arr, 3, 2, 1, return_indices=True)
        results[name + "max"] = v
        results[name + "idx"] = i
        results[name + "avg"] = pypool.avg_pool2d(arr, 3, 1, 1, count_include_pad=False)
        results[name + "avg2"] = pypool.avg_pool2d(arr, 2, ceil_mode=True)
        results[name + "lp"] = pypool.lp_pool2d(arr, 3.0, 3, 2, 1)
        results[name + "lp2"] = pypool.lp_pool2d(arr, 2, 2)
        results[name + "gavg"] = pypool.global_avg_pool(arr)
        results[name + "aavg"] = pypool.adaptive_avg_pool2d(arr, (4, 5))
        g = rng.standard_normal(results[name + "avg"].shape).astype(arr.dtype)
        results[name + "avgbwd"] = pypool.avg_pool_backward(g, arr.shape, (3, 3), 1, 1)
        results[name + "maxbwd"] = pypool.max_pool_backward(results[name + "max"], i, arr.shape)
    # float64 results of non-double inputs show any last-bit difference of the
    # fused stride-1 average loops between the builds.
    results["avg_f32_to_f64"] = pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False,
                                                  dtype=np.float64)
    xi = rng.integers(-2**40, 2**40, (2, 3, 11, 29))
    results["avg_int64"] = pypool.avg_pool2d(xi, 3, 1, 1, count_include_pad=False)
    results["avg_int64_dil"] = pypool.avg_pool2d(xi, (2, 3), 1, 1, dilation=(1, 2))
    results["nhwc_max"] = pypool.max_pool2d(xl, 3, 2, 1, layout="channels_last", return_indices=True)[1]
    results["nhwc_avg"] = pypool.avg_pool2d(xl, 3, 1, 1, layout="channels_last")
    # float32 global averages, which sum 8 planes at a time with AVX-512 where
    # the CPU has it: enough planes to prefetch, planes apart, a strided result
    gx = (rng.standard_normal((3, 301, 19, 17)) * 10.0 ** rng.integers(-3, 4, (3, 301, 1, 1)))
    gx = gx.astype(np.float32)
    gx[1, 5, 2, 3] = np.nan
    gx[2, 9, 0, 0] = np.inf
    results["gavg_many"] = pypool.global_avg_pool(gx)
    results["avg2_pairs"] = pypool.avg_pool2d(gx[..., :18, :], 2)       # rows of 8 outputs
    results["avg2_pairs_end"] = pypool.avg_pool2d(gx[..., :18, :13], 2)  # 6: a masked end
    results["gavg_every_other"] = pypool.global_avg_pool(gx[:, ::2])
    results["gavg_nhwc"] = pypool.global_avg_pool(np.ascontiguousarray(gx.transpose(0, 2, 3, 1)),
                                                  layout="channels_last")
    # large channels_first max windows (the band path: doubling along rows, with
    # AVX-512 where the CPU has it), zeros of both signs and NaN
    bx = rng.choice(np.array([-0.0, 0.0, 1.0, -2.0, np.nan], np.float32), (2, 3, 29, 53),
                    p=[0.35, 0.35, 0.1, 0.15, 0.05])
    results["band_max"] = pypool.max_pool2d(bx, (7, 13), 1, (3, 6))
    results["band_max_f64"] = pypool.max_pool2d(bx.astype(np.float64), (9, 21), (2, 1), 4)
    wide = np.concatenate([bx, bx[..., ::-1]], axis=-1)    # 106 columns: 64-lane blocks too
    results["band_max_s2"] = pypool.max_pool2d(wide, 11, 2, 5, ceil_mode=True)
    # float32 avg 3x3 stride 1 (its own kernel with AVX-512): terms of 2**60 among
    # ordinary ones make any other order of the adds show; reversed rows; padding
    # on one axis only
    mx = x.copy()
    mx[:, :, ::3, ::2] *= np.float32(2.0 ** 60)
    results["avg3_plane"] = pypool.avg_pool2d(mx[:, :, ::-1, :], 3, 1, 0)
    results["avg3_plane_pad_rows"] = pypool.avg_pool2d(mx, 3, 1, (1, 0), count_include_pad=False)
    mxl = np.ascontiguousarray(mx.transpose(0, 2, 3, 1))    # 5 channels: the masked end
    results["avg3_lanes"] = pypool.avg_pool2d(mxl, 3, 1, (0, 1), count_include_pad=False,
                                              layout="channels_last")
    # large-window sums (the running path's register-blocked sweeps, _running.h):
    # the 2**60 terms again, both layouts
    results["running_avg"] = pypool.avg_pool2d(mx, (9, 11), (1, 2), (4, 5))
    results["running_avg_nhwc"] = pypool.avg_pool2d(mxl, (11, 9), 1, (5, 4),
                                                    layout="channels_last")
    results["running_lp2"] = pypool.lp_pool2d(mx.astype(np.float64), 2, 13, 1, 6)
    # channels_first float32 averages by sum bands (rows read in place, runs of
    # columns; 8 doubles a vector with AVX-512): the 2**60 terms, a direct row
    # pass (3 rows), and float64 results (summed, then finished row by row)
    results["band_avg"] = pypool.avg_pool2d(mx, (9, 11), 1, (4, 5))
    results["band_avg_direct_rows"] = pypool.avg_pool2d(mx, (3, 13), 1, (1, 6),
                                                        count_include_pad=False)
    results["band_avg_f64"] = pypool.avg_pool2d(mx, (9, 11), (2, 1), (4, 5), dtype=np.float64)
    results["band_avg_f64_in"] = pypool.avg_pool2d(mx.astype(np.float64), (5, 9), 1, (2, 4))
    # windows that share no row with the next output row (channels_first:
    # _window_sums.h's transposes with AVX-512, a masked last block, edge
    # windows; channels_last: each window straight from the input): the 2**60 terms
    results["window_sums"] = pypool.avg_pool2d(mx, (4, 8), (4, 8), (1, 3), ceil_mode=True)
    results["window_sums_f64"] = pypool.avg_pool2d(mx.astype(np.float64), (3, 5), (4, 3), (1, 2),
                                                   count_include_pad=False)
    results["window_sums_4"] = pypool.avg_pool2d(mx, 4, dtype=np.float64)
    results["lane_direct"] = pypool.avg_pool2d(mxl, 4, 4, 1, layout="channels_last")
    # 75 channels: a 64-channel block in registers, then 8 and a masked 3;
    # terms of 2**60 of either sign in every row and float64 results, so the
    # order of three rows shows
    many = rng.standard_normal((2, 13, 17, 75)).astype(np.float32)
    many[rng.random(many.shape) < 0.2] *= np.float32(2.0 ** 60)
    results["lane_direct_75"] = pypool.avg_pool2d(many, (3, 4), (3, 2), 1, dtype=np.float64,
                                                  layout="channels_last")
    results["lane_direct_75_f64"] = pypool.avg_pool2d(many.astype(np.float64), 3,
                                                      layout="channels_last")
    # float32 max with indices (its own kernel with AVX-512): ties of both zeros
    # and NaN, stride 1 and 2, rows of several 16-output steps and a tail
    v, i = pypool.max_pool2d(bx, (2, 5), 1, (1, 2), return_indices=True)
    results["argmax_s1"], results["argmax_s1_idx"] = v, i
    v, i = pypool.max_pool2d(wide, (3, 4), (2, 2), (1, 2), return_indices=True, ceil_mode=True)
    results["argmax_s2"], results["argmax_s2_idx"] = v, i
    strided = np.zeros((301, 3), np.float32).T
    results["gavg_strided_out"] = np.ascontiguousarray(pypool.global_avg_pool(gx, out=strided))
    np.savez(sys.argv[1], **results)
""")


@pytest.mark.skipif(not (_native.cpu_has_avx2() and pypool._config.config()["variant"] == "avx2"),
                    reason="the AVX2 build is not loaded on this machine")
def test_avx2_and_baseline_builds_agree_bit_for_bit(tmp_path):
    script = tmp_path / "compute.py"
    script.write_text(COMPUTE)
    files = {}
    for label, env in (("avx2", {}), ("baseline", {"PYPOOL_DISABLE_AVX2": "1"}),
                       ("avx2 without AVX-512", {"PYPOOL_DISABLE_AVX512": "1"})):
        out = tmp_path / f"{label}.npz"
        run = subprocess.run([sys.executable, str(script), str(out)], capture_output=True,
                             text=True, timeout=300, env={**os.environ, **env}, cwd=str(tmp_path))
        assert run.returncode == 0, run.stderr
        files[label] = np.load(out)
    for other in ("baseline", "avx2 without AVX-512"):
        assert set(files["avx2"].files) == set(files[other].files)
        for key in files["avx2"].files:
            a, b = files["avx2"][key], files[other][key]
            assert a.dtype == b.dtype and a.shape == b.shape, key
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8),
                                          err_msg=f"{key}: avx2 vs {other}")


@pytest.mark.parametrize("variable,fact,expected", [
    ("PYPOOL_DISABLE_AVX2", "variant", "baseline"),         # the baseline build
    ("PYPOOL_DISABLE_AVX512", "avx512_sums", "False"),      # the AVX2 build's own loops
])
def test_disable_variables_take_effect(tmp_path, variable, fact, expected):
    code = f"import pypool; print(pypool._config.config()[{fact!r}])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, variable: "1"}, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == expected
