#!/bin/sh
# The page at GET / in headless Chromium: with ?demo= it fetches a bottle
# image from the server (--demo-images), posts it, and shows the overlay;
# the test reads the resulting DOM (title "done score=S", S the server's
# score) and checks the screenshot shows the heatmap. A broken image ends
# in the page's error line instead. The screenshot is kept in
# $BUILD/tests/serve_page.png.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
for t in curl chromium; do
    command -v $t >/dev/null || { echo "skip: $t not installed (scripts/deps.sh --test)"; exit 77; }
done
. tests/lib.sh
. tests/serve_lib.sh

mkdir -p "$tmp/train" "$tmp/demo"
for i in 000 001 002 003; do cp "$BOTTLE/train/good/$i.png" "$tmp/train/"; done
cp "$BOTTLE/test/broken_large/000.png" "$tmp/demo/broken.png"
printf 'not an image' >"$tmp/demo/garbage.png"
check fit 0 "bank:" -- "$NOM" fit --backbone "$BB" --taps stage2,stage3 --threads 2 \
    --train "$tmp/train" -o "$tmp/bottle.nmm" --coreset 0.1
serve_start "$tmp/s.log" "$tmp/bottle.nmm" --workers 1 --threads 2 --demo-images "$tmp/demo" ||
    { echo "FAIL server start"; exit 1; }

expect page 200 "$(http page GET /)"
expect page-is-html 1 "$(grep -ci '^Content-Type: text/html' "$tmp/page.head")"
# self-contained: nothing fetched from elsewhere
expect page-no-external 0 "$(grep -ciE '(src|href)="(https?:)?//' "$tmp/page.body")"
expect demo-image 200 "$(http demo GET /demo/broken.png)"
cmp -s "$tmp/demo.body" "$tmp/demo/broken.png" && echo "ok   demo image bytes" || { echo "FAIL demo image bytes"; fails=$((fails + 1)); }
expect demo-missing 404 "$(http dm GET /demo/nope.png)"
expect demo-not-image 404 "$(http dn GET /demo/s.log)"
expect demo-traversal 404 "$(http dt GET /demo/..%2fs.log)"
expect score 200 "$(http score POST /v1/models/bottle/predict -H 'Content-Type: image/png' --data-binary "@$tmp/demo/broken.png")"
want=$(json "$tmp/score.body" 'd["score"]')

browse() { # OUT URL [extra chromium flags]: the DOM after the page settled
    out=$1 url=$2; shift 2
    rm -rf "$tmp/chrome"
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --disable-component-update --no-first-run --user-data-dir="$tmp/chrome" \
        --window-size=1280,1000 --virtual-time-budget=10000 "$@" "$url" >"$out" 2>"$tmp/chrome.err"
}
browse "$tmp/dom.html" "$srv_url/?model=bottle&demo=/demo/broken.png" --dump-dom
title=$(sed -n 's/.*<title>\([^<]*\)<\/title>.*/\1/p' "$tmp/dom.html")
echo "     page title: $title"
$PY -c "import sys; t, w = sys.argv[1], float(sys.argv[2]); sys.exit(not (t.startswith('done score=') and abs(float(t.split('=')[1]) - w) < 1e-5 * w))" \
    "$title" "$want" && echo "ok   page shows the server's score ($want)" ||
    { echo "FAIL page title '$title', expected done score=$want"; tail -5 "$tmp/chrome.err"; fails=$((fails + 1)); }
expect page-overlay-size 1 "$(grep -c 'broken.png, 900x900' "$tmp/dom.html")"

browse /dev/null "$srv_url/?model=bottle&demo=/demo/broken.png" --screenshot="$tmp/shot.png"
mkdir -p "$BUILD/tests" && cp "$tmp/shot.png" "$BUILD/tests/serve_page.png"
# Not blank, and the heatmap is on it: the page's own colours are greys,
# blues and a little red text, the overlay of this defect is red over
# tens of thousands of pixels.
expect screenshot "ok" "$($PY - "$tmp/shot.png" <<'PYEOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB')
px = list(im.getdata())
colours = len(set(px))
red = sum(1 for r, g, b in px if r > 120 and g < 60 and b < 60)
print('ok' if colours > 5000 and red > 20000 else 'blank or no overlay: %d colours, %d red' % (colours, red))
PYEOF
)"

browse "$tmp/bad.html" "$srv_url/?model=bottle&demo=/demo/garbage.png" --dump-dom
expect page-shows-error 1 "$(grep -c '<title>error HTTP 400 bad_image' "$tmp/bad.html")"

serve_stop "$srv_pid"
expect exit 0 "$srv_rc"
[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
