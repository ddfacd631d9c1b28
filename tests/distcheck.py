"""Check the file lists of pypool's sdist and wheels.

    python tests/distcheck.py [--source DIR] [--repaired] DIST_FILE...

An sdist must hold everything needed to build from scratch (setup.py,
pyproject.toml, README, LICENSE, pyx/, include/, the package sources) and
nothing generated: no Cython-generated .c (the build regenerates them with the
Cython from the build requirements), no compiled objects, caches or build/.
A wheel must hold the compiled kernels for its own Python only, the package's
.py, .pyi, .pxd, py.typed and every public header, and no sources or build
leftovers. A repaired wheel (--repaired) must be tagged manylinux and carry
the OpenMP runtime in pypool.libs/. With --source, the expected files are
taken from that source tree, so a header or .pxd added later is required too.

Prints every problem found and exits 1 if there is any. The tests import
check_sdist / check_wheel and feed them hand-made archives.
"""

import argparse
import email.parser
import os
import re
import sys
import tarfile
import zipfile

# Always needed, whatever the source tree holds.
SDIST_REQUIRED = {
    "pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in", "PKG-INFO",
    "pypool/__init__.py", "pypool/__init__.pyi", "pypool/py.typed", "pypool/_version.py",
    "pyx/kernels.pxi", "pyx/_kernels_base.pyx", "include/pypool/pypool.h",
}
WHEEL_REQUIRED = {
    "pypool/__init__.py", "pypool/__init__.pyi", "pypool/py.typed", "pypool/_version.py",
    "pypool/include/pypool/pypool.h",
}
# Build leftovers and caches: never in any distribution.
STRAY_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis", ".git", "build", "dist"}
STRAY_SUFFIXES = (".pyc", ".pyo", ".o", ".obj", ".a", ".lib", ".exp")
EXTENSION_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Source files of the build (the sdist keeps them, the wheel must not).
SOURCE_SUFFIXES = (".c", ".cpp", ".pyx", ".pxi")
WHEEL_NAME = re.compile(r"^pypool-(?P<version>[^-]+)-(?P<python>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def source_files(source):
    """Files of a source tree that both distributions must carry, relative to its root.

    Returns (sdist_files, wheel_files)."""
    sdist, wheel = set(), set()
    for top, suffixes in (("pyx", (".pyx", ".pxd", ".pxi", ".h")), ("include", (".h",)),
                          ("pypool", (".py", ".pyi", ".pxd", ".typed"))):
        for dirpath, dirnames, names in os.walk(os.path.join(source, top)):
            dirnames[:] = [d for d in dirnames if d not in STRAY_PARTS]
            for name in names:
                if name.endswith(suffixes):
                    rel = os.path.relpath(os.path.join(dirpath, name), source).replace(os.sep, "/")
                    sdist.add(rel)
                    if top == "pypool":
                        wheel.add(rel)
                    elif top == "include":
                        wheel.add("pypool/" + rel)
    return sdist, wheel


def source_version(source):
    text = open(os.path.join(source, "pypool", "_version.py"), encoding="utf-8").read()
    return re.search(r"__version__\s*=\s*[\"']([^\"']+)[\"']", text).group(1)


def _stray(path):
    parts = path.split("/")
    if any(p in STRAY_PARTS for p in parts[:-1]) or parts[-1] in STRAY_PARTS:
        return "build leftover or cache"
    if path.endswith(STRAY_SUFFIXES):
        return "compiled object or bytecode"
    return None


def _metadata_version(text):
    return email.parser.Parser().parsestr(text).get("Version")


def check_sdist(path, source=None):
    problems = []
    with tarfile.open(path) as tar:
        members = [m.name for m in tar.getmembers() if m.isfile()]
        roots = {m.split("/", 1)[0] for m in members}
        if len(roots) != 1:
            return [f"{path}: expected one top-level directory, found {sorted(roots)}"]
        root = roots.pop()
        files = {m.split("/", 1)[1] for m in members if "/" in m}
        pkg_info = tar.extractfile(f"{root}/PKG-INFO").read().decode() if "PKG-INFO" in files else ""
    required = set(SDIST_REQUIRED)
    version = None
    if source:
        required |= source_files(source)[0]
        version = source_version(source)
    for name in sorted(required - files):
        problems.append(f"{path}: missing {name}")
    for name in sorted(files):
        why = _stray(name)
        if why:
            problems.append(f"{path}: {why}: {name}")
        elif name.endswith(EXTENSION_SUFFIXES):
            problems.append(f"{path}: compiled library in an sdist: {name}")
        elif name.endswith((".c", ".cpp")):
            problems.append(f"{path}: generated C source (the build regenerates it): {name}")
    if version is not None:
        if root != f"pypool-{version}":
            problems.append(f"{path}: top directory {root}, expected pypool-{version}")
        if pkg_info and _metadata_version(pkg_info) != version:
            problems.append(f"{path}: PKG-INFO version {_metadata_version(pkg_info)}, source says {version}")
    return problems


def check_wheel(path, source=None, repaired=False):
    problems = []
    m = WHEEL_NAME.match(os.path.basename(path))
    if not m:
        return [f"{path}: not a pypool wheel file name"]
    with zipfile.ZipFile(path) as zf:
        files = {n for n in zf.namelist() if not n.endswith("/")}
        dist_info = f"pypool-{m['version']}.dist-info"
        metadata = zf.read(f"{dist_info}/METADATA").decode() if f"{dist_info}/METADATA" in files else ""
    required = set(WHEEL_REQUIRED) | {f"{dist_info}/METADATA", f"{dist_info}/WHEEL", f"{dist_info}/RECORD"}
    if source:
        required |= source_files(source)[1]
        version = source_version(source)
        if m["version"] != version:
            problems.append(f"{path}: wheel version {m['version']}, source says {version}")
    if metadata and _metadata_version(metadata) != m["version"]:
        problems.append(f"{path}: METADATA version {_metadata_version(metadata)} != file name {m['version']}")
    for name in sorted(required - files):
        problems.append(f"{path}: missing {name}")
    if not any(n.startswith(f"{dist_info}/") and "LICENSE" in n for n in files):
        problems.append(f"{path}: no LICENSE in {dist_info}")

    # Compiled kernels for this wheel's Python only (cp311 -> .cpython-311-... / .cp311-...).
    py = m["python"]
    kernels = [n for n in files if n.startswith("pypool/") and n.endswith(EXTENSION_SUFFIXES)]
    if not any(os.path.basename(n).startswith("_kernels_base.") for n in kernels):
        problems.append(f"{path}: no compiled pypool/_kernels_base module")
    for name in kernels:
        tag = re.search(r"\.(cpython-|cp)(\d+)", os.path.basename(name))
        if "/" in name[len("pypool/"):] or not tag or f"cp{tag.group(2)}" != py:
            problems.append(f"{path}: extension module not built for {py}: {name}")

    libs = sorted(n for n in files if n.startswith("pypool.libs/"))
    for name in sorted(files):
        top = name.split("/", 1)[0]
        why = _stray(name)
        if why:
            problems.append(f"{path}: {why}: {name}")
        elif top not in ("pypool", "pypool.libs", dist_info):
            problems.append(f"{path}: file outside the package: {name}")
        elif name.endswith(SOURCE_SUFFIXES):
            problems.append(f"{path}: build source in a wheel: {name}")
    if repaired:
        if "manylinux" not in m["plat"]:
            problems.append(f"{path}: platform tag {m['plat']} is not manylinux")
        if not any(re.search(r"lib(g?omp)[^/]*\.so", os.path.basename(n)) for n in libs):
            problems.append(f"{path}: no OpenMP runtime vendored in pypool.libs/ (found {libs})")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--source", help="source tree the distributions were built from")
    ap.add_argument("--repaired", action="store_true", help="wheels must be manylinux with OpenMP vendored")
    args = ap.parse_args(argv)
    problems = []
    for f in args.files:
        if f.endswith(".whl"):
            found = check_wheel(f, args.source, args.repaired)
        elif f.endswith(".tar.gz"):
            found = check_sdist(f, args.source)
        else:
            found = [f"{f}: neither a wheel nor an sdist"]
        problems += found
        if not found:
            print(f"distcheck: {os.path.basename(f)}: ok")
    for p in problems:
        print("distcheck:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
