#!/bin/sh
# Seed corpora for the fuzz targets, in $FUZZ_BUILD/seeds/<kind>/ (never
# committed: made by fuzz/corpus.py from tests/tools' generators,
# fuzz/bad_inputs.py and the CLI). Remade when a generator is newer than the
# last run.
#   png/ jpeg/     valid images of every kind the decoders handle, broken ones
#   onnx/          tiny valid backbones, every supported op, broken graphs
#   model/         a tiny fitted model, its truncations and variants
#   meta_json/     that model's META JSON and variants
#   calibration_json/  CALI texts of that model calibrated by the CLI (FPR,
#                  FNR, F1), variants and truncations
#   http/          raw requests for `nominal serve` (every endpoint, good and
#                  bad bodies, pipelined), truncations
#   template.nmm   the model fuzz_meta_json wraps its input in (fuzz_http
#                  serves it as "tiny")
#   calibrated.nmm the same, calibrated (fuzz_http serves it as "tiny_cal")
set -eu
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
NOMINAL=${NOMINAL:-build/nominal}
PY=/usr/bin/python3
seeds="$FUZZ_BUILD/seeds"
stamp="$seeds/.done"
if [ -f "$stamp" ] && [ -z "$(find fuzz tests/tools -newer "$stamp" -type f | head -1)" ]; then
    exit 0
fi
echo "fuzz: making seed corpora in $seeds" >&2
rm -rf "$seeds"
mkdir -p "$seeds"
"$PY" fuzz/corpus.py --out "$seeds" --nominal "$NOMINAL" >"$FUZZ_BUILD/corpus.log" 2>&1 || {
    cat "$FUZZ_BUILD/corpus.log" >&2; exit 1; }
for d in "$seeds"/*/; do
    [ "$(basename "$d")" = work ] || echo "fuzz: $(ls "$d" | wc -l) seeds in $d" >&2
done
touch "$stamp"
