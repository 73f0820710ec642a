#!/bin/sh
# `make valgrind`: memcheck on what the sanitizers cannot see into (oneDNN's
# JIT code, libpng, libjpeg-turbo, protobuf-c and OpenBLAS are not built
# with ASan, so their reads of our buffers are only checked here):
#  - the CLI: a small PatchCore fit on bottle (3 images, --coreset 0.01) and
#    a predict writing every output, when ../shared is there;
#  - the CLI on the tiny backbone and model of fuzz/bad_inputs.py: fit,
#    predict, and loading every bad backbone and model file (no ../shared);
#  - a few unit test binaries (image decoding, model files, ONNX loading).
# Every run must end with no memcheck error and no definite, indirect or
# possible leak. tests/valgrind.supp holds the only suppressions, each
# third-party noise with the reason it is not ours. Two settings:
#  - OMP_WAIT_POLICY=passive: spinning OpenMP workers make memcheck (which
#    runs one thread at a time) crawl;
#  - DNNL_MAX_CPU_ISA=AVX: oneDNN's AVX2 GEMM kernels load whole 8-float
#    vectors past the end of oneDNN's own scratchpad (memcheck: "Invalid
#    read of size 32 ... 0 bytes after a block alloc'd by posix_memalign in
#    libdnnl ... dnnl_primitive_execute"; the extra lanes are never used).
#    Those reads come from JIT code with no symbol, so no suppression could
#    name them without also hiding JIT reads past *our* buffers; oneDNN's
#    AVX kernels have no such reads, and they are 10x faster under memcheck.
set -u
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
export NOMINAL_SHARED="$SHARED" NOMINAL_BUILD="$BUILD" NOMINAL_FIXTURES="${FIXTURES:-$BUILD/fixtures}"
NOM="$BUILD/nominal"
export OMP_WAIT_POLICY=passive DNNL_MAX_CPU_ISA=AVX
VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
    --show-leak-kinds=definite,indirect,possible --num-callers=40 --suppressions=tests/valgrind.supp"
command -v valgrind >/dev/null || { echo "valgrind: not installed (scripts/deps.sh --test)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 runs=0
start=$(date +%s)
# vg NAME EXPECTED_EXIT command...: memcheck errors exit 99
vg() {
    name=$1 want=$2; shift 2
    runs=$((runs + 1))
    t0=$(date +%s)
    $VG "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 99 ] || [ $rc -ne "$want" ]; then
        echo "FAIL $name: exit $rc (expected $want; 99 = memcheck errors)"
        grep -v '^nominal' "$tmp/err" | head -60 | sed 's/^/    /'
        fails=$((fails + 1))
    else
        echo "ok   $name ($(( $(date +%s) - t0 )) s)"
    fi
}

bi="$tmp/bi"
/usr/bin/python3 fuzz/bad_inputs.py --out "$bi" --nominal "$NOM" >"$tmp/gen.log" 2>&1 || {
    cat "$tmp/gen.log"; echo "FAIL fuzz/bad_inputs.py"; exit 1; }
vg tiny-fit 0 "$NOM" fit --backbone "$bi/tiny.onnx" --taps t1,t2 --train "$bi/train" \
    -o "$tmp/tiny.nmm" --resize 32 --crop 32 --coreset 0.05 --threads 2
vg tiny-predict 0 "$NOM" predict "$tmp/tiny.nmm" "$bi/train" --out "$tmp/tiny_out" --json
# FILE:EXIT, as tests/test_bad_inputs.sh expects them
for f in input_4ch:5 bn_mismatch:4 add_fused_mismatch:4 relu_no_input:4 concat_explosion:4 \
         empty_weight:5 newline_name:5; do
    vg "bad-onnx-${f%:*}" "${f#*:}" "$NOM" bench backbone "$bi/onnx/${f%:*}.onnx" --size 16 --iters 1 --warmup 0
done
for f in bank_wrap:4 onnx_4ch:5 meta_tap_missing:4 meta_pre_std_zero:4 meta_deep:4 meta_patch_huge:4; do
    vg "bad-model-${f%:*}" "${f#*:}" "$NOM" predict "$bi/model/${f%:*}.nmm" "$bi/train/000.png"
done

BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
if [ -d "$BOTTLE" ] && [ -f "$BB" ]; then
    mkdir -p "$tmp/train"
    cp "$BOTTLE"/train/good/00[0-2].png "$tmp/train/"
    vg bottle-fit 0 "$NOM" fit --backbone "$BB" --taps stage2,stage3 --train "$tmp/train" \
        -o "$tmp/m.nmm" --coreset 0.01 --threads 1
    vg bottle-predict 0 "$NOM" predict "$tmp/m.nmm" "$BOTTLE/test/broken_large/000.png" \
        --out "$tmp/out_maps" --threads 1
else
    echo "note: $SHARED data/models not found: bottle fit/predict under valgrind skipped"
fi

for t in test_image test_model_file test_onnx_graph; do
    vg "$t" 0 "$BUILD/tests/$t"
done
echo "valgrind: $runs runs, $fails failed, $(( $(date +%s) - start )) s"
[ $fails -eq 0 ]
