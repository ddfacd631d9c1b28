# cython: language_level=3
"""pypool's kernels, compiled with AVX2 (loaded only on CPUs that have it)."""

KERNEL_VARIANT = "avx2"

include "kernels.pxi"
