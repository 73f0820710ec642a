#!/bin/sh
# PatchCore on MVTec AD bottle (a benchmark, not a test): for each coreset
# fraction, fit (time, peak RSS), score the 83 test images (maps at the
# original resolution), image/pixel AUROC (tests/tools/mvtec_metrics.py),
# and warm batch-1 predict timing split by stage.
#   bench/patchcore_bottle.sh [FRACTION...]     (default: 0.1 0.01 1)
set -eu
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "bench: $SHARED data/models not found" >&2; exit 1; }
tmp=${TMPDIR:-/tmp}/nominal-bench.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
[ $# -gt 0 ] || set -- 0.1 0.01 1
for f in "$@"; do
    echo "== coreset $f, $THREADS threads"
    /usr/bin/time -f "fit peak RSS %M KiB, wall %e s" "$NOM" fit --backbone "$BB" \
        --taps stage2,stage3 --train "$BOTTLE" -o "$tmp/m.nmm" --coreset "$f" \
        --threads "$THREADS" --json
    ls -l "$tmp/m.nmm" | awk '{printf "model file %.1f MiB\n", $5 / 1048576}'
    : >"$tmp/pred.jsonl"
    for d in "$BOTTLE"/test/*/; do
        "$NOM" predict "$tmp/m.nmm" "$d" --out "$tmp/maps" --json --threads "$THREADS" >>"$tmp/pred.jsonl"
    done
    /usr/bin/python3 tests/tools/mvtec_metrics.py "$tmp/pred.jsonl" "$BOTTLE"
    /usr/bin/time -f "predict peak RSS %M KiB" "$NOM" bench predict "$tmp/m.nmm" \
        "$BOTTLE/test/broken_large/000.png" --iters 20 --threads "$THREADS"
    rm -rf "$tmp/maps" "$tmp/m.nmm"
done
