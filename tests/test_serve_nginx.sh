#!/bin/sh
# Scale-out as docs/deploy.md describes it: `nominal serve` workers behind
# Debian's nginx (a private config in a temp dir, no root needed). Requests
# through nginx are spread over the workers (X-Nominal-Worker) and score
# the same on each; they keep succeeding after a worker is killed, and
# while another one stops gracefully (SIGTERM) under load
# (proxy_next_upstream error timeout http_503 non_idempotent).
set -u
BUILD=${NOMINAL_BUILD:-build}
SHARED=${NOMINAL_SHARED:-../shared}
NOM="$BUILD/nominal"
BOTTLE="$SHARED/data/mvtec_ad/bottle"
BB="$SHARED/models/resnet50v2_trunk.onnx"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -d "$BOTTLE" ] && [ -f "$BB" ] || { echo "skip: $SHARED data/models not found"; exit 77; }
[ -x "$NGINX" ] || { echo "skip: nginx not installed (scripts/deps.sh --test: nginx-light)"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl not installed (scripts/deps.sh --test)"; exit 77; }
. tests/lib.sh
. tests/serve_lib.sh

mkdir -p "$tmp/train"
for i in 000 001 002 003; do cp "$BOTTLE/train/good/$i.png" "$tmp/train/"; done
check fit 0 "bank:" -- "$NOM" fit --backbone "$BB" --taps stage2,stage3 --threads 2 \
    --train "$tmp/train" -o "$tmp/bottle.nmm" --coreset 0.1

# Three workers sharing the machine's cores, one thread each, with room
# to queue every request of the bursts below (else they answer 503 too).
for w in a b c; do
    serve_start "$tmp/$w.log" "$tmp/bottle.nmm" --threads 1 --queue 8 --name worker-$w || { echo "FAIL start $w"; exit 1; }
    eval "pid_$w=$srv_pid port_$w=$srv_port url_$w=$srv_url"
done

# nginx: everything (pid, logs, temp files) under $tmp/nginx; one process
# (master_process off) so that no worker switches to another user.
ng="$tmp/nginx"
mkdir -p "$ng/logs" "$ng/tmp"
start_nginx() {
    cat >"$ng/nginx.conf" <<NGEOF
daemon off;
master_process off;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections 128; }
http {
    log_format upstreams '\$status \$upstream_status';
    access_log $ng/logs/access.log upstreams;
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    client_max_body_size 32m;
    upstream nominal {
        server 127.0.0.1:$port_a max_fails=1 fail_timeout=30s;
        server 127.0.0.1:$port_b max_fails=1 fail_timeout=30s;
        server 127.0.0.1:$port_c max_fails=1 fail_timeout=30s;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$ng_port;
        location / {
            proxy_pass http://nominal;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_read_timeout 120s;
        }
    }
}
NGEOF
    "$NGINX" -p "$ng" -c "$ng/nginx.conf" -e "$ng/logs/error.log" &
    ng_pid=$!
    srv_all="$srv_all $ng_pid"
}
for attempt in 1 2 3 4 5; do
    ng_port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
    start_nginx
    i=0
    while [ $i -lt 100 ] && kill -0 $ng_pid 2>/dev/null &&
          ! curl -sf -o /dev/null "http://127.0.0.1:$ng_port/healthz"; do sleep 0.1; i=$((i + 1)); done
    kill -0 $ng_pid 2>/dev/null && break
    grep -q "in use" "$ng/logs/error.log" || { echo "FAIL nginx did not start"; cat "$ng/logs/error.log"; exit 1; }
done
echo "ok   nginx on port $ng_port in front of workers on $port_a, $port_b, $port_c"
srv_url="http://127.0.0.1:$ng_port"

img="$BOTTLE/test/broken_large/000.png"
"$NOM" predict "$tmp/bottle.nmm" "$img" --json --threads 1 >"$tmp/p.json"
want=$(json "$tmp/p.json" 'd["score"]')
: >"$tmp/workers"
for i in 1 2 3 4 5 6; do
    code=$(http r$i POST /v1/models/bottle/predict -H 'Content-Type: image/png' --data-binary "@$img")
    w=$(sed -n 's/^X-Nominal-Worker: *\([^\r]*\).*/\1/pi' "$tmp/r$i.head")
    echo "$code $w $(json "$tmp/r$i.body" 'd["score"]' 2>/dev/null)" >>"$tmp/workers"
done
sed 's/^/     /' "$tmp/workers"
expect all-ok 6 "$(grep -c "^200 worker-[abc] $want\$" "$tmp/workers")"
for w in a b c; do
    expect "spread-$w" 1 "$(grep -q " worker-$w " "$tmp/workers" && echo 1)"
done

# A worker dies (no goodbye): nginx moves its requests to the other.
kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null
: >"$tmp/after"
for i in 1 2 3 4; do
    code=$(http k$i POST /v1/models/bottle/predict -H 'Content-Type: image/png' --data-binary "@$img")
    echo "$code $(sed -n 's/^X-Nominal-Worker: *\([^\r]*\).*/\1/pi' "$tmp/k$i.head")" >>"$tmp/after"
done
expect survives-kill 4 "$(grep -c '^200 worker-[bc]$' "$tmp/after")"

# Worker b stops gracefully under load: it finishes what it holds and
# answers 503 to what arrives meanwhile, which nginx retries on c.
burst() { # WAVE: 4 requests at once in the background, pids in $bursts
    for i in 1 2 3 4; do
        http "$1$i" POST /v1/models/bottle/predict -H 'Content-Type: image/png' \
            --data-binary "@$img" >"$tmp/$1$i.code" &
        bursts="$bursts $!"
    done
}
bursts=""
burst g
i=0
while [ $i -lt 300 ] && ! curl -s "$url_b/metrics" | grep -q '^nominal_busy_workers 1'; do sleep 0.05; i=$((i + 1)); done
kill -TERM "$pid_b"
burst h
wait $bursts
wait "$pid_b"
expect b-exit 0 "$?"
codes=""
for f in "$tmp"/[gh]?.code; do codes="$codes$(cat "$f") "; done
expect survives-sigterm "200 200 200 200 200 200 200 200 " "$codes"
expect b-drained 1 "$(grep -c 'nominal serve: stopped' "$tmp/b.log")"
echo "     upstream statuses of retried requests: $(grep -c ', ' "$ng/logs/access.log") ($(grep ', ' "$ng/logs/access.log" | sort | uniq -c | tr -s ' \n' ' '))"
expect retried-503 1 "$(grep -q '^200 503, 200' "$ng/logs/access.log" && echo 1)"

kill -TERM $ng_pid
wait $ng_pid
serve_stop "$pid_c"
expect c-exit 0 "$srv_rc"
[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
