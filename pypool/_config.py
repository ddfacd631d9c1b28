"""Build facts (show_config) and the location of the C headers (get_include)."""

import os
import platform

from . import _native
from ._version import __version__


def get_include():
    """Directory holding pypool's public C headers (``#include <pypool/pypool.h>``).

    Installed packages carry the headers in ``pypool/include``; in a source
    checkout the top-level ``include/`` is returned instead. Pass it to the
    compiler's include path of a C or Cython extension that uses pypool's C
    API; Cython finds the matching declarations (``pypool/capi.pxd``) in the
    package itself, on ``sys.path``.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "include")
    if os.path.isfile(os.path.join(installed, "pypool", "pypool.h")):
        return installed
    return os.path.join(os.path.dirname(here), "include")


def config():
    """The build configuration as a dict (what show_config prints)."""
    facts = dict(_native.build_config())
    facts["version"] = __version__
    facts["openmp_runtime"] = _native.openmp_runtime()
    facts["default_threads"] = _native.max_threads()
    facts["processors"] = _native.num_procs()
    facts["machine"] = platform.machine()
    facts["cpu_has_avx2"] = _native.cpu_has_avx2()
    facts["avx512_sums"] = _native.avx512_sums
    facts["half_f16c"] = _native.half_f16c
    return facts


def show_config():
    """Print pypool's version and build configuration: OpenMP, compiler, flags, threads."""
    c = config()
    omp = f"on (OpenMP {c['openmp_version']})" if c["openmp"] else "off (kernels run serially)"
    lines = [
        f"pypool {c['version']}",
        f"  OpenMP:          {omp}",
        f"  OpenMP runtime:  {c['openmp_runtime'] or 'none'}",
        f"  default threads: {c['default_threads']} (processors: {c['processors']})",
        f"  compiler:        {c['compiler']} {c['compiler_version']}",
        f"  kernels:         {c['variant']} build (CPU has AVX2: {c['cpu_has_avx2']})",
        f"  AVX-512 sums:    {c['avx512_sums']} (float32 global, 2x2 and 3x3 averages, large-window max, max with indices)",
        f"  float16 F16C:    {c['half_f16c']} (0 portable loops, 1 F16C, 2 F16C and AVX-512)",
        f"  compile flags:   {c['compile_flags']}",
        f"  machine:         {c['machine']}",
    ]
    print("\n".join(lines))
