#!/usr/bin/env bash
# Builds rnnpy._core with AddressSanitizer and UndefinedBehaviorSanitizer into
# a scratch copy of the package and runs the tests that drive the C types
# (bad input, fuzzing, threads, the core types, the extended cells, the bfloat16
# product) over it.
#
# ASan comes in through LD_PRELOAD because the interpreter itself is not
# instrumented; detect_leaks=0 because CPython keeps memory alive at exit on
# purpose (tests/robustness/test_leaks.py measures leaks instead). PYTHONMALLOC=malloc
# sends Python's small objects through ASan's allocator too. Any report, or
# any UBSan finding (halt_on_error), fails the step.
#
# Usage: tests/sanitize/run.sh [pytest args...]   (PYTHON picks the interpreter)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python}
CC=${CC:-gcc}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# the package's Python files, then the sanitized extension over its _core
mkdir -p "$WORK/lib"
cp -r "$ROOT/rnnpy" "$WORK/lib/"
find "$WORK/lib/rnnpy" -name '*.so' -delete
(cd "$ROOT" && RNNPY_SANITIZE=1 "$PY" setup.py -q build_ext --build-lib "$WORK/lib" \
    --build-temp "$WORK/build" >"$WORK/build.log" 2>&1) || { cat "$WORK/build.log"; exit 1; }

LIBASAN=$("$CC" -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize: no libasan.so from $CC" >&2; exit 1; }

export LD_PRELOAD="$LIBASAN"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc
export PYTHONPATH="$WORK/lib"
export RNNPY_FUZZ_SCALE=${RNNPY_FUZZ_SCALE:-0.3}
unset RNNPY_REQUIRE_TORCH RNNPY_FORBID_SKIPS
export RNNPY_SANITIZED=1   # tests that compare against torch skip: torch is not loaded under ASan

# run from the scratch folder so that the checkout's own rnnpy is not on the path
cd "$WORK"
core=$("$PY" -c 'import rnnpy._core as c; print(c.__file__)')
case "$core" in
    "$WORK"/*) ;;
    *) echo "sanitize: imported $core instead of the sanitized build" >&2; exit 1 ;;
esac
# grep reads all of nm's output (grep -q would exit at the first match, and
# nm's SIGPIPE then fails the pipeline under pipefail, now and then)
nm -D "$core" | grep __asan_ >/dev/null || { echo "sanitize: $core is not instrumented" >&2; exit 1; }

"$PY" -m pytest -q -p no:cacheprovider --rootdir="$ROOT" \
    "$ROOT/tests/kernels/test_core_types.py" "$ROOT/tests/robustness/test_bad_input.py" \
    "$ROOT/tests/robustness/test_fuzz.py" "$ROOT/tests/robustness/test_threads.py" "$ROOT/tests/nn/test_ext_cells.py" \
    "$ROOT/tests/kernels/test_bf16_gemm.py" "$ROOT/tests/kernels/test_in_place_weights.py" \
    "$ROOT/tests/kernels/test_step_split.py" "$@" 2>&1 | tee "$WORK/pytest.log"
status=${PIPESTATUS[0]}
if grep -E -q "ERROR: AddressSanitizer|runtime error:" "$WORK/pytest.log"; then
    echo "sanitize: a sanitizer reported an error (see above)" >&2
    exit 1
fi
exit "$status"
