# cython: language_level=3
"""pypool's kernels, compiled for the baseline instruction set of the platform."""

KERNEL_VARIANT = "baseline"

include "kernels.pxi"
