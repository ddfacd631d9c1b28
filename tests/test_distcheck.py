"""distcheck (the sdist/wheel file-list check that .ci/run applies to real
builds) accepts a well-formed distribution and names every kind of stray or
missing file, tried on small hand-made archives."""

import io
import os
import sys
import tarfile
import zipfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distcheck  # noqa: E402

VERSION = "1.2.3"
SOURCE = {
    "pypool/__init__.py": "", "pypool/__init__.pyi": "", "pypool/py.typed": "",
    "pypool/_version.py": f'__version__ = "{VERSION}"\n', "pypool/_pooling.py": "",
    "pypool/pypool.pxd": "", "pyx/kernels.pxi": "", "pyx/_kernels_base.pyx": "", "pyx/_types.pxd": "",
    "include/pypool/pypool.h": "", "include/pypool/extra/more.h": "",
    "setup.py": "", "pyproject.toml": "", "README.md": "", "LICENSE": "", "MANIFEST.in": "",
}
PKG_INFO = f"Metadata-Version: 2.4\nName: pypool\nVersion: {VERSION}\n\n"
WHEEL_FILES = {
    **{n: "" for n in SOURCE if n.startswith("pypool/")},
    "pypool/include/pypool/pypool.h": "", "pypool/include/pypool/extra/more.h": "",
    "pypool/_kernels_base.cpython-312-x86_64-linux-gnu.so": "",
    "pypool/_kernels_avx2.cpython-312-x86_64-linux-gnu.so": "",
    f"pypool-{VERSION}.dist-info/METADATA": PKG_INFO,
    f"pypool-{VERSION}.dist-info/WHEEL": "", f"pypool-{VERSION}.dist-info/RECORD": "",
    f"pypool-{VERSION}.dist-info/licenses/LICENSE": "",
}
WHEEL_NAME = f"pypool-{VERSION}-cp312-cp312-linux_x86_64.whl"


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src"
    for name, text in SOURCE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return str(root)


def make_sdist(tmp_path, files):
    path = tmp_path / f"pypool-{VERSION}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"pypool-{VERSION}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def make_wheel(tmp_path, files, name=WHEEL_NAME):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return str(path)


def sdist_files(**changes):
    files = {**SOURCE, "PKG-INFO": PKG_INFO}
    files.update(changes)
    return {k: v for k, v in files.items() if v is not None}


def test_a_complete_sdist_passes(tmp_path, source):
    assert distcheck.check_sdist(make_sdist(tmp_path, sdist_files()), source) == []


@pytest.mark.parametrize("stray", ["pyx/_kernels_base.c", "build/lib/pypool/x.py", "pypool/_kernels_base.so",
                                   "pypool/__pycache__/x.cpython-312.pyc", "pyx/kernels.o"])
def test_sdist_with_a_generated_or_built_file_fails(tmp_path, source, stray):
    problems = distcheck.check_sdist(make_sdist(tmp_path, sdist_files(**{stray: ""})), source)
    assert len(problems) == 1 and stray in problems[0]


@pytest.mark.parametrize("missing", ["include/pypool/extra/more.h", "pypool/pypool.pxd", "pyx/_types.pxd",
                                     "LICENSE", "pypool/py.typed"])
def test_sdist_missing_a_source_file_fails(tmp_path, source, missing):
    problems = distcheck.check_sdist(make_sdist(tmp_path, sdist_files(**{missing: None})), source)
    assert problems == [f"{tmp_path / f'pypool-{VERSION}.tar.gz'}: missing {missing}"]


def test_sdist_with_another_version_fails(tmp_path, source):
    files = sdist_files(**{"PKG-INFO": PKG_INFO.replace(VERSION, "9.9")})
    assert any("PKG-INFO version 9.9" in p for p in distcheck.check_sdist(make_sdist(tmp_path, files), source))


def test_a_complete_wheel_passes(tmp_path, source):
    assert distcheck.check_wheel(make_wheel(tmp_path, WHEEL_FILES), source) == []


@pytest.mark.parametrize("stray", ["pypool/_kernels_base.cpython-311-x86_64-linux-gnu.so", "pyx/kernels.pxi",
                                   "pypool/_kernels_base.c", "pypool/__pycache__/a.cpython-312.pyc",
                                   "tests/test_calls.py", "build/temp/x.o"])
def test_wheel_with_a_stray_file_fails(tmp_path, source, stray):
    problems = distcheck.check_wheel(make_wheel(tmp_path, {**WHEEL_FILES, stray: ""}), source)
    assert len(problems) == 1 and stray in problems[0]


@pytest.mark.parametrize("missing", ["pypool/include/pypool/extra/more.h", "pypool/pypool.pxd",
                                     "pypool/__init__.pyi", "pypool/py.typed",
                                     "pypool/_kernels_base.cpython-312-x86_64-linux-gnu.so"])
def test_wheel_missing_a_file_fails(tmp_path, source, missing):
    files = {k: v for k, v in WHEEL_FILES.items() if k != missing}
    problems = distcheck.check_wheel(make_wheel(tmp_path, files), source)
    assert problems and any(missing in p or "_kernels_base module" in p for p in problems)


def test_wheel_version_must_match_the_source(tmp_path, source):
    name = WHEEL_NAME.replace(VERSION, "2.0")
    files = {k.replace(VERSION, "2.0"): v for k, v in WHEEL_FILES.items()}
    problems = distcheck.check_wheel(make_wheel(tmp_path, files, name), source)
    assert any("wheel version 2.0, source says 1.2.3" in p for p in problems)
    assert any("METADATA version 1.2.3 != file name 2.0" in p for p in problems)


def test_repaired_wheel_needs_manylinux_tag_and_vendored_openmp(tmp_path, source):
    plain = make_wheel(tmp_path, WHEEL_FILES)
    problems = distcheck.check_wheel(plain, source, repaired=True)
    assert any("not manylinux" in p for p in problems)
    assert any("no OpenMP runtime vendored" in p for p in problems)
    repaired = make_wheel(tmp_path, {**WHEEL_FILES, "pypool.libs/libgomp-0123abcd.so.1.0.0": ""},
                          WHEEL_NAME.replace("linux_x86_64", "manylinux_2_28_x86_64"))
    assert distcheck.check_wheel(repaired, source, repaired=True) == []


def test_command_line_exit_status(tmp_path, source, capsys):
    good = make_wheel(tmp_path, WHEEL_FILES)
    assert distcheck.main(["--source", source, good]) == 0
    bad = make_sdist(tmp_path, sdist_files(**{"pyx/_kernels_base.c": ""}))
    assert distcheck.main(["--source", source, good, bad]) == 1
    assert "generated C source" in capsys.readouterr().err
