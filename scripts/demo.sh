#!/bin/sh
# The main job on the default data: set up, build, fit PatchCore on MVTec AD
# bottle (../shared) with the shared ResNet-50 v2 trunk, score the test set,
# write heatmaps and overlays to out/demo/, and print a summary.
#   SHARED=/path/to/shared scripts/demo.sh     (default ../shared)
set -eu
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-0}
MODEL="$SHARED/models/resnet50v2_trunk.onnx"
DATA="$SHARED/data/mvtec_ad/bottle"
if [ ! -f "$MODEL" ] || [ ! -d "$DATA/train/good" ]; then
    cat >&2 <<MSG
demo: the default data was not found under $SHARED. Supply:
  1. an MVTec-style category folder: CATEGORY/train/good/*.png (good images)
     and CATEGORY/test/<type>/*.png (images to score);
  2. an ONNX backbone with named feature maps. With torchvision weights you
     already have (no download happens), export one with Debian's torch:
       /usr/bin/python3 tools/export_backbone.py --arch wide_resnet50_2 \\
           --weights wide_resnet50_2.pth --out wrn50.onnx
Then run:
  build/nominal fit --backbone wrn50.onnx --taps layer2,layer3 --train CATEGORY -o model.nmm
  build/nominal predict model.nmm CATEGORY/test/<type> --out out/
or put the shared folder (models/ and data/mvtec_ad/bottle) at $SHARED.
MSG
    exit 1
fi
scripts/deps.sh
make -j"$(nproc 2>/dev/null || echo 2)" all >/dev/null
OUT=out/demo
mkdir -p "$OUT"
echo "== fit PatchCore on $DATA/train/good"
build/nominal fit --backbone "$MODEL" --taps stage2,stage3 --train "$DATA" \
    -o "$OUT/bottle.nmm" --coreset 0.1 --threads "$THREADS"
echo "== predict $DATA/test (maps, heatmaps, overlays -> $OUT/maps)"
: >"$OUT/predictions.jsonl"
for d in "$DATA"/test/*/; do
    build/nominal predict "$OUT/bottle.nmm" "$d" --out "$OUT/maps" --json \
        --threads "$THREADS" >>"$OUT/predictions.jsonl"
done
echo "== summary (image score = largest patch distance to the memory bank)"
awk -F'"' '{
    for (i = 1; i < NF; i++) if ($i == "image") path = $(i + 2)
    match($0, /"score":[0-9.eE+-]+/); s = substr($0, RSTART + 8, RLENGTH - 8) + 0
    n = split(path, parts, "/"); kind = parts[n - 1]
    cnt[kind]++; sum[kind] += s
    if (!(kind in lo) || s < lo[kind]) lo[kind] = s
    if (!(kind in hi) || s > hi[kind]) hi[kind] = s
} END {
    printf "%-16s %6s %10s %10s %10s\n", "type", "images", "min", "mean", "max"
    for (k in cnt) printf "%-16s %6d %10.3f %10.3f %10.3f\n", k, cnt[k], lo[k], sum[k] / cnt[k], hi[k]
}' "$OUT/predictions.jsonl"
echo "model: $OUT/bottle.nmm; per-image maps/heatmaps/overlays: $OUT/maps/; scores: $OUT/predictions.jsonl"
