# The body of pypool's kernel modules, included by _kernels_base.pyx and
# _kernels_avx2.pyx (the same code compiled for two instruction sets; see
# pypool/_native.py for the choice at import time).
#
# The Python layer in ``pypool/`` checks and normalises every argument, turns
# the input into a 5-D strided view (B, D, H, W, V) without copying and calls
# the entry points here, which release the GIL and run OpenMP loops. Each area
# of the library lives in its own ``.pxi`` file, included below; capi.pxi
# exports the same kernels to C and Cython callers as a capsule (_C_API).

from cython.parallel cimport prange
from libc.stdint cimport int64_t

from _types cimport *


cdef void fill_axes(pypool_axis* ax, geom) except *:
    """Copy 3 tuples (in_size, out_size, kernel, stride, dilation, pad_begin, pad_end)."""
    if len(geom) != 3:
        raise ValueError("internal: geometry must describe 3 axes")
    for i in range(3):
        g = geom[i]
        ax[i].in_size, ax[i].out_size, ax[i].kernel, ax[i].stride = g[0], g[1], g[2], g[3]
        ax[i].dilation, ax[i].pad_begin, ax[i].pad_end = g[4], g[5], g[6]


cdef inline void describe(Strided5* d, const Py_ssize_t* shape, const Py_ssize_t* strides,
                          size_t itemsize) noexcept:
    """Sizes and element strides of a 5-D typed memoryview."""
    for i in range(5):
        d.n[i] = shape[i]
        d.s[i] = strides[i] // <Py_ssize_t>itemsize


cdef void make_windows(Windows* w, geom, bint adaptive, bint count_include_pad) except *:
    """Window tables for the 3 axes described by ``geom`` (see fill_axes)."""
    cdef pypool_axis ax[3]
    cdef int64_t ins[3]
    cdef int64_t outs[3]
    cdef pypool_status st
    fill_axes(ax, geom)
    w.block = NULL
    if adaptive:
        for i in range(3):
            ins[i] = ax[i].in_size
            outs[i] = ax[i].out_size
        st = adaptive_windows(w, ins, outs)
    else:
        st = sliding_windows(w, ax, count_include_pad)
    if st != PYPOOL_OK:
        free_windows(w)
        raise MemoryError("pypool: cannot allocate window tables")


cdef extern from "_cpu.h":
    int pypool_cpu_has_avx2() noexcept nogil

cdef extern from "_omp_runtime.h":
    const char* pypool_openmp_runtime() noexcept nogil


def cpu_has_avx2():
    """Does this CPU run AVX2 code?"""
    return bool(pypool_cpu_has_avx2())


def build_config():
    """Facts fixed when the extension was compiled."""
    return {
        "variant": KERNEL_VARIANT,
        "openmp": bool(PYPOOL_HAVE_OPENMP),
        "openmp_version": int(PYPOOL_OPENMP_VERSION),
        "compiler": PYPOOL_COMPILER.decode(),
        "compiler_version": PYPOOL_COMPILER_VERSION.decode(),
        "compile_flags": PYPOOL_CFLAGS.decode(),
    }


def max_threads():
    """Threads an OpenMP region would use by default (1 without OpenMP)."""
    return omp_get_max_threads()


def num_procs():
    """Processors OpenMP sees (1 without OpenMP)."""
    return omp_get_num_procs()


def openmp_runtime():
    """File (as bytes) of the OpenMP runtime library this module's OpenMP calls use; None without OpenMP."""
    cdef const char* path = pypool_openmp_runtime()
    return None if path == NULL else <bytes>path


include "geometry.pxi"
include "forward.pxi"
include "backward.pxi"
include "memcopy.pxi"
include "relayout.pxi"
include "halfs.pxi"
include "lp_grad.pxi"
include "capi.pxi"

import os as _os

# float32 global averages (both layouts) and avg 2x2 stride 2 convert with
# AVX-512 where the CPU has it (see _sums.h), float32 avg 3x3 stride 1 has
# kernels of its own there (both layouts, _avg3_plane.h), so does float32 max
# with indices (_argmax_plane.h, _lanes_max.h), and channels_first float32
# large-window max pools its rows' columns 16 lanes at a time (_running.h);
# PYPOOL_DISABLE_AVX512=1 keeps them on AVX2. Same results.
AVX512_SUMS = bool(pypool_sums_enable_avx512(
    _os.environ.get("PYPOOL_DISABLE_AVX512", "") in ("", "0")))
# float16 conversions by F16C instructions in the AVX2 build (_half.h), float64
# ones with AVX-512 too unless disabled: 0 (portable loops), 1 (F16C), 2.
HALF_F16C = pypool_half_enable_hw(_os.environ.get("PYPOOL_DISABLE_AVX512", "") in ("", "0"))
