#!/bin/sh
# Calibration end to end on bottle: fit --holdout calibrates on the images
# it kept out; calibrate picks the conformal threshold (the max of 19 good
# scores at FPR 0.05) and stores it in the model (one CALI section, scores
# unchanged, replaced by a later calibrate); predict prints decisions and
# p-values consistent with it; damaged calibrated models are refused; a
# failed write leaves the original intact; too few images is a clear
# error; predict --batch 4 gives the scores of --batch 1.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
. tests/lib.sh
PY=/usr/bin/python3
mkdir -p "$tmp/train" "$tmp/good" "$tmp/bad" "$tmp/masks" "$tmp/mixed"
for i in 000 001 002 003 004 005 006 007 008 009; do cp "$BOTTLE/train/good/$i.png" "$tmp/train/"; done
for i in $(seq 100 118); do cp "$BOTTLE/train/good/$i.png" "$tmp/good/"; done
for i in 000 001 002 003 004; do
    cp "$BOTTLE/test/broken_large/$i.png" "$tmp/bad/"
    cp "$BOTTLE/ground_truth/broken_large/${i}_mask.png" "$tmp/masks/"
done
FIT="$NOM fit --backbone $BB --taps stage2,stage3 --threads 2 --coreset 0.1"
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
# number of sections with a tag in a model file
sections() {
    $PY - "$1" "$2" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack_from("<I", b, 12)[0]
off, count = 64, 0
for _ in range(n):
    tag, size = b[off:off + 4].decode(), struct.unpack_from("<Q", b, off + 8)[0]
    count += tag == sys.argv[2]
    off += 64 + size + (-size % 64)
print(count)
PYEOF
}

check calibrate-help 0 "k-th largest" -- $NOM calibrate --help
check fit-help-holdout 0 "holdout F" -- $NOM fit --help
check predict-help-batch 0 "batch N" -- $NOM predict --help

# --- fit --holdout: 10 images, 10% -> 1 held out; default alpha max(0.01, 1/2)
check fit-holdout-too-few 2 "at least 99 held-out images" -- \
    $FIT --train "$tmp/train" -o "$tmp/x.nmm" --holdout 0.1 --target-fpr 0.01
[ -e "$tmp/x.nmm" ] && fail "an unreachable target still wrote a model" || echo "ok   nothing written"
check fit-holdout 0 "held out:    1 training images" -- \
    $FIT --train "$tmp/train" -o "$tmp/h.nmm" --holdout 0.1
grep -q "trained on: 9 of 10 images" "$tmp/out" && echo "ok   trained on the other 9" || fail "fit --holdout trained on"
check info-holdout 0 "P(a new good image is flagged) <= 1/2 = 0.5000" -- $NOM info "$tmp/h.nmm"
$NOM info --json "$tmp/h.nmm" >"$tmp/h.json"
held=$($PY -c "import json,sys; print(json.load(open('$tmp/h.json'))['calibration']['held_out'][0])")
case "$held" in "$tmp/train/"*.png) [ -f "$held" ] && echo "ok   held-out name recorded ($held)" ;;
*) fail "held-out name '$held'" ;; esac
check fit-holdout-target-needs-holdout 2 "need --holdout" -- \
    $FIT --train "$tmp/train" -o "$tmp/x.nmm" --target-fpr 0.1

# --- calibrate a plain model on 19 held-out good images
check fit-plain 0 "bank:" -- $FIT --train "$tmp/train" -o "$tmp/m.nmm"
check predict-uncalibrated-json 0 '"decision":null' -- $NOM predict "$tmp/m.nmm" "$tmp/good/100.png" --json
$NOM predict "$tmp/m.nmm" "$tmp/good" --batch 8 --threads 2 >"$tmp/before.txt"
cp "$tmp/m.nmm" "$tmp/orig.nmm"
check calibrate-n-too-small 2 "at least 99 good images are needed" -- \
    $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fpr 0.01
check calibrate-n-too-small-says-n 2 "not achievable with 19 good images: the smallest is 1/20" -- \
    $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fpr 0.04
cmp -s "$tmp/m.nmm" "$tmp/orig.nmm" && echo "ok   refused calibration left the model as it was" || fail "model changed"
check calibrate-no-target 2 "exactly one of" -- $NOM calibrate "$tmp/m.nmm" --good "$tmp/good"
check calibrate-fnr-needs-bad 2 "need --bad" -- $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fnr 0.1
check calibrate-masks-need-pixel 2 "--masks goes with" -- \
    $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --bad "$tmp/bad" --masks "$tmp/masks" --target-fpr 0.05
check calibrate-bad-rate 2 "rate in (0, 1)" -- $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fpr 5
check calibrate-missing-dir 3 "nope" -- $NOM calibrate "$tmp/m.nmm" --good "$tmp/nope" --target-fpr 0.05

check calibrate-fpr 0 "P(a new good image is flagged) <= 1/20 = 0.0500" -- \
    $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fpr 0.05 --threads 2 --batch 8
[ "$(sections "$tmp/m.nmm" CALI)" = 1 ] && echo "ok   one CALI section" || fail "CALI sections: $(sections "$tmp/m.nmm" CALI)"
$NOM predict "$tmp/m.nmm" "$tmp/good" --batch 8 --threads 2 --json >"$tmp/after.json"
$NOM info --json "$tmp/m.nmm" >"$tmp/m.json"
# alpha 0.05, n 19: k = floor(0.05 * 20) = 1, the threshold is the max
# score; no calibration image is above it; p-values as defined; scores as
# before calibration (the model round trip changes nothing)
$PY - "$tmp/before.txt" "$tmp/after.json" "$tmp/m.json" <<'PYEOF' && echo "ok   threshold = max of 19 scores, decisions, p-values" || fail "calibrated predictions"
import json, sys
before = [float(l.split()[1]) for l in open(sys.argv[1])]
after = [json.loads(l) for l in open(sys.argv[2])]
cal = json.load(open(sys.argv[3]))["calibration"]
scores = [a["score"] for a in after]
assert len(scores) == 19 and cal["n_good"] == 19 and cal["k"] == 1, cal
assert all(abs(a - b) <= 1e-5 * abs(b) for a, b in zip(scores, before)), (scores, before)
assert cal["threshold"] == max(scores), (cal["threshold"], max(scores))
assert sorted(cal["good_scores"]) == cal["good_scores"] == sorted(scores)
assert abs(cal["fpr_bound"] - 1 / 20) < 1e-12
for a in after:
    assert a["threshold"] == cal["threshold"]
    assert a["decision"] == ("ANOMALY" if a["score"] > a["threshold"] else "OK"), a
    n_ge = sum(s >= a["score"] for s in scores)
    assert abs(a["p_value"] - (1 + n_ge) / 20) < 1e-12, a
assert all(a["decision"] == "OK" for a in after)
PYEOF
check info-calibrated 0 "threshold:   " -- $NOM info "$tmp/m.nmm"
check predict-decision-text 0 "ANOMALY p=0.05" -- $NOM predict "$tmp/m.nmm" "$tmp/bad/000.png"

# --- with bad images: FNR target, pixel threshold and masks; replaces the old CALI
check calibrate-fnr-pixel 0 "defect pixels missed" -- \
    $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --bad "$tmp/bad" --masks "$tmp/masks" \
    --target-fnr 0.2 --pixel-fpr 0.01 --threads 2
[ "$(sections "$tmp/m.nmm" CALI)" = 1 ] && echo "ok   still one CALI section" || fail "CALI sections after recalibration"
check info-replaced 0 "FNR (conformal) 0.2" -- $NOM info "$tmp/m.nmm"
check predict-mask 0 '"mask"' -- $NOM predict "$tmp/m.nmm" "$tmp/bad/000.png" "$tmp/good/100.png" --out "$tmp/o" --json
$PY - "$tmp/o/bad_000.mask.png" "$tmp/o/good_100.mask.png" <<'PYEOF' && echo "ok   binary masks" || fail "mask PNGs"
import sys
from PIL import Image
import numpy as np
bad, good = (np.asarray(Image.open(p)) for p in sys.argv[1:3])
assert bad.shape == (900, 900) and set(np.unique(bad)) <= {0, 255} and set(np.unique(good)) <= {0, 255}
assert (bad == 255).mean() > (good == 255).mean() and (bad == 255).any()
PYEOF
check calibrate-f1-json 0 '"kind":"f1"' -- \
    $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --bad "$tmp/bad" --f1 --json -o "$tmp/f1.nmm"

# --- damaged calibrated models are refused
size=$(wc -c <"$tmp/m.nmm")
head -c $((size - 100)) "$tmp/m.nmm" >"$tmp/trunc.nmm"
check predict-truncated-calibrated 4 "trunc.nmm: truncated" -- $NOM predict "$tmp/trunc.nmm" "$tmp/good/100.png"
cp "$tmp/m.nmm" "$tmp/flip.nmm"
printf '\377' | dd of="$tmp/flip.nmm" bs=1 seek=$((size - 300)) conv=notrunc 2>/dev/null
check predict-corrupt-calibrated 4 "flip.nmm" -- $NOM predict "$tmp/flip.nmm" "$tmp/good/100.png"
# a CALI edited with valid checksums: the threshold no longer the k-th largest
$NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fpr 0.1 -o "$tmp/edit.nmm" >/dev/null 2>&1
$PY - "$tmp/edit.nmm" <<'PYEOF'
import json, struct, sys, zlib
path = sys.argv[1]
b = bytearray(open(path, "rb").read())
n, off = struct.unpack_from("<I", b, 12)[0], 64
for _ in range(n):
    tag, size = bytes(b[off:off + 4]), struct.unpack_from("<Q", b, off + 8)[0]
    if tag == b"CALI":
        cal = json.loads(bytes(b[off + 64:off + 64 + size]))
        cal["threshold"] = cal["threshold"] * 0.5
        text = json.dumps(cal, separators=(",", ":")).encode()
        assert len(text) <= size
        text = text.ljust(size, b" ")  # same size: JSON allows trailing spaces
        b[off + 64:off + 64 + size] = text
        struct.pack_into("<I", b, off + 16, zlib.crc32(text))
    off += 64 + size + (-size % 64)
struct.pack_into("<I", b, len(b) - 4, zlib.crc32(bytes(b[:len(b) - 12])))
open(path, "wb").write(b)
PYEOF
check predict-edited-cali 4 "calibration (CALI section) is invalid: the threshold is not the k-th largest" -- \
    $NOM predict "$tmp/edit.nmm" "$tmp/good/100.png"

# --- a failed write leaves the original intact (and no temp file behind)
cp "$tmp/m.nmm" "$tmp/orig.nmm"
mkdir -p "$tmp/ro" && cp "$tmp/m.nmm" "$tmp/ro/m.nmm"
if [ "$(id -u)" != 0 ]; then
    chmod a-w "$tmp/ro"
    check calibrate-readonly-dir 3 "ro/m.nmm" -- $NOM calibrate "$tmp/ro/m.nmm" --good "$tmp/good" --target-fpr 0.1
    chmod u+w "$tmp/ro"
else
    echo "note: running as root: a read-only folder does not stop writes; the file-size limit below does"
fi
check calibrate-write-fails 3 "m.nmm" -- sh -c "ulimit -f 64; trap '' XFSZ; exec $NOM calibrate '$tmp/ro/m.nmm' --good '$tmp/good' --target-fpr 0.1"
cmp -s "$tmp/ro/m.nmm" "$tmp/orig.nmm" && echo "ok   original intact after failed write" || fail "original changed"
[ "$(ls "$tmp/ro")" = "m.nmm" ] && echo "ok   no temp file left" || fail "left: $(ls "$tmp/ro")"
check calibrate-out-missing-dir 3 "nodir" -- $NOM calibrate "$tmp/m.nmm" --good "$tmp/good" --target-fpr 0.1 -o "$tmp/nodir/x.nmm"
cmp -s "$tmp/m.nmm" "$tmp/orig.nmm" && echo "ok   model intact after -o failure" || fail "model changed by failed -o"

# --- predict --batch 4 == --batch 1, across a batch with an unreadable file
# and images of other sizes (same network input after the center crop)
cp "$tmp/good"/10[0-6].png "$tmp/mixed/"
$PY -c "
from PIL import Image
Image.new('RGB', (1, 1), (120, 130, 140)).save('$tmp/mixed/102a_one.png')
Image.open('$tmp/good/107.png').resize((500, 300)).save('$tmp/mixed/103a_wide.png')"
printf 'garbage' >"$tmp/mixed/104a_broken.png"
$NOM predict "$tmp/m.nmm" "$tmp/mixed" --batch 1 --threads 2 --json --out "$tmp/ob1" >"$tmp/b1.json" 2>"$tmp/b1.err"; rc1=$?
$NOM predict "$tmp/m.nmm" "$tmp/mixed" --batch 4 --threads 2 --json --out "$tmp/ob4" >"$tmp/b4.json" 2>"$tmp/b4.err"; rc4=$?
[ $rc1 = 4 ] && [ $rc4 = 4 ] && grep -q "104a_broken.png" "$tmp/b4.err" && echo "ok   unreadable file reported, exit 4" || fail "batch exit codes $rc1 $rc4"
$PY - "$tmp/b1.json" "$tmp/b4.json" <<'PYEOF' && echo "ok   --batch 4 scores = --batch 1 scores" || fail "--batch 4 differs from --batch 1"
import json, sys
import numpy as np
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) == 9, (len(a), len(b))
worst = max(abs(x["score"] - y["score"]) / abs(x["score"]) for x, y in zip(a, b))
print("     9 images, max relative score difference %.3g" % worst)
assert all(x["image"] == y["image"] and x["width"] == y["width"] for x, y in zip(a, b))
assert worst <= 1e-5
# the maps too: each image of a batch gets its own map on its own geometry
for x, y in zip(a, b):
    m1, m4 = np.load(x["map"]), np.load(y["map"])
    assert m1.shape == m4.shape == (x["height"], x["width"]), (m1.shape, m4.shape)
    assert np.abs(m1 - m4).max() <= 1e-5 * max(np.abs(m1).max(), 1e-30), x["image"]
PYEOF
[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
