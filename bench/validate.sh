#!/usr/bin/env bash
# bench/validate.sh - what the `validate` policy (requests checked against the version's OpenAPI
# document) costs Tollgate, next to the same routes without it and next to nginx, on loopback,
# in one bounded run.
#
# What it does (everything on 127.0.0.1, every process it starts is stopped on exit):
#   1. installs nginx and wrk if they are missing (apt-get). It never builds Tollgate: it uses
#      TOLLGATE_BIN (default target/release/tollgate) and, since that binary may still be
#      building, polls up to BIN_WAIT seconds until it exists and `tollgate validate -f` accepts
#      the bench configuration (a binary without the validate policy refuses it); then it waits
#      (up to BUILD_WAIT) until no cargo/rustc process has run for 3 s in a row, and again
#      before every measured run,
#   2. starts:
#        - an upstream nginx (1 worker) answering every path and method with "ok\n" (3 bytes,
#          `return 200`; a request body is read and dropped),
#        - an nginx reverse proxy (keepalive pool to the upstream, as in proxy.sh),
#        - ONE Tollgate node (`serve`, TOLLGATE_ADMIN_TOKEN=<random>, RUST_LOG=warn; the config
#          checked with `validate -f` first) with one API `items` and two versions that differ
#          only in the policy. Both carry the same inline OpenAPI 3.0 document (written below:
#          GET /items/{id} with an integer path parameter and two query parameters, one an enum,
#          one an integer 1..100; POST /items with a required JSON body of 9 properties, 5 of
#          them required, formats uuid/email/date-time, an array with minItems, a nested object
#          by $ref), whose `servers` URL ends in the version's base path, /v1 or /v2:
#            v1  routes /v1/items (POST) and /v1/items/{id} (GET), each with `validate: {}`
#            v2  routes /v2/items (POST) and /v2/items/{id} (GET), no policy
#          so both sides have the same route table shape and the same lookup; the validator
#          strips the server's base path (/v1) before it matches the document's paths,
#   3. checks with curl: every target answers 200 "ok\n" to the request wrk will send; on v1 a
#      body with a wrong type and a missing required property gets 400 with problem type
#      request-invalid and exactly 2 errors, and bad GET parameters (id 0, view not in the enum,
#      limit 1000) get 400 request-invalid with 3 errors; on v2 the same bad body passes (200),
#   4. measures with wrk (warm-up, measured run), keep-alive, plain HTTP:
#        direct-get     wrk -> upstream nginx            GET  /v1/items/42?view=full&limit=10
#        nginx-get      wrk -> nginx proxy -> upstream   the same
#        tg-open-get    wrk -> Tollgate v2, no policy    GET  /v2/items/42?view=full&limit=10
#        tg-val-get     wrk -> Tollgate v1, validate     GET  /v1/items/42?view=full&limit=10
#        direct-post, nginx-post, tg-open-post, tg-val-post: the same with POST /vN/items and
#          a valid JSON body of about 400 bytes (`Content-Type: application/json`), sent by a
#          wrk Lua script
#      Per rep the GET and POST groups alternate their order; within a group `direct` runs
#      first, then nginx, tg-open and tg-val in an order rotated between reps,
#   5. prints a Markdown report (stdout): req/s, p50/p99, wrk errors and non-2xx, CPU
#      microseconds per request and CPU % of the server under test (the upstream for direct,
#      the proxy otherwise; /proc/PID/stat utime+stime), the share of that CPU its busiest
#      thread used, and the ratios validated/open and Tollgate/nginx, with the per-rep paired
#      validated/open ratios. Raw rows (one per run) go to bench/out/validate-<timestamp>.tsv.
#      Progress and diagnostics go to stderr.
#
# No requirement is checked: the report gives the cost. One mode only: nothing pinned, wrk
# WORKERS threads, the nginx proxy and Tollgate WORKERS workers, upstream nginx
# UPSTREAM_WORKERS worker(s) (the unpinned mode of proxy.sh).
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [8]           seconds of each measured wrk run (wrapped in `timeout`)
#   WARMUP [2]             seconds of an unreported wrk run before each measured run (0 = none)
#   CONNS [64]             wrk connections
#   REPS [3]               repetitions of all targets; the table shows medians over reps
#   TARGETS ["direct-get nginx-get tg-open-get tg-val-get direct-post nginx-post tg-open-post
#            tg-val-post"]
#   WORKERS [2]            proxy workers (nginx and Tollgate) and wrk threads
#   UPSTREAM_WORKERS [1]   nginx workers of the upstream
#   BASE_PORT [18080]      first port tried; the first 4 free ports from here are used
#   TOLLGATE_BIN           the binary [target/release/tollgate]
#   BIN_WAIT [900]         max seconds to wait for that binary to exist and accept the config
#   BUILD_WAIT [600]       max seconds to wait for running cargo/rustc before measuring
#   OUT_DIR [bench/out]    where the raw TSV goes
#   KEEP_WORK [0]          1 = keep the temp work dir (configs, document, bodies, wrk output, logs)
#
# Exit status: 0 when every check passed and every run completed, 1 when a check or a run
# failed, 2 for a set-up failure.
# With the defaults: 3 reps x 8 runs of WARMUP + DURATION = 10 s, about 4.5 minutes in all.
# Example: ./bench/validate.sh > bench/out/validate.md
#          DURATION=5 REPS=3 ./bench/validate.sh
#          DURATION=4 REPS=1 TARGETS="tg-open-post tg-val-post" ./bench/validate.sh
set -euo pipefail

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
REPS=${REPS:-3}
ALL_TARGETS="direct-get nginx-get tg-open-get tg-val-get direct-post nginx-post tg-open-post tg-val-post"
TARGETS=${TARGETS:-$ALL_TARGETS}
WORKERS=${WORKERS:-2}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
BASE_PORT=${BASE_PORT:-18080}
BIN_WAIT=${BIN_WAIT:-900}
BUILD_WAIT=${BUILD_WAIT:-600}
KEEP_WORK=${KEEP_WORK:-0}
HOST=127.0.0.1      # loopback only
BODY_BYTES=3        # "ok\n"
GET_QUERY="view=full&limit=10"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}
BIN=${TOLLGATE_BIN:-$ROOT/target/release/tollgate}

log() { printf '%s\n' "$*" >&2; }
die() { log "validate.sh: $*"; exit 2; }

for v in DURATION WARMUP CONNS REPS WORKERS UPSTREAM_WORKERS BASE_PORT BIN_WAIT BUILD_WAIT; do
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
      if ! { apt-get update >&2 && apt-get install -y --no-install-recommends nginx wrk >&2; }; then
        die "cannot install nginx/wrk"
      fi
    fi
  fi
  for t in nginx wrk curl python3 ss timeout awk ps pgrep od cmp sed; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
}
ensure_tools

# ---------------------------------------------------------------- work dir, cleanup
NCPU=$(nproc)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-valbench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/tmp" "$WORK/data" "$WORK/runs"
ROWS=$WORK/rows.tsv
: > "$ROWS"
mkdir -p "$OUT_DIR"

declare -a PIDS=()
UPSTREAM_PID=""; NGINX_PID=""; TOLLGATE_PID=""
TOLLGATE_FAIL=""   # why Tollgate is unusable ("" = fine)
TG_LOG=$WORK/tollgate.log
CHECKS=()          # "ok|FAIL<TAB>text"
NFAIL=0

stop_pid() {  # TERM, wait up to 10 s, then KILL; also KILL leftover direct children
  local pid=$1 kids k _
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(ps -o pid= --ppid "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  for k in $kids; do if kill -0 "$k" 2>/dev/null; then kill -KILL "$k" 2>/dev/null || true; fi; done
}
stop_all() {
  local pid
  for pid in "${PIDS[@]:-}"; do [[ -n $pid ]] && stop_pid "$pid"; done
  PIDS=(); UPSTREAM_PID=""; NGINX_PID=""; TOLLGATE_PID=""
}
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  stop_all
  if [[ $KEEP_WORK == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

check() {  # check ok|FAIL TEXT
  CHECKS+=("$1	$2")
  if [[ $1 == ok ]]; then log "  check ok: $2"; else log "  CHECK FAILED: $2"; NFAIL=$((NFAIL + 1)); fi
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN_TOKEN=$(rand_hex 24)          # 48 hex chars

# ---------------------------------------------------------------- the OpenAPI document, bodies
# write_spec BASE : the document, its servers URL ending in BASE (/v1 or /v2)
write_spec() {
  cat <<EOF
openapi: 3.0.3
info:
  title: Items
  version: "1.0"
  description: A small catalogue service (bench/validate.sh).
  contact: { name: Bench, email: bench@bench.test }
servers:
  - url: https://api.shop.example.com$1
tags:
  - { name: items, description: Catalogue items }
paths:
  /items:
    post:
      operationId: createItem
      tags: [items]
      description: Adds an item to the catalogue.
      requestBody:
        required: true
        content:
          application/json:
            schema: { \$ref: "#/components/schemas/NewItem" }
      responses:
        "201": { description: The item was created. }
        "400": { description: The item does not match the schema. }
  /items/{id}:
    parameters:
      - name: id
        in: path
        required: true
        description: The item's number.
        schema: { type: integer, format: int64, minimum: 1 }
    get:
      operationId: getItem
      tags: [items]
      description: One item.
      parameters:
        - name: view
          in: query
          description: How much of the item to return.
          schema: { type: string, enum: [summary, full], default: summary }
        - name: limit
          in: query
          description: At most this many related items.
          schema: { type: integer, format: int32, minimum: 1, maximum: 100, default: 20 }
      responses:
        "200": { description: The item. }
        "404": { description: No such item. }
components:
  schemas:
    NewItem:
      type: object
      required: [name, price, owner_email, created_at, tags]
      properties:
        name: { type: string, minLength: 1, maxLength: 120 }
        sku: { type: string, format: uuid }
        description: { type: string, maxLength: 2000 }
        price: { type: number, minimum: 0, exclusiveMinimum: true }
        quantity: { type: integer, format: int32, minimum: 0 }
        owner_email: { type: string, format: email }
        created_at: { type: string, format: date-time }
        tags:
          type: array
          minItems: 1
          maxItems: 20
          items: { type: string, minLength: 1, maxLength: 40 }
        dimensions: { \$ref: "#/components/schemas/Dimensions" }
    Dimensions:
      type: object
      required: [width, height, depth]
      properties:
        width: { type: number, minimum: 0 }
        height: { type: number, minimum: 0 }
        depth: { type: number, minimum: 0 }
        unit: { type: string, enum: [cm, in] }
EOF
}
# A valid body (every property set), and an invalid one: `name` (required) missing and `price`
# a string. Exactly 2 violations.
VALID_BODY='{"name":"Trail running shoe, women, size 39","sku":"3f1c2a9e-8b7d-4c6e-9a51-2d4b7e0f9c13","description":"Light trail shoe with a rock plate, a 6 mm drop and a sticky outsole that grips on wet rock and roots.","price":129.9,"quantity":25,"owner_email":"merchant@shop.example.com","created_at":"2026-12-06T09:30:00Z","tags":["shoes","trail","running","women"],"dimensions":{"width":11.5,"height":12.0,"depth":31.0,"unit":"cm"}}'
INVALID_BODY='{"sku":"3f1c2a9e-8b7d-4c6e-9a51-2d4b7e0f9c13","description":"Light trail shoe with a rock plate, a 6 mm drop and a sticky outsole that grips on wet rock and roots.","price":"cheap","quantity":25,"owner_email":"merchant@shop.example.com","created_at":"2026-12-06T09:30:00Z","tags":["shoes","trail","running","women"],"dimensions":{"width":11.5,"height":12.0,"depth":31.0,"unit":"cm"}}'
printf '%s' "$VALID_BODY" > "$WORK/valid.json"
printf '%s' "$INVALID_BODY" > "$WORK/invalid.json"
POST_BYTES=${#VALID_BODY}

# ---------------------------------------------------------------- configs
# write_tollgate_conf FILE UPSTREAM_PORT
write_tollgate_conf() {
  local v policies
  {
    cat <<EOF
format_version: 1
upstreams:
  - name: bench
    targets: [{ url: "http://$HOST:$2" }]
apis:
  - name: items
    versions:
EOF
    for v in v1 v2; do
      policies=""
      [[ $v == v1 ]] && policies=", policies: [{ validate: {} }]"
      cat <<EOF
      - version: $v
        upstream: bench
        routes:
          - { path: /$v/items, methods: [POST]$policies }
          - { path: "/$v/items/{id}", methods: [GET]$policies }
        spec: |
EOF
      write_spec "/$v" | sed 's/^/          /'
    done
  } > "$1"
}

write_upstream_conf() {
  cat > "$WORK/upstream.conf" <<EOF
worker_processes $UPSTREAM_WORKERS;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;   # the default (1000) would reconnect mid-run
  client_body_temp_path $WORK/tmp/up-body;
  proxy_temp_path $WORK/tmp/up-proxy;
  fastcgi_temp_path $WORK/tmp/up-fcgi;
  uwsgi_temp_path $WORK/tmp/up-uwsgi;
  scgi_temp_path $WORK/tmp/up-scgi;
  server {
    listen $HOST:$UP_PORT backlog=4096;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
}

write_nginx_proxy_conf() {
  cat > "$WORK/nginxproxy.conf" <<EOF
worker_processes $WORKERS;
pid $WORK/nginxproxy.pid;
error_log $WORK/nginxproxy.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/tmp/px-body;
  proxy_temp_path $WORK/tmp/px-proxy;
  fastcgi_temp_path $WORK/tmp/px-fcgi;
  uwsgi_temp_path $WORK/tmp/px-uwsgi;
  scgi_temp_path $WORK/tmp/px-scgi;
  upstream bench {
    server $HOST:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen $HOST:$NGINX_PORT backlog=4096;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}

# wrk scripts: the result line, and for POST the method, body and content type
REPORT_LUA='done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d non2xx=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.connect, e.read, e.write, e.timeout, e.status))
end'
printf '%s\n' "$REPORT_LUA" > "$WORK/get.lua"
{
  echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/json"'
  printf 'wrk.body = [==[%s]==]\n' "$VALID_BODY"
  printf '%s\n' "$REPORT_LUA"
} > "$WORK/post.lua"

# ---------------------------------------------------------------- the binary, running builds
builds_running() { pgrep -xc 'cargo|rustc|rustdoc|clippy-driver' 2>/dev/null || true; }

# Waits until no build has run for 3 s in a row: `cargo test` runs start one cargo after another,
# and a single look can fall into the gap between two of them.
wait_for_builds() {
  local waited=0 n
  while :; do
    while n=$(builds_running); (( n > 0 )); do
      if (( waited >= BUILD_WAIT )); then
        log "WARNING: $n cargo/rustc process(es) still running after ${BUILD_WAIT}s; measuring anyway (numbers are suspect)"
        return 0
      fi
      (( waited % 30 == 0 )) && log "waiting for $n cargo/rustc process(es) to finish (${waited}s/${BUILD_WAIT}s) ..."
      sleep 5; waited=$((waited + 5))
    done
    (( waited == 0 )) && return 0      # nothing was running: no need to settle
    sleep 3; waited=$((waited + 3))
    n=$(builds_running); (( n == 0 )) && return 0
  done
}

# The binary may still be building (or be an older one without the validate policy): wait until
# it exists and accepts the bench configuration. The port in this probe file does not matter.
write_tollgate_conf "$WORK/probe.yaml" 1
BIN_CHECK=""
bin_ready() {
  [[ -x $BIN ]] || { BIN_CHECK="$BIN does not exist (yet)"; return 1; }
  BIN_CHECK=$(timeout 30 "$BIN" validate -f "$WORK/probe.yaml" 2>&1) && return 0
  BIN_CHECK="validate -f refused the bench config: $(head -c 400 <<<"$BIN_CHECK")"; return 1
}
waited=0
until bin_ready; do
  (( waited >= BIN_WAIT )) && die "$BIN not usable within ${BIN_WAIT}s: $BIN_CHECK"
  (( waited % 60 == 0 )) && log "waiting for $BIN ($BIN_CHECK) (${waited}s/${BIN_WAIT}s) ..."
  sleep 5; waited=$((waited + 5))
done
log "tollgate binary: $BIN ($(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)     # after the wait: the raw rows are named after the run
TSV=$OUT_DIR/validate-$STAMP.tsv

# ---------------------------------------------------------------- ports
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
PORTS=()
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < 4; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == 4 )) || die "no 4 free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]}; NGINX_PORT=${PORTS[1]}; TG_PORT=${PORTS[2]}; TG_ADMIN_PORT=${PORTS[3]}

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
  wait_http "http://$HOST:$UP_PORT/" "$UPSTREAM_PID" "upstream nginx" || { cat "$WORK/upstream.err" >&2; die "upstream did not start"; }
}

start_nginx_proxy() {
  write_nginx_proxy_conf
  nginx -t -q -p "$WORK" -e "$WORK/nginxproxy.err" -c "$WORK/nginxproxy.conf" || die "nginx proxy config invalid"
  nginx -p "$WORK" -e "$WORK/nginxproxy.err" -c "$WORK/nginxproxy.conf" -g 'daemon off;' &
  NGINX_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$NGINX_PORT/" "$NGINX_PID" "nginx proxy" || { cat "$WORK/nginxproxy.err" >&2; die "nginx proxy did not start"; }
}

start_tollgate() {  # sets TOLLGATE_FAIL on failure
  local out
  TOLLGATE_FAIL=""
  write_tollgate_conf "$WORK/tollgate.yaml" "$UP_PORT"
  if ! out=$("$BIN" validate -f "$WORK/tollgate.yaml" 2>&1); then
    log "$out"; die "the generated config does not validate ($BIN validate -f $WORK/tollgate.yaml)"
  fi
  (while read -r v; do unset "$v"; done < <(compgen -e | grep '^TOLLGATE_' || true)   # the caller's settings
   export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=warn
   exec "$BIN" serve --config "$WORK/tollgate.yaml" --data-dir "$WORK/data" \
     --proxy-listen "$HOST:$TG_PORT" --admin-listen "$HOST:$TG_ADMIN_PORT" \
     --workers "$WORKERS") > "$TG_LOG" 2>&1 &
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
# target_info TARGET : sets T_KIND T_SERVER T_METHOD T_PATH T_PORT T_PID T_URL T_LUA T_WHAT
target_info() {
  local t=$1 prefix=/v1
  T_KIND=${t##*-}
  case $t in
    direct-*)   T_SERVER=upstream; T_PORT=$UP_PORT;    T_WHAT="upstream nginx, no proxy" ;;
    nginx-*)    T_SERVER=nginx;    T_PORT=$NGINX_PORT; T_WHAT="nginx proxy" ;;
    tg-open-*)  T_SERVER=tollgate; T_PORT=$TG_PORT;    T_WHAT="Tollgate v2, no policy"; prefix=/v2 ;;
    tg-val-*)   T_SERVER=tollgate; T_PORT=$TG_PORT;    T_WHAT="Tollgate v1, \`validate: {}\`" ;;
  esac
  if [[ $T_KIND == get ]]; then
    T_METHOD=GET;  T_PATH="$prefix/items/42?$GET_QUERY"; T_LUA=$WORK/get.lua
  else
    T_METHOD=POST; T_PATH="$prefix/items";               T_LUA=$WORK/post.lua
  fi
  case $T_SERVER in upstream) T_PID=$UPSTREAM_PID ;; nginx) T_PID=$NGINX_PID ;; tollgate) T_PID=$TOLLGATE_PID ;; esac
  T_URL="http://$HOST:$T_PORT$T_PATH"
}

# send METHOD URL [BODY_FILE] : "status size" on stdout, body in $WORK/answer.body, headers in $WORK/answer.hdr
send() {
  local -a args=(-s --http1.1 -m 5 -X "$1" -D "$WORK/answer.hdr" -o "$WORK/answer.body" -w '%{http_code} %{size_download}')
  [[ -n ${3:-} ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$3")
  curl "${args[@]}" "$2" 2>&1 || true
}

# check_target TARGET : prints the reason and returns 1 when the target does not answer the
# request wrk will send with 200 "ok\n"
check_target() {
  local got body=""
  target_info "$1"
  [[ $T_METHOD == POST ]] && body=$WORK/valid.json
  got=$(send "$T_METHOD" "$T_URL" "$body")
  if [[ $got != "200 $BODY_BYTES" ]]; then
    echo "$T_METHOD $T_URL gave status/size '$got' (want '200 $BODY_BYTES'); body: $(head -c 300 "$WORK/answer.body" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  cmp -s "$WORK/answer.body" <(printf 'ok\n') || { echo "$T_METHOD $T_URL: body is not the upstream's 'ok'"; return 1; }
  return 0
}

# problem_summary FILE : "TYPE<TAB>N<TAB>in/name: message; ..." of a problem+json answer
problem_summary() {
  python3 - "$1" <<'EOF' 2>/dev/null || printf 'unparsable\t-1\t%s\n' "$(head -c 200 "$1" | tr '\n\t' '  ')"
import json, sys
p = json.load(open(sys.argv[1]))
errs = p.get("errors") or []
print("%s\t%d\t%s" % (p.get("type", ""), len(errs),
      "; ".join("%s %s: %s" % (e.get("in"), e.get("name") or "''", e.get("message")) for e in errs)))
EOF
}

# correctness checks: valid requests pass, invalid ones are refused on v1 (only)
precheck() {
  local got s ty n errs ctype
  if [[ -n $TOLLGATE_FAIL ]]; then check FAIL "Tollgate did not start: $TOLLGATE_FAIL"; return; fi
  got=$(send GET "http://$HOST:$TG_PORT/v1/items/42?$GET_QUERY")
  if [[ $got == "200 $BODY_BYTES" ]]; then check ok "v1 (validate): valid GET /v1/items/42?$GET_QUERY → 200 \`ok\`"
  else check FAIL "v1 (validate): valid GET /v1/items/42?$GET_QUERY gave '$got' (want 200): $(head -c 300 "$WORK/answer.body" | tr '\n' ' ')"; fi
  got=$(send POST "http://$HOST:$TG_PORT/v1/items" "$WORK/valid.json")
  if [[ $got == "200 $BODY_BYTES" ]]; then check ok "v1 (validate): valid POST /v1/items ($POST_BYTES-byte JSON body) → 200 \`ok\`"
  else check FAIL "v1 (validate): valid POST /v1/items gave '$got' (want 200): $(head -c 300 "$WORK/answer.body" | tr '\n' ' ')"; fi

  got=$(send POST "http://$HOST:$TG_PORT/v1/items" "$WORK/invalid.json")
  s=$(problem_summary "$WORK/answer.body"); ty=$(cut -f1 <<<"$s"); n=$(cut -f2 <<<"$s"); errs=$(cut -f3- <<<"$s")
  ctype=$(awk 'tolower($1) == "content-type:" { sub(/\r$/, ""); print $2 }' "$WORK/answer.hdr")
  if [[ ${got%% *} == 400 && $ty == */request-invalid && $n == 2 ]]; then
    check ok "v1 (validate): POST /v1/items without \`name\` and with \`\"price\":\"cheap\"\` → 400 \`$ctype\`, type \`${ty##*/}\`, 2 errors: $errs"
  else
    check FAIL "v1 (validate): invalid POST /v1/items gave '${got%% *}', type '$ty', $n error(s) (want 400, request-invalid, 2): $errs"
  fi
  got=$(send GET "http://$HOST:$TG_PORT/v1/items/0?view=everything&limit=1000")
  s=$(problem_summary "$WORK/answer.body"); ty=$(cut -f1 <<<"$s"); n=$(cut -f2 <<<"$s"); errs=$(cut -f3- <<<"$s")
  if [[ ${got%% *} == 400 && $ty == */request-invalid && $n == 3 ]]; then
    check ok "v1 (validate): GET /v1/items/0?view=everything&limit=1000 → 400, type \`${ty##*/}\`, 3 errors: $errs"
  else
    check FAIL "v1 (validate): GET /v1/items/0?view=everything&limit=1000 gave '${got%% *}', type '$ty', $n error(s) (want 400, request-invalid, 3): $errs"
  fi
  got=$(send POST "http://$HOST:$TG_PORT/v2/items" "$WORK/invalid.json")
  if [[ $got == "200 $BODY_BYTES" ]]; then check ok "v2 (no policy): the same invalid POST /v2/items → 200 (reaches the upstream: only v1 validates)"
  else check FAIL "v2 (no policy): invalid POST /v2/items gave '$got' (want 200: v2 has no validate policy)"; fi
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
task_ticks() {  # "id ticks" for every thread of PID and of its direct children
  local p t v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    for t in /proc/"$p"/task/*; do
      v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null) || continue
      echo "${t##*/} ${v:-0}"
    done
  done
}
busiest_pct() {  # busiest_pct BEFORE AFTER : the busiest thread's share (%) of the CPU used in between
  awk 'NR == FNR { a[$1] = $2; next } { d = $2 - a[$1]; if (d > 0) { s += d; if (d > m) m = d } }
       END { printf "%.0f", (s > 0 ? 100 * m / s : 0) }' "$1" "$2"
}
UNEVEN_PCT=85   # with several workers, a busiest thread above this share means the load was not spread

TSV_HEADER='started	rep	target	kind	server	method	path	port	conns	wrk_threads	proxy_workers	duration_s	requests	rps	p50_us	p90_us	p99_us	p999_us	max_us	err_connect	err_read	err_write	err_timeout	non2xx	server_cpu_us_per_req	server_cpu_pct	builds_running	status	note	busiest_thread_pct	request_body_bytes'

add_row() { local IFS=$'\t'; echo "$*" >> "$ROWS"; }

# run_load REP TARGET
run_load() {
  local rep=$1 target=$2 workers=$WORKERS out rc t0 t1 line why b0 b1 started fail="" reqbytes=0
  target_info "$target"
  [[ $T_SERVER == upstream ]] && workers=$UPSTREAM_WORKERS
  [[ $T_METHOD == POST ]] && reqbytes=$POST_BYTES
  local -a meta=("$target" "$T_KIND" "$T_SERVER" "$T_METHOD" "$T_PATH" "$T_PORT" "$CONNS" "$WORKERS" "$workers" "$DURATION")
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [[ $T_SERVER == tollgate && -n $TOLLGATE_FAIL ]]; then fail=$TOLLGATE_FAIL
  elif [[ -z $T_PID ]] || ! kill -0 "$T_PID" 2>/dev/null; then fail="server process not running"
  elif ! why=$(check_target "$target"); then fail="pre-check failed: $why"
  fi
  if [[ -n $fail ]]; then
    log "  $target: FAILED - $fail"
    if [[ $T_SERVER == tollgate ]]; then log "  tollgate log (last 15 lines):"; tail -n 15 "$TG_LOG" >&2 || true; fi
    add_row "$started" "$rep" "${meta[@]}" 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$(builds_running)" fail "$fail" 0 "$reqbytes"
    return 0
  fi
  target_info "$target"   # check_target ran in a subshell; T_* are unchanged, but be explicit
  wait_for_builds
  local -a wrk_cmd=(wrk -t"$WORKERS" -c"$CONNS" -s "$T_LUA")
  if (( WARMUP > 0 )); then
    timeout -k 5 $((WARMUP + 10)) "${wrk_cmd[@]}" -d"${WARMUP}s" "$T_URL" >/dev/null 2>&1 || true
  fi
  b0=$(builds_running); task_ticks "$T_PID" > "$WORK/tt0"; t0=$(proc_ticks "$T_PID")
  rc=0
  out=$(timeout -k 5 $((DURATION + 10)) "${wrk_cmd[@]}" -d"${DURATION}s" --latency "$T_URL" 2>&1) || rc=$?
  t1=$(proc_ticks "$T_PID"); task_ticks "$T_PID" > "$WORK/tt1"; b1=$(builds_running)
  printf '%s\n' "$out" > "$WORK/runs/wrk-$rep-$target.txt"
  if ! line=$(grep '^WRKRESULT' <<<"$out"); then
    fail="wrk gave no result (exit $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    log "  $target: FAILED - $fail"
    add_row "$started" "$rep" "${meta[@]}" 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$((b0 > b1 ? b0 : b1))" fail "$fail" 0 "$reqbytes"
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
    log "  WARNING: $target answered $non2xx non-2xx responses during the measured run (must be 0: a valid request was refused, or the server failed)"
  fi
  (( b0 + b1 > 0 )) && note="${note:+$note; }cargo/rustc running during the run"
  if (( workers > 1 && busy >= UNEVEN_PCT )); then
    note="${note:+$note; }uneven: one thread did $busy % of the server's CPU (connections not spread over the $workers workers)"
  fi
  add_row "$started" "$rep" "${meta[@]}" \
    "$requests" "$rps" "$p50_us" "$p90_us" "$p99_us" "$p999_us" "$max_us" \
    "$err_connect" "$err_read" "$err_write" "$err_timeout" "$non2xx" "$cpu_req" "$cpu_pct" "$((b0 > b1 ? b0 : b1))" "$status" "$note" "$busy" "$reqbytes"
  log "$(printf '  %-13s %8s req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %6s us/req (%s%%, busiest thread %s%%)  %s' \
    "$target" "$rps" "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" \
    "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" "$cpu_req" "$cpu_pct" "$busy" "$status${note:+ ($note)}")"
}

# rotate N WORDS... : the words rotated left by N
rotate() { local n=$1; shift; local -a w=("$@"); local i c=${#w[@]}; for (( i = 0; i < c; i++ )); do printf '%s ' "${w[(i + n) % c]}"; done; }

# ---------------------------------------------------------------- main
nt=0; for t in $TARGETS; do nt=$((nt + 1)); done
log "ports: upstream $UP_PORT, nginx $NGINX_PORT, tollgate $TG_PORT (admin $TG_ADMIN_PORT); work dir $WORK"
log "plan: $REPS rep(s) x $nt target(s) x (${WARMUP}s warm-up + ${DURATION}s) = about $((REPS * nt * (WARMUP + DURATION + 1) + 15))s of load"
wait_for_builds
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T_START=$SECONDS

start_upstream
start_nginx_proxy
start_tollgate
log "== checks"
precheck

for rep in $(seq "$REPS"); do
  log "== rep $rep/$REPS: nothing pinned, wrk $WORKERS threads, proxies $WORKERS workers, upstream $UPSTREAM_WORKERS worker(s)"
  if (( rep % 2 )); then kinds="get post"; else kinds="post get"; fi
  for kind in $kinds; do
    for target in direct-$kind $(rotate $(( (rep - 1) % 3 )) "nginx-$kind" "tg-open-$kind" "tg-val-$kind"); do
      [[ " $TARGETS " == *" $target "* ]] && run_load "$rep" "$target"
    done
  done
done

WARNINGS=()
if [[ -n $TOLLGATE_PID ]] && ! kill -0 "$TOLLGATE_PID" 2>/dev/null; then
  log "tollgate exited; last log lines:"; tail -n 20 "$TG_LOG" >&2 || true
  WARNINGS+=("Tollgate exited before the end (log: $(tail -n 3 "$TG_LOG" | tr '\n' ' '))")
fi
if [[ -s $TG_LOG ]] && grep -qiE 'warn|error|panick' "$TG_LOG"; then
  log "tollgate log has warnings/errors (first 10 lines):"
  grep -m 10 -iE 'warn|error|panick' "$TG_LOG" >&2 || true
  WARNINGS+=("Tollgate's log has $(grep -ciE 'warn|error|panick' "$TG_LOG") warning/error line(s), the first: $(grep -m 1 -iE 'warn|error|panick' "$TG_LOG" | head -c 300)")
fi
stop_all
ELAPSED=$((SECONDS - T_START))

{ echo "$TSV_HEADER"; cat "$ROWS"; } > "$TSV"
log "raw rows: $TSV"
log "total time: ${ELAPSED}s"

# ---------------------------------------------------------------- report (stdout)
echo "## Tollgate validate benchmark ($START_UTC)"
echo
echo "- host: $(uname -n), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), loopback"
echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), tollgate $( ("$BIN" --version 2>/dev/null || true) | head -n1 | sed "s/^tollgate //") (\`${BIN#"$ROOT"/}\`, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
echo "- command: \`DURATION=$DURATION WARMUP=$WARMUP REPS=$REPS CONNS=$CONNS WORKERS=$WORKERS TOLLGATE_BIN=${BIN#"$ROOT"/} bench/validate.sh\`"
echo "- duration ${DURATION}s (+${WARMUP}s warm-up) per run, $CONNS connections, reps $REPS (values are medians over reps); total time ${ELAPSED}s"
echo "- nothing pinned: wrk $WORKERS threads, nginx proxy and Tollgate $WORKERS workers each, upstream nginx $UPSTREAM_WORKERS worker(s) answering \"ok\\n\" (\`return 200\`) to every method and path"
echo "- one Tollgate node, API \`items\`: v1 routes \`POST /v1/items\` and \`GET /v1/items/{id}\` with \`validate: {}\`; v2 the same routes under \`/v2\` without a policy. Both versions carry the same inline OpenAPI 3.0.3 document (\`servers\` URL ending in \`/v1\` or \`/v2\`): GET \`/items/{id}\` (integer \`id\` ≥ 1; query \`view\` enum, \`limit\` integer 1..100), POST \`/items\` (required JSON body: 9 properties, 5 required, formats uuid/email/date-time, an array with \`minItems\`, a nested object by \`\$ref\`)"
echo "- requests: GET \`/vN/items/42?$GET_QUERY\`; POST \`/vN/items\` with a valid $POST_BYTES-byte JSON body (\`Content-Type: application/json\`, wrk Lua script). \`direct\` and \`nginx\` get the \`/v1\` paths"
echo "- raw rows: ${TSV#"$ROOT"/}"
echo
echo "### Checks"
echo
for c in "${CHECKS[@]}"; do
  if [[ ${c%%	*} == ok ]]; then echo "- ok: ${c#*	}"; else echo "- **FAILED**: ${c#*	}"; fi
done
echo
awk -F'\t' -v targets="$TARGETS" -v uneven="$UNEVEN_PCT" -v reps="$REPS" '
  function med(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  function ms(us) { return sprintf("%.3f", us / 1000) }
  function ratio(a, b) { return (a != "" && b != "" && b > 0) ? sprintf("%.2f", a / b) : "" }
  function bzs(k) { return sprintf("%.0f%s", bz[k], (unev[k] > 0 ? " ⚠" : "")) }
  {
    k = $3; runs[k]++
    if ($28 == "fail") { fails[k]++; why[k] = $29; next }
    n[k]++; R[k, n[k]] = $14; P50[k, n[k]] = $15; P99[k, n[k]] = $17; CU[k, n[k]] = $25; CP[k, n[k]] = $26; BZ[k, n[k]] = $30
    RR[k, $2] = $14; CR[k, $2] = $25
    if ($11 > 1 && $30 >= uneven) unev[k]++
    if ($27 > 0) { nb++; built = built (built == "" ? "" : ", ") k " rep " $2 }
    errs[k] += $20 + $21 + $22 + $23; non2xx[k] += $24
  }
  END {
    DESC["direct"] = "upstream nginx, no proxy"; DESC["nginx"] = "nginx proxy"
    DESC["tg-open"] = "Tollgate `/v2`, no policy"; DESC["tg-val"] = "Tollgate `/v1`, `validate: {}`"
    nt = split(targets, T, " ")
    for (i = 1; i <= nt; i++) want[T[i]] = 1
    print "### Throughput (keep-alive, plain HTTP)"
    print ""
    print "| request | target | what | req/s | p50 ms | p99 ms | errors / non-2xx | CPU µs/req | CPU % | busiest thread % | req/s vs open | CPU µs/req vs open | req/s vs nginx |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    nk = split("get post", K, " ")
    for (a = 1; a <= nk; a++) {
      kind = K[a]; label = (kind == "get" ? "GET" : "POST")
      split("direct nginx tg-open tg-val", S, " ")
      for (b = 1; b <= 4; b++) {
        k = S[b] "-" kind; if (!(k in want)) continue
        c = n[k]
        if (c == 0) { printf "| %s | %s | %s | FAILED | | | | | | | | | |\n", label, k, DESC[S[b]]; if (fails[k] > 0) failnote[++nf] = sprintf("%s: %d of %d runs failed: %s", k, fails[k], runs[k], why[k]); continue }
        delete x; for (j = 1; j <= c; j++) x[j] = R[k, j];   rps[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = P50[k, j]; p50[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = P99[k, j]; p99[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = CU[k, j];  cu[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = CP[k, j];  cp[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = BZ[k, j];  bz[k] = med(x, c)
        if (fails[k] > 0) failnote[++nf] = sprintf("%s: %d of %d runs failed: %s", k, fails[k], runs[k], why[k])
        if (unev[k] > 0) warn[++nw] = sprintf("%s: in %d of %d runs one thread did >= %d %% of the server CPU: the connections were not spread over the workers, so that row is closer to a one-worker figure", k, unev[k], n[k], uneven)
        if (non2xx[k] > 0) warn[++nw] = sprintf("%s: %d non-2xx answers (must be 0: a valid request was refused, or the server failed)", k, non2xx[k])
        else if (errs[k] > 0) warn[++nw] = sprintf("%s: %d wrk socket errors", k, errs[k])
        open = "tg-open-" kind; ng = "nginx-" kind
        vr = ""; vc = ""; vn = ""
        if (S[b] ~ /^tg-/ && n[open] > 0) { vr = ratio(rps[k], rps[open]); vc = sprintf("%+.1f", cu[k] - cu[open]); if (S[b] == "tg-val") vr = "**" vr "**" }
        if (S[b] ~ /^tg-/ && n[ng] > 0) vn = ratio(rps[k], rps[ng])
        printf "| %s | %s | %s | %.0f | %s | %s | %d / %d | %.1f | %.0f | %s | %s | %s | %s |\n",
          label, k, DESC[S[b]], rps[k], ms(p50[k]), ms(p99[k]), errs[k], non2xx[k], cu[k], cp[k], bzs(k), vr, vc, vn
      }
    }
    print ""
    print "CPU µs/req and CPU % are of the server under test: the upstream nginx for `direct`, the proxy otherwise (100 % = one core)."
    print "`busiest thread %`: the share of that CPU used by its busiest thread (nginx: worker process); with 2 workers an even spread is about 50-60 %, ⚠ marks rows where one thread did >= " uneven " %."
    print ""
    nr = 0
    for (a = 1; a <= nk; a++) {
      kind = K[a]; label = (kind == "get" ? "GET" : "POST")
      v = "tg-val-" kind; o = "tg-open-" kind; ng = "nginx-" kind
      if (n[v] > 0 && n[o] > 0) {
        if (!nr++) { print "Ratios (medians over reps):"; print "" }
        printf "- %s validated/open = **%.2f** (throughput), p99 %.2fx, CPU **%+.1f µs/req** (%.1f vs %.1f, %+.0f %%)\n",
          label, rps[v] / rps[o], (p99[o] > 0 ? p99[v] / p99[o] : 0), cu[v] - cu[o], cu[v], cu[o], (cu[o] > 0 ? 100 * (cu[v] - cu[o]) / cu[o] : 0)
      }
      if (n[ng] > 0 && (n[o] > 0 || n[v] > 0)) {
        if (!nr++) { print "Ratios (medians over reps):"; print "" }
        line = sprintf("- %s Tollgate/nginx:", label)
        if (n[o] > 0) line = line sprintf(" open %.2f (throughput), p99 %.2fx, CPU %.2fx", rps[o] / rps[ng], (p99[ng] > 0 ? p99[o] / p99[ng] : 0), (cu[ng] > 0 ? cu[o] / cu[ng] : 0))
        if (n[o] > 0 && n[v] > 0) line = line ";"
        if (n[v] > 0) line = line sprintf(" validated %.2f (throughput), p99 %.2fx, CPU %.2fx", rps[v] / rps[ng], (p99[ng] > 0 ? p99[v] / p99[ng] : 0), (cu[ng] > 0 ? cu[v] / cu[ng] : 0))
        print line
      }
    }
    if (nr) print ""
    # per rep, paired: validated/open in the same rep
    np = 0
    for (a = 1; a <= nk; a++) {
      kind = K[a]; v = "tg-val-" kind; o = "tg-open-" kind
      for (r = 1; r <= reps; r++) {
        if (!(((v, r) in RR) && ((o, r) in RR)) || RR[o, r] <= 0) continue
        if (!np++) {
          print "Per rep (same rep, paired):"
          print ""
          print "| request | rep | open req/s | validated req/s | validated/open | CPU µs/req open → validated |"
          print "|---|---:|---:|---:|---:|---:|"
        }
        printf "| %s | %d | %.0f | %.0f | %.2f | %.1f → %.1f (%+.1f) |\n", (kind == "get" ? "GET" : "POST"), r, RR[o, r], RR[v, r], RR[v, r] / RR[o, r], CR[o, r], CR[v, r], CR[v, r] - CR[o, r]
      }
    }
    if (np) print ""
    if (nb > 0) warn[++nw] = "cargo/rustc ran during: " built " (those numbers are suspect)"
    if (nw > 0) { print "Warnings:"; print ""; for (i = 1; i <= nw; i++) print "- " warn[i]; print "" }
    if (nf > 0) { print "Failures:"; print ""; for (i = 1; i <= nf; i++) print "- " failnote[i]; print "" }
  }' "$ROWS"
if (( ${#WARNINGS[@]} )); then
  echo "Tollgate:"
  echo
  for w in "${WARNINGS[@]}"; do echo "- $w"; done
  echo
fi

runfails=$(awk -F'\t' '$28 == "fail" || $28 == "errors"' "$ROWS" | wc -l)
if (( NFAIL > 0 || runfails > 0 )); then exit 1; fi
exit 0
