#!/bin/sh
# PaDiM end to end through the CLI on MVTec AD bottle: fit on train/good
# (209 images) with the shared ResNet-50 v2 trunk (stage1,stage2,stage3 =
# 1792 channels on a 56x56 grid at the 224 crop), d=100 random channels
# (the paper's ResNet-18 size: the full d=550 model is measured in
# bench/padim_bottle.sh), full covariance, and check `nominal eval --json`:
# image AUROC >= 0.99 and pixel AUROC >= 0.975.
#
# The bounds: the Python reference (anomalib PaDiM, d=550, same backbone)
# reaches image 1.000 and pixel 0.982 on bottle; the paper reports 0.983
# pixel AUROC for bottle. Pixel 0.975 leaves 0.007 for d=100 against 550.
# Image 0.99 is 0.01 under the reference because nominal's pipeline takes
# the image score as the largest patch score, where the reference takes the
# maximum of the blurred, upsampled map (measured here: 0.994 against 1.000
# with the reference's definition; see docs/padim.md).
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
"$NOM" fit --method padim --backbone "$MODEL" --taps stage1,stage2,stage3 --train "$BOTTLE" \
    -o "$tmp/bottle.nmm" --d 100 --seed 0 --json | tee "$tmp/fit.json"
echo
"$NOM" info "$tmp/bottle.nmm"
"$NOM" eval "$tmp/bottle.nmm" "$BOTTLE" --json "$tmp/eval.json"
/usr/bin/python3 - "$tmp/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
image, pixel = r["image_auroc"], r["pixel_auroc"]
print("image AUROC %.4f (>= 0.99), pixel AUROC %.4f (>= 0.975), AU-PRO %.4f"
      % (image, pixel, r["au_pro"]))
sys.exit(0 if image >= 0.99 and pixel >= 0.975 else 1)
PY
