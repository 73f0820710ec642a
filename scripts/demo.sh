#!/bin/sh
# Set up and run the main job on the default data (../shared):
# describe the shared backbone, extract its stage2/stage3 features from
# MVTec AD bottle images (written as .npy to out/demo/), and time it.
set -eu
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
scripts/deps.sh
make -j"$(nproc 2>/dev/null || echo 2)" all
MODEL="$SHARED/models/resnet50v2_trunk.onnx"
DATA="$SHARED/data/mvtec_ad/bottle"
if [ ! -f "$MODEL" ] || [ ! -d "$DATA" ]; then
    echo "demo: $SHARED/models or $SHARED/data/mvtec_ad/bottle not found (put the shared folder beside the repo)" >&2
    exit 1
fi
mkdir -p out/demo
build/nominal info "$MODEL"
build/nominal features "$MODEL" --taps stage2,stage3 --out out/demo \
    "$DATA"/train/good/000.png "$DATA"/test/good/000.png \
    "$DATA"/test/broken_large/000.png "$DATA"/test/contamination/000.png
build/nominal bench backbone "$MODEL" --taps stage3 --size 224 --batch 1 --threads 2
