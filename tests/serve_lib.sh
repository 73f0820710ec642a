# Shared by tests/test_serve*.sh (sourced after tests/lib.sh): run
# `nominal serve` on a free loopback port and talk to it with curl.
#   serve_start LOG ARGS...  start a server; sets srv_pid, srv_port, srv_url
#   serve_stop PID           SIGTERM it and wait; sets srv_rc (its exit code)
#   http NAME METHOD PATH [curl args...]  one request: $tmp/NAME.body,
#                            $tmp/NAME.head; prints the status code
#   json FILE EXPR           a value from a JSON file (EXPR on `d`, Python)
#   raw NAME FILE            a raw request from a file (below)
# Servers still running when the script exits are stopped.
PY=/usr/bin/python3
srv_all=""
trap 'for p in $srv_all; do kill -TERM "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

# civetweb cannot bind port 0, so pick a random high port and retry when it
# is taken (the server then exits saying "cannot listen").
serve_start() {
    srv_log=$1; shift
    for attempt in 1 2 3 4 5 6; do
        srv_port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
        srv_url="http://127.0.0.1:$srv_port"
        "$NOM" serve "$@" --listen "127.0.0.1:$srv_port" >"$srv_log" 2>&1 &
        srv_pid=$!
        srv_all="$srv_all $srv_pid"
        i=0
        while [ $i -lt 1200 ]; do
            # "listening" first: a healthz answer alone could come from
            # someone else's server on that port
            if grep -q "listening on" "$srv_log" && curl -sf -o /dev/null "$srv_url/healthz"; then
                return 0
            fi
            kill -0 "$srv_pid" 2>/dev/null || break
            sleep 0.1
            i=$((i + 1))
        done
        if kill -0 "$srv_pid" 2>/dev/null; then
            echo "server did not become ready:"; cat "$srv_log"; kill -TERM "$srv_pid"; return 1
        fi
        wait "$srv_pid"
        grep -q "cannot listen" "$srv_log" || { echo "server failed:"; cat "$srv_log"; return 1; }
    done
    echo "no free port found"; return 1
}

serve_stop() {
    kill -TERM "$1"
    wait "$1"
    srv_rc=$?
}

http() {
    name=$1 method=$2 path=$3; shift 3
    curl -s -X "$method" -o "$tmp/$name.body" -D "$tmp/$name.head" -w '%{http_code}' "$@" \
        "$srv_url$path"
}

json() {
    $PY -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# raw NAME FILE: FILE's bytes as the whole of one connection (sent, then
# the sending side closed), the answers in $tmp/NAME.resp; prints the first
# answer's status and error kind ("404 not_found", "200 -"), "not-json"
# when an error body is not UTF-8 JSON, "no-answer" when none came.
raw() {
    $PY - "$srv_port" "$2" "$tmp/$1.resp" <<'PYEOF'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
try:
    s.sendall(open(sys.argv[2], "rb").read())
    s.shutdown(socket.SHUT_WR)
except OSError:
    pass  # the server answered early and closed: read what it said
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except OSError:
    pass
open(sys.argv[3], "wb").write(out)
head, _, body = out.partition(b"\r\n\r\n")
parts = head.split(b" ")
if len(parts) < 2:
    print("no-answer")
    sys.exit()
status = parts[1].decode()
for line in head.split(b"\r\n"):
    if line.lower().startswith(b"content-length:"):
        body = body[:int(line.split(b":")[1])]
kind = "-"
if not status.startswith("2"):
    try:
        kind = json.loads(body)["error"]["kind"]
    except (ValueError, KeyError, TypeError):
        kind = "not-json"
print(status, kind)
PYEOF
}

# expect NAME WANTED GOT: one result line, counted in $fails like check
expect() {
    if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got '$3', expected '$2'"; fails=$((fails + 1)); fi
}
