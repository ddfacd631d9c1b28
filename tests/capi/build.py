"""Compile pypool's C API consumers at test time, against the installed pypool.

Extensions are built with setuptools (the compiler and flags Python was
built with); the embedding program with the same compiler, linked against
libpython. Headers come from ``pypool.get_include()``; Cython finds
``pypool/capi.pxd`` on ``sys.path``, i.e. in the installed package.
"""

import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig

import pypool

HERE = os.path.dirname(os.path.abspath(__file__))


def build_extension(name, source, workdir, *, cython=False, macros=()):
    """Compile one extension module into workdir; returns its path."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    ext = Extension(name, [source], include_dirs=[pypool.get_include()],
                    define_macros=list(macros), extra_link_args=["-pthread"])
    if cython:
        from Cython.Build import cythonize
        ext, = cythonize([ext], build_dir=os.path.join(workdir, "cython"), quiet=True,
                         compiler_directives={"language_level": 3})
    dist = Distribution({"name": name, "ext_modules": [ext]})
    cmd = build_ext(dist)
    cmd.build_lib = workdir
    cmd.build_temp = os.path.join(workdir, "temp")
    cmd.ensure_finalized()
    cmd.run()
    return cmd.get_ext_fullpath(name)


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_c_consumer(workdir):
    """The C extension tests/capi/consumer_c.c, imported."""
    path = build_extension("pypool_consumer_c", os.path.join(HERE, "consumer_c.c"), workdir)
    return load_module("pypool_consumer_c", path)


def build_cython_consumer(workdir):
    """The Cython module tests/capi/consumer_cy.pyx (``cimport pypool.capi``), imported."""
    source = os.path.join(workdir, "consumer_cy.pyx")
    with open(os.path.join(HERE, "consumer_cy.pyx")) as src, open(source, "w") as dst:
        dst.write(src.read())
    path = build_extension("consumer_cy", source, workdir, cython=True)
    return load_module("consumer_cy", path)


def build_embedding_program(workdir):
    """tests/capi/embed.c linked against libpython; returns the executable's path."""
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    libdir = sysconfig.get_config_var("LIBDIR")
    version = sysconfig.get_config_var("LDVERSION") or sysconfig.get_python_version()
    exe = os.path.join(workdir, "embed")
    cmd = cc + ["-O1", "-o", exe, os.path.join(HERE, "embed.c"),
                "-I", sysconfig.get_paths()["include"], "-I", pypool.get_include(),
                f"-L{libdir}", f"-Wl,-rpath,{libdir}", f"-lpython{version}", "-pthread"]
    cmd += shlex.split(sysconfig.get_config_var("LIBS") or "")
    cmd += shlex.split(sysconfig.get_config_var("SYSLIBS") or "")
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"compiling the embedding program failed:\n{' '.join(cmd)}\n{run.stderr}")
    return exe


def embedding_environment():
    """Environment for the embedding program: this interpreter's import path (so the
    embedded interpreter finds the same pypool and NumPy, e.g. in a virtualenv)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env
