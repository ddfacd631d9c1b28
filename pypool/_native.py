"""The compiled kernels: the AVX2 build on CPUs that have AVX2, else the baseline build.

Both builds come from the same source (pyx/kernels.pxi) and round identically
(no FMA contraction), so results do not depend on which one is loaded. Set
PYPOOL_DISABLE_AVX2=1 to force the baseline build. C and Cython callers reach
the same build through the capsule ``_C_API`` (see include/pypool/pypool.h).
"""

import os

import numpy as np

from . import _kernels_base

_module = _kernels_base
if _kernels_base.cpu_has_avx2() and os.environ.get("PYPOOL_DISABLE_AVX2", "") in ("", "0"):
    try:
        from . import _kernels_avx2 as _module
    except ImportError:  # built without the AVX2 variant (non-x86, or PYPOOL_NO_AVX2)
        pass

cpu_has_avx2 = _kernels_base.cpu_has_avx2
axis_geometry = _module.axis_geometry
build_config = _module.build_config
avx512_sums = _module.AVX512_SUMS
half_f16c = _module.HALF_F16C
max_threads = _module.max_threads
num_procs = _module.num_procs
max_pool_forward = _module.max_pool_forward
reduce_pool_forward = _module.reduce_pool_forward


def _by_dtype(fused):
    """{dtype (or tuple of dtypes): specialization} of a fused-type kernel entry point.

    Calling the specialization directly skips the fused function's own
    dispatch, which inspects every buffer argument's format on each call.
    """
    names = {"int8_t": "int8", "int16_t": "int16", "int32_t": "int32", "int64_t": "int64",
             "uint8_t": "uint8", "uint16_t": "uint16", "uint32_t": "uint32",
             "uint64_t": "uint64", "float": "float32", "double": "float64"}
    table = {}
    for signature, fn in fused.__signatures__.items():
        dtypes = tuple(np.dtype(names[c]) for c in signature.split("|"))
        table[dtypes[0] if len(dtypes) == 1 else dtypes] = fn
    return table


max_pool_forward_for = _by_dtype(max_pool_forward)          # {x dtype: fn}
reduce_pool_forward_for = _by_dtype(reduce_pool_forward)    # {(x dtype, y dtype): fn}
window_backward = _module.window_backward
max_backward = _module.max_backward
max_unpool_forward = _module.max_unpool_forward
check_indices = _module.check_indices
parallel_copy = _module.parallel_copy
transpose_batches = _module.transpose_batches
gather_rows = _module.gather_rows
halfs_to_floats = _module.halfs_to_floats
floats_to_halfs = _module.floats_to_halfs
doubles_to_halfs = _module.doubles_to_halfs
adaptive_axis_status = _module.adaptive_axis_status
unpool_axis = _module.unpool_axis
threads_for = _module.threads_for
lp_backward = _module.lp_backward
status_message = _module.status_message

# The C API table of the loaded build, fetched by pypool_import() in
# include/pypool/pypool.h (module PYPOOL_CAPI_MODULE, attribute PYPOOL_CAPI_ATTRIBUTE).
_C_API = _module._C_API


def openmp_runtime():
    """Path of the OpenMP runtime library the loaded kernels call into, or None (serial build)."""
    path = _module.openmp_runtime()
    return None if path is None else os.path.realpath(os.fsdecode(path))
