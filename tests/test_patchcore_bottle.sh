#!/bin/sh
# PatchCore end to end through the CLI on MVTec AD bottle: fit on
# train/good (209 images) with the shared ResNet-50 v2 trunk (stage2,stage3,
# 224 crop, 10% coreset), predict the 83 test images with maps, and check
# image AUROC >= 0.995 and pixel AUROC >= 0.980 (maps at the original
# 900x900 mask resolution), computed independently by mvtec_metrics.py.
set -eu
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
MODEL="$SHARED/models/resnet50v2_trunk.onnx"
if [ ! -d "$BOTTLE" ] || [ ! -f "$MODEL" ]; then
    echo "skip: $BOTTLE or $MODEL not found"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$NOM" fit --backbone "$MODEL" --taps stage2,stage3 --train "$BOTTLE" -o "$tmp/bottle.nmm" \
    --coreset 0.1 --seed 0 --json | tee "$tmp/fit.json"
"$NOM" info "$tmp/bottle.nmm"
for d in "$BOTTLE"/test/*/; do
    "$NOM" predict "$tmp/bottle.nmm" "$d" --out "$tmp/maps" --json >>"$tmp/pred.jsonl"
done
echo "$(wc -l <"$tmp/pred.jsonl") images scored"
# nominal's own evaluation of the same model, checked against the
# independent NumPy computation on the maps predict wrote (to 1e-4)
"$NOM" eval "$tmp/bottle.nmm" "$BOTTLE" --json "$tmp/eval.json"
/usr/bin/python3 tests/tools/mvtec_metrics.py "$tmp/pred.jsonl" "$BOTTLE" \
    --min-image 0.995 --min-pixel 0.980 --pro --compare "$tmp/eval.json"
