#!/bin/sh
# The CLI as a user meets it: help, versions, info, features, and clear
# one-line errors with meaningful exit codes on bad input.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
PY=/usr/bin/python3
. tests/lib.sh

check version 0 "nominal 0" -- "$NOM" --version
check help 0 "usage: nominal" -- "$NOM" --help
check no-args 2 "usage" -- "$NOM"
check unknown-command 2 "unknown command" -- "$NOM" frobnicate
for c in info features bench; do
    check "help-$c" 0 "usage: nominal $c" -- "$NOM" $c --help
done
check info-missing-file 3 "nope.onnx" -- "$NOM" info "$tmp/nope.onnx"
: >"$tmp/empty.onnx"
check info-empty-file 4 "empty.onnx" -- "$NOM" info "$tmp/empty.onnx"
printf 'this is not a protobuf at all\n' >"$tmp/garbage.onnx"
check info-garbage 4 "garbage.onnx" -- "$NOM" info "$tmp/garbage.onnx"
check features-no-taps 2 "missing --taps" -- "$NOM" features x.onnx img.png
check bench-unknown 2 "unknown benchmark" -- "$NOM" bench frob
check help-bench-predict 0 "usage: nominal bench predict" -- "$NOM" bench predict --help
check help-bench-backbone 0 "usage: nominal bench backbone" -- "$NOM" bench backbone --help
check bench-predict-batch-range 2 "--batch needs 1..64" -- "$NOM" bench predict m.nmm x.png --batch 65

# A model with an op the runtime lacks: info lists it, running it fails
# with exit 5 and a message naming node and op.
$PY - "$tmp/softmax.onnx" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
g = helper.make_graph(
    [helper.make_node("Conv", ["x", "w"], ["c"], name="conv0"),
     helper.make_node("Softmax", ["c"], ["y"], name="my_softmax", axis=1)],
    "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
PYEOF
# An unsupported attribute and a non-float weight are named too.
$PY - "$tmp/samepad.onnx" "$tmp/halfweights.onnx" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
def save(path, node, w):
    g = helper.make_graph([node], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
save(sys.argv[1], helper.make_node("Conv", ["x", "w"], ["y"], name="conv_same", auto_pad="SAME_UPPER"),
     numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"))
save(sys.argv[2], helper.make_node("Conv", ["x", "w16"], ["y"], name="conv_half"),
     numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float16), "w16"))
PYEOF
check unsupported-attribute 5 "node 'conv_same' (Conv): attribute 'auto_pad'='SAME_UPPER'" -- \
    "$NOM" bench backbone "$tmp/samepad.onnx" --size 16 --iters 1
check unsupported-dtype 5 "node 'conv_half' (Conv): input 'w16' has a data type other than float32" -- \
    "$NOM" bench backbone "$tmp/halfweights.onnx" --size 16 --iters 1
check info-unsupported-listed 0 "my_softmax" -- "$NOM" info "$tmp/softmax.onnx"
check bench-unsupported 5 "node 'my_softmax': op 'Softmax' is not supported" -- \
    "$NOM" bench backbone "$tmp/softmax.onnx" --size 16 --iters 1

# tools/export_backbone.py: a torchvision trunk with layer1..3 as outputs
# (random weights here: no weights are downloaded anywhere).
if $PY tools/export_backbone.py --arch resnet18 --out "$tmp/r18.onnx" --size 64 >/dev/null 2>&1; then
    check export-backbone-outputs 0 "output:      layer3" -- "$NOM" info "$tmp/r18.onnx"
else
    echo "FAIL export-backbone: tools/export_backbone.py failed"; fails=$((fails + 1))
fi

MODELS="$SHARED/models"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
if [ ! -d "$MODELS" ] || [ ! -d "$BOTTLE" ]; then
    echo "skip: $SHARED models/data not found"; [ $fails -eq 0 ] && exit 77; exit 1
fi
check info-resnet 0 "Add x13, BatchNormalization x14, Conv x43, MaxPool x1, Relu x40" -- \
    "$NOM" info "$MODELS/resnet50v2_trunk.onnx"
check info-json 0 "" -- "$NOM" info --json "$MODELS/squeezenet1.1.onnx"
$PY -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['ops']['Concat']==8 and d['parameters']==1235496 and d['unsupported']==[], d" "$tmp/out" \
    && echo "ok   info-json-parses" || { echo "FAIL info-json-parses"; fails=$((fails + 1)); }

img1="$BOTTLE/test/broken_large/000.png"
img2="$BOTTLE/train/good/000.png"
check features-stats 0 "stage3       1x1024x14x14" -- \
    "$NOM" features "$MODELS/resnet50v2_trunk.onnx" --taps stage2,stage3 --threads 2 "$img1" "$img2"
check features-npy 0 "" -- \
    "$NOM" features "$MODELS/resnet50v2_trunk.onnx" --taps stage3 --out "$tmp/feat" --json "$img1"
# The .npy the CLI wrote is what torch computes on the refvec input made from
# the same image (refvec bottle224 is broken_large/000.png preprocessed).
$PY - "$tmp/feat/000.png.stage3.npy" "$MODELS/refvec" <<'PYEOF' && echo "ok   features-npy-matches-torch" || { echo "FAIL features-npy-matches-torch"; fails=$((fails + 1)); }
import sys, json, numpy as np
a = np.load(sys.argv[1])
assert a.shape == (1, 1024, 14, 14), a.shape
ref = json.load(open(sys.argv[2] + "/refvectors.json"))["models"]["resnet50v2_trunk"]["cases"]["bottle224"]["outputs"]["stage3"]
crop = np.fromfile(sys.argv[2] + "/" + ref["crop"]["file"], np.float32).reshape(ref["crop"]["shape"])
err = np.abs(a[:, :8, :8, :8] - crop).max() / max(abs(ref["min"]), abs(ref["max"]))
print("  npy vs torch crop: max err %.2e x max|ref|" % err)
assert err <= 1e-4, err
PYEOF
check features-bad-tap 2 "no tensor named 'stage9'" -- \
    "$NOM" features "$MODELS/resnet50v2_trunk.onnx" --taps stage9 "$img1"
printf 'GIF89a...' >"$tmp/not_an_image.png"
check features-not-an-image 4 "not_an_image.png" -- \
    "$NOM" features "$MODELS/resnet50v2_trunk.onnx" --taps stage3 "$tmp/not_an_image.png"
check features-missing-image 3 "missing.png" -- \
    "$NOM" features "$MODELS/resnet50v2_trunk.onnx" --taps stage3 "$tmp/missing.png"
head -c 20000 "$MODELS/resnet50v2_trunk.onnx" >"$tmp/truncated.onnx"
check features-truncated-model 4 "truncated.onnx" -- \
    "$NOM" features "$tmp/truncated.onnx" --taps stage3 "$img1"
check bench-runs 0 "ms/image:" -- \
    "$NOM" bench backbone "$MODELS/squeezenet1.1.onnx" --taps feat_s16 --size 97 --iters 2 --warmup 0
tail -1 "$tmp/out" | grep -q '^ms/image: [0-9.]*$' && echo "ok   bench-last-line" || { echo "FAIL bench-last-line"; fails=$((fails + 1)); }

[ $fails -eq 0 ] || { echo "$fails CLI checks failed"; exit 1; }
