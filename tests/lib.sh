# Shared by the CLI test scripts (sourced, from the repository root):
# a temporary folder removed on exit, a failure count, and
#   check NAME EXPECTED_EXIT PATTERN -- command...
# which runs the command, and passes when it exits with EXPECTED_EXIT and
# (if PATTERN is not empty) its stdout or stderr contains PATTERN.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() {
    name=$1 want=$2 pat=$3; shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" != "$want" ]; then
        echo "FAIL $name: exit $rc, expected $want"; sed 's/^/    /' "$tmp/err" "$tmp/out" | head -8
        fails=$((fails + 1)); return
    fi
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$tmp/out" "$tmp/err"; then
        echo "FAIL $name: output lacks '$pat'"; sed 's/^/    /' "$tmp/out" "$tmp/err" | head -8
        fails=$((fails + 1)); return
    fi
    echo "ok   $name"
}
