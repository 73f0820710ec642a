#!/bin/sh
# `nominal serve` on loopback with a small PatchCore bottle model: scores
# over HTTP equal `nominal predict` (JSON, PNG and JPEG bodies), maps equal
# predict's files byte for byte, every bad request gets its 4xx JSON error
# and is counted in /metrics while the server keeps serving, a full queue
# answers 503 + Retry-After, and SIGTERM lets the request in flight finish.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl not installed (scripts/deps.sh --test)"; exit 77; }
. tests/lib.sh
. tests/serve_lib.sh

check serve-help 0 "/v1/models/NAME/predict" -- "$NOM" serve --help
check serve-no-model 2 "missing MODEL" -- "$NOM" serve
check serve-bad-size 2 "max-body" -- "$NOM" serve x.nmm --max-body 12Q
check serve-missing-model 3 "nope.nmm" -- "$NOM" serve "$tmp/nope.nmm"

mkdir -p "$tmp/train"
for i in 000 001 002 003 004 005; do cp "$BOTTLE/train/good/$i.png" "$tmp/train/"; done
check fit 0 "bank:" -- "$NOM" fit --backbone "$BB" --taps stage2,stage3 --threads 2 \
    --train "$tmp/train" -o "$tmp/bottle.nmm" --coreset 0.1
cp "$tmp/bottle.nmm" "$tmp/bad name.nmm"
check serve-bad-model-name 2 "may only use" -- "$NOM" serve "$tmp/bad name.nmm"

# Same thread count as the server's worker, so both run the same kernels.
serve_start "$tmp/s1.log" "$tmp/bottle.nmm" --workers 1 --threads 2 --name w1 --max-body 1M ||
    { echo "FAIL server start"; exit 1; }
s1=$srv_pid
echo "ok   server up on port $srv_port"
check serve-port-taken 3 "cannot listen" -- "$NOM" serve "$tmp/bottle.nmm" --listen "127.0.0.1:$srv_port"

expect healthz 200 "$(http hz GET /healthz)"
expect healthz-worker-header 1 "$(grep -ci '^X-Nominal-Worker: w1' "$tmp/hz.head")"
expect models 200 "$(http models GET /v1/models)"
expect models-list "bottle patchcore 224 None" \
    "$(json "$tmp/models.body" '" ".join(str(x) for x in (d["models"][0]["name"], d["models"][0]["method"], d["models"][0]["input"]["crop_width"], d["models"][0]["calibration"]))')"

expect model-one "200 bottle 470" "$(http m1 GET /v1/models/bottle) $(json "$tmp/m1.body" 'd["name"], d["memory_bank"]' | tr -d "(),'")"
expect model-unknown 404 "$(http m2 GET /v1/models/nope)"
expect demo-off 404 "$(http demooff GET /demo/000.png)"
expect unknown-path 404 "$(http nopath GET /v2/whatever)"

# Scores: the server's JSON number is printed exactly as predict --json's.
score_of() { sed -n 's/.*"score":\([^,]*\),.*/\1/p' "$1"; }
/usr/bin/python3 -c "
from PIL import Image
Image.open('$BOTTLE/test/contamination/000.png').save('$tmp/contamination.jpg', quality=90)"
for img in "$BOTTLE/test/good/000.png" "$BOTTLE/test/broken_large/000.png" "$tmp/contamination.jpg"; do
    type=image/png
    case "$img" in *.jpg) type=image/jpeg ;; esac
    "$NOM" predict "$tmp/bottle.nmm" "$img" --json --threads 2 >"$tmp/p.json"
    code=$(http pred POST /v1/models/bottle/predict -H "Content-Type: $type" --data-binary "@$img")
    want=$(score_of "$tmp/p.json")
    got=$(score_of "$tmp/pred.body")
    [ "$code" = 200 ] && [ -n "$want" ] && [ "$want" = "$got" ] &&
        echo "ok   score $(basename "$img") $got = predict" ||
        { echo "FAIL score $(basename "$img"): HTTP $code, '$got' vs predict '$want'"; cat "$tmp/pred.body"; fails=$((fails + 1)); }
done
expect predict-json-fields "None None 900 900 w1 True" "$(json "$tmp/pred.body" \
    '" ".join(str(x) for x in (d["decision"], d["p_value"], d["width"], d["height"], d["worker"], all(k in d["latency_ms"] for k in ("total", "queue", "decode", "preprocess", "backbone", "method", "map"))))')"

# Maps: the same pictures as predict --out writes.
img="$BOTTLE/test/broken_large/000.png"
"$NOM" predict "$tmp/bottle.nmm" "$img" --out "$tmp/maps" --threads 2 >/dev/null
expect overlay 200 "$(http ov POST '/v1/models/bottle/predict?map=overlay' -H 'Content-Type: image/png' --data-binary "@$img")"
expect overlay-png "PNG 900 900" "$(/usr/bin/python3 -c "
from PIL import Image
im = Image.open('$tmp/ov.body'); im.load(); print(im.format, *im.size)")"
cmp -s "$tmp/ov.body" "$tmp/maps/broken_large_000.overlay.png" && echo "ok   overlay = predict's overlay.png" ||
    { echo "FAIL overlay differs from predict's"; fails=$((fails + 1)); }
expect overlay-score-header 1 "$(grep -ci '^X-Nominal-Score: ' "$tmp/ov.head")"
expect heatmap 200 "$(http hm POST '/v1/models/bottle/predict?map=png' -H 'Content-Type: image/png' --data-binary "@$img")"
cmp -s "$tmp/hm.body" "$tmp/maps/broken_large_000.heatmap.png" && echo "ok   heatmap = predict's heatmap.png" ||
    { echo "FAIL heatmap differs from predict's"; fails=$((fails + 1)); }

# Bad requests: status, JSON error kind, and the server goes on.
/usr/bin/python3 - "$tmp" <<'PYEOF'
import struct, sys, zlib
from PIL import Image
d = sys.argv[1]
def chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))
# a decompression bomb: the header declares 100000 x 100000 RGB (30 GB)
ihdr = struct.pack('>IIBBBBB', 100000, 100000, 8, 2, 0, 0, 0)
idat = zlib.compress(b'\0' * (100000 * 3 + 1) * 4)
open(d + '/bomb.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', idat) + chunk(b'IEND', b''))
# a valid image over the 1M body limit (uncompressed 900 x 900 RGB)
Image.new('RGB', (900, 900), (90, 90, 90)).save(d + '/big.png', compress_level=0)
PYEOF
head -c 100000 "$img" >"$tmp/trunc.png"
printf 'these are not image bytes' >"$tmp/garbage.png"
P=/v1/models/bottle/predict
bad() { # NAME STATUS KIND curl-args...
    n=$1 st=$2 kind=$3; shift 3
    code=$(http "$n" POST "$@")
    got="$code $(json "$tmp/$n.body" 'd["error"]["kind"]' 2>/dev/null)"
    expect "$n" "$st $kind" "$got"
}
bad wrong-type 415 unsupported_media_type $P -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$img"
bad no-type 415 unsupported_media_type $P -H 'Content-Type:' --data-binary "@$img"
bad too-large 413 body_too_large $P -H 'Content-Type: image/png' --data-binary "@$tmp/big.png"
bad unknown-model 404 not_found /v1/models/nope/predict -H 'Content-Type: image/png' --data-binary "@$img"
bad bomb 413 image_too_large $P -H 'Content-Type: image/png' --data-binary "@$tmp/bomb.png"
bad truncated 400 bad_image $P -H 'Content-Type: image/png' --data-binary "@$tmp/trunc.png"
bad garbage 400 bad_image $P -H 'Content-Type: image/png' --data-binary "@$tmp/garbage.png"
bad empty 400 empty_body $P -H 'Content-Type: image/png' --data-binary ''
bad bad-map 400 bad_request "$P?map=jpeg" -H 'Content-Type: image/png' --data-binary "@$img"
expect get-predict "405 1" "$(http getp GET $P) $(grep -ci '^Allow: POST' "$tmp/getp.head")"
expect error-is-json 1 "$(grep -ci '^Content-Type: application/json' "$tmp/bomb.head")"
expect still-serving 200 "$(http again POST $P -H 'Content-Type: image/png' --data-binary "@$img")"

# /metrics counted all of the above (3 scores, 2 maps, 1 after the errors;
# not_found: the unknown model, GET /v1/models/nope, /demo/ off, /v2/...).
expect metrics 200 "$(http metrics GET /metrics)"
metric() { grep -F "$1" "$tmp/metrics.body" | awk '{print $2}'; }
expect metric-200 6 "$(metric 'nominal_requests_total{endpoint="predict",model="bottle",code="200"}')"
expect metric-415 2 "$(metric 'nominal_requests_total{endpoint="predict",model="bottle",code="415"}')"
expect metric-413 2 "$(metric 'nominal_requests_total{endpoint="predict",model="bottle",code="413"}')"
expect metric-400 4 "$(metric 'nominal_requests_total{endpoint="predict",model="bottle",code="400"}')"
expect metric-404 1 "$(metric 'nominal_requests_total{endpoint="predict",model="",code="404"}')"
for k in unsupported_media_type:2 body_too_large:1 image_too_large:1 bad_image:2 empty_body:1 \
         not_found:4 method_not_allowed:1 bad_request:1 overloaded:0; do
    expect "metric-error-${k%:*}" "${k#*:}" "$(metric "nominal_errors_total{kind=\"${k%:*}\"}")"
done
# every predict request naming the model, answered or refused
expect metric-histogram 15 "$(metric 'nominal_request_duration_seconds_bucket{model="bottle",le="+Inf"}')"

serve_stop "$s1"
expect s1-exit 0 "$srv_rc"

# A full queue: one worker, no waiting room; of 4 requests at once the
# first is scored and at least one of the others gets 503 + Retry-After.
serve_start "$tmp/s2.log" "$tmp/bottle.nmm" --workers 1 --queue 0 --threads 2 ||
    { echo "FAIL server 2 start"; exit 1; }
s2=$srv_pid
bursts=""
for i in 1 2 3 4; do
    http "burst$i" POST $P -H 'Content-Type: image/png' --data-binary "@$img" >"$tmp/burst$i.code" &
    bursts="$bursts $!"
done
wait $bursts
n200=0 n503=0
for i in 1 2 3 4; do
    case "$(cat "$tmp/burst$i.code")" in 200) n200=$((n200 + 1)) ;; 503) n503=$((n503 + 1)) ;; esac
done
echo "     burst of 4: $n200 x 200, $n503 x 503"
[ $n200 -ge 1 ] && [ $n503 -ge 1 ] && [ $((n200 + n503)) -eq 4 ] && echo "ok   busy -> 503" ||
    { echo "FAIL busy: expected 200s and 503s only"; fails=$((fails + 1)); }
for i in 1 2 3 4; do
    if grep -q '^503' "$tmp/burst$i.code"; then
        expect "retry-after-$i" "1 overloaded" "$(grep -ci '^Retry-After: ' "$tmp/burst$i.head") $(json "$tmp/burst$i.body" 'd["error"]["kind"]')"
    fi
done

# SIGTERM while an image is being scored: that request completes, then
# the server exits 0.
http term POST "$P?map=overlay" -H 'Content-Type: image/png' --data-binary "@$img" >"$tmp/term.code" &
term=$!
i=0
while [ $i -lt 300 ] && ! curl -s "$srv_url/metrics" | grep -q '^nominal_busy_workers 1'; do sleep 0.05; i=$((i + 1)); done
serve_stop "$s2"
wait $term
expect sigterm-request-finished 200 "$(cat "$tmp/term.code")"
cmp -s "$tmp/term.body" "$tmp/maps/broken_large_000.overlay.png" && echo "ok   its overlay is complete" ||
    { echo "FAIL overlay after SIGTERM differs"; fails=$((fails + 1)); }
expect sigterm-exit 0 "$srv_rc"
expect sigterm-log 1 "$(grep -c 'nominal serve: stopped' "$tmp/s2.log")"

# A calibrated model: the decision and p-value equal predict --json's, in
# the JSON, the map answer's headers and the model description.
mkdir -p "$tmp/calgood"
for i in 010 011 012 013 014; do cp "$BOTTLE/train/good/$i.png" "$tmp/calgood/"; done
cp "$tmp/bottle.nmm" "$tmp/cal.nmm"
check calibrate 0 "threshold" -- "$NOM" calibrate "$tmp/cal.nmm" --good "$tmp/calgood" \
    --target-fpr 0.2 --threads 2
serve_start "$tmp/s3.log" "$tmp/cal.nmm" --workers 1 --threads 2 --name w3 ||
    { echo "FAIL calibrated server start"; exit 1; }
s3=$srv_pid
img="$BOTTLE/test/broken_large/000.png"
"$NOM" predict "$tmp/cal.nmm" "$img" --json --threads 2 >"$tmp/pc.json"
expect cal-predict 200 "$(http cp POST /v1/models/cal/predict -H 'Content-Type: image/png' --data-binary "@$img")"
fields='" ".join(str(x) for x in (d["score"], d["decision"], d["p_value"]))'
expect cal-decision "$(json "$tmp/pc.json" "$fields")" "$(json "$tmp/cp.body" "$fields")"
expect cal-decision-is-anomaly ANOMALY "$(json "$tmp/cp.body" 'd["decision"]')"
expect cal-map 200 "$(http cm POST '/v1/models/cal/predict?map=overlay' -H 'Content-Type: image/png' --data-binary "@$img")"
expect cal-map-headers 2 "$(grep -ciE '^X-Nominal-(Decision: ANOMALY|P-Value: )' "$tmp/cm.head")"
expect cal-model "fpr 0.2 5" "$(http cmod GET /v1/models/cal >/dev/null; json "$tmp/cmod.body" '" ".join(str(x) for x in (d["calibration"]["kind"], d["calibration"]["target"], d["calibration"]["n_good"]))')"
serve_stop "$s3"

[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
