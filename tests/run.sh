#!/bin/sh
# Run the test programs given on the command line and print one summary
# line: "tests: N passed, N failed, N skipped".
#  - cmocka binaries: their own pass/fail/skip counts are summed;
#  - *.sh scripts: one test each; exit 0 pass, 77 skipped, else failed.
set -u
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
FIXTURES=${FIXTURES:-$BUILD/fixtures}
export NOMINAL_SHARED="$SHARED" NOMINAL_BUILD="$BUILD" NOMINAL_FIXTURES="$FIXTURES"
[ -d "$SHARED" ] || echo "tests: shared data not found at $SHARED: tests needing models/data will be SKIPPED" >&2
passed=0; failed=0; skipped=0; bad=""
for t in "$@"; do
    name=$(basename "$t")
    log="$BUILD/tests/$name.log"
    mkdir -p "$BUILD/tests"
    case "$t" in
    *.sh)
        echo "[ RUN      ] $name"
        sh "$t" >"$log" 2>&1
        rc=$?
        sed 's/^/  /' "$log"
        if [ $rc -eq 0 ]; then echo "[       OK ] $name"; passed=$((passed + 1))
        elif [ $rc -eq 77 ]; then echo "[  SKIPPED ] $name"; skipped=$((skipped + 1))
        else echo "[  FAILED  ] $name (exit $rc)"; failed=$((failed + 1)); bad="$bad $name"
        fi
        ;;
    *)
        "$t" >"$log" 2>&1
        rc=$?
        cat "$log"
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
        passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
        if [ -n "${f:-}" ]; then bad="$bad $name"; fi
        if [ $rc -ne 0 ] && [ -z "${f:-}" ]; then
            # crashed or aborted before cmocka could count
            failed=$((failed + 1)); bad="$bad $name(crashed)"
        fi
        ;;
    esac
done
[ -n "$bad" ] && echo "tests: failing:$bad"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
