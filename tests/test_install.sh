#!/bin/sh
# `make install` into a temporary prefix, then build examples/features.c
# against the installed library with pkg-config alone, and run it.
set -eu
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
case "$BUILD" in *asan*) echo "skip: install test runs in the normal build only"; exit 77;; esac
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make -s install PREFIX="$prefix" BUILD="$BUILD" >/dev/null
for f in lib/libnominal.a lib/libnominal.so include/nominal.h bin/nominal lib/pkgconfig/nominal.pc; do
    [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs nominal)
echo "pkg-config: $flags"
cc -std=c11 -Wall -Wextra -Werror examples/features.c $flags -o "$prefix/features_example"
"$prefix/bin/nominal" --version
model="$SHARED/models/resnet50v2_trunk.onnx"
img="$SHARED/data/mvtec_ad/bottle/test/good/000.png"
if [ ! -f "$model" ] || [ ! -f "$img" ]; then
    echo "skip run: $SHARED models/data not found"; exit 77
fi
out=$(LD_LIBRARY_PATH="$prefix/lib" "$prefix/features_example" "$model" stage3 "$img")
echo "$out"
echo "$out" | grep -q "stage3 shape 1x1024x14x14" || { echo "unexpected output"; exit 1; }
