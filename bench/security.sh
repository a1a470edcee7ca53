#!/usr/bin/env bash
# bench/security.sh - what authentication and TLS termination cost in Tollgate, next to nginx,
# on loopback, in one bounded run.
#
# What it does (everything on 127.0.0.1, every process it starts is stopped on exit):
#   1. installs nginx and wrk if they are missing (apt-get),
#   2. builds Tollgate (`cargo build --release -p tollgate`) unless TOLLGATE_BIN is set,
#   3. makes an ECDSA P-256 self-signed certificate for bench.test (openssl), random
#      credentials and one HS256 JWT (python3 stdlib, far `exp`), and starts:
#        - an upstream nginx (1 worker) answering every path with "ok\n" (3 bytes, `return 200`),
#        - an nginx reverse proxy (keepalive pool to the upstream, as in proxy.sh) listening
#          on plain HTTP and on TLS (`listen ... ssl`, TLS 1.2/1.3, http/1.1, nginx's default
#          session resumption), and on a second TLS port with resumption off
#          (`ssl_session_tickets off; ssl_session_cache off;`: a full handshake every time),
#        - ONE Tollgate node (`serve`, plain and TLS listeners) with one API and the routes
#            /open   no policy
#            /key    key_auth: {}           (wrk sends `x-api-key: <app key>`)
#            /keyrl  key_auth + two rate limits by app (1e9/s and 1e9/min: never hit, so
#                    every request pays the full limit check) and a monthly quota by app
#            /jwt    jwt: HS256 secret      (wrk sends `Authorization: Bearer <token>`)
#            /basic  basic_auth: {}         (wrk sends `Authorization: Basic ...`; a verified
#                                            password is remembered for a minute, so almost
#                                            every request is a cache hit, as in production)
#          and a second API version in a product, /plan: key_auth, and the app subscribed to a
#          plan with a rate limit and a monthly quota (never hit) and a metered price: every
#          request pays entitlement, the plan's limits, quota-notice checks and metering
#          and the certificate twice in `certificates:`: once for `snis: [bench.test]` and
#          once without `snis` (the default, for clients that send no usable name),
#   4. waits until no cargo/rustc is running, checks every target with curl (200 and the
#      3-byte body with the credential; 401 without it; over TLS the bench.test certificate,
#      verified, by SNI and as the default), then measures with wrk (warm-up, measured run):
#      Part A - authentication (keep-alive, plain HTTP, path /open unless noted):
#        direct          wrk -> upstream nginx
#        nginx           wrk -> nginx proxy -> upstream
#        tg-open         wrk -> Tollgate /open  (no policy)
#        tg-key          wrk -> Tollgate /key   (key_auth)
#        tg-keyrl        wrk -> Tollgate /keyrl (key_auth + rate limits + quota)
#        tg-plan         wrk -> Tollgate /plan  (key_auth + subscription + plan limits + metering)
#        tg-jwt          wrk -> Tollgate /jwt   (jwt HS256)
#        tg-basic        wrk -> Tollgate /basic (basic_auth)
#      Part B - TLS termination (route /open, `Host: bench.test`; the HTTPS URLs are
#      https://bench.test:PORT/open and wrk's Lua script resolves every host to 127.0.0.1, so
#      wrk sends the SNI bench.test as a real client would. With the URL host 127.0.0.1 wrk
#      would send that IP address as SNI, which rustls ignores and logs as a WARN line per
#      handshake: that logging would be measured too):
#        nginx-tls / tollgate-tls               HTTPS, keep-alive
#        nginx-close / tollgate-close           plain HTTP, a new connection per request
#        nginx-tls-close / tollgate-tls-close   HTTPS, a new connection (and handshake) per
#                                               request (`Connection: close`)
#        nginx-tls-full-close                   the same against nginx's port without
#                                               resumption (full handshakes only)
#      wrk keeps its TLS session when it reconnects, so where the server resumes sessions the
#      per-connection rows measure resumed handshakes. How often each server resumes is probed
#      before measuring (`openssl s_client`, 20 reconnects in a row, each offering the session
#      of the one before, as wrk does) and printed with the report.
#   5. prints a Markdown report (stdout): req/s, p50/p99, wrk errors and non-2xx, CPU
#      microseconds per request and CPU % of the server under test (the upstream for direct,
#      the proxy otherwise; /proc/PID/stat utime+stime), the share of that CPU its busiest
#      thread used (with 2 workers ~50-60 % is an even spread; a row where one thread did
#      >= 85 % is flagged: the connections stayed on one worker, and that row's throughput is
#      closer to a one-worker figure), each auth route's throughput ratio to /open and its CPU
#      delta, and the tollgate/nginx ratios for TLS. Raw rows (one per run) go to
#      bench/out/security-<timestamp>.tsv. Progress and diagnostics go to stderr.
#
# Requirement checked: key-auth costs at most 10 % of Tollgate's own no-policy throughput
# (tg-key / tg-open >= 0.90, same node, same run), and key-auth plus rate limits likewise
# (tg-keyrl / tg-open >= 0.90), and the whole paid-plan path (tg-plan / tg-open >= 0.90).
#
# One mode only: nothing pinned, wrk WORKERS threads, both proxies WORKERS workers, upstream
# nginx UPSTREAM_WORKERS worker(s) (the unpinned mode of proxy.sh).
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [8]    seconds of each measured wrk run (wrapped in `timeout`)
#   WARMUP [2]      seconds of an unreported wrk run before each measured run (0 = none)
#   CONNS [64]      wrk connections
#   REPS [1]        repetitions of all targets; the table shows medians over reps
#   TARGETS ["direct nginx tg-open tg-key tg-jwt tg-basic nginx-tls tollgate-tls
#            nginx-close tollgate-close nginx-tls-close tollgate-tls-close nginx-tls-full-close"]
#   WORKERS [2]             proxy workers (nginx and Tollgate) and wrk threads
#   UPSTREAM_WORKERS [1]    nginx workers of the upstream
#   BASE_PORT [18080]       first port tried; the first 7 free ports from here are used
#   TOLLGATE_BIN            use this binary, skip the cargo build
#   BUILD_WAIT [600]        max seconds to wait for running cargo/rustc before measuring
#   OUT_DIR [bench/out]     where the raw TSV goes
#   KEEP_WORK [0]           1 = keep the temp work dir (configs, certificate, wrk output, logs)
#
# With the defaults: 13 runs of WARMUP + DURATION = 10 s, about 2.5-3 minutes in all.
# Example: TOLLGATE_BIN=target/release/tollgate ./bench/security.sh
#          DURATION=4 TARGETS="tg-open tg-key" ./bench/security.sh
set -euo pipefail

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
REPS=${REPS:-1}
ALL_TARGETS="direct nginx tg-open tg-key tg-keyrl tg-plan tg-jwt tg-basic nginx-tls tollgate-tls nginx-close tollgate-close nginx-tls-close tollgate-tls-close nginx-tls-full-close"
TARGETS=${TARGETS:-$ALL_TARGETS}
WORKERS=${WORKERS:-2}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
BASE_PORT=${BASE_PORT:-18080}
BUILD_WAIT=${BUILD_WAIT:-600}
KEEP_WORK=${KEEP_WORK:-0}
HOST=127.0.0.1      # loopback only
SNI=bench.test      # the certificate's name
BODY_BYTES=3        # "ok\n"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}

log() { printf '%s\n' "$*" >&2; }
die() { log "security.sh: $*"; exit 2; }

for v in DURATION WARMUP CONNS REPS WORKERS UPSTREAM_WORKERS BASE_PORT BUILD_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION > 0 && CONNS > 0 && REPS > 0 && WORKERS > 0 && UPSTREAM_WORKERS > 0 )) \
  || die "DURATION, CONNS, REPS, WORKERS and UPSTREAM_WORKERS must be > 0"
for t in $TARGETS; do
  [[ " $ALL_TARGETS " == *" $t "* ]] || die "unknown target '$t' (one of: $ALL_TARGETS)"
done
[[ -n ${TARGETS// /} ]] || die "TARGETS is empty"

# ---------------------------------------------------------------- tools
ensure_tools() {
  local missing=() t
  for t in nginx wrk; do command -v "$t" >/dev/null || missing+=("$t"); done
  if (( ${#missing[@]} )); then
    log "installing ${missing[*]} ..."
    if ! apt-get install -y --no-install-recommends nginx wrk >&2; then
      apt-get update >&2 && apt-get install -y --no-install-recommends nginx wrk >&2 \
        || die "cannot install nginx/wrk"
    fi
  fi
  for t in nginx wrk curl openssl python3 ss timeout awk ps pgrep od base64 cmp; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
  nginx -V 2>&1 | grep -q -- '--with-http_ssl_module' || die "this nginx has no ssl module"
}
ensure_tools

# ---------------------------------------------------------------- build
if [[ -n ${TOLLGATE_BIN:-} ]]; then
  BIN=$TOLLGATE_BIN
else
  log "building: cargo build --release -p tollgate (may wait on another cargo's lock)"
  (cd "$ROOT" && cargo build --release -p tollgate >&2) || die "cargo build --release -p tollgate failed"
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate
fi
[[ -x $BIN ]] || die "Tollgate binary not found or not executable: $BIN"

# ---------------------------------------------------------------- work dir, cleanup
NCPU=$(nproc)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-secbench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/tmp" "$WORK/data" "$WORK/runs" "$WORK/tls"
ROWS=$WORK/rows.tsv
: > "$ROWS"
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$OUT_DIR/security-$STAMP.tsv

declare -a PIDS=()
UPSTREAM_PID=""; NGINX_PID=""; TOLLGATE_PID=""
TOLLGATE_FAIL=""   # why Tollgate is unusable ("" = fine)
TG_LOG=$WORK/tollgate.log

stop_pid() {  # TERM, wait up to 10 s, then KILL; also KILL leftover direct children
  local pid=$1 kids k _
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for k in $kids; do kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true; done
}
stop_all() {
  local pid
  for pid in "${PIDS[@]:-}"; do [[ -n $pid ]] && stop_pid "$pid"; done
  PIDS=(); UPSTREAM_PID=""; NGINX_PID=""; TOLLGATE_PID=""
}
cleanup() {
  stop_all
  if [[ $KEEP_WORK == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------- ports
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
PORTS=()
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < 7; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == 7 )) || die "no 7 free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]}; NGINX_PORT=${PORTS[1]}; NGINX_TLS_PORT=${PORTS[2]}
TG_PORT=${PORTS[3]}; TG_TLS_PORT=${PORTS[4]}; TG_ADMIN_PORT=${PORTS[5]}; NGINX_TLSFULL_PORT=${PORTS[6]}

# ---------------------------------------------------------------- secrets, certificate, token
rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN_TOKEN=$(rand_hex 24)          # 48 hex chars
API_KEY=bench-$(rand_hex 16)        # 37 chars (>= 16)
JWT_SECRET=bench-jwt-$(rand_hex 16) # 42 chars
BASIC_USER=bench
BASIC_PASS=$(rand_hex 12)           # 24 chars (>= 8)
BASIC_AUTH=$(printf '%s:%s' "$BASIC_USER" "$BASIC_PASS" | base64 -w0)

CERT=$WORK/tls/cert.pem; KEY=$WORK/tls/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$KEY" -out "$CERT" -days 30 -subj "/CN=$SNI" -addext "subjectAltName=DNS:$SNI" \
  >/dev/null 2>&1 || die "openssl could not make the ECDSA P-256 certificate"

JWT=$(JWT_SECRET=$JWT_SECRET python3 - <<'EOF'
import base64, hashlib, hmac, json, os, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
body = b64(json.dumps({"sub": "bench", "iat": now, "exp": now + 10 * 365 * 86400}, separators=(",", ":")).encode())
sig = b64(hmac.new(os.environ["JWT_SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
EOF
) || die "python3 could not make the JWT"
json_str() { python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }

# ---------------------------------------------------------------- configs
nginx_common() {  # $1 = name (file prefix)
  cat <<EOF
pid $WORK/$1.pid;
error_log $WORK/$1.err warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {  # $1 = name
  cat <<EOF
  access_log off;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;   # the default (1000) would reconnect mid-run
  client_body_temp_path $WORK/tmp/$1-body;
  proxy_temp_path $WORK/tmp/$1-proxy;
  fastcgi_temp_path $WORK/tmp/$1-fcgi;
  uwsgi_temp_path $WORK/tmp/$1-uwsgi;
  scgi_temp_path $WORK/tmp/$1-scgi;
EOF
}

write_upstream_conf() {
  {
    echo "worker_processes $UPSTREAM_WORKERS;"
    nginx_common upstream
    echo "http {"
    nginx_http_common upstream
    cat <<EOF
  server {
    listen $HOST:$UP_PORT backlog=4096;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
  } > "$WORK/upstream.conf"
}

write_nginx_proxy_conf() {
  {
    echo "worker_processes $WORKERS;"
    nginx_common nginxproxy
    echo "http {"
    nginx_http_common nginxproxy
    cat <<EOF
  upstream bench {
    server $HOST:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen $HOST:$NGINX_PORT backlog=4096;
    listen $HOST:$NGINX_TLS_PORT ssl backlog=4096;
    server_name $SNI;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {   # the same without session resumption: every handshake is a full one
    listen $HOST:$NGINX_TLSFULL_PORT ssl backlog=4096;
    server_name $SNI;
    ssl_certificate $CERT;
    ssl_certificate_key $KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  } > "$WORK/nginxproxy.conf"
}

write_tollgate_conf() {
  local cert key
  cert=$(json_str "$CERT"); key=$(json_str "$KEY")
  cat > "$WORK/tollgate.yaml" <<EOF
format_version: 1
upstreams:
  - name: bench
    targets: [{ url: "http://$HOST:$UP_PORT" }]
apis:
  - name: bench
    versions:
      - version: v1
        upstream: bench
        routes:
          - { path: /open }
          - { path: /key, policies: [{ key_auth: {} }] }
          - { path: /keyrl, policies: [{ key_auth: {} }, { rate_limit: { limit: 1000000000, window: 1s, by: app } }, { rate_limit: { limit: 1000000000, window: 1m, by: app } }, { quota: { limit: 1000000000000, period: month, by: app } }] }
          - { path: /jwt, policies: [{ jwt: { keys: [{ secret: "$JWT_SECRET", alg: HS256 }] } }] }
          - { path: /basic, policies: [{ basic_auth: {} }] }
  - name: plan
    versions:
      - version: v1
        upstream: bench
        routes:
          - { path: /plan, policies: [{ key_auth: {} }] }
products:
  - name: bench
    apis: [plan@v1]
    plans:
      - name: metered
        rate_limit: { limit: 1000000000, window: 1s }
        quota: { limit: 1000000000000, period: month }
        price: { metered: { model: per_unit, unit_price: 0.001 } }
subscriptions:
  - { app: bench, product: bench, plan: metered }
developers:
  - email: bench@bench.test
apps:
  - name: bench
    owner: bench@bench.test
    keys:
      - secret: "$API_KEY"
    basic:
      - { username: $BASIC_USER, password: "$BASIC_PASS" }
certificates:
  - name: bench
    snis: [$SNI]
    cert: $cert
    key: $key
  - name: bench-default
    cert: $cert
    key: $key
EOF
}

cat > "$WORK/report.lua" <<'EOF'
-- every URL host is reached on 127.0.0.1 (keeps the URL host, hence the SNI, as written)
wrk.resolve = function(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.connect, e.read, e.write, e.timeout, e.status))
end
EOF

# ---------------------------------------------------------------- processes
wait_http() {  # wait_http URL PID WHAT : until URL answers 2xx (max 30 s) or PID dies
  local url=$1 pid=$2 what=$3 _
  for _ in $(seq 300); do
    curl -sf -m 1 -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { log "$what exited during start-up"; return 1; }
    sleep 0.1
  done
  log "$what: no 2xx from $url after 30 s"; return 1
}

start_upstream() {
  write_upstream_conf
  nginx -t -q -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" || die "upstream nginx config invalid"
  nginx -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" -g 'daemon off;' &
  UPSTREAM_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$UP_PORT/open" "$UPSTREAM_PID" "upstream nginx" || { cat "$WORK/upstream.err" >&2; die "upstream did not start"; }
}

start_nginx_proxy() {
  write_nginx_proxy_conf
  nginx -t -q -p "$WORK" -e "$WORK/nginxproxy.err" -c "$WORK/nginxproxy.conf" || die "nginx proxy config invalid"
  nginx -p "$WORK" -e "$WORK/nginxproxy.err" -c "$WORK/nginxproxy.conf" -g 'daemon off;' &
  NGINX_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$NGINX_PORT/open" "$NGINX_PID" "nginx proxy" || { cat "$WORK/nginxproxy.err" >&2; die "nginx proxy did not start"; }
}

start_tollgate() {  # sets TOLLGATE_FAIL on failure
  TOLLGATE_FAIL=""
  write_tollgate_conf
  (export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=warn
   exec "$BIN" serve --config "$WORK/tollgate.yaml" --data-dir "$WORK/data" \
     --proxy-listen "$HOST:$TG_PORT" --proxy-tls-listen "$HOST:$TG_TLS_PORT" \
     --admin-listen "$HOST:$TG_ADMIN_PORT" --workers "$WORKERS") > "$TG_LOG" 2>&1 &
  TOLLGATE_PID=$!; PIDS+=("$!")
  if ! wait_http "http://$HOST:$TG_ADMIN_PORT/readyz" "$TOLLGATE_PID" "tollgate"; then
    local rc=running
    kill -0 "$TOLLGATE_PID" 2>/dev/null || { rc=0; wait "$TOLLGATE_PID" || rc=$?; rc="exit $rc"; }
    TOLLGATE_FAIL="did not become ready (GET /readyz on the admin port; process: $rc); log: $(tail -n 5 "$TG_LOG" | tr '\n' ' ')"
    log "tollgate: $TOLLGATE_FAIL"
    log "tollgate log (last 20 lines):"; tail -n 20 "$TG_LOG" >&2 || true
  fi
}

# ---------------------------------------------------------------- targets
# target_info TARGET : sets T_PART T_SERVER T_SCHEME T_CONN T_PATH T_PORT T_PID T_URL T_WRK_URL T_HDRS (array)
target_info() {
  local t=$1
  T_PART=B; T_SCHEME=http; T_CONN=keepalive; T_PATH=/open; T_HDRS=()
  case $t in
    direct)      T_PART=A; T_SERVER=upstream; T_PORT=$UP_PORT ;;
    nginx)       T_PART=A; T_SERVER=nginx;    T_PORT=$NGINX_PORT ;;
    tg-open)     T_PART=A; T_SERVER=tollgate; T_PORT=$TG_PORT ;;
    tg-key)      T_PART=A; T_SERVER=tollgate; T_PORT=$TG_PORT; T_PATH=/key;   T_HDRS=(-H "x-api-key: $API_KEY") ;;
    tg-keyrl)    T_PART=A; T_SERVER=tollgate; T_PORT=$TG_PORT; T_PATH=/keyrl; T_HDRS=(-H "x-api-key: $API_KEY") ;;
    tg-plan)     T_PART=A; T_SERVER=tollgate; T_PORT=$TG_PORT; T_PATH=/plan;  T_HDRS=(-H "x-api-key: $API_KEY") ;;
    tg-jwt)      T_PART=A; T_SERVER=tollgate; T_PORT=$TG_PORT; T_PATH=/jwt;   T_HDRS=(-H "Authorization: Bearer $JWT") ;;
    tg-basic)    T_PART=A; T_SERVER=tollgate; T_PORT=$TG_PORT; T_PATH=/basic; T_HDRS=(-H "Authorization: Basic $BASIC_AUTH") ;;
    nginx-tls)          T_SERVER=nginx;    T_SCHEME=https; T_PORT=$NGINX_TLS_PORT ;;
    tollgate-tls)       T_SERVER=tollgate; T_SCHEME=https; T_PORT=$TG_TLS_PORT ;;
    nginx-close)        T_SERVER=nginx;    T_CONN=close;   T_PORT=$NGINX_PORT ;;
    tollgate-close)     T_SERVER=tollgate; T_CONN=close;   T_PORT=$TG_PORT ;;
    nginx-tls-close)    T_SERVER=nginx;    T_SCHEME=https; T_CONN=close; T_PORT=$NGINX_TLS_PORT ;;
    tollgate-tls-close) T_SERVER=tollgate; T_SCHEME=https; T_CONN=close; T_PORT=$TG_TLS_PORT ;;
    nginx-tls-full-close) T_SERVER=nginx;  T_SCHEME=https; T_CONN=close; T_PORT=$NGINX_TLSFULL_PORT ;;
  esac
  case $T_SERVER in upstream) T_PID=$UPSTREAM_PID ;; nginx) T_PID=$NGINX_PID ;; tollgate) T_PID=$TOLLGATE_PID ;; esac
  [[ $T_PART == B ]] && T_HDRS+=(-H "Host: $SNI")
  [[ $T_CONN == close ]] && T_HDRS+=(-H "Connection: close")
  T_URL="$T_SCHEME://$HOST:$T_PORT$T_PATH"               # what curl checks
  T_WRK_URL=$T_URL                                        # what wrk loads
  if [[ $T_SCHEME == https ]]; then T_WRK_URL="https://$SNI:$T_PORT$T_PATH"; fi
}

# check_target TARGET : prints the reason and returns 1 when the target does not answer as it should
check_target() {
  local t=$1 got
  target_info "$t"
  got=$(curl -sk --http1.1 -m 5 "${T_HDRS[@]}" -D "$WORK/check.hdr" -o "$WORK/check.body" \
    -w '%{http_code} %{size_download}' "$T_URL" 2>&1) || true
  if [[ $got != "200 $BODY_BYTES" ]]; then
    echo "GET $T_URL gave status/size '$got' (want '200 $BODY_BYTES'); body: $(head -c 200 "$WORK/check.body" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  cmp -s "$WORK/check.body" <(printf 'ok\n') || { echo "GET $T_URL: body is not the upstream's 'ok'"; return 1; }
  if [[ $T_CONN == close ]] && ! grep -qi '^connection: *close' "$WORK/check.hdr"; then
    log "  note: $t answers 'Connection: close' requests without 'Connection: close' (wrk may count read errors)"
  fi
  case $t in
    tg-key|tg-keyrl|tg-plan|tg-jwt|tg-basic)   # the policy must be enforced: no credential, no entry
      got=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$T_URL" 2>&1) || true
      [[ $got == 401 ]] || { echo "GET $T_URL without a credential gave '$got', want 401 (policy not enforced?)"; return 1; } ;;
  esac
  if [[ $T_SCHEME == https ]]; then   # the right certificate, verified, by SNI and as the default
    got=$(curl -s --http1.1 -m 5 --cacert "$CERT" --resolve "$SNI:$T_PORT:$HOST" -o /dev/null -w '%{http_code}' \
      "https://$SNI:$T_PORT$T_PATH" 2>&1) || true
    [[ $got == 200 ]] || { echo "GET https://$SNI:$T_PORT$T_PATH verified against the bench certificate gave '$got'"; return 1; }
    got=$(openssl s_client -connect "$HOST:$T_PORT" -noservername </dev/null 2>/dev/null \
      | openssl x509 -noout -subject 2>/dev/null) || true
    [[ $got == *"CN = $SNI"* || $got == *"CN=$SNI"* ]] \
      || { echo "a handshake without SNI got no bench.test certificate ('$got')"; return 1; }
  fi
  return 0
}

# tls_probe PORT : "TLSv1.3 <cipher>; resumed: TLS 1.3 k/N, TLS 1.2 k/N"
# Reconnects N times in a row, each offering the session (ticket) of the connection before,
# as wrk does when it reconnects, and counts the resumed handshakes.
TLS_PROBE_N=20
tls_probe() {
  local port=$1 v s sn out first proto="" cipher="" res="" i k
  local req="GET /open HTTP/1.1\r\nHost: $SNI\r\nConnection: close\r\n\r\n"
  for v in 1_3 1_2; do
    s=$WORK/tls/sess-$port-$v; sn=$s.next
    rm -f "$s" "$sn"
    first=$(printf "$req" | timeout 5 openssl s_client -connect "$HOST:$port" -servername "$SNI" -tls$v -ign_eof -sess_out "$s" 2>/dev/null) || true
    if [[ $v == 1_3 ]]; then
      proto=$(awk '/^New, |^Reused, /{ sub(/,$/, "", $2); print $2; exit }' <<<"$first")
      cipher=$(awk '/Cipher is/{ print $NF; exit }' <<<"$first")
    fi
    k=0
    for (( i = 0; i < TLS_PROBE_N; i++ )); do
      [[ -s $s ]] || break
      out=$(printf "$req" | timeout 5 openssl s_client -connect "$HOST:$port" -servername "$SNI" -tls$v -ign_eof -sess_in "$s" -sess_out "$sn" 2>/dev/null) || true
      if grep -q '^Reused, ' <<<"$out"; then k=$((k + 1)); fi
      if [[ -s $sn ]]; then mv -f "$sn" "$s"; fi
    done
    res+="${res:+, }TLS ${v/_/.} $k/$TLS_PROBE_N"
  done
  echo "${proto:-?} ${cipher:-?}; resumed: $res"
}

# ---------------------------------------------------------------- measuring
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() {  # utime+stime of PID (all its threads) and its direct children (nginx workers)
  local p t=0 v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# task_ticks PID : "id ticks" for every thread of PID and of its direct children
task_ticks() {
  local p t v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    for t in /proc/"$p"/task/*; do
      v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null) || continue
      echo "${t##*/} ${v:-0}"
    done
  done
}
# busiest_pct BEFORE AFTER : the share (%) of the CPU used in between that the busiest thread had
busiest_pct() {
  awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > 0) { s += d; if (d > m) m = d } }
       END { printf "%.0f", (s > 0 ? 100 * m / s : 0) }' "$1" "$2"
}
UNEVEN_PCT=85   # with several workers, a busiest thread above this share means the load was not spread
builds_running() { pgrep -xc 'cargo|rustc|rustdoc|clippy-driver' 2>/dev/null || true; }

wait_for_builds() {
  local waited=0 n
  while n=$(builds_running); (( n > 0 )); do
    if (( waited >= BUILD_WAIT )); then
      log "WARNING: $n cargo/rustc process(es) still running after ${BUILD_WAIT}s; measuring anyway (numbers are suspect)"
      return 0
    fi
    (( waited % 30 == 0 )) && log "waiting for $n cargo/rustc process(es) to finish (${waited}s/${BUILD_WAIT}s) ..."
    sleep 5; waited=$((waited + 5))
  done
}

TSV_HEADER='started	rep	target	part	server	scheme	connection	path	port	conns	wrk_threads	proxy_workers	duration_s	requests	rps	p50_us	p90_us	p99_us	p999_us	max_us	err_connect	err_read	err_write	err_timeout	non2xx	server_cpu_us_per_req	server_cpu_pct	builds_running	status	note	busiest_thread_pct'

add_row() { local IFS=$'\t'; echo "$*" >> "$ROWS"; }

# run_load REP TARGET
run_load() {
  local rep=$1 target=$2 workers=$WORKERS out rc t0 t1 line why b0 b1 started fail=""
  target_info "$target"
  [[ $target == direct ]] && workers=$UPSTREAM_WORKERS
  local -a meta=("$target" "$T_PART" "$T_SERVER" "$T_SCHEME" "$T_CONN" "$T_PATH" "$T_PORT" "$CONNS" "$WORKERS" "$workers" "$DURATION")
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [[ $T_SERVER == tollgate && -n $TOLLGATE_FAIL ]]; then fail=$TOLLGATE_FAIL
  elif ! why=$(check_target "$target"); then fail="pre-check failed: $why"
  fi
  if [[ -n $fail ]]; then
    log "  $target: FAILED - $fail"
    if [[ $T_SERVER == tollgate ]]; then log "  tollgate log (last 15 lines):"; tail -n 15 "$TG_LOG" >&2 || true; fi
    add_row "$started" "$rep" "${meta[@]}" 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$(builds_running)" fail "$fail" 0
    return 0
  fi
  target_info "$target"   # check_target ran in a subshell; T_* are unchanged, but be explicit
  local -a wrk_cmd=(wrk -t"$WORKERS" -c"$CONNS" "${T_HDRS[@]}")
  if (( WARMUP > 0 )); then
    timeout -k 5 $((WARMUP + 10)) "${wrk_cmd[@]}" -d"${WARMUP}s" -s "$WORK/report.lua" "$T_WRK_URL" >/dev/null 2>&1 || true
  fi
  b0=$(builds_running); task_ticks "$T_PID" > "$WORK/tt0"; t0=$(proc_ticks "$T_PID")
  rc=0
  out=$(timeout -k 5 $((DURATION + 10)) "${wrk_cmd[@]}" -d"${DURATION}s" --latency -s "$WORK/report.lua" "$T_WRK_URL" 2>&1) || rc=$?
  t1=$(proc_ticks "$T_PID"); task_ticks "$T_PID" > "$WORK/tt1"; b1=$(builds_running)
  printf '%s\n' "$out" > "$WORK/runs/wrk-$rep-$target.txt"
  if ! line=$(grep '^WRKRESULT' <<<"$out"); then
    fail="wrk gave no result (exit $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    log "  $target: FAILED - $fail"
    add_row "$started" "$rep" "${meta[@]}" 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$((b0 > b1 ? b0 : b1))" fail "$fail" 0
    return 0
  fi
  local requests duration_us bytes p50_us p90_us p99_us p999_us max_us err_connect err_read err_write err_timeout non2xx kv
  for kv in ${line#WRKRESULT }; do printf -v "${kv%%=*}" '%s' "${kv#*=}"; done
  local rps cpu_req cpu_pct busy status=ok note=""
  busy=$(busiest_pct "$WORK/tt0" "$WORK/tt1")
  rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? r / (d / 1e6) : 0) }')
  cpu_req=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')
  cpu_pct=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? 100 * t / hz / (d / 1e6) : 0) }')
  if ! kill -0 "$T_PID" 2>/dev/null; then status=fail; note="server process $T_PID died during the run"; fi
  if (( err_connect + err_read + err_write + err_timeout + non2xx > 0 )); then
    [[ $status == ok ]] && status=errors
    note="${note:+$note; }connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout non2xx=$non2xx"
  fi
  if (( non2xx > 0 )); then
    log "  WARNING: $target answered $non2xx non-2xx responses during the measured run (must be 0; its numbers are not comparable)"
  fi
  (( b0 + b1 > 0 )) && note="${note:+$note; }cargo/rustc running during the run"
  if (( workers > 1 && busy >= UNEVEN_PCT )); then
    note="${note:+$note; }uneven: one thread did $busy % of the server's CPU (connections not spread over the $workers workers)"
  fi
  add_row "$started" "$rep" "${meta[@]}" \
    "$requests" "$rps" "$p50_us" "$p90_us" "$p99_us" "$p999_us" "$max_us" \
    "$err_connect" "$err_read" "$err_write" "$err_timeout" "$non2xx" "$cpu_req" "$cpu_pct" "$((b0 > b1 ? b0 : b1))" "$status" "$note" "$busy"
  log "$(printf '  %-20s %8s req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %6s us/req (%s%%, busiest thread %s%%)  %s' \
    "$target" "$rps" "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" \
    "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" "$cpu_req" "$cpu_pct" "$busy" "$status${note:+ ($note)}")"
}

# rotate N WORDS... : the words rotated left by N
rotate() { local n=$1; shift; local -a w=("$@"); local i c=${#w[@]}; for (( i = 0; i < c; i++ )); do printf '%s ' "${w[(i + n) % c]}"; done; }

# ---------------------------------------------------------------- main
nt=0; for t in $TARGETS; do nt=$((nt + 1)); done
log "ports: upstream $UP_PORT, nginx $NGINX_PORT (tls $NGINX_TLS_PORT, tls without resumption $NGINX_TLSFULL_PORT), tollgate $TG_PORT (tls $TG_TLS_PORT, admin $TG_ADMIN_PORT); work dir $WORK"
log "tollgate binary: $BIN"
log "plan: $REPS rep(s) x $nt target(s) x (${WARMUP}s warm-up + ${DURATION}s) = about $((REPS * nt * (WARMUP + DURATION) + 15))s of load"
wait_for_builds
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T_START=$SECONDS

start_upstream
start_nginx_proxy
start_tollgate
TLS_NGINX="(not probed)"; TLS_NGINXFULL="(not probed)"; TLS_TOLLGATE="(not probed)"
if [[ " $TARGETS " == *-tls* ]]; then
  log "probing TLS session resumption ($TLS_PROBE_N reconnects in a row per server and version) ..."
  TLS_NGINX=$(tls_probe "$NGINX_TLS_PORT")
  TLS_NGINXFULL=$(tls_probe "$NGINX_TLSFULL_PORT")
  if [[ -z $TOLLGATE_FAIL ]]; then TLS_TOLLGATE=$(tls_probe "$TG_TLS_PORT"); fi
  log "TLS nginx: $TLS_NGINX"
  log "TLS nginx (resumption off): $TLS_NGINXFULL"
  log "TLS tollgate: $TLS_TOLLGATE"
fi

for rep in $(seq "$REPS"); do
  log "== rep $rep/$REPS: nothing pinned, wrk $WORKERS threads, proxies $WORKERS workers, upstream $UPSTREAM_WORKERS worker(s)"
  wait_for_builds
  # Part A: direct first, then the proxy rows rotated per rep to spread drift
  # Part B: keep-alive first, then the per-connection runs (they leave TIME_WAIT sockets behind)
  if (( rep % 2 )); then ka="nginx-tls tollgate-tls"; cl="nginx-close tollgate-close nginx-tls-close tollgate-tls-close nginx-tls-full-close"
  else ka="tollgate-tls nginx-tls"; cl="tollgate-close nginx-close nginx-tls-full-close tollgate-tls-close nginx-tls-close"; fi
  order="direct $(rotate $(( (rep - 1) % 7 )) nginx tg-open tg-key tg-keyrl tg-plan tg-jwt tg-basic) $ka $cl"
  for target in $order; do
    [[ " $TARGETS " == *" $target "* ]] && run_load "$rep" "$target"
  done
done

if [[ -n $TOLLGATE_PID ]] && ! kill -0 "$TOLLGATE_PID" 2>/dev/null; then
  log "tollgate exited; last log lines:"; tail -n 20 "$TG_LOG" >&2 || true
fi
if [[ -n $TOLLGATE_PID ]] && grep -qiE 'warn|error|panick' "$TG_LOG"; then
  log "tollgate log has warnings/errors (first 10 lines):"
  grep -m 10 -iE 'warn|error|panick' "$TG_LOG" >&2 || true
fi
stop_all
ELAPSED=$((SECONDS - T_START))

{ echo "$TSV_HEADER"; cat "$ROWS"; } > "$TSV"
log "raw rows: $TSV"
log "total time: ${ELAPSED}s"

# ---------------------------------------------------------------- report (stdout)
echo "## Tollgate security benchmark ($START_UTC)"
echo
echo "- host: $(uname -n), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), loopback"
echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $(openssl version | cut -d' ' -f1-2), tollgate $( ("$BIN" --version 2>/dev/null || true) | head -n1 | sed "s/^tollgate //")"
echo "- duration ${DURATION}s (+${WARMUP}s warm-up) per run, $CONNS connections, reps $REPS (values are medians over reps); total time ${ELAPSED}s"
echo "- nothing pinned: wrk $WORKERS threads, nginx proxy and Tollgate $WORKERS workers each, upstream nginx $UPSTREAM_WORKERS worker(s); one Tollgate node serves every route, plain and TLS"
echo "- upstream answer: \"ok\\n\" (3 bytes, nginx \`return 200\`); certificate: ECDSA P-256, self-signed, for $SNI"
echo "- TLS handshakes (openssl s_client, $TLS_PROBE_N reconnects in a row offering the previous session, as wrk does): nginx $TLS_NGINX; nginx without resumption $TLS_NGINXFULL; Tollgate $TLS_TOLLGATE"
echo "- raw rows: ${TSV#"$ROOT"/}"
echo
awk -F'\t' -v targets="$TARGETS" -v uneven="$UNEVEN_PCT" '
  function med(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  function ms(us) { return sprintf("%.3f", us / 1000) }
  function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "" }
  function bzs(k) { return sprintf("%.0f%s", bz[k], (unev[k] > 0 ? " ⚠" : "")) }
  function failrow(t, cols,   s, i) { s = "| " t " | " DESC[t] " | FAILED"; for (i = 0; i < cols; i++) s = s " |"; print s " |" }
  {
    k = $3; runs[k]++
    if ($29 == "fail") { fails[k]++; why[k] = $30; next }
    n[k]++; R[k, n[k]] = $15; P50[k, n[k]] = $16; P99[k, n[k]] = $18; CU[k, n[k]] = $26; CP[k, n[k]] = $27; BZ[k, n[k]] = $31
    if ($12 > 1 && $31 >= uneven) unev[k]++
    errs[k] += $21 + $22 + $23 + $24; non2xx[k] += $25
  }
  END {
    DESC["direct"] = "upstream `/open`"; DESC["nginx"] = "nginx proxy `/open`"
    DESC["tg-open"] = "`/open`, no policy"; DESC["tg-key"] = "`/key`, key_auth (`x-api-key`)"; DESC["tg-keyrl"] = "`/keyrl`, key_auth + 2 rate limits + quota"; DESC["tg-plan"] = "`/plan`, key_auth + subscription + plan limits + metering"
    DESC["tg-jwt"] = "`/jwt`, jwt HS256 (`Bearer`)"; DESC["tg-basic"] = "`/basic`, basic_auth (`Basic`)"
    DESC["nginx-tls"] = "HTTPS, keep-alive"; DESC["tollgate-tls"] = "HTTPS, keep-alive"
    DESC["nginx-close"] = "HTTP, new connection per request"; DESC["tollgate-close"] = "HTTP, new connection per request"
    DESC["nginx-tls-close"] = "HTTPS, new connection per request"; DESC["tollgate-tls-close"] = "HTTPS, new connection per request"
    DESC["nginx-tls-full-close"] = "HTTPS, new connection per request, resumption off"
    nt = split(targets, T, " ")
    for (i = 1; i <= nt; i++) {
      k = T[i]; c = n[k]; want[k] = 1
      if (c > 0) {
        delete x; for (j = 1; j <= c; j++) x[j] = R[k, j];   rps[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = P50[k, j]; p50[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = P99[k, j]; p99[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = CU[k, j];  cu[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = CP[k, j];  cp[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = BZ[k, j];  bz[k] = med(x, c)
      }
      if (unev[k] > 0) warn[++nw] = sprintf("%s: in %d of %d runs one thread did >= %d %% of the server CPU: the connections were not spread over the workers, so that row is closer to a one-worker figure", k, unev[k], n[k], uneven)
      if (fails[k] > 0) failnote[++nf] = sprintf("%s: %d of %d runs failed: %s", k, fails[k], runs[k], why[k])
      if (non2xx[k] > 0) warn[++nw] = sprintf("%s: %d non-2xx answers (must be 0)", k, non2xx[k])
      else if (errs[k] > 0) warn[++nw] = sprintf("%s: %d wrk socket errors", k, errs[k])
    }

    # ---- Part A
    split("direct nginx tg-open tg-key tg-keyrl tg-plan tg-jwt tg-basic", A, " ")
    na = 0; for (i = 1; i <= 8; i++) if (A[i] in want) na++
    if (na > 0) {
      print "### Part A: authentication (plain HTTP, keep-alive)"
      print ""
      print "| target | route | req/s | p50 ms | p99 ms | errors / non-2xx | CPU µs/req | CPU % | busiest thread % | req/s vs `/open` | CPU µs/req vs `/open` |"
      print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      for (i = 1; i <= 8; i++) {
        k = A[i]; if (!(k in want)) continue
        if (n[k] == 0) { failrow(k, 8); continue }
        vr = ""; vc = ""
        if (k ~ /^tg-/ && n["tg-open"] > 0) {
          vr = ratio(rps[k], rps["tg-open"]); vc = sprintf("%+.1f", cu[k] - cu["tg-open"])
          if (k != "tg-open") vr = "**" vr "**"
        }
        printf "| %s | %s | %.0f | %s | %s | %d / %d | %.1f | %.0f | %s | %s | %s |\n",
          k, DESC[k], rps[k], ms(p50[k]), ms(p99[k]), errs[k], non2xx[k], cu[k], cp[k], bzs(k), vr, vc
      }
      print ""
      if (n["tg-open"] > 0) {
        print "Ratios to Tollgate `/open` (same node, same run):"
        print ""
        split("tg-key tg-keyrl tg-plan tg-jwt tg-basic", AU, " ")
        for (i = 1; i <= 5; i++) {
          k = AU[i]; if (n[k] == 0) continue
          r = rps[k] / rps["tg-open"]; nm = substr(k, 4)
          line = sprintf("- %s/open = %.2f (throughput), p99 %.2fx, CPU %+.1f µs/req (%.1f vs %.1f)",
            nm, r, (p99["tg-open"] > 0 ? p99[k] / p99["tg-open"] : 0), cu[k] - cu["tg-open"], cu[k], cu["tg-open"])
          if (k == "tg-key" || k == "tg-keyrl" || k == "tg-plan") line = line sprintf(" — requirement %s/open >= 0.90: **%s**", nm, (r >= 0.90 ? "met" : "MISSED"))
          if (unev[k] > 0 || unev["tg-open"] > 0)
            line = line " (⚠ uneven spread over the workers in " (unev["tg-open"] > 0 ? "tg-open" (unev[k] > 0 ? " and " : "") : "") (unev[k] > 0 ? k : "") ": see Warnings)"
          print line
        }
        if (n["nginx"] > 0) printf "- Tollgate `/open` / nginx proxy = %.2f (throughput), CPU %.1f vs %.1f µs/req\n", rps["tg-open"] / rps["nginx"], cu["tg-open"], cu["nginx"]
        print ""
      }
    }

    # ---- Part B
    nB = split("nginx-tls tollgate-tls nginx-close tollgate-close nginx-tls-close tollgate-tls-close nginx-tls-full-close", B, " ")
    nb = 0; for (i = 1; i <= nB; i++) if (B[i] in want) nb++
    if (nb > 0) {
      # plain keep-alive reference of each server: the Part A rows
      PLAIN["nginx-tls"] = "nginx"; PLAIN["tollgate-tls"] = "tg-open"
      PLAIN["nginx-tls-close"] = "nginx-close"; PLAIN["tollgate-tls-close"] = "tollgate-close"
      PLAIN["nginx-close"] = "nginx"; PLAIN["tollgate-close"] = "tg-open"; PLAIN["nginx-tls-full-close"] = "nginx-close"
      print "### Part B: TLS termination (route `/open`)"
      print ""
      print "| target | connection | req/s | p50 ms | p99 ms | errors / non-2xx | CPU µs/req | CPU % | busiest thread % | req/s vs plain | req/s tollgate/nginx | p99 tollgate/nginx | CPU/req tollgate/nginx |"
      print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      for (i = 1; i <= nB; i++) {
        k = B[i]; if (!(k in want)) continue
        if (n[k] == 0) { failrow(k, 10); continue }
        pl = PLAIN[k]; vp = (n[pl] > 0) ? ratio(rps[k], rps[pl]) : ""
        rr = ""; pr = ""; cr = ""
        if (k ~ /^tollgate/) {
          ng = k; sub(/^tollgate/, "nginx", ng)
          if (n[ng] > 0) {
            rr = "**" ratio(rps[k], rps[ng]) "**"; pr = ratio(p99[k], p99[ng]); cr = ratio(cu[k], cu[ng])
            tv[++ntv] = sprintf("%s / %s: throughput %.2fx, p99 %.2fx, CPU per request %.2fx (%.1f vs %.1f µs)",
              k, ng, rps[k] / rps[ng], (p99[ng] > 0 ? p99[k] / p99[ng] : 0), (cu[ng] > 0 ? cu[k] / cu[ng] : 0), cu[k], cu[ng])
          }
        } else if (k != "nginx-tls-full-close") { rr = "1.00"; pr = "1.00"; cr = "1.00" }
        printf "| %s | %s | %.0f | %s | %s | %d / %d | %.1f | %.0f | %s | %s | %s | %s | %s |\n",
          k, DESC[k], rps[k], ms(p50[k]), ms(p99[k]), errs[k], non2xx[k], cu[k], cp[k], bzs(k), vp, rr, pr, cr
      }
      print ""
      print "`req/s vs plain`: against the same server over plain HTTP with the same connection handling (`nginx`, `tg-open`, `nginx-close`, `tollgate-close`)."
      print "The per-connection rows are bounded by wrk (its client-side handshakes share the same cores): compare their `CPU µs/req` more than their req/s."
      k = "tollgate-tls-close"; ng = "nginx-tls-full-close"
      if (n[k] > 0 && n[ng] > 0)
        tv[++ntv] = sprintf("%s / %s (nginx with full handshakes only): throughput %.2fx, p99 %.2fx, CPU per request %.2fx (%.1f vs %.1f µs)",
          k, ng, rps[k] / rps[ng], (p99[ng] > 0 ? p99[k] / p99[ng] : 0), (cu[ng] > 0 ? cu[k] / cu[ng] : 0), cu[k], cu[ng])
      if (ntv > 0) { print ""; print "Ratios:"; print ""; for (i = 1; i <= ntv; i++) print "- " tv[i] }
      print ""
    }
    print "CPU µs/req and CPU % are of the server under test: the upstream nginx for `direct`, the proxy otherwise (100 % = one core)."
    print "`busiest thread %`: the share of that CPU used by its busiest thread (nginx: worker process); with 2 workers an even spread is about 50-60 %, ⚠ marks rows where one thread did >= " uneven " %."
    if (nw > 0) { print ""; print "Warnings:"; print ""; for (i = 1; i <= nw; i++) print "- " warn[i] }
    if (nf > 0) { print ""; print "Failures:"; print ""; for (i = 1; i <= nf; i++) print "- " failnote[i] }
  }' "$ROWS"
