#!/bin/sh
# A model is never lost: overwriting one with `nominal fit -o` and
#  1. killing the process (SIGKILL) in the middle of writing the new file,
#  2. running out of file size (ulimit -f, as a full disk looks to a writer),
#  3. running out of disk (a 64 KiB tmpfs, when this machine lets us mount
#     one in a private mount namespace),
# leaves the old model byte-identical and loadable; on the error paths the
# message names the file and says the disk is full, the exit code is 3, and
# no temp file is left behind. The writer is slowed down for the kill with
# the test hook NOMINAL_TEST_SLOW_WRITE (ms per write, src/io/atomic_file.c).
set -u
BUILD=${NOMINAL_BUILD:-build}
NOM="$(pwd)/$BUILD/nominal"
case "$BUILD" in /*) NOM="$BUILD/nominal" ;; esac
. tests/lib.sh
bi="$tmp/bi"
/usr/bin/python3 fuzz/bad_inputs.py --out "$bi" --nominal "$NOM" >"$tmp/gen.log" 2>&1 || {
    cat "$tmp/gen.log"; echo "FAIL fuzz/bad_inputs.py"; exit 1; }
IMG="$bi/train/000.png"
# a different model from the old one (another coreset size)
FIT="$NOM fit --backbone $bi/tiny.onnx --taps t1,t2 --train $bi/train --resize 32 --crop 32 --coreset 0.2 --tap_dim 8 --dim 8 --threads 1"
ok() { echo "ok   $1"; }
no() { echo "FAIL $1"; fails=$((fails + 1)); }
# old model intact: same bytes as the reference, and it still scores
intact() {
    cmp -s "$2" "$bi/tiny.nmm" && ok "$1: old model byte-identical" || no "$1: old model changed"
    "$NOM" predict "$2" "$IMG" >/dev/null 2>&1 && ok "$1: old model loads" || no "$1: old model does not load"
}
temps() { ls "$1" | grep -c '\.tmp\.' ; }

# -------------------------------------------------- 1. SIGKILL mid-write
mkdir -p "$tmp/kill"
cp "$bi/tiny.nmm" "$tmp/kill/m.nmm"
NOMINAL_TEST_SLOW_WRITE=300 $FIT -o "$tmp/kill/m.nmm" >/dev/null 2>&1 &
pid=$!
# wait (up to 60 s) until the temp file holds part of the new model
i=0
while [ $i -lt 600 ]; do
    t=$(ls "$tmp/kill" | grep '\.tmp\.' | head -1)
    [ -n "$t" ] && [ "$(stat -c %s "$tmp/kill/$t")" -ge 64 ] && break
    sleep 0.1; i=$((i + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null # (no "Killed" line from the shell)
rc=$?
[ -n "$t" ] && [ $rc -eq 137 ] && ok "killed while writing $t ($(stat -c %s "$tmp/kill/$t") bytes)" ||
    no "writer was not caught mid-write (exit $rc, temp '$t')"
intact sigkill "$tmp/kill/m.nmm"
echo "note: the killed writer's temp file stays (nothing can remove it after SIGKILL; it is never read)"
# control: the same slowed-down write, not killed, does replace the model
NOMINAL_TEST_SLOW_WRITE=20 $FIT -o "$tmp/kill/m.nmm" >/dev/null 2>&1 && ! cmp -s "$tmp/kill/m.nmm" "$bi/tiny.nmm" &&
    "$NOM" predict "$tmp/kill/m.nmm" "$IMG" >/dev/null 2>&1 && ok "control: an unkilled write replaces the model" ||
    no "control: the slowed-down write did not replace the model"

# -------------------------------------------- 2. file size limit (ulimit)
mkdir -p "$tmp/fsize"
cp "$bi/tiny.nmm" "$tmp/fsize/m.nmm"
# SIGXFSZ ignored: the write gets EFBIG instead of the process dying.
check file-size-limit 3 "m.nmm: write failed: file too large (the file size limit was reached)" -- \
    sh -c "trap '' XFSZ; ulimit -f 2; exec $FIT -o '$tmp/fsize/m.nmm'"
intact file-size-limit "$tmp/fsize/m.nmm"
[ "$(temps "$tmp/fsize")" -eq 0 ] && ok "file-size-limit: no temp file left" || no "file-size-limit: temp file left"

# ------------------------------------------------- 3. full disk (tmpfs)
cat >"$tmp/full.sh" <<EOF
set -u
d="$tmp/full"
mount -t tmpfs -o size=64k tmpfs "\$d" || exit 77
cp "$bi/tiny.nmm" "\$d/m.nmm"
# fill the disk, then give back one page: the new model (2 pages) starts
# writing and runs out of space in the middle
dd if=/dev/zero of="\$d/fill" bs=4096 2>/dev/null
truncate -s \$(( \$(stat -c %s "\$d/fill") - 4096 )) "\$d/fill"
$FIT -o "\$d/m.nmm" >"$tmp/full.out" 2>"$tmp/full.err"
echo \$? >"$tmp/full.rc"
cmp -s "\$d/m.nmm" "$bi/tiny.nmm" && echo same >"$tmp/full.same"
"$NOM" predict "\$d/m.nmm" "$IMG" >/dev/null 2>&1 && echo loads >"$tmp/full.loads"
ls "\$d" | grep -c '\.tmp\.' >"$tmp/full.temps"
exit 0
EOF
mkdir -p "$tmp/full"
mounted=0
for how in "unshare -m" "unshare -r -m"; do
    if $how sh "$tmp/full.sh" 2>/dev/null && [ -f "$tmp/full.rc" ]; then mounted=1; break; fi
done
if [ $mounted -eq 1 ]; then
    rc=$(cat "$tmp/full.rc")
    [ "$rc" -eq 3 ] && grep -q "m.nmm: write failed: no space left on device (the disk is full)" "$tmp/full.err" &&
        [ "$(wc -l <"$tmp/full.err")" -eq 1 ] &&
        ok "disk-full: exit 3, $(cat "$tmp/full.err")" || no "disk-full: exit $rc, '$(cat "$tmp/full.err")'"
    [ -f "$tmp/full.same" ] && ok "disk-full: old model byte-identical" || no "disk-full: old model changed"
    [ -f "$tmp/full.loads" ] && ok "disk-full: old model loads" || no "disk-full: old model does not load"
    [ "$(cat "$tmp/full.temps")" -eq 0 ] && ok "disk-full: no temp file left" || no "disk-full: temp file left"
else
    echo "note: cannot mount a tmpfs here (no unshare/mount permission): the full disk is covered by ulimit -f only"
fi

[ $fails -eq 0 ] || { echo "$fails durable-write checks failed"; exit 1; }
