#!/bin/sh
# PaDiM through the CLI on a handful of bottle images: fit/info/predict work
# unchanged with --method padim for each covariance model, fitting is
# deterministic for a seed and the seed picks the channels, and bad settings
# get a clear one-line error and exit 2.
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
. tests/lib.sh
mkdir -p "$tmp/train" "$tmp/one"
for i in 000 001 002 003 004 005; do cp "$BOTTLE/train/good/$i.png" "$tmp/train/"; done
cp "$BOTTLE/train/good/000.png" "$tmp/one/"
FIT="$NOM fit --method padim --backbone $BB --taps stage1,stage2,stage3 --threads 2"
img="$BOTTLE/test/broken_large/000.png"
good="$BOTTLE/test/good/000.png"

check fit-help 0 "cov=C" -- $NOM fit --help
check fit-full 0 "bank:       3136 x 40" -- $FIT --train "$tmp/train" -o "$tmp/full.nmm" --d 40
check info-model 0 "nominal model (padim)" -- $NOM info "$tmp/full.nmm"
check info-json 0 "tap_shapes" -- $NOM info --json "$tmp/full.nmm"
check predict-out 0 "" -- $NOM predict "$tmp/full.nmm" "$img" --out "$tmp/o" --json
for f in broken_large_000.map.npy broken_large_000.heatmap.png broken_large_000.overlay.png; do
    [ -s "$tmp/o/$f" ] && echo "ok   wrote $f" || { echo "FAIL missing $f"; fails=$((fails + 1)); }
done

# each model scores the defect above a good image (rank 3 is below the
# rank of 6 images' covariance: with rank >= 5 lowrank equals full exactly)
for cov in full diag lowrank; do
    extra=""
    [ "$cov" = lowrank ] && extra="--rank 3"
    [ "$cov" = full ] || check "fit-$cov" 0 "bank:" -- $FIT --train "$tmp/train" -o "$tmp/$cov.nmm" --d 40 --cov "$cov" $extra
    bad=$($NOM predict "$tmp/$cov.nmm" "$img" | awk '{print $2}')
    ok=$($NOM predict "$tmp/$cov.nmm" "$good" | awk '{print $2}')
    awk -v a="$bad" -v b="$ok" 'BEGIN { exit !(a > b) }' && echo "ok   $cov: defect $bad > good $ok" || {
        echo "FAIL $cov: defect $bad vs good $ok"; fails=$((fails + 1)); }
done

# the same seed gives the same model; another seed other channels
s1=$($NOM predict "$tmp/full.nmm" "$img" | awk '{print $2}')
$FIT --train "$tmp/train" -o "$tmp/again.nmm" --d 40 >/dev/null 2>&1
s2=$($NOM predict "$tmp/again.nmm" "$img" | awk '{print $2}')
[ -n "$s1" ] && [ "$s1" = "$s2" ] && echo "ok   deterministic ($s1)" || { echo "FAIL deterministic: $s1 vs $s2"; fails=$((fails + 1)); }
$FIT --train "$tmp/train" -o "$tmp/seed.nmm" --d 40 --seed 1 >/dev/null 2>&1
s3=$($NOM predict "$tmp/seed.nmm" "$img" | awk '{print $2}')
[ -n "$s3" ] && [ "$s1" != "$s3" ] && echo "ok   seed 1 scores $s3" || { echo "FAIL seed ignored: $s3"; fails=$((fails + 1)); }

check bad-cov 2 "cov=banana: expected 'full', 'diag' or 'lowrank'" -- $FIT --train "$tmp/train" -o "$tmp/x.nmm" --cov banana
check rank-not-lowrank 2 "rank applies to cov=lowrank only" -- $FIT --train "$tmp/train" -o "$tmp/x.nmm" --rank 8
check bad-d 2 "d=0: expected an integer" -- $FIT --train "$tmp/train" -o "$tmp/x.nmm" --d 0
check d-too-large 2 "d=2000 exceeds the 1792 channels" -- $FIT --train "$tmp/train" -o "$tmp/x.nmm" --d 2000
check rank-too-large 2 "rank=40 must be below d=40" -- $FIT --train "$tmp/train" -o "$tmp/x.nmm" --d 40 --cov lowrank --rank 40
check one-image 2 "at least 2 training images, got 1" -- $FIT --train "$tmp/one" -o "$tmp/x.nmm" --d 40
check unknown-setting 2 "unknown setting 'coreset'" -- $FIT --train "$tmp/train" -o "$tmp/x.nmm" --coreset 0.1
[ ! -e "$tmp/x.nmm" ] && echo "ok   no model written on error" || { echo "FAIL model written on error"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ]
