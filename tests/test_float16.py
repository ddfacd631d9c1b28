"""float16 inputs and results through the threaded conversions (_half.h).

Large contiguous float16 arrays are widened to float32, and max results
narrowed back (float64 for averages and Lp norms), on the kernels' threads
instead of by NumPy's casts. The conversions must give NumPy's bits exactly -
every float16 pattern widened, float32 and float64 values near every rounding
midpoint, NaN payloads (signaling ones too) - and pooling through them must
give what pooling through NumPy's casts gives.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import pypool
from pypool import _dispatch, _native

RNG = np.random.default_rng(16)


def _numpy_half_bits(values):
    with np.errstate(all="ignore"):
        return values.astype(np.float16).view(np.uint16)


def _near_half_midpoints(dtype):
    """Values at and next to the midpoints between neighbouring float16 values
    (and at those values), from the subnormals to past the largest."""
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = np.unique(halves[np.isfinite(halves)].astype(np.float64))
    mids = np.concatenate([(finite[:-1] + finite[1:]) / 2, [65520.0]])
    points = np.concatenate([mids, finite]).astype(dtype)
    steps = [np.nextafter(points, np.inf), np.nextafter(points, -np.inf)]
    return np.concatenate([points] + steps + [-points])


def _half_range(dtype, n):
    """Random values of both signs whose magnitudes span float16's normal
    range and past its largest, with random low bits: whole groups of these
    go through the F16C loops (a NaN sends its group to the portable ones)."""
    mags = RNG.uniform(1.0, 2.0, n) * 2.0 ** RNG.integers(-14, 17, n)
    return (mags * RNG.choice([-1.0, 1.0], n)).astype(dtype)


# level: 0 the portable loops (the baseline build's, and those the F16C loops
# hand groups with NaNs or subnormals to), 1 F16C, 2 F16C with AVX-512; a
# level this CPU lacks runs the highest one it has.
@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_half_conversions_match_numpy(threads, level):
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    wide = np.empty(every.size, np.float32)
    _native.halfs_to_floats(every, wide, threads, level)
    np.testing.assert_array_equal(wide.view(np.uint32),
                                  every.view(np.float16).astype(np.float32).view(np.uint32))
    nan32 = (np.uint32(0x7f800000) | RNG.integers(1, 1 << 23, 4096, dtype=np.uint32))
    nan64 = (np.uint64(0x7ff0000000000000) | RNG.integers(1, 1 << 52, 4096, dtype=np.uint64))
    for dtype, bits, nans, convert in (
            (np.float32, np.uint32, nan32, _native.floats_to_halfs),
            (np.float64, np.uint64, nan64, _native.doubles_to_halfs)):
        random_bits = RNG.integers(0, np.iinfo(bits).max, 1 << 20, dtype=bits, endpoint=True)
        values = np.concatenate([random_bits.view(dtype), _half_range(dtype, 1 << 18),
                                 _near_half_midpoints(dtype),
                                 nans.view(dtype), (nans | bits(1) << bits(8 * np.dtype(bits).itemsize - 1)).view(dtype),
                                 np.array([0.0, -0.0, np.inf, -np.inf, 1e30, -1e-30], dtype)])
        narrow = np.empty(values.size, np.uint16)
        convert(values, narrow, threads, level)
        np.testing.assert_array_equal(narrow, _numpy_half_bits(values))


def _half_input(shape, seed):
    """float16 values with NaNs (a signaling payload among them), infinities,
    subnormals and zeros of both signs."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(np.float16)
    flat = x.reshape(-1).view(np.uint16)
    spots = rng.choice(flat.size, 64, replace=False)
    flat[spots[:8]] = 0x7c01          # signaling NaN
    flat[spots[8:16]] = 0xfe00        # negative quiet NaN
    flat[spots[16:24]] = 0x7c00       # inf
    flat[spots[24:40]] = rng.integers(1, 0x400, 16)    # subnormals
    flat[spots[40:]] = 0x8000         # -0
    return x


CASES = [
    ("max", lambda x, **kw: pypool.max_pool2d(x, 3, 2, 1, **kw)),
    ("max_indices", lambda x, **kw: pypool.max_pool2d(x, 3, 2, 1, return_indices=True, **kw)),
    ("avg", lambda x, **kw: pypool.avg_pool2d(x, 3, 1, 1, count_include_pad=False, **kw)),
    ("lp", lambda x, **kw: pypool.lp_pool2d(x, 3, 2, 2, **kw)),
    ("global_avg", lambda x, **kw: pypool.global_avg_pool(x, **kw)),
]


def _expected(name, run, x, layout):
    """The results through NumPy's casts: max pools NumPy's float32 copy and
    rounds back, averages and Lp norms round their float64 results."""
    if name.startswith("max"):
        expected = run(x.astype(np.float32), layout=layout)
        return tuple(e.astype(np.float16) if e.dtype == np.float32 else e
                     for e in (expected if isinstance(expected, tuple) else (expected,)))
    return (_numpy_half_bits(run(x, layout=layout, dtype=np.float64)).view(np.float16),)


def _check_bits(got, expected):
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(np.ascontiguousarray(g).view(np.uint8),
                                      np.ascontiguousarray(e).view(np.uint8))


@pytest.mark.parametrize("name, run", CASES)
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_float16_pooling_matches_numpy_casts(name, run, layout):
    """Big enough for the threaded conversions; the same bits as pooling the
    float32 copy made by NumPy (max), or the float64 result rounded by NumPy
    (averages and Lp); fresh, out= (plain and spaced), byte-swapped and
    non-contiguous inputs (NumPy's casts), 1-3 threads; the input untouched."""
    shape = (2, 16, 96, 96) if layout == "channels_first" else (2, 96, 96, 16)
    x = _half_input(shape, seed=len(name))
    assert x.size >= 4 * _dispatch.HALF_THREADS_MIN    # (results of most cases too)
    snapshot = x.copy()
    expected = _expected(name, run, x, layout)

    def check(got):
        _check_bits(got, expected)

    for threads in (1, 2, 3):
        check(run(x, layout=layout, num_threads=threads))
    check(run(x.astype(x.dtype.newbyteorder()), layout=layout))      # NumPy's cast
    spaced_input = np.repeat(x, 2, axis=-1)[..., ::2]
    check(run(spaced_input, layout=layout))
    fresh = tuple(np.empty_like(e) for e in expected)
    spaced = tuple(np.empty(e.shape[:-1] + (2 * e.shape[-1],), e.dtype)[..., ::2]
                   for e in expected)
    for outs in (fresh, spaced):
        run(x, layout=layout, out=outs if len(outs) > 1 else outs[0], num_threads=2)
        check(tuple(np.ascontiguousarray(o) for o in outs))
    np.testing.assert_array_equal(x.view(np.uint16), snapshot.view(np.uint16))


@pytest.mark.parametrize("name, run", CASES)
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_float16_calls_in_pieces(monkeypatch, name, run, layout):
    """Large float16 calls go in pieces along the batch (staged_pieces), so that
    the float32 copies stay in the caches: made small here, with a last piece
    too small for the threaded conversions. Same bits as through NumPy's casts;
    a result too small for them (global pooling) goes whole."""
    shape = (2, 16, 96, 96) if layout == "channels_first" else (2, 96, 96, 16)
    x = _half_input(shape, seed=7 + len(name))
    expected = _expected(name, run, x, layout)
    monkeypatch.setattr(_dispatch, "PIECE_BYTES", 1 << 17)
    seen = []
    real = _dispatch.staged_pieces

    def spy(*args):
        pieces = real(*args)
        seen.append(0 if pieces is None else len(pieces))
        return pieces

    monkeypatch.setattr(_dispatch, "staged_pieces", spy)
    for threads in (1, 2):
        seen.clear()
        _check_bits(run(x, layout=layout, num_threads=threads), expected)
        if name == "global_avg":
            assert seen == [0]
        else:   # (32 planes in 11 pieces of 3, or 2 samples in 2 pieces)
            assert seen[0] == (11 if layout == "channels_first" else 2)


def test_disabling_avx512_caps_the_conversion_level(tmp_path):
    """PYPOOL_DISABLE_AVX512=1 keeps float64 -> float16 off its AVX-512 loop
    (level 2), as it keeps the other AVX-512 loops off."""
    code = "import pypool; print(pypool._native.half_f16c)"
    levels = []
    for env in ({}, {"PYPOOL_DISABLE_AVX512": "1"}):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, env={**os.environ, **env}, cwd=str(tmp_path))
        assert run.returncode == 0, run.stderr
        levels.append(int(run.stdout))
    assert levels[1] <= 1 and levels[1] <= levels[0]
    assert levels[0] == _native.half_f16c
