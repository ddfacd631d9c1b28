"""pypool: fast, exact CPU pooling for NumPy arrays.

Max, average, Lp, adaptive and global pooling, max-unpooling and every
backward pass, over 1 to 3 spatial axes, channels-first or channels-last,
computed by Cython kernels that release the GIL and run in parallel with
OpenMP. Semantics follow PyTorch and ONNX; see the README.
"""

import pkgutil

# In a source checkout (e.g. `python -m pypool` run from the repository root)
# this directory shadows the installed package and holds no compiled module;
# extend_path appends the installed pypool directory so the compiled kernels are found there.
__path__ = pkgutil.extend_path(__path__, __name__)

from ._version import __version__  # noqa: E402
from ._pooling import (  # noqa: E402
    adaptive_avg_pool, adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
    adaptive_max_pool, adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d,
    avg_pool, avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool, global_max_pool,
    lp_pool, lp_pool1d, lp_pool2d, lp_pool3d, max_pool, max_pool1d, max_pool2d, max_pool3d,
    pooled_shape, resolve_padding)
from ._backward import (  # noqa: E402
    adaptive_avg_pool_backward, avg_pool_backward, global_avg_pool_backward,
    lp_pool_backward, max_pool_backward, max_unpool, max_unpool1d, max_unpool2d, max_unpool3d)
from ._config import get_include, show_config  # noqa: E402

__all__ = [
    "__version__",
    "max_pool", "avg_pool", "lp_pool", "global_avg_pool", "global_max_pool",
    "adaptive_avg_pool", "adaptive_max_pool", "max_unpool",
    "max_pool_backward", "avg_pool_backward", "lp_pool_backward", "global_avg_pool_backward",
    "adaptive_avg_pool_backward",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "pooled_shape", "resolve_padding", "get_include", "show_config",
]
