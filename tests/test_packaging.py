"""The installed package: version, type stubs, shipped files, OpenMP runtime.

These tests look at pypool as installed (a wheel, or `pip install .`), not at
the source tree: the stubs and file lists are read from the installed
distribution.
"""

import ast
import importlib.metadata
import inspect
import os
import re
import sysconfig

import pytest
from packaging.version import Version

import pypool
from pypool import _config, _native

PACKAGE_DIR = os.path.dirname(os.path.abspath(pypool.__file__))


def installed_files():
    """Paths (relative to site-packages, '/'-separated) that the installed distribution recorded."""
    files = importlib.metadata.files("pypool")
    assert files, "pypool's installed distribution records no files"
    return {str(f).replace(os.sep, "/") for f in files}


# ------------------------------------------------------------------ version

def test_version_is_the_installed_distributions_version():
    assert importlib.metadata.version("pypool") == pypool.__version__


def test_version_is_a_valid_release_number():
    assert str(Version(pypool.__version__)) == pypool.__version__


# ------------------------------------------------------------------ the package that is imported

def test_kernels_come_from_the_imported_package_directory():
    # A source checkout on sys.path would give pypool/__init__.py from the tree and
    # the kernels from site-packages (pkgutil.extend_path); the tests must see one package.
    assert os.path.dirname(os.path.abspath(_native._module.__file__)) == PACKAGE_DIR
    assert os.path.dirname(os.path.abspath(_native._kernels_base.__file__)) == PACKAGE_DIR


def test_installed_files_exist_and_include_the_build_products():
    files = installed_files()
    site = os.path.dirname(PACKAGE_DIR)
    for f in files:
        if not f.endswith(".pyc"):
            assert os.path.exists(os.path.join(site, f)), f
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    required = {"pypool/__init__.py", "pypool/__init__.pyi", "pypool/py.typed",
                "pypool/include/pypool/pypool.h", f"pypool/_kernels_base{suffix}"}
    assert required <= files, sorted(required - files)


def test_installed_files_hold_no_sources_or_foreign_builds():
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for f in installed_files():
        name = os.path.basename(f)
        assert not name.endswith((".c", ".pyx", ".pxi", ".o")), f
        assert not f.startswith(("build/", "tests/", "pyx/")), f
        if f.startswith("pypool/") and name.endswith((".so", ".pyd")):
            assert name.endswith(suffix), f"{f} is not built for this Python ({suffix})"


def test_headers_and_pxd_files_are_reachable_from_get_include():
    include = pypool.get_include()
    assert os.path.commonpath([include, PACKAGE_DIR]) == PACKAGE_DIR, include
    assert os.path.isfile(os.path.join(include, "pypool", "pypool.h"))
    shipped = {f for f in installed_files() if f.startswith("pypool/include/")}
    on_disk = {os.path.relpath(os.path.join(d, n), os.path.dirname(PACKAGE_DIR)).replace(os.sep, "/")
               for d, _, names in os.walk(include) for n in names}
    assert shipped == on_disk


# ------------------------------------------------------------------ type stubs

def _stub_tree():
    path = os.path.join(PACKAGE_DIR, "__init__.pyi")
    assert os.path.isfile(path), "the installed package has no __init__.pyi"
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), filename=path)


def _stub_functions():
    """Stubbed function name -> list of its defs (several for @overload); aliases resolved."""
    defs, aliases = {}, {}
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            defs.setdefault(node.name, []).append(node)
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Name)):
            aliases[node.targets[0].id] = node.value.id
    for alias, target in aliases.items():
        if target in defs:
            defs[alias] = defs[target]
    return defs


def _stub_params(fn):
    """[(name, kind, default or inspect.Parameter.empty)] of a stub def."""
    a = fn.args
    positional = a.posonlyargs + a.args
    pos_defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = []
    for i, arg in enumerate(positional):
        kind = (inspect.Parameter.POSITIONAL_ONLY if i < len(a.posonlyargs)
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params.append((arg.arg, kind, pos_defaults[i]))
    if a.vararg:
        params.append((a.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append((arg.arg, inspect.Parameter.KEYWORD_ONLY,
                       inspect.Parameter.empty if default is None else default))
    if a.kwarg:
        params.append((a.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return [(n, k, d if d is inspect.Parameter.empty else ast.literal_eval(d)) for n, k, d in params]


def _runtime_params(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


PUBLIC_FUNCTIONS = [n for n in pypool.__all__ if n != "__version__"]


def test_stub_declares_the_same_public_names():
    tree = _stub_tree()
    stub_all = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets))
    assert stub_all == pypool.__all__
    assert any(isinstance(n, ast.AnnAssign) and n.target.id == "__version__" for n in tree.body)
    assert sorted(_stub_functions().keys() & set(PUBLIC_FUNCTIONS)) == sorted(PUBLIC_FUNCTIONS)


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_stub_signature_matches_the_runtime_signature(name):
    runtime = _runtime_params(getattr(pypool, name))
    defs = _stub_functions()[name]
    for fn in defs:
        stub = _stub_params(fn)
        assert [(n, k) for n, k, _ in stub] == [(n, k) for n, k, _ in runtime], ast.unparse(fn.args)
        assert fn.returns is not None, f"{name}: stub has no return type"
        for (pname, _, sdefault), (_, _, rdefault) in zip(stub, runtime):
            # An @overload may drop a default (return_indices: Literal[True]); never change one.
            if sdefault is not inspect.Parameter.empty or len(defs) == 1:
                assert sdefault == rdefault and type(sdefault) is type(rdefault), (name, pname)
        for arg in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs:
            assert arg.annotation is not None, f"{name}: parameter {arg.arg} has no type"
    # Some overload (the general one) keeps every runtime default.
    assert any(_stub_params(fn) == runtime for fn in defs), f"{name}: no stub overload has the runtime defaults"


# ------------------------------------------------------------------ OpenMP runtime in show_config

def _vendored_openmp():
    """Realpaths of OpenMP runtimes that the installed distribution carries (a repaired wheel)."""
    site = os.path.dirname(PACKAGE_DIR)
    return {os.path.realpath(os.path.join(site, f)) for f in installed_files()
            if re.match(r"pypool[.]libs/(lib)?(g?omp|iomp|vcomp)", f)}


def test_show_config_reports_the_openmp_runtime_in_use(capsys):
    facts = _config.config()
    pypool.show_config()
    shown = capsys.readouterr().out
    if not facts["openmp"]:
        assert facts["openmp_runtime"] is None
        assert re.search(r"OpenMP:\s+off", shown) and re.search(r"OpenMP runtime:\s+none", shown)
        return
    runtime = facts["openmp_runtime"]
    assert runtime and os.path.isfile(runtime), runtime
    assert re.match(r"(lib)?(g?omp|iomp|vcomp)", os.path.basename(runtime)), runtime
    assert runtime in shown
    vendored = _vendored_openmp()
    if vendored:   # a repaired wheel: its own copy, not the system's
        assert runtime in vendored, (runtime, vendored)

