#!/bin/sh
# Benchmarks (never tests): nominal vs Debian's PyTorch on the same network,
# same machine, same thread count. Prints both figures and the ratio.
set -eu
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
THREADS=${THREADS:-2}
MODEL="$SHARED/models/resnet50v2_trunk.onnx"
[ -f "$MODEL" ] || { echo "bench: $MODEL not found" >&2; exit 1; }
echo "== nominal: resnet50v2_trunk to stage3, 224x224, batch 1, $THREADS threads, f32"
ours=$("$BUILD/nominal" bench backbone "$MODEL" --taps stage3 --size 224 --batch 1 \
       --threads "$THREADS" --iters 30 --warmup 5 | tee /dev/stderr | tail -1 | awk '{print $2}')
echo "== torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'): same network"
theirs=$(/usr/bin/python3 bench/bench_torch.py "$MODEL" --taps stage3 --size 224 --batch 1 \
         --threads "$THREADS" | tee /dev/stderr | tail -1 | awk '{print $NF}')
echo "== batch 8"
"$BUILD/nominal" bench backbone "$MODEL" --taps stage3 --size 224 --batch 8 \
    --threads "$THREADS" --iters 5 --warmup 1 | tail -1
awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "ratio nominal/torch: %.2f (%.2f ms vs %.2f ms)\n", a / b, a, b }'
