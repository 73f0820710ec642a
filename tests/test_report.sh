#!/bin/sh
# `nominal eval --report` on a small bottle subset (3 good + 3 broken_large
# images with their masks, a model fit on 8 training images), rendered by
# headless Chromium: the page loads with no console errors, all 12
# thumbnails load (counted by the page's own script into the DOM), the
# cards are worst first, the screenshot is not blank, the HTML references
# nothing on the network, contours are drawn where they should be, and the
# JSON written alongside has exactly the keys docs/eval.md documents.
# A second render with one thumbnail deleted must report it missing, so
# the image check is shown to be able to fail.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PY=/usr/bin/python3
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
[ -x "$CHROMIUM" ] || { echo "skip: $CHROMIUM not found (headless Chromium renders the report)"; exit 77; }
[ -x "$PY" ] || { echo "skip: $PY not found"; exit 77; }
. tests/lib.sh

set_=$tmp/set
mkdir -p "$tmp/train" "$set_/test/good" "$set_/test/broken_large" "$set_/ground_truth/broken_large"
cp "$BOTTLE"/train/good/00[0-7].png "$tmp/train/"
cp "$BOTTLE"/test/good/00[0-2].png "$set_/test/good/"
cp "$BOTTLE"/test/broken_large/00[0-2].png "$set_/test/broken_large/"
cp "$BOTTLE"/ground_truth/broken_large/00[0-2]_mask.png "$set_/ground_truth/broken_large/"

check fit 0 "" -- $NOM fit --backbone "$BB" --taps stage2,stage3 --train "$tmp/train" \
    -o "$tmp/m.nmm" --coreset 0.1 --threads 2
rep=$tmp/rep
check eval-report 0 "report: $rep/index.html" -- \
    $NOM eval "$tmp/m.nmm" "$set_" --report "$rep" --json "$tmp/eval.json" --threads 2
check eval-help-report 0 "--report DIR" -- $NOM eval --help
check report-not-a-folder 3 "cannot create folder" -- \
    $NOM eval "$tmp/m.nmm" "$set_" --report "$tmp/m.nmm/x"
check json-folder-missing 3 "folder $tmp/nope not found" -- \
    $NOM eval "$tmp/m.nmm" "$set_" --json "$tmp/nope/e.json"
[ -f "$rep/index.html" ] || { echo "FAIL no $rep/index.html"; exit 1; }

n_png=$(ls "$rep"/img/*.png 2>/dev/null | wc -l)
[ "$n_png" -eq 12 ] && echo "ok   12 thumbnails written" || { echo "FAIL $n_png thumbnails, expected 12"; fails=$((fails + 1)); }
if grep -Eiq "https?:|(src|href)=[\"']?//" "$rep/index.html"; then
    echo "FAIL index.html references the network:"; grep -Eio ".{20}https?:.{20}" "$rep/index.html" | head -3
    fails=$((fails + 1))
else
    echo "ok   no network references"
fi

# --dump-dom prints the DOM after the load event, when the page's script
# has counted the images; console messages go to stderr as ":CONSOLE" lines.
chrome() {
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --no-first-run --user-data-dir="$tmp/chrome" \
        --enable-logging=stderr --v=0 "$@"
}
chrome --dump-dom "file://$rep/index.html" >"$tmp/dom.html" 2>"$tmp/chrome.err"
echo "chromium --dump-dom: exit $?"
if grep -q ":CONSOLE" "$tmp/chrome.err"; then
    echo "FAIL console messages:"; grep ":CONSOLE" "$tmp/chrome.err" | head -5; fails=$((fails + 1))
else
    echo "ok   no console messages"
fi
grep -q 'data-images-loaded="12"' "$tmp/dom.html" && grep -q 'data-images-failed="0"' "$tmp/dom.html" \
    && echo "ok   12 of 12 images loaded in Chromium" \
    || { echo "FAIL image count in the DOM:"; grep -o '<body[^>]*>' "$tmp/dom.html"; fails=$((fails + 1)); }

chrome --screenshot="$tmp/shot.png" --window-size=1280,2000 "file://$rep/index.html" \
    >/dev/null 2>"$tmp/shot.err"
echo "chromium --screenshot: exit $?"

# the page, its images, the screenshot and the JSON, checked in Python
"$PY" - "$rep" "$tmp/dom.html" "$tmp/shot.png" "$tmp/eval.json" docs/eval.md <<'PYEOF' || fails=$((fails + 1))
import json, re, sys
import numpy as np
from PIL import Image
rep, dom_path, shot, eval_json, doc = sys.argv[1:6]
bad = 0
def ok(cond, what):
    global bad
    print(("ok   " if cond else "FAIL ") + what)
    bad += not cond

dom = open(dom_path).read()
margins = [float(m) for m in re.findall(r"\(margin ([-+0-9.e]+)\)", dom)]
ok(len(margins) == 6, f"6 image cards ({len(margins)})")
ok(all(a >= b for a, b in zip(margins, margins[1:])), f"cards worst first: margins {margins}")
ok("12 of 12 images loaded" in dom, "status line says 12 of 12 images loaded")
ok(dom.count("<svg") == 3, "three SVG charts (ROC, PRO, histogram)")

s = np.asarray(Image.open(shot).convert("RGB"))
ok(s.shape[:2] == (2000, 1280), f"screenshot 1280x2000 ({s.shape[1]}x{s.shape[0]})")
colours = len(np.unique(s.reshape(-1, 3), axis=0))
ok(colours > 1000 and s.std() > 20, f"screenshot not blank: {colours} colours, std {s.std():.1f}")

# broken_large sorts before good: files 0-2 defective, 3-5 normal.
def has(path, rgb):
    a = np.asarray(Image.open(path).convert("RGB"))
    return bool(np.all(a == rgb, axis=-1).any())
for i in range(6):
    p = f"{rep}/img/{i:04d}.png"
    ok(has(p, (0, 255, 0)) == (i < 3), f"{p}: ground-truth contour only on defective images")
ok(all(has(f"{rep}/img/{i:04d}.png", (255, 0, 255)) for i in range(3)),
   "predicted contours on the defective images")

# JSON keys: exactly those in docs/eval.md's tables
text = open(doc).read()
def doc_keys(heading):
    part = text.split(heading, 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", part, re.M))
top, per = doc_keys("### Top-level keys"), doc_keys("### `per_type` entries")
j = json.load(open(eval_json))
ok(set(j) == top, f"JSON top-level keys match docs/eval.md "
   f"(undocumented {sorted(set(j) - top)}, missing {sorted(top - set(j))})")
ok(all(set(v) == per for v in j["per_type"].values()) and len(j["per_type"]) == 1,
   "per_type entries have exactly the documented keys")
ok(j["images"] == 6 and j["anomalous_images"] == 3 and j["report"].endswith("index.html"),
   "images, anomalous_images, report")
ok(all(isinstance(j[k], float) for k in ("pixel_auroc", "au_pro", "pixel_f1_threshold")),
   "pixel figures present with masks")
sys.exit(1 if bad else 0)
PYEOF

# the check can fail: a missing thumbnail shows in the DOM and the console
rm "$rep/img/0004_heat.png"
chrome --dump-dom "file://$rep/index.html" >"$tmp/dom2.html" 2>"$tmp/chrome2.err"
grep -q 'data-images-failed="1"' "$tmp/dom2.html" && grep -q "MISSING: img/0004_heat.png" "$tmp/dom2.html" \
    && grep -q ":CONSOLE" "$tmp/chrome2.err" \
    && echo "ok   a deleted thumbnail is reported missing" \
    || { echo "FAIL a deleted thumbnail went unnoticed"; fails=$((fails + 1)); }

[ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
