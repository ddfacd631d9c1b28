# Type stubs for pypool's public API. tests/test_packaging.py checks that every
# name in __all__ is here and that each function's parameters (names, kinds,
# defaults) match the runtime signature, so an API change must update this file.
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__version__: str

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

_Layout: TypeAlias = Literal["channels_first", "channels_last"]
# One int per spatial axis; the *1d/2d/3d aliases also take a plain int for every axis.
_Sizes: TypeAlias = int | Sequence[int]
_Pair: TypeAlias = tuple[int, int]
# int, one int or (begin, end) pair per axis, or a named mode.
_Padding: TypeAlias = int | Sequence[int | _Pair] | Literal["valid", "same", "same_lower"]
_UnpoolPadding: TypeAlias = int | Sequence[int | _Pair] | Literal["valid"]
# Adaptive output sizes: None keeps that axis's size.
_OutputSizes: TypeAlias = int | None | Sequence[int | None]
_Array: TypeAlias = NDArray[Any]
_Indices: TypeAlias = NDArray[np.int64]
_MaxOut: TypeAlias = _Array | tuple[_Array, _Indices]

# ------------------------------------------------------------------ forward

@overload
def max_pool(x: ArrayLike, kernel_size: _Sizes, stride: _Sizes | None = None,
             padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False, *,
             layout: _Layout = "channels_first", return_indices: Literal[False] = False,
             out: _Array | None = None, num_threads: int | None = None) -> _Array: ...
@overload
def max_pool(x: ArrayLike, kernel_size: _Sizes, stride: _Sizes | None = None,
             padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False, *,
             layout: _Layout = "channels_first", return_indices: Literal[True],
             out: _MaxOut | None = None,
             num_threads: int | None = None) -> tuple[_Array, _Indices]: ...
@overload
def max_pool(x: ArrayLike, kernel_size: _Sizes, stride: _Sizes | None = None,
             padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False, *,
             layout: _Layout = "channels_first", return_indices: bool = False,
             out: _MaxOut | None = None,
             num_threads: int | None = None) -> _Array | tuple[_Array, _Indices]: ...

def avg_pool(x: ArrayLike, kernel_size: _Sizes, stride: _Sizes | None = None,
             padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False,
             count_include_pad: bool = True, divisor_override: int | None = None, *,
             layout: _Layout = "channels_first", dtype: DTypeLike | None = None,
             out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

def lp_pool(x: ArrayLike, norm_type: float, kernel_size: _Sizes, stride: _Sizes | None = None,
            padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False, *,
            layout: _Layout = "channels_first", dtype: DTypeLike | None = None,
            out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

def global_avg_pool(x: ArrayLike, *, layout: _Layout = "channels_first", keepdims: bool = False,
                    dtype: DTypeLike | None = None, out: _Array | None = None,
                    num_threads: int | None = None) -> _Array: ...

@overload
def global_max_pool(x: ArrayLike, *, layout: _Layout = "channels_first", keepdims: bool = False,
                    return_indices: Literal[False] = False, out: _Array | None = None,
                    num_threads: int | None = None) -> _Array: ...
@overload
def global_max_pool(x: ArrayLike, *, layout: _Layout = "channels_first", keepdims: bool = False,
                    return_indices: Literal[True], out: _MaxOut | None = None,
                    num_threads: int | None = None) -> tuple[_Array, _Indices]: ...
@overload
def global_max_pool(x: ArrayLike, *, layout: _Layout = "channels_first", keepdims: bool = False,
                    return_indices: bool = False, out: _MaxOut | None = None,
                    num_threads: int | None = None) -> _Array | tuple[_Array, _Indices]: ...

def adaptive_avg_pool(x: ArrayLike, output_size: _OutputSizes, *,
                      layout: _Layout = "channels_first", dtype: DTypeLike | None = None,
                      out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

@overload
def adaptive_max_pool(x: ArrayLike, output_size: _OutputSizes, *,
                      layout: _Layout = "channels_first", return_indices: Literal[False] = False,
                      out: _Array | None = None, num_threads: int | None = None) -> _Array: ...
@overload
def adaptive_max_pool(x: ArrayLike, output_size: _OutputSizes, *,
                      layout: _Layout = "channels_first", return_indices: Literal[True],
                      out: _MaxOut | None = None,
                      num_threads: int | None = None) -> tuple[_Array, _Indices]: ...
@overload
def adaptive_max_pool(x: ArrayLike, output_size: _OutputSizes, *,
                      layout: _Layout = "channels_first", return_indices: bool = False,
                      out: _MaxOut | None = None,
                      num_threads: int | None = None) -> _Array | tuple[_Array, _Indices]: ...

def max_unpool(x: ArrayLike, indices: ArrayLike, kernel_size: _Sizes,
               stride: _Sizes | None = None, padding: _UnpoolPadding = 0,
               output_size: Sequence[int] | None = None, *, layout: _Layout = "channels_first",
               out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

# The fixed-rank aliases have exactly the rank-generic signatures.
max_pool1d = max_pool
max_pool2d = max_pool
max_pool3d = max_pool
avg_pool1d = avg_pool
avg_pool2d = avg_pool
avg_pool3d = avg_pool
lp_pool1d = lp_pool
lp_pool2d = lp_pool
lp_pool3d = lp_pool
adaptive_avg_pool1d = adaptive_avg_pool
adaptive_avg_pool2d = adaptive_avg_pool
adaptive_avg_pool3d = adaptive_avg_pool
adaptive_max_pool1d = adaptive_max_pool
adaptive_max_pool2d = adaptive_max_pool
adaptive_max_pool3d = adaptive_max_pool
max_unpool1d = max_unpool
max_unpool2d = max_unpool
max_unpool3d = max_unpool

# ------------------------------------------------------------------ backward

def max_pool_backward(grad_output: ArrayLike, indices: ArrayLike, input_shape: Sequence[int], *,
                      ndim: int | None = None, layout: _Layout = "channels_first",
                      out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

def avg_pool_backward(grad_output: ArrayLike, input_shape: Sequence[int], kernel_size: _Sizes,
                      stride: _Sizes | None = None, padding: _Padding = 0, dilation: _Sizes = 1,
                      ceil_mode: bool = False, count_include_pad: bool = True,
                      divisor_override: int | None = None, *, layout: _Layout = "channels_first",
                      out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

def lp_pool_backward(grad_output: ArrayLike, x: ArrayLike, norm_type: float, kernel_size: _Sizes,
                     stride: _Sizes | None = None, padding: _Padding = 0, dilation: _Sizes = 1,
                     ceil_mode: bool = False, *, layout: _Layout = "channels_first",
                     out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

def global_avg_pool_backward(grad_output: ArrayLike, input_shape: Sequence[int], *,
                             layout: _Layout = "channels_first", out: _Array | None = None,
                             num_threads: int | None = None) -> _Array: ...

def adaptive_avg_pool_backward(grad_output: ArrayLike, input_shape: Sequence[int], *,
                               ndim: int | None = None, layout: _Layout = "channels_first",
                               out: _Array | None = None, num_threads: int | None = None) -> _Array: ...

# ------------------------------------------------------------------ geometry and build facts

def pooled_shape(input_shape: Sequence[int], kernel_size: _Sizes, stride: _Sizes | None = None,
                 padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False, *,
                 layout: _Layout = "channels_first") -> tuple[int, ...]: ...

def resolve_padding(input_shape: Sequence[int], kernel_size: _Sizes, stride: _Sizes | None = None,
                    padding: _Padding = 0, dilation: _Sizes = 1, ceil_mode: bool = False, *,
                    layout: _Layout = "channels_first") -> tuple[tuple[int, int], ...]: ...

def get_include() -> str: ...

def show_config() -> None: ...
