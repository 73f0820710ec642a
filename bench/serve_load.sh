#!/bin/sh
# Load test of `nominal serve` (a benchmark, not a test): the PatchCore
# bottle model (10% coreset, full train set) behind the server on
# loopback, CLIENTS keep-alive connections posting a real bottle image for
# SECONDS (bench/serve_load.c, a small C client: wrk is not packaged
# everywhere). Prints throughput, p50/p99 latency, errors (must be 0), the
# server's resident memory sampled every second (must stay flat), and the
# machine's load average, since other work on it skews every figure.
#   bench/serve_load.sh [SECONDS]        (default 60)
#   env: MODEL=FILE.nmm (skip the fit), CLIENTS=2, WORKERS, THREADS (server
#        options; default: the server's own choice), CORESET=0.1
set -eu
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
SECONDS_RUN=${1:-60}
CLIENTS=${CLIENTS:-2}
CORESET=${CORESET:-0.1}
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "bench: $SHARED data/models not found" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nominal-serve-bench.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror -O2 -pthread \
    bench/serve_load.c -o "$tmp/serve_load"

if [ -z "${MODEL:-}" ]; then
    echo "== fit: bottle train set, coreset $CORESET"
    "$NOM" fit --backbone "$BB" --taps stage2,stage3 --train "$BOTTLE" -o "$tmp/bottle.nmm" \
        --coreset "$CORESET" | tail -2
    MODEL="$tmp/bottle.nmm"
fi

opts=""
[ -n "${WORKERS:-}" ] && opts="$opts --workers $WORKERS"
[ -n "${THREADS:-}" ] && opts="$opts --threads $THREADS"
for attempt in 1 2 3 4 5; do
    port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    # shellcheck disable=SC2086
    "$NOM" serve "$MODEL" --listen "127.0.0.1:$port" --queue 64 $opts >"$tmp/serve.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && ! grep -q "listening on" "$tmp/serve.log"; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && break
    pid=""
    grep -q "cannot listen" "$tmp/serve.log" || { cat "$tmp/serve.log"; exit 1; }
done
[ -n "$pid" ] || { echo "bench: no free port" >&2; exit 1; }
name=$(basename "$MODEL" .nmm)
url="http://127.0.0.1:$port/v1/models/$name/predict"
img="$BOTTLE/test/broken_large/000.png"
head -1 "$tmp/serve.log"
echo "== warm-up: 3 requests"
for i in 1 2 3; do
    curl -sf -H 'Content-Type: image/png' --data-binary "@$img" "$url" >/dev/null
done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
(while kill -0 "$pid" 2>/dev/null; do rss; sleep 1; done) >"$tmp/rss" 2>/dev/null &
sampler=$!
echo "== load: $CLIENTS connections, $SECONDS_RUN s, $(basename "$img") ($(wc -c <"$img") bytes)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
status=0
"$tmp/serve_load" 127.0.0.1 "$port" "/v1/models/$name/predict" "$img" image/png \
    "$CLIENTS" "$SECONDS_RUN" || status=$?
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
kill "$sampler" 2>/dev/null || true
awk 'NR == 1 {first = $1; min = $1; max = $1} {if ($1 < min) min = $1; if ($1 > max) max = $1; last = $1}
     NR % 10 == 1 {every = every sprintf(" %.1f", $1 / 1024)}
     END {printf "server RSS MiB over %d samples: first %.1f, min %.1f, max %.1f, last %.1f (last - first %+.1f)\n",
          NR, first / 1024, min / 1024, max / 1024, last / 1024, (last - first) / 1024;
          print "server RSS MiB every 10 s:" every}' "$tmp/rss"
# where the time went, from the server's own counters
curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$name" '
    index($0, "nominal_request_duration_seconds_count{model=\"" m "\"}") == 1 {n = $2}
    index($0, "nominal_stage_seconds_total{model=\"" m "\"") == 1 {
        split($0, a, "stage=\""); split(a[2], b, "\""); s[b[1]] = $2; order[++k] = b[1]}
    END {printf "server mean ms/request over %d:", n;
         for (i = 1; i <= k; i++) printf " %s %.1f", order[i], 1000 * s[order[i]] / n; print ""}'
kill -TERM "$pid"
wait "$pid" || status=1
pid=""
exit $status
