#!/bin/sh
# Run each fuzz target given on the command line for $FUZZ_SECONDS seconds
# and print one line per target: runs, edges covered (libFuzzer's cov:),
# corpus size, and crashes (crash/leak/timeout/oom artifacts of this run,
# kept in $FUZZ_BUILD/artifacts/<kind>/ until the next). Exit 1 if any
# target found something.
#
# Target fuzz_KIND reads seeds from $FUZZ_BUILD/seeds/KIND (make_corpus.sh)
# and grows its corpus in $FUZZ_BUILD/corpus/KIND, kept between runs. A new
# target needs only its seeds there (and a -max_len below if 64 KiB is
# wrong for it). fuzz_http serves the two model files named below.
set -u
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export NOMINAL_FUZZ_TEMPLATE="$FUZZ_BUILD/seeds/template.nmm"
export NOMINAL_FUZZ_CALIBRATED="$FUZZ_BUILD/seeds/calibrated.nmm"
# libFuzzer does the leak check itself; ASan's at-exit one would repeat it.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
printf '%-22s %10s %8s %8s %8s\n' target runs edges corpus crashes
for bin in "$@"; do
    name=$(basename "$bin")
    kind=${name#fuzz_}
    case "$kind" in
    meta_json | calibration_json) max_len=16384 ;;
    *) max_len=65536 ;;
    esac
    corpus="$FUZZ_BUILD/corpus/$kind"
    seeds="$FUZZ_BUILD/seeds/$kind"
    art="$FUZZ_BUILD/artifacts/$kind"
    log="$FUZZ_BUILD/$name.log"
    # a previous run's crash inputs are stale: reproducers worth keeping go
    # into fuzz/bad_inputs.py
    rm -rf "$art"
    mkdir -p "$corpus" "$seeds" "$art"
    dict=""
    [ -f "fuzz/$kind.dict" ] && dict="-dict=fuzz/$kind.dict"
    "$bin" "$corpus" "$seeds" $dict -max_total_time="$FUZZ_SECONDS" \
        -rss_limit_mb=2048 -timeout=10 -max_len="$max_len" \
        -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    files=$(ls "$corpus" | wc -l)
    found=$(ls "$art" | wc -l)
    printf '%-22s %10s %8s %8s %8s\n' "$name" "${runs:-?}" "${edges:-?}" "$files" "$found"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
        status=1
        echo "  $name: exit $rc; artifacts in $art/, log $log:" >&2
        grep -m3 -E 'ERROR|SUMMARY|fuzz oracle|runtime error' "$log" | sed 's/^/    /' >&2
    fi
done
exit $status
