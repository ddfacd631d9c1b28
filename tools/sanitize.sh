#!/usr/bin/env bash
# Builds pypool with AddressSanitizer and UndefinedBehaviorSanitizer
# (PYPOOL_SANITIZE=1) in a fresh venv and runs the whole test suite under them,
# from a directory outside the source tree. Exits non-zero on any test failure
# and on any sanitizer report: ASan's from any process, UBSan's from pytest and
# from subprocesses whose exit status a test checks (docs/SANITIZERS.md).
#
#   tools/sanitize.sh [pytest arguments...]     e.g. tools/sanitize.sh -x -k capi
#
# Environment:
#   PYTHON               interpreter for the venv (default: python3)
#   SANITIZE_VARIANTS    kernel builds to run the suite with: "avx2", "baseline"
#                        or "avx2 baseline" (default: the build import picks)
#   SANITIZE_KEEP=1      keep the temporary directory (venv, logs) afterwards
#   PYPOOL_BUILD_JOBS    passed to the build (1 on a shared machine)
#   CC                   compiler whose sanitizer runtimes are preloaded (default: gcc)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/pypool-sanitize.XXXXXX")"
cleanup() {
    if [ "${SANITIZE_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
start=$SECONDS

# The sanitizer runtimes of the compiler that builds the extension. gcc prints
# the bare name back when it has no such library.
cc="${CC:-gcc}"
asan_lib="$("$cc" -print-file-name=libasan.so)"
ubsan_lib="$("$cc" -print-file-name=libubsan.so)"
for lib in "$asan_lib" "$ubsan_lib"; do
    if [ ! -e "$lib" ]; then echo "no sanitizer runtime found: $lib ($cc)" >&2; exit 1; fi
done
echo "compiler: $("$cc" --version | head -n 1)"
echo "runtimes: $asan_lib $ubsan_lib"

# A clean copy of the checkout, so no build/ left by an ordinary build is reused
# (setuptools would relink old, uninstrumented objects).
src="$work/src"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude=./build --exclude=./dist --exclude='*.egg-info' --exclude='__pycache__' -cf - . | tar -xf - -C "$src"
fi

echo "=== build (PYPOOL_SANITIZE=1), log in $work/build.log"
"$python" -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
python -m pip install --quiet --upgrade pip
# The build requirements of pyproject.toml, then pypool without build isolation.
python -m pip install --quiet "setuptools>=77" "Cython>=3.1" "numpy>=2.0"
if ! PYPOOL_SANITIZE=1 python -m pip install -v --no-build-isolation "$src[test]" >"$work/build.log" 2>&1; then
    tail -n 60 "$work/build.log" >&2
    echo "the sanitized build failed" >&2
    exit 1
fi

# Everything below runs with the ASan runtime loaded first (python itself is not
# instrumented, so the runtime must be preloaded) and the UBSan one beside it;
# subprocesses inherit these variables. Both runtimes end a process with exit
# status 1 at the first report (halt_on_error=1).
logs="$work/logs"
mkdir -p "$logs"
export LD_PRELOAD="$asan_lib:$ubsan_lib${LD_PRELOAD:+:$LD_PRELOAD}"
# detect_leaks=0: CPython keeps much memory until exit by design; leaks are
# valgrind's part (tools/valgrind.sh). log_path: every ASan report also goes to
# a file under logs/, so one from a process whose exit status nobody checks
# still fails the run.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$logs/asan"
# No log_path here: with GCC's separate runtimes, libubsan's call that sets its
# report file resolves to libasan's, so UBSan would move ASan's reports and still
# write its own to stderr. UBSan reports are found on pytest's stderr (below)
# and, from subprocesses, through their exit status, which the tests check.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1"
# Python objects and buffers from plain malloc, where ASan puts redzones around them.
export PYTHONMALLOC=malloc

# The installed extension must really be instrumented (checked from outside the
# source tree, so that the venv's pypool is the one imported).
(cd "$work" && python - <<'EOF'
import glob, os, subprocess, sys
import pypool
from pypool import _config
where = os.path.realpath(pypool.__file__)
assert where.startswith(os.path.realpath(sys.prefix) + os.sep), f"pypool imported from {where}"
flags = _config.config()["compile_flags"]
assert "-fsanitize=address,undefined,float-cast-overflow" in flags and "-fno-wrapv" in flags, f"pypool is not built with the sanitizers: {flags}"
for so in glob.glob(os.path.join(os.path.dirname(pypool.__file__), "_kernels_*.so")):
    deps = subprocess.run(["ldd", so], capture_output=True, text=True).stdout
    assert "libasan" in deps and "libubsan" in deps, f"{so} does not link the sanitizer runtimes"
print("sanitized pypool at", pypool.__file__)
print("compile flags:", flags)
EOF
)

# The suite from a copy of tests/ (and README.md, whose examples it compiles)
# outside the source tree, once per kernel build asked for.
status=0
variants="${SANITIZE_VARIANTS:-default}"
for variant in $variants; do
    case "$variant" in
        default)  avx2_env=() ;;
        avx2)     avx2_env=(env PYPOOL_DISABLE_AVX2=0) ;;
        baseline) avx2_env=(env PYPOOL_DISABLE_AVX2=1) ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    dir="$work/tests-$variant"
    mkdir -p "$dir"
    cp -r "$repo/tests" "$dir/tests"
    cp "$repo/README.md" "$dir/README.md"
    echo "=== test suite under ASan+UBSan ($variant kernels)"
    (cd "$dir" && "${avx2_env[@]}" python -c 'import pypool; print("kernels:", pypool._config.config()["variant"])')
    t0=$SECONDS
    # --capture=sys: reports written to file descriptor 2 by the sanitizer
    # runtimes reach the log even when they end pytest mid-test.
    (cd "$dir" && "${avx2_env[@]}" python -m pytest -p no:cacheprovider -ra --capture=sys "$@" tests 2>&1) |
        tee "$work/pytest-$variant.log" || status=$?
    if grep -E -q "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|Sanitizer:DEADLYSIGNAL" "$work/pytest-$variant.log"; then
        echo "sanitizer report in the output of the suite ($variant)" >&2
        status=1
    fi
    echo "suite ($variant) exited $status after $((SECONDS - t0)) s"
    [ "$status" -eq 0 ] || break
done

# Any report in any process fails the run.
reports=("$logs"/*)
if [ -e "${reports[0]}" ]; then
    echo "=== sanitizer reports (${#reports[@]} files)" >&2
    for f in "${reports[@]}"; do echo "--- $f" >&2; cat "$f" >&2; done
    status=1
fi
echo "=== total $((SECONDS - start)) s, exit $status"
exit "$status"
