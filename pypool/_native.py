"""The compiled kernels: the AVX2 build on CPUs that have AVX2, else the baseline build.

Both builds come from the same source (pyx/kernels.pxi) and round identically
(no FMA contraction), so results do not depend on which one is loaded. Set
PYPOOL_DISABLE_AVX2=1 to force the baseline build. C and Cython callers reach
the same build through the capsule ``_C_API`` (see include/pypool/pypool.h).
"""

import os

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
max_threads = _module.max_threads
num_procs = _module.num_procs
max_pool_forward = _module.max_pool_forward
reduce_pool_forward = _module.reduce_pool_forward
window_backward = _module.window_backward
max_backward = _module.max_backward
max_unpool_forward = _module.max_unpool_forward
check_indices = _module.check_indices
parallel_copy = _module.parallel_copy
adaptive_axis_status = _module.adaptive_axis_status
unpool_axis = _module.unpool_axis
threads_for = _module.threads_for
lp_backward = _module.lp_backward
status_message = _module.status_message

# The C API table of the loaded build, fetched by pypool_import() in
# include/pypool/pypool.h (module PYPOOL_CAPI_MODULE, attribute PYPOOL_CAPI_ATTRIBUTE).
_C_API = _module._C_API
