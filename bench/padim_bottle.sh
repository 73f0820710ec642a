#!/bin/sh
# PaDiM on MVTec AD bottle (a benchmark, not a test): for each model
# D:COV[:RANK], fit on train/good with the shared ResNet-50 v2 trunk
# (stage1,stage2,stage3; time, peak RSS, model file size), `nominal eval`
# (image/pixel AUROC, AU-PRO), and warm batch-1 predict timing split by
# stage with its peak RSS. Then the kernels alone at d=550 (score batch 1
# and 8, fit sums and factors: bench/padim_kernels.c) and the same scoring
# in torch as anomalib writes it (bench/padim_ref.py), for a ratio.
#   bench/padim_bottle.sh [D:COV[:RANK]...]
#   (default: 100:full 100:diag 100:lowrank:32 550:full 550:diag 550:lowrank:64)
set -eu
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "bench: $SHARED data/models not found" >&2; exit 1; }
tmp=${TMPDIR:-/tmp}/nominal-padim-bench.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
[ $# -gt 0 ] || set -- 100:full 100:diag 100:lowrank:32 550:full 550:diag 550:lowrank:64
for cfg in "$@"; do
    d=${cfg%%:*}; rest=${cfg#*:}; cov=${rest%%:*}; rank=""
    [ "$rest" != "$cov" ] && rank="--rank ${rest#*:}"
    echo "== PaDiM d=$d cov=$cov $rank, $THREADS threads ($(uptime | sed "s/.*load/load/"))"
    /usr/bin/time -f "fit peak RSS %M KiB, wall %e s" "$NOM" fit --method padim --backbone "$BB" \
        --taps stage1,stage2,stage3 --train "$BOTTLE" -o "$tmp/m.nmm" --d "$d" --cov "$cov" $rank \
        --threads "$THREADS" --json
    ls -l "$tmp/m.nmm" | awk '{printf "model file %.1f MiB\n", $5 / 1048576}'
    "$NOM" eval "$tmp/m.nmm" "$BOTTLE" --threads "$THREADS" --json "$tmp/eval.json" >/dev/null
    /usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))
print("image AUROC %.4f, pixel AUROC %.4f, AU-PRO %.4f" % (r["image_auroc"], r["pixel_auroc"], r["au_pro"]))' "$tmp/eval.json"
    /usr/bin/time -f "predict peak RSS %M KiB" "$NOM" bench predict "$tmp/m.nmm" \
        "$BOTTLE/test/broken_large/000.png" --iters 10 --threads "$THREADS"
    rm -f "$tmp/m.nmm"
done
echo "== kernels alone (random data, bottle's sizes)"
cc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -fopenmp -Iinclude -Isrc bench/padim_kernels.c \
    "$BUILD/libnominal.a" -ldnnl -lprotobuf-c -lturbojpeg -lpng -lcjson -lopenblas -lm -fopenmp \
    -o "$tmp/padim_kernels"
OMP_NUM_THREADS=$THREADS "$tmp/padim_kernels" 550
echo "== the same scoring in torch (anomalib)"
/usr/bin/python3 bench/padim_ref.py --d 550 --threads "$THREADS" --iters 3
