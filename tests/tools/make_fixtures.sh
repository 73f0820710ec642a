#!/bin/sh
# Make the reference data the C tests compare against, with Debian's
# python3-torch / torchvision / PIL. Each generator tests/tools/gen_NAME.py
# writes into $FIXTURES/NAME/; it is re-run when any file in tests/tools
# is newer than its stamp. Nothing here is committed: fixtures are made on
# the machine running the tests.
set -eu
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
FIXTURES=${FIXTURES:-$BUILD/fixtures}
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
    echo "fixtures: $PY not found; run scripts/deps.sh --test" >&2
    exit 1
fi
for gen in tests/tools/gen_*.py; do
    [ -e "$gen" ] || continue
    name=$(basename "$gen" .py); name=${name#gen_}
    out="$FIXTURES/$name"
    stamp="$out/.done"
    if [ -f "$stamp" ] && [ -z "$(find tests/tools -newer "$stamp" -type f | head -1)" ]; then
        continue
    fi
    echo "fixtures: generating $name" >&2
    rm -rf "$out"; mkdir -p "$out"
    start=$(date +%s)
    "$PY" "$gen" --out "$out" --shared "$SHARED" --nominal "$BUILD/nominal" >"$out.log" 2>&1 || {
        cat "$out.log" >&2; echo "fixtures: $gen failed" >&2; exit 1; }
    echo "fixtures: $name done in $(( $(date +%s) - start )) s" >&2
    touch "$stamp"
done
