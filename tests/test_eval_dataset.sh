#!/bin/sh
# eval's test-set handling: masks paired with images by file name, never
# by position, in an MVTec-style set and the plain --good/--bad/--masks
# layout built from bottle images with PIL: names x_1, x_2, x_10, x_11 (so
# sorted lists of images and masks do not line up), mixed sizes, PNG and
# JPEG, gray and RGB images, gray and RGB masks of other sizes than their
# images, one all-black mask. The pixel AUROC and AU-PRO eval reports must
# equal an independent NumPy computation (tests/tools/mvtec_metrics.py) on
# the maps `nominal predict` writes, with masks paired by name and resized
# by PIL; the same computation with position pairing must give different
# figures (so the check can tell). Then the errors: a defective image
# without its mask, an unreadable mask, and masks without defect pixels.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
PY=/usr/bin/python3
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
[ -x "$PY" ] || { echo "skip: $PY not found"; exit 77; }
. tests/lib.sh

mv=$tmp/mv
"$PY" - "$BOTTLE" "$mv" <<'PYEOF' || exit 1
import os, sys
import numpy as np
from PIL import Image
src, out = sys.argv[1:3]
for d in ("train", "test/good", "test/broken", "ground_truth/broken"):
    os.makedirs(f"{out}/{d}", exist_ok=True)
def img(p):
    return Image.open(f"{src}/{p}")
for i in range(8):
    img(f"train/good/{i:03d}.png").save(f"{out}/train/{i:03d}.png")
# normal: RGB PNG 900, gray JPEG 640, gray PNG 512
img("test/good/000.png").save(f"{out}/test/good/g_1.png")
img("test/good/001.png").convert("L").resize((640, 640)).save(f"{out}/test/good/g_2.jpg", quality=95)
img("test/good/002.png").convert("L").resize((512, 512)).save(f"{out}/test/good/g_10.png")
# defective: (image, size, mode, format) and (mask, size, mode)
cases = {
    "x_1":  ("broken_large/000", None, "RGB", "png", None, "L"),
    "x_2":  ("broken_small/001", (600, 600), "RGB", "jpg", (300, 300), "RGB"),
    "x_10": ("contamination/002", (700, 700), "L", "png", None, "L"),
    "x_11": ("broken_large/003", (800, 600), "RGB", "png", (400, 300), "empty"),
}
for name, (s, size, mode, fmt, msize, mmode) in cases.items():
    im = img(f"test/{s}.png").convert(mode)
    if size:
        im = im.resize(size, Image.BILINEAR)
    im.save(f"{out}/test/broken/{name}.{fmt}", **({"quality": 95} if fmt == "jpg" else {}))
    m = img(f"ground_truth/{s}_mask.png").convert("L")
    if msize:
        m = m.resize(msize, Image.NEAREST)
    if mmode == "RGB":  # red on black: only one channel is non-zero
        a = np.asarray(m)
        m = Image.fromarray(np.stack([a, np.zeros_like(a), np.zeros_like(a)], -1))
    elif mmode == "empty":
        m = Image.new("L", m.size, 0)
    m.save(f"{out}/ground_truth/broken/{name}_mask.png")
print("made", sorted(os.listdir(f"{out}/test/broken")), sorted(os.listdir(f"{out}/ground_truth/broken")))
PYEOF

check fit 0 "" -- $NOM fit --backbone "$BB" --taps stage2,stage3 --train "$mv/train" \
    -o "$tmp/m.nmm" --coreset 0.1 --threads 2
check eval-mvtec-layout 0 "pixel AUROC" -- $NOM eval "$tmp/m.nmm" "$mv" --json "$tmp/mv.json" --threads 2
check eval-plain-layout 0 "pixel AUROC" -- $NOM eval "$tmp/m.nmm" --good "$mv/test/good" \
    --bad "$mv/test/broken" --masks "$mv/ground_truth/broken" --json "$tmp/plain.json" --threads 2 \
    --batch 3 # images of mixed sizes, several per call: same figures as one at a time
check predict-maps 0 "" -- $NOM predict "$tmp/m.nmm" "$mv/test/good" "$mv/test/broken" \
    --out "$tmp/maps" --json --threads 2
cp "$tmp/out" "$tmp/pred.jsonl"

"$PY" - "$tmp/pred.jsonl" "$mv" "$tmp/mv.json" "$tmp/plain.json" <<'PYEOF' || fails=$((fails + 1))
import json, os, sys
import numpy as np
from PIL import Image
sys.path.insert(0, "tests/tools")
from mvtec_metrics import auroc, au_pro
pred, mv, mv_json, plain_json = sys.argv[1:5]
rows = [json.loads(l) for l in open(pred) if l.strip()]
def stem(p):
    return os.path.splitext(os.path.basename(p))[0]
def mask_for(path, shape):
    # any channel non-zero, resized nearest (PIL) to the map's size
    m = Image.open(path).convert("RGB").resize((shape[1], shape[0]), Image.NEAREST)
    return np.asarray(m).any(axis=-1)
def pixel_figures(pairing):
    maps, masks = [], []
    for r in rows:
        m = np.load(r["map"])
        mp = pairing.get(r["image"])
        maps.append(m)
        masks.append(mask_for(mp, m.shape) if mp else np.zeros(m.shape, bool))
    return (auroc(np.concatenate([m.ravel() for m in maps]),
                  np.concatenate([k.ravel() for k in masks])), au_pro(maps, masks))
gt = f"{mv}/ground_truth/broken"
bad = sorted(r["image"] for r in rows if "/broken/" in r["image"])
by_name = {p: f"{gt}/{stem(p)}_mask.png" for p in bad}
by_position = dict(zip(bad, sorted(f"{gt}/{f}" for f in os.listdir(gt))))
print("position pairing would be:", {stem(k): stem(v) for k, v in by_position.items()})
ref, wrong = pixel_figures(by_name), pixel_figures(by_position)
fails = 0
for path in (mv_json, plain_json):
    j = json.load(open(path))
    for k, r, w in zip(("pixel_auroc", "au_pro"), ref, wrong):
        d = abs(j[k] - r)
        good = d <= 1e-6
        print(f"{'ok  ' if good else 'FAIL'} {os.path.basename(path)} {k}: nominal {j[k]:.8f}, "
              f"by name {r:.8f} (diff {d:.1e}), by position {w:.8f}")
        fails += not good
    img_ref = auroc([r["score"] for r in rows], ["/broken/" in r["image"] for r in rows])
    good = abs(j["image_auroc"] - img_ref) <= 1e-9 and j["images"] == 7 and j["anomalous_images"] == 4
    print(f"{'ok  ' if good else 'FAIL'} image AUROC {j['image_auroc']:.6f} vs {img_ref:.6f}, 7 images")
    fails += not good
sep = min(abs(r - w) for r, w in zip(ref, wrong))
print(f"{'ok  ' if sep > 1e-3 else 'FAIL'} position pairing differs by {sep:.4f} (the check can tell)")
fails += sep <= 1e-3
sys.exit(1 if fails else 0)
PYEOF

# a defective image without its mask: an error naming both, nothing scored
cp -r "$mv" "$tmp/nomask"
rm "$tmp/nomask/ground_truth/broken/x_2_mask.png"
check missing-mask 3 "broken/x_2.jpg: no mask .*x_2_mask.png" -- $NOM eval "$tmp/m.nmm" "$tmp/nomask"
check missing-mask-plain 3 "x_2.jpg: no mask" -- $NOM eval "$tmp/m.nmm" --good "$mv/test/good" \
    --bad "$tmp/nomask/test/broken" --masks "$tmp/nomask/ground_truth/broken"
check missing-masks-folder 3 "nope: masks folder not found" -- $NOM eval "$tmp/m.nmm" \
    --good "$mv/test/good" --bad "$mv/test/broken" --masks "$tmp/nope"
# an unreadable mask: an error naming the mask file
cp -r "$mv" "$tmp/badmask"
printf 'not a png' >"$tmp/badmask/ground_truth/broken/x_10_mask.png"
check corrupt-mask 4 "x_10_mask.png" -- $NOM eval "$tmp/m.nmm" "$tmp/badmask"
# only all-black masks: no pixel metrics, a note, and the image metrics stand
mkdir -p "$tmp/empty/test/good" "$tmp/empty/test/broken" "$tmp/empty/ground_truth/broken"
cp "$mv"/test/good/g_1.png "$tmp/empty/test/good/"
cp "$mv"/test/broken/x_11.png "$tmp/empty/test/broken/"
cp "$mv"/ground_truth/broken/x_11_mask.png "$tmp/empty/ground_truth/broken/"
check empty-masks 0 "note: no pixel metrics: .*no defect pixels" -- \
    $NOM eval "$tmp/m.nmm" "$tmp/empty" --json "$tmp/empty.json"
"$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(not (j['pixel_auroc'] is None and j['au_pro'] is None and j['image_auroc'] is not None))" \
    "$tmp/empty.json" && echo "ok   null pixel figures in JSON" || { echo "FAIL empty.json"; fails=$((fails + 1)); }
check both-layouts 2 "not both" -- $NOM eval "$tmp/m.nmm" "$mv" --good "$mv/test/good"

[ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
