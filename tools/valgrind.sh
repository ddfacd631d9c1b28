#!/usr/bin/env bash
# Runs the C API's embedding program (tests/capi/embed.c: embeds Python, fetches
# pypool's C API, pools malloc'ed buffers from its own threads) under valgrind
# memcheck. The program is built as tests/test_capi.py builds it, against the
# pypool installed for the interpreter in use (an ordinary build: valgrind
# cannot run ASan-instrumented code). Exits non-zero on any memcheck error, on
# any definite leak and when the program itself fails.
#
#   tools/valgrind.sh            with the active venv's python (or $PYTHON)
#
# Suppressions (tools/valgrind.supp) cover CPython and libgomp internals only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
python="${PYTHON:-python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/pypool-valgrind.XXXXXX")"
trap 'rm -rf "$work"' EXIT
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
echo "$(valgrind --version); $("${CC:-gcc}" --version | head -n 1)"

# Build from outside the source tree, so the installed pypool is the one found.
(cd "$work" && "$python" - "$repo/tests/capi/build.py" "$work" <<'EOF'
import importlib.util, os, sys
import pypool
from pypool import _config
flags = _config.config()["compile_flags"]
if "-fsanitize" in flags:
    sys.exit(f"pypool at {pypool.__file__} is a sanitizer build ({flags}); valgrind needs an ordinary one")
spec = importlib.util.spec_from_file_location("capi_build", sys.argv[1])
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
exe = build.build_embedding_program(sys.argv[2])
# The embedded interpreter gets this interpreter's import path, as in the test.
with open(os.path.join(sys.argv[2], "pythonpath"), "w") as f:
    f.write(build.embedding_environment()["PYTHONPATH"])
print("pypool", pypool.__version__, "at", os.path.dirname(pypool.__file__))
print("built", exe)
EOF
)

# PYTHONMALLOC=malloc: Python's objects come from malloc too, so memcheck
# tracks them (pymalloc's arenas would hide them and give false reports).
status=0
(cd "$work" && PYTHONPATH="$(cat "$work/pythonpath")" PYTHONMALLOC=malloc \
    valgrind --tool=memcheck --error-exitcode=1 --errors-for-leak-kinds=definite \
        --leak-check=full --show-leak-kinds=definite --track-origins=yes \
        --suppressions="$repo/tools/valgrind.supp" --log-file="$work/memcheck.log" \
        ./embed) | tee "$work/embed.out" || status=$?
cat "$work/memcheck.log"
if ! grep -q "^all ok$" "$work/embed.out"; then
    echo "the embedding program did not report 'all ok'" >&2
    status=1
fi
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|suppressed:" "$work/memcheck.log" || true
echo "exit $status"
exit "$status"
