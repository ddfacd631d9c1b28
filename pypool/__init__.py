"""pypool: fast, exact CPU pooling for NumPy arrays.

Max, average and global pooling over 1 to 3 spatial axes, channels-first or
channels-last, computed by Cython kernels that release the GIL and run in
parallel with OpenMP. Semantics follow PyTorch and ONNX; see the README.
"""

from ._version import __version__
from ._pooling import (avg_pool, avg_pool1d, avg_pool2d, avg_pool3d, global_avg_pool,
                       global_max_pool, max_pool, max_pool1d, max_pool2d, max_pool3d,
                       pooled_shape, resolve_padding)
from ._config import get_include, show_config

__all__ = [
    "__version__", "max_pool", "avg_pool", "global_avg_pool", "global_max_pool",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "pooled_shape", "resolve_padding", "get_include", "show_config",
]
