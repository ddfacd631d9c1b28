"""Build script: cythonize ``pyx/`` into extension modules of the ``pypool`` package.

OpenMP is probed by compiling, linking and running a tiny program. Without it
(or with ``PYPOOL_DISABLE_OPENMP=1`` in the environment) the build still
succeeds and the kernels run serially; ``pypool.show_config()`` says which.
"""

import glob
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))

# The one place for Cython compiler directives.
CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n > 0);
    return n > 0 ? 0 : 1;
}
"""


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None when unavailable.

    The probe compiles, links and runs a program, because a compiler that
    accepts ``-fopenmp`` may still lack the runtime library.
    """
    if _env_flag("PYPOOL_DISABLE_OPENMP"):
        print("pypool: OpenMP disabled by PYPOOL_DISABLE_OPENMP")
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang needs libomp (e.g. from Homebrew or llvm-openmp).
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, ldflags in candidates:
        tmp = tempfile.mkdtemp(prefix="pypool-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            # distutils links executables without $LDFLAGS (it adds them to shared
            # libraries only), so pass them here too: on macOS they say where libomp is.
            env_ldflags = [] if compiler.compiler_type == "msvc" else shlex.split(os.environ.get("LDFLAGS", ""))
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=ldflags + env_ldflags)
            exe = compiler.executable_filename("probe", output_dir=tmp)   # probe.exe on Windows
            out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
            if out.returncode == 0 and out.stdout.strip() == "1":
                print(f"pypool: OpenMP probe passed with {cflags} / {ldflags}")
                return cflags, ldflags
        except Exception as exc:  # any compile, link or run failure means "no OpenMP"
            print(f"pypool: OpenMP probe failed with {cflags}: {exc}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print("pypool: building WITHOUT OpenMP; kernels will run serially")
    return None


class BuildExt(build_ext):
    """Adds OpenMP and optimisation flags once the compiler is known."""

    def build_extensions(self):
        omp = _openmp_flags(self.compiler)
        is_msvc = self.compiler.compiler_type == "msvc"
        # No FMA contraction: both kernel builds must round identically.
        cflags = ["/O2", "/fp:precise"] if is_msvc else ["-O3", "-fno-math-errno", "-ffp-contract=off"]
        # Never -ffast-math: it deletes the NaN checks that max pooling relies on.
        # Short copy loops stay inline vector loops (GCC would call memcpy for each).
        if not is_msvc and self._compiler_accepts(["-fno-tree-loop-distribute-patterns"]):
            cflags.append("-fno-tree-loop-distribute-patterns")
        if not is_msvc and _env_flag("PYPOOL_NATIVE"):
            cflags.append("-march=native")
        if not is_msvc and _env_flag("PYPOOL_SANITIZE"):
            # -fno-wrapv undoes the -fwrapv of Python's own CFLAGS, under which signed
            # overflow is defined and UBSan does not check for it. GCC leaves
            # float-to-integer conversion out of range out of "undefined".
            cflags += ["-fsanitize=address,undefined,float-cast-overflow", "-fno-omit-frame-pointer",
                       "-O1", "-fno-wrapv"]
        ldflags = []
        if omp is not None:
            cflags += omp[0]
            ldflags += omp[1]
        compiler_name = os.path.basename(getattr(self.compiler, "compiler", [self.compiler.compiler_type])[0])
        avx2 = ["/arch:AVX2"] if is_msvc else ["-mavx2"]
        for ext in list(self.extensions):
            if ext.name.endswith("_avx2") and not self._compiler_accepts(avx2):
                print("pypool: compiler rejects AVX2 flags; building the baseline kernels only")
                self.extensions.remove(ext)
        for ext in self.extensions:
            flags = cflags + (avx2 if ext.name.endswith("_avx2") else [])
            ext.extra_compile_args = list(ext.extra_compile_args or []) + flags
            ext.extra_link_args = list(ext.extra_link_args or []) + ldflags
            if not is_msvc and _env_flag("PYPOOL_SANITIZE"):
                ext.extra_link_args.append("-fsanitize=address,undefined,float-cast-overflow")
            ext.define_macros = list(ext.define_macros or []) + [
                ("PYPOOL_OPENMP", "1" if omp is not None else "0"),
                ("PYPOOL_COMPILER", '"%s"' % compiler_name.replace('"', "")),
                ("PYPOOL_CFLAGS", '"%s"' % " ".join(flags).replace('"', "")),
            ]
        # Compile the variants side by side unless told otherwise (PYPOOL_BUILD_JOBS=1 on a shared machine).
        jobs = os.environ.get("PYPOOL_BUILD_JOBS", "").strip()
        self.parallel = int(jobs) if jobs.isdigit() and int(jobs) > 0 else (self.parallel or os.cpu_count() or 1)
        super().build_extensions()


    def _compiler_accepts(self, flags):
        tmp = tempfile.mkdtemp(prefix="pypool-flags-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("int main(void) { return 0; }\n")
            self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            return True
        except Exception:
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class BuildPy(build_py):
    """Ships the public C headers inside the package (found by pypool.get_include()).

    Every ``.h`` under ``include/pypool`` (subdirectories too) is copied to
    ``pypool/include/pypool``, so a header added later needs no change here.
    """

    def run(self):
        super().run()
        src_root = os.path.join(HERE, "include")
        for dirpath, _, names in os.walk(os.path.join(src_root, "pypool")):
            for name in sorted(names):
                if name.endswith(".h"):
                    src = os.path.join(dirpath, name)
                    dst = os.path.join(self.build_lib, "pypool", "include", os.path.relpath(src, src_root))
                    self.mkpath(os.path.dirname(dst))
                    self.copy_file(src, dst)


def _wants_avx2_variant():
    """An AVX2 build of the kernels, chosen at import time on CPUs that have AVX2 (x86 only)."""
    machine = platform.machine().lower()
    return machine in ("x86_64", "amd64", "i686", "x86") and not _env_flag("PYPOOL_NO_AVX2")


def extensions():
    common = dict(
        include_dirs=[numpy.get_include(), os.path.join("include"), "pyx"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        # dladdr (show_config's OpenMP runtime lookup) lives in libdl before glibc 2.34,
        # e.g. in the manylinux_2_28 build image.
        libraries=["dl"] if sys.platform.startswith("linux") else [],
        # The kernels' C headers: an edit rebuilds the modules (Cython tracks only its own files).
        depends=sorted(glob.glob(os.path.join("pyx", "*.h")) + glob.glob(os.path.join("include", "pypool", "*.h"))),
    )
    modules = [Extension("pypool._kernels_base", ["pyx/_kernels_base.pyx"], **common)]
    if _wants_avx2_variant():
        modules.append(Extension("pypool._kernels_avx2", ["pyx/_kernels_avx2.pyx"], **common))
    return cythonize(
        modules,
        compiler_directives=CYTHON_DIRECTIVES,
        # HERE: pyx/_types.pxd cimports the public declarations from pypool/capi.pxd.
        include_path=["pyx", HERE],
        build_dir="build/cython",
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
