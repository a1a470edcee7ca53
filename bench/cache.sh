#!/usr/bin/env bash
# bench/cache.sh - a cached route in Tollgate vs nginx proxy_cache, on loopback, in one bounded run.
#
# What it does (everything on 127.0.0.1, every process it starts is stopped on exit):
#   1. installs nginx and wrk if they are missing (apt-get),
#   2. builds Tollgate (`cargo build --release -p tollgate`) unless TOLLGATE_BIN is set,
#   3. waits until no cargo/rustc is running, then for each REP x MODE measures four targets
#      with wrk, all on `GET /item` (a fixed 1024-byte JSON body, `Cache-Control: max-age=60`,
#      from an upstream nginx `return 200`):
#        direct           : wrk -> upstream nginx
#        nginx-cache      : wrk -> nginx reverse proxy with proxy_cache (hits) [-> upstream]
#        tollgate-cache   : wrk -> Tollgate, route `/` with `cache: { ttl: 60s }` (hits) [-> upstream]
#        tollgate-nocache : wrk -> Tollgate, same route without the cache policy -> upstream
#      Before each run one pre-check: status 200 and the 1024-byte body; for the cached
#      targets a second request must answer `X-Cache-Status: HIT` (nginx) / `X-Cache: HIT`
#      (Tollgate). The upstream's request counter (nginx stub_status) is read before and after
#      every measured run: for the cached targets it should stay at ~0.
#      MODE pinned   : upstream + wrk (1 thread) on LOAD_CPU, proxy (1 worker) on PROXY_CPU.
#           unpinned : nothing pinned, wrk 2 threads, proxies 2 workers.
#   4. prints a Markdown table (stdout): req/s, p50/p99 latency, wrk errors and non-2xx,
#      CPU microseconds per request and CPU % of the server under test (upstream for direct,
#      the proxy otherwise), upstream requests during the measured run, and the ratios
#      tollgate-cache/nginx-cache (throughput, p99) and tollgate-cache/tollgate-nocache.
#      Raw rows go to bench/out/cache-<timestamp>.tsv. Progress and diagnostics go to stderr.
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [10]   seconds of each measured wrk run (wrapped in `timeout`); keep
#                   WARMUP + DURATION well under 60 s, the freshness of the cached answer
#   WARMUP [2]      seconds of an unreported wrk run before each measured run (0 = none)
#   CONNS [64]      wrk connections
#   REPS [1]        repetitions of the whole matrix; the table shows medians over reps
#   MODES ["pinned unpinned"]
#   TARGETS ["direct nginx-cache tollgate-cache tollgate-nocache"]
#   LOAD_CPU [0] PROXY_CPU [1]  CPUs used in pinned mode
#   UNPINNED_WORKERS [2]        proxy workers and wrk threads in unpinned mode
#   UPSTREAM_WORKERS [1]        nginx workers of the upstream (both modes)
#   BASE_PORT [18080]           first port tried; the first 6 free ports from here are used
#   TOLLGATE_BIN                use this binary, skip the cargo build
#   BUILD_WAIT [600]            max seconds to wait for running cargo/rustc before measuring
#   OUT_DIR [bench/out]         where the raw TSV goes
#   KEEP_WORK [0]               1 = keep the temp work dir (configs, wrk output, logs)
#   NGINX_OPEN_FILE_CACHE [0]   1 = give the nginx cache proxy `open_file_cache` (keeps the
#                               cache file open between hits); 0 = the plain proxy_cache setup
#
# Example: REPS=3 ./bench/cache.sh          DURATION=5 MODES=pinned ./bench/cache.sh
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
REPS=${REPS:-1}
MODES=${MODES:-"pinned unpinned"}
TARGETS=${TARGETS:-"direct nginx-cache tollgate-cache tollgate-nocache"}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
UNPINNED_WORKERS=${UNPINNED_WORKERS:-2}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
BASE_PORT=${BASE_PORT:-18080}
BUILD_WAIT=${BUILD_WAIT:-600}
KEEP_WORK=${KEEP_WORK:-0}
NGINX_OPEN_FILE_CACHE=${NGINX_OPEN_FILE_CACHE:-0}
HOST=127.0.0.1   # loopback only
BODY_BYTES=1024  # size of the /item answer
FRESH_S=60       # max-age of the /item answer and ttl of the Tollgate cache policy

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}

log() { printf '%s\n' "$*" >&2; }
die() { log "cache.sh: $*"; exit 2; }

for v in DURATION WARMUP CONNS REPS LOAD_CPU PROXY_CPU UNPINNED_WORKERS UPSTREAM_WORKERS BASE_PORT BUILD_WAIT NGINX_OPEN_FILE_CACHE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION > 0 && CONNS > 0 && REPS > 0 )) || die "DURATION, CONNS and REPS must be > 0"
for t in $TARGETS; do
  case $t in direct|nginx-cache|tollgate-cache|tollgate-nocache) ;; *) die "unknown target '$t'" ;; esac
done
(( WARMUP + DURATION + 5 < FRESH_S )) \
  || log "note: WARMUP + DURATION >= ${FRESH_S}s: cached entries expire during a run, so a few upstream requests are expected"

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
  for t in nginx wrk curl ss taskset timeout awk ps pgrep od; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
  nginx -V 2>&1 | grep -q -- '--with-http_stub_status_module' \
    || die "this nginx has no stub_status module (needed to count upstream requests)"
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
if (( NCPU < 2 )); then log "note: 1 CPU only, pinned mode puts everything on cpu0"; LOAD_CPU=0; PROXY_CPU=0; fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-cachebench.XXXXXX")
chmod 755 "$WORK"   # nginx workers may run as another user and must write the cache dir
mkdir -p "$WORK/tmp" "$WORK/runs" "$WORK/data-cache" "$WORK/data-nocache"
ROWS=$WORK/rows.tsv
: > "$ROWS"
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$OUT_DIR/cache-$STAMP.tsv

# the fixed JSON answer, exactly BODY_BYTES bytes; no ', $, \ or newline (it goes into nginx.conf)
make_body() {
  local head='{"id":4711,"sku":"TG-BENCH-0001","name":"Tollgate cache benchmark item","price":{"amount":"19.99","currency":"EUR"},"tags":["bench","cache","json"],"in_stock":true,"pad":"'
  local tail='"}' n
  n=$((BODY_BYTES - ${#head} - ${#tail}))
  (( n > 0 )) || die "BODY_BYTES too small"
  printf '%s%s%s' "$head" "$(head -c "$n" /dev/zero | tr '\0' 'x')" "$tail"
}
BODY=$(make_body)
(( ${#BODY} == BODY_BYTES )) || die "body is ${#BODY} bytes, not $BODY_BYTES"

declare -a PIDS=()
declare -A PID_OF=() PORT_OF=() FAIL_OF=()
UPSTREAM_PID=""

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
  PIDS=(); UPSTREAM_PID=""; PID_OF=(); FAIL_OF=()
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
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < 6; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == 6 )) || die "no 6 free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]}
PORT_OF[direct]=${PORTS[0]}
PORT_OF[nginx-cache]=${PORTS[1]}
PORT_OF[tollgate-cache]=${PORTS[2]};   TG_CACHE_ADMIN=${PORTS[3]}
PORT_OF[tollgate-nocache]=${PORTS[4]}; TG_NOCACHE_ADMIN=${PORTS[5]}

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
    location = /item {
      default_type application/json;
      add_header Cache-Control "max-age=$FRESH_S";
      return 200 '$BODY';
    }
    # request counter (stub_status "requests" counts every request, this one included)
    location = /__upstream_status { stub_status; }
    location / { return 404; }
  }
}
EOF
  } > "$WORK/upstream.conf"
}

write_nginx_cache_conf() {  # $1 = workers
  {
    echo "worker_processes $1;"
    nginx_common nginxcache
    echo "http {"
    nginx_http_common nginxcache
    cat <<EOF
  proxy_cache_path $WORK/nginx-cache levels=1:2 keys_zone=c:10m max_size=100m inactive=10m;
EOF
    (( NGINX_OPEN_FILE_CACHE )) && echo "  open_file_cache max=1000 inactive=60s; open_file_cache_valid 60s;"
    cat <<EOF
  upstream bench {
    server $HOST:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen $HOST:${PORT_OF[nginx-cache]} backlog=4096;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_cache c;
      proxy_cache_valid 200 ${FRESH_S}s;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
EOF
  } > "$WORK/nginxcache.conf"
}

write_tollgate_conf() {  # $1 = cache|nocache
  local policies=""
  [[ $1 == cache ]] && policies="
            policies: [{ cache: { ttl: ${FRESH_S}s } }]"
  cat > "$WORK/tollgate-$1.yaml" <<EOF
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
          - path: /$policies
EOF
}

cat > "$WORK/report.lua" <<'EOF'
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
run_on() { local c=$1; shift; if [[ $c == - ]]; then exec "$@"; else exec taskset -c "$c" "$@"; fi; }

wait_http() {  # wait_http URL PID WHAT : until URL answers 2xx (max 30 s) or PID dies
  local url=$1 pid=$2 what=$3 _
  for _ in $(seq 300); do
    curl -sf -m 1 -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { log "$what exited during start-up"; return 1; }
    sleep 0.1
  done
  log "$what: no 2xx from $url after 30 s"; return 1
}

start_upstream() {  # $1 = cpulist or -
  write_upstream_conf
  nginx -t -q -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" || die "upstream nginx config invalid"
  (run_on "$1" nginx -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" -g 'daemon off;') &
  UPSTREAM_PID=$!; PIDS+=("$!"); PID_OF[direct]=$!
  wait_http "http://$HOST:$UP_PORT/__upstream_status" "$UPSTREAM_PID" "upstream nginx" \
    || { cat "$WORK/upstream.err" >&2; die "upstream did not start"; }
}

start_nginx_cache() {  # $1 = cpulist or -, $2 = workers ; the cache starts empty
  rm -rf "$WORK/nginx-cache"
  write_nginx_cache_conf "$2"
  nginx -t -q -p "$WORK" -e "$WORK/nginxcache.err" -c "$WORK/nginxcache.conf" || die "nginx cache proxy config invalid"
  (run_on "$1" nginx -p "$WORK" -e "$WORK/nginxcache.err" -c "$WORK/nginxcache.conf" -g 'daemon off;') &
  PID_OF[nginx-cache]=$!; PIDS+=("$!")
  FAIL_OF[nginx-cache]=""
  # readiness: any HTTP answer on a path the upstream answers 404 (does not touch /item)
  local _
  for _ in $(seq 300); do
    [[ $(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$HOST:${PORT_OF[nginx-cache]}/__ready" || true) == 404 ]] && return 0
    kill -0 "${PID_OF[nginx-cache]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/nginxcache.err" >&2; die "nginx cache proxy did not start"
}

ADMIN_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 32 hex chars
start_tollgate() {  # $1 = cache|nocache, $2 = cpulist or -, $3 = workers ; sets FAIL_OF on failure
  local kind=$1 target=tollgate-$1 admin logf=$WORK/tollgate-$1-$3w.log
  [[ $kind == cache ]] && admin=$TG_CACHE_ADMIN || admin=$TG_NOCACHE_ADMIN
  FAIL_OF[$target]=""
  write_tollgate_conf "$kind"
  (export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=warn
   run_on "$2" "$BIN" serve --config "$WORK/tollgate-$kind.yaml" --data-dir "$WORK/data-$kind" \
     --proxy-listen "$HOST:${PORT_OF[$target]}" --admin-listen "$HOST:$admin" --workers "$3") \
     > "$logf" 2>&1 &
  PID_OF[$target]=$!; PIDS+=("$!")
  if ! wait_http "http://$HOST:$admin/readyz" "${PID_OF[$target]}" "$target"; then
    local rc=running
    kill -0 "${PID_OF[$target]}" 2>/dev/null || { rc=0; wait "${PID_OF[$target]}" || rc=$?; rc="exit $rc"; }
    FAIL_OF[$target]="did not become ready (GET /readyz on the admin port; process: $rc); log: $(tail -n 5 "$logf" | tr '\n' ' ')"
    log "$target: ${FAIL_OF[$target]}"
  fi
}

upstream_count() {  # total requests seen by the upstream nginx (stub_status), "" on failure
  curl -s -m 2 "http://$HOST:$UP_PORT/__upstream_status" | awk 'NR == 3 { print $3 }'
}

# check_target TARGET URL : 200 + the body size; for the cached targets the second request must be a HIT.
# Prints the reason on failure; the cache headers seen go to $WORK/check.info.
check_target() {
  : > "$WORK/check.info"
  local target=$1 url=$2 got hdr i xc want_hdr
  case $target in
    nginx-cache)    want_hdr=x-cache-status ;;
    tollgate-cache) want_hdr=x-cache ;;
    *)              want_hdr="" ;;
  esac
  for i in 1 2; do
    got=$(curl -s -m 5 -D "$WORK/check.hdr$i" -o "$WORK/check.body" -w '%{http_code} %{size_download}' "$url" 2>&1) || true
    if [[ $got != "200 $BODY_BYTES" ]]; then
      echo "GET $url (#$i) gave status/size '$got' (want '200 $BODY_BYTES'); body: $(head -c 200 "$WORK/check.body" 2>/dev/null | tr '\n' ' ')"
      return 1
    fi
    cmp -s "$WORK/check.body" <(printf '%s' "$BODY") || { echo "GET $url (#$i): body differs from the upstream's"; return 1; }
  done
  if [[ -n $want_hdr ]]; then
    xc=$(awk -v h="$want_hdr" -F': *' 'tolower($1) == h { v = $2; sub(/\r$/, "", v); print v }' "$WORK/check.hdr2")
    echo "$want_hdr first: $(awk -v h="$want_hdr" -F': *' 'tolower($1) == h { v = $2; sub(/\r$/, "", v); print v }' "$WORK/check.hdr1"), second: $xc" > "$WORK/check.info"
    [[ $xc == HIT ]] || { echo "second GET $url: $want_hdr is '${xc:-absent}', want HIT (cache not hitting)"; return 1; }
  else
    if [[ $target == tollgate-nocache ]] && grep -qi '^x-cache:' "$WORK/check.hdr2"; then
      echo "GET $url: X-Cache header on the route without cache policy"; return 1
    fi
  fi
  return 0
}

# ---------------------------------------------------------------- measuring
CLK_TCK=$(getconf CLK_TCK)
proc_ticks() {  # utime+stime of PID (all its threads) and its direct children (nginx workers, cache manager)
  local p t=0 v
  for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    v=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
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

TSV_HEADER='started	rep	mode	target	port	conns	wrk_threads	proxy_workers	duration_s	requests	rps	p50_us	p90_us	p99_us	p999_us	max_us	err_connect	err_read	err_write	err_timeout	non2xx	server_cpu_us_per_req	server_cpu_pct	upstream_requests	upstream_cpu_us_per_req	builds_running	status	note	bytes_per_req'

add_row() { local IFS=$'\t'; echo "$*" >> "$ROWS"; }

# run_load REP MODE TARGET
run_load() {
  local rep=$1 mode=$2 target=$3 port pid threads workers cpus url out rc t0 t1 u0 u1 ut0 ut1 line why b0 b1 started
  port=${PORT_OF[$target]}; pid=${PID_OF[$target]:-}
  if [[ $mode == pinned ]]; then threads=1; workers=1; cpus=$LOAD_CPU; else threads=$UNPINNED_WORKERS; workers=$UNPINNED_WORKERS; cpus=-; fi
  [[ $target == direct ]] && workers=$UPSTREAM_WORKERS
  url="http://$HOST:$port/item"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local fail="" upreq=-1 upcpu=0
  if [[ -n ${FAIL_OF[$target]:-} ]]; then fail=${FAIL_OF[$target]}
  elif ! why=$(check_target "$target" "$url"); then fail="pre-check failed: $why"
  fi
  if [[ -n $fail ]]; then
    log "  $mode $target: FAILED - $fail"
    add_row "$started" "$rep" "$mode" "$target" "$port" "$CONNS" "$threads" "$workers" "$DURATION" \
      0 0 0 0 0 0 0 0 0 0 0 0 0 0 -1 0 "$(builds_running)" fail "$fail" 0
    return 0
  fi
  [[ -s $WORK/check.info ]] && log "  $mode $target: pre-check ok ($(cat "$WORK/check.info"))"
  local -a wrk_cmd=(wrk -t"$threads" -c"$CONNS")
  if (( WARMUP > 0 )); then
    (run_on "$cpus" timeout -k 5 $((WARMUP + 10)) "${wrk_cmd[@]}" -d"${WARMUP}s" "$url") >/dev/null 2>&1 || true
  fi
  b0=$(builds_running); u0=$(upstream_count); ut0=$(proc_ticks "$UPSTREAM_PID"); t0=$(proc_ticks "$pid")
  rc=0
  out=$( (run_on "$cpus" timeout -k 5 $((DURATION + 10)) "${wrk_cmd[@]}" -d"${DURATION}s" --latency -s "$WORK/report.lua" "$url") 2>&1) || rc=$?
  t1=$(proc_ticks "$pid"); ut1=$(proc_ticks "$UPSTREAM_PID"); u1=$(upstream_count); b1=$(builds_running)
  # the second status request counts itself
  [[ -n $u0 && -n $u1 ]] && upreq=$((u1 - u0 - 1))
  printf '%s\n' "$out" > "$WORK/runs/wrk-$rep-$mode-$target.txt"
  if ! line=$(grep '^WRKRESULT' <<<"$out"); then
    fail="wrk gave no result (exit $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    log "  $mode $target: FAILED - $fail"
    add_row "$started" "$rep" "$mode" "$target" "$port" "$CONNS" "$threads" "$workers" "$DURATION" \
      0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$upreq" 0 "$((b0 > b1 ? b0 : b1))" fail "$fail" 0
    return 0
  fi
  local requests duration_us bytes p50_us p90_us p99_us p999_us max_us err_connect err_read err_write err_timeout non2xx kv
  for kv in ${line#WRKRESULT }; do printf -v "${kv%%=*}" '%s' "${kv#*=}"; done
  local rps cpu_req cpu_pct status=ok note=""
  rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? r / (d / 1e6) : 0) }')
  cpu_req=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')
  cpu_pct=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? 100 * t / hz / (d / 1e6) : 0) }')
  upcpu=$(awk -v t=$((ut1 - ut0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')
  if ! kill -0 "$pid" 2>/dev/null; then status=fail; note="server process $pid died during the run"; fi
  if (( err_connect + err_read + err_write + err_timeout + non2xx > 0 )); then
    [[ $status == ok ]] && status=errors
    note="${note:+$note; }connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout non2xx=$non2xx"
  fi
  if [[ $target == *-cache ]] && (( upreq > 1 )); then
    [[ $status == ok ]] && status=misses
    note="${note:+$note; }cache not hitting: $upreq upstream requests during the run"
  fi
  (( upreq < 0 )) && note="${note:+$note; }upstream counter unreadable"
  (( b0 + b1 > 0 )) && note="${note:+$note; }cargo/rustc running during the run"
  add_row "$started" "$rep" "$mode" "$target" "$port" "$CONNS" "$threads" "$workers" "$DURATION" \
    "$requests" "$rps" "$p50_us" "$p90_us" "$p99_us" "$p999_us" "$max_us" \
    "$err_connect" "$err_read" "$err_write" "$err_timeout" "$non2xx" "$cpu_req" "$cpu_pct" "$upreq" "$upcpu" \
    "$((b0 > b1 ? b0 : b1))" "$status" "$note" \
    "$(awk -v b="$bytes" -v r="$requests" 'BEGIN { printf "%.0f", (r > 0 ? b / r : 0) }')"
  log "$(printf '  %-8s %-16s %8s req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %6s us/req (%s%%)  upstream reqs %s  %s' \
    "$mode" "$target" "$rps" "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" \
    "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" "$cpu_req" "$cpu_pct" "$upreq" "$status${note:+ ($note)}")"
}

# ---------------------------------------------------------------- main
log "ports: upstream $UP_PORT, nginx-cache ${PORT_OF[nginx-cache]}, tollgate-cache ${PORT_OF[tollgate-cache]} (admin $TG_CACHE_ADMIN), tollgate-nocache ${PORT_OF[tollgate-nocache]} (admin $TG_NOCACHE_ADMIN); work dir $WORK"
log "tollgate binary: $BIN"
wait_for_builds
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)

PROXY_TARGETS=(nginx-cache tollgate-cache tollgate-nocache)
mode_idx=0
for rep in $(seq "$REPS"); do
  for mode in $MODES; do
    case $mode in
      pinned)   up_cpus=$LOAD_CPU; px_cpus=$PROXY_CPU; px_workers=1 ;;
      unpinned) up_cpus=-;         px_cpus=-;          px_workers=$UNPINNED_WORKERS ;;
      *) die "unknown mode '$mode' (pinned|unpinned)" ;;
    esac
    log "== rep $rep/$REPS, mode $mode: upstream cpus ${up_cpus/-/any}, proxies cpus ${px_cpus/-/any} x $px_workers worker(s)"
    wait_for_builds
    start_upstream "$up_cpus"
    [[ " $TARGETS " == *" nginx-cache "* ]] && start_nginx_cache "$px_cpus" "$px_workers"
    [[ " $TARGETS " == *" tollgate-cache "* ]] && start_tollgate cache "$px_cpus" "$px_workers"
    [[ " $TARGETS " == *" tollgate-nocache "* ]] && start_tollgate nocache "$px_cpus" "$px_workers"
    # direct first, then the three proxies in an order rotated per rep and mode to spread drift
    s=$(( (rep - 1 + mode_idx) % 3 ))
    order="direct ${PROXY_TARGETS[s]} ${PROXY_TARGETS[(s + 1) % 3]} ${PROXY_TARGETS[(s + 2) % 3]}"
    for target in $order; do
      [[ " $TARGETS " == *" $target "* ]] && run_load "$rep" "$mode" "$target"
    done
    for kind in cache nocache; do
      t=tollgate-$kind; lf=$WORK/tollgate-$kind-${px_workers}w.log
      [[ -n ${PID_OF[$t]:-} ]] || continue
      if ! kill -0 "${PID_OF[$t]}" 2>/dev/null; then
        log "$t exited; last log lines:"; tail -n 20 "$lf" >&2 || true
      fi
      if grep -qiE 'warn|error|panick' "$lf"; then
        log "$t log ($mode) has warnings/errors (first 10 lines):"
        grep -iE 'warn|error|panick' "$lf" | head -n 10 >&2
      fi
    done
    stop_all
    mode_idx=$((mode_idx + 1))
  done
done

{ echo "$TSV_HEADER"; cat "$ROWS"; } > "$TSV"
log "raw rows: $TSV"

# ---------------------------------------------------------------- report (stdout)
echo "## Tollgate cache benchmark ($START_UTC)"
echo
echo "- host: $(uname -n), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), loopback"
echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), tollgate $( ("$BIN" --version 2>/dev/null || true) | head -n1 | sed "s/^tollgate //")"
echo "- GET /item: $BODY_BYTES-byte JSON, Cache-Control: max-age=$FRESH_S (upstream nginx \`return 200\`); nginx proxy_cache (keys_zone=c:10m, proxy_cache_valid 200 ${FRESH_S}s$( (( NGINX_OPEN_FILE_CACHE )) && echo ", open_file_cache on")); Tollgate route \`/\` with \`cache: { ttl: ${FRESH_S}s }\`"
echo "- duration ${DURATION}s (+${WARMUP}s warm-up) per run, $CONNS connections, reps $REPS (values are medians over reps)"
echo "- pinned: upstream + wrk (1 thread) on cpu$LOAD_CPU, proxy (1 worker) on cpu$PROXY_CPU; unpinned: nothing pinned, wrk $UNPINNED_WORKERS threads, proxies $UNPINNED_WORKERS workers; upstream nginx $UPSTREAM_WORKERS worker(s)"
echo "- raw rows: ${TSV#"$ROOT"/}"
echo
awk -F'\t' -v modes="$MODES" -v targets="$TARGETS" '
  function med(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  function ms(us) { return sprintf("%.3f", us / 1000) }
  NR == 1 && $1 == "started" { next }
  {
    k = $3 SUBSEP $4
    runs[k]++
    if ($24 >= 0) { up[k] = (k in up ? up[k] "+" : "") $24; uptot[k] += $24 } else up[k] = (k in up ? up[k] "+" : "") "?"
    if ($27 == "fail") { fails[k]++; why[k] = $28; next }
    if ($27 == "misses") { missnote[++nm2] = sprintf("%s %s (rep %s): %s", $3, $4, $2, $28) }
    n[k]++; R[k, n[k]] = $11; P50[k, n[k]] = $12; P99[k, n[k]] = $14; CU[k, n[k]] = $22; CP[k, n[k]] = $23
    REQ[k] += $10
    errs[k] += $17 + $18 + $19 + $20; non2xx[k] += $21
  }
  END {
    print "| mode | target | req/s | p50 ms | p99 ms | errors / non-2xx | CPU µs/req | CPU % | upstream requests / requests served | req/s vs direct | req/s tollgate/nginx (cached) | p99 tollgate/nginx (cached) |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    nm = split(modes, M, " "); nt = split(targets, T, " ")
    for (a = 1; a <= nm; a++) {
      delete rps; delete p99; delete cu
      for (t = 1; t <= nt; t++) {
        k = M[a] SUBSEP T[t]; c = n[k]
        if (c > 0) {
          delete x; for (i = 1; i <= c; i++) x[i] = R[k, i];   rps[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = P50[k, i]; p50[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = P99[k, i]; p99[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = CU[k, i];  cu[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = CP[k, i];  cp[T[t]] = med(x, c)
        }
      }
      for (t = 1; t <= nt; t++) {
        tg = T[t]; k = M[a] SUBSEP tg
        if (!(k in runs)) continue
        if (n[k] == 0) {
          printf "| %s | %s | FAILED | | | | | | | | | |\n", M[a], tg
          failnote[++nf] = sprintf("%s %s: %s", M[a], tg, why[k]); continue
        }
        vsd = (tg != "direct" && rps["direct"] > 0) ? sprintf("%.2f", rps[tg] / rps["direct"]) : ""
        rr = ""; pr = ""
        if (tg == "tollgate-cache" && rps["nginx-cache"] > 0 && p99["nginx-cache"] > 0) {
          rr = sprintf("**%.2f**", rps[tg] / rps["nginx-cache"]); pr = sprintf("**%.2f**", p99[tg] / p99["nginx-cache"])
          verdict[++nv] = sprintf("%s: Tollgate cached / nginx proxy_cache: throughput %.2fx, p99 %.2fx, CPU per request %.2fx (%.1f vs %.1f µs)",
            M[a], rps[tg] / rps["nginx-cache"], p99[tg] / p99["nginx-cache"],
            (cu["nginx-cache"] > 0 ? cu[tg] / cu["nginx-cache"] : 0), cu[tg], cu["nginx-cache"])
        }
        if (tg == "nginx-cache" && rps[tg] > 0) { rr = "1.00"; pr = "1.00" }
        if (tg == "tollgate-cache" && rps["tollgate-nocache"] > 0 && p99["tollgate-nocache"] > 0)
          saves[++ns] = sprintf("%s: Tollgate cached / uncached: throughput %.2fx, p99 %.2fx, CPU per request %.1f vs %.1f µs",
            M[a], rps[tg] / rps["tollgate-nocache"], p99[tg] / p99["tollgate-nocache"], cu[tg], cu["tollgate-nocache"])
        printf "| %s | %s | %.0f | %s | %s | %d / %d | %.1f | %.0f | %s / %d | %s | %s | %s |\n",
          M[a], tg, rps[tg], ms(p50[tg]), ms(p99[tg]), errs[k], non2xx[k], cu[tg], cp[tg], up[k], REQ[k], vsd, rr, pr
        if (fails[k] > 0) failnote[++nf] = sprintf("%s %s: %d of %d runs failed: %s", M[a], tg, fails[k], runs[k], why[k])
      }
    }
    print ""
    print "CPU µs/req and CPU % are of the server under test: the upstream nginx for `direct`, the proxy otherwise (100 % = one core)."
    print "Upstream requests are counted by the upstream nginx (stub_status) during the measured run only (sum over reps, `+` between reps); a cached target should show ~0."
    if (nv + ns > 0) { print ""; print "Ratios:"; print ""; for (i = 1; i <= nv; i++) print "- " verdict[i]; for (i = 1; i <= ns; i++) print "- " saves[i] }
    if (nm2 > 0) { print ""; print "Cache misses:"; print ""; for (i = 1; i <= nm2; i++) print "- " missnote[i] }
    if (nf > 0) { print ""; print "Failures:"; print ""; for (i = 1; i <= nf; i++) print "- " failnote[i] }
  }' "$ROWS"
