#!/usr/bin/env bash
# bench/proxy.sh - Tollgate vs nginx as a reverse proxy, on loopback, in one bounded run.
#
# What it does (everything on 127.0.0.1, every process it starts is stopped on exit):
#   1. installs nginx and wrk if they are missing (apt-get),
#   2. builds Tollgate (`cargo build --release -p tollgate`) unless TOLLGATE_BIN is set,
#   3. waits until no cargo/rustc is running (a build distorts every number), then for each
#      REP x MODE x BODY measures three targets with wrk:
#        direct   : wrk -> upstream nginx (fixed responses)
#        nginx    : wrk -> nginx reverse proxy (upstream keepalive pool) -> upstream
#        tollgate : wrk -> Tollgate -> upstream
#      BODY small = "ok\n" (3 bytes, nginx `return 200`), 64k = a 65536-byte static file.
#      MODE pinned   : upstream + wrk (1 thread) on LOAD_CPU, proxy (1 worker) on PROXY_CPU.
#           unpinned : nothing pinned, wrk 2 threads, proxies 2 workers.
#   4. prints a Markdown table (stdout): req/s, p50/p99 latency, wrk errors and non-2xx
#      responses, CPU microseconds per request of the server under test (upstream for
#      direct, the proxy otherwise, from /proc/PID/stat utime+stime), its CPU % (100 = one
#      core), and the ratios tollgate/nginx (throughput and p99). Raw rows (one per run)
#      go to bench/out/proxy-<timestamp>.tsv. Progress and diagnostics go to stderr.
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [10]   seconds of each measured wrk run (wrapped in `timeout`)
#   WARMUP [2]      seconds of an unreported wrk run before each measured run (0 = none)
#   CONNS [64]      wrk connections
#   REPS [1]        repetitions of the whole matrix; the table shows medians over reps
#   MODES ["pinned unpinned"]   BODIES ["small 64k"]   TARGETS ["direct nginx tollgate"]
#   LOAD_CPU [0] PROXY_CPU [1]  CPUs used in pinned mode
#   UNPINNED_WORKERS [2]        proxy workers and wrk threads in unpinned mode
#   UPSTREAM_WORKERS [1]        nginx workers of the upstream (both modes)
#   BASE_PORT [18080]           first port tried; the first 4 free ports from here are used
#   TOLLGATE_BIN                use this binary, skip the cargo build
#   BUILD_WAIT [600]            max seconds to wait for running cargo/rustc before measuring
#   OUT_DIR [bench/out]         where the raw TSV goes
#   KEEP_WORK [0]               1 = keep the temp work dir (configs, wrk output, logs)
#
# Example: REPS=3 ./bench/proxy.sh          DURATION=5 MODES=pinned BODIES=small ./bench/proxy.sh
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
REPS=${REPS:-1}
MODES=${MODES:-"pinned unpinned"}
BODIES=${BODIES:-"small 64k"}
TARGETS=${TARGETS:-"direct nginx tollgate"}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
UNPINNED_WORKERS=${UNPINNED_WORKERS:-2}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
BASE_PORT=${BASE_PORT:-18080}
BUILD_WAIT=${BUILD_WAIT:-600}
KEEP_WORK=${KEEP_WORK:-0}
HOST=127.0.0.1   # loopback only

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}

log() { printf '%s\n' "$*" >&2; }
die() { log "proxy.sh: $*"; exit 2; }

for v in DURATION WARMUP CONNS REPS LOAD_CPU PROXY_CPU UNPINNED_WORKERS UPSTREAM_WORKERS BASE_PORT BUILD_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION > 0 && CONNS > 0 && REPS > 0 )) || die "DURATION, CONNS and REPS must be > 0"

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
  for t in nginx wrk curl ss taskset timeout awk ps pgrep; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
chmod 755 "$WORK"   # nginx workers may run as another user and must read www/
mkdir -p "$WORK/www" "$WORK/tmp" "$WORK/data" "$WORK/runs"
printf 'ok\n' > "$WORK/www/small"
head -c 65536 /dev/zero | tr '\0' 'x' > "$WORK/www/64k"
chmod -R a+rX "$WORK/www"
ROWS=$WORK/rows.tsv
: > "$ROWS"
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$OUT_DIR/proxy-$STAMP.tsv

declare -a PIDS=()
UPSTREAM_PID=""; NGINX_PID=""; TOLLGATE_PID=""
TOLLGATE_FAIL=""   # why Tollgate is unusable in the current mode ("" = fine)

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
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < 4; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == 4 )) || die "no 4 free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]}; NGINX_PORT=${PORTS[1]}; TG_PORT=${PORTS[2]}; TG_ADMIN_PORT=${PORTS[3]}

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
  # header+body in one write from memory: sendfile/TCP_CORK gave tail stalls on loopback
  sendfile off; tcp_nopush off; output_buffers 1 128k;
  open_file_cache max=16 inactive=1h; open_file_cache_valid 1h;
  server {
    listen $HOST:$UP_PORT backlog=4096;
    location = /small { default_type text/plain; return 200 "ok\n"; }
    location = /64k   { root $WORK/www; default_type application/octet-stream; }
    location / { return 404; }
  }
}
EOF
  } > "$WORK/upstream.conf"
}

write_nginx_proxy_conf() {  # $1 = workers
  {
    echo "worker_processes $1;"
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
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;          # a 64 KiB body stays in memory
      proxy_max_temp_file_size 0;   # never spool to disk
    }
  }
}
EOF
  } > "$WORK/nginxproxy.conf"
}

write_tollgate_conf() {
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
        routes: [{ path: / }]
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
# run_on CPULIST cmd... : exec the command, pinned unless CPULIST is "-"
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
  UPSTREAM_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$UP_PORT/small" "$UPSTREAM_PID" "upstream nginx" || { cat "$WORK/upstream.err" >&2; die "upstream did not start"; }
}

start_nginx_proxy() {  # $1 = cpulist or -, $2 = workers
  write_nginx_proxy_conf "$2"
  nginx -t -q -p "$WORK" -e "$WORK/nginxproxy.err" -c "$WORK/nginxproxy.conf" || die "nginx proxy config invalid"
  (run_on "$1" nginx -p "$WORK" -e "$WORK/nginxproxy.err" -c "$WORK/nginxproxy.conf" -g 'daemon off;') &
  NGINX_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$NGINX_PORT/small" "$NGINX_PID" "nginx proxy" || { cat "$WORK/nginxproxy.err" >&2; die "nginx proxy did not start"; }
}

ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 48 hex chars
start_tollgate() {  # $1 = cpulist or -, $2 = workers ; sets TOLLGATE_FAIL on failure
  local logf=$WORK/tollgate-$2w.log
  TOLLGATE_FAIL=""
  write_tollgate_conf
  (export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=warn
   run_on "$1" "$BIN" serve --config "$WORK/tollgate.yaml" --data-dir "$WORK/data" \
     --proxy-listen "$HOST:$TG_PORT" --admin-listen "$HOST:$TG_ADMIN_PORT" --workers "$2") \
     > "$logf" 2>&1 &
  TOLLGATE_PID=$!; PIDS+=("$!")
  if ! wait_http "http://$HOST:$TG_ADMIN_PORT/readyz" "$TOLLGATE_PID" "tollgate"; then
    local rc=running
    kill -0 "$TOLLGATE_PID" 2>/dev/null || { rc=0; wait "$TOLLGATE_PID" || rc=$?; rc="exit $rc"; }
    TOLLGATE_FAIL="did not become ready (GET /readyz on the admin port; process: $rc); log: $(tail -n 5 "$logf" | tr '\n' ' ')"
    log "tollgate: $TOLLGATE_FAIL"
  fi
}

# check_target URL BODY : one request must give 200 and the expected body size
check_target() {
  local url=$1 body=$2 want got
  case $body in small) want=3 ;; 64k) want=65536 ;; esac
  got=$(curl -s -m 5 -o "$WORK/check.body" -w '%{http_code} %{size_download}' "$url" 2>&1) || true
  [[ $got == "200 $want" ]] && return 0
  echo "GET $url gave status/size '$got' (want '200 $want'); body: $(head -c 200 "$WORK/check.body" 2>/dev/null | tr '\n' ' ')"
  return 1
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

TSV_HEADER='started	rep	mode	body	target	port	conns	wrk_threads	proxy_workers	duration_s	requests	rps	p50_us	p90_us	p99_us	p999_us	max_us	err_connect	err_read	err_write	err_timeout	non2xx	server_cpu_us_per_req	server_cpu_pct	builds_running	status	note'

# add_row fields... (tab-joined, in TSV_HEADER order)
add_row() { local IFS=$'\t'; echo "$*" >> "$ROWS"; }

# run_load REP MODE BODY TARGET
run_load() {
  local rep=$1 mode=$2 body=$3 target=$4 port pid threads workers cpus url out rc t0 t1 line why b0 b1 started
  case $target in
    direct)   port=$UP_PORT;    pid=$UPSTREAM_PID ;;
    nginx)    port=$NGINX_PORT; pid=$NGINX_PID ;;
    tollgate) port=$TG_PORT;    pid=$TOLLGATE_PID ;;
  esac
  if [[ $mode == pinned ]]; then threads=1; workers=1; cpus=$LOAD_CPU; else threads=$UNPINNED_WORKERS; workers=$UNPINNED_WORKERS; cpus=-; fi
  [[ $target == direct ]] && workers=$UPSTREAM_WORKERS
  url="http://$HOST:$port/$body"
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local fail=""
  if [[ $target == tollgate && -n $TOLLGATE_FAIL ]]; then fail=$TOLLGATE_FAIL
  elif ! why=$(check_target "$url" "$body"); then fail="pre-check failed: $why"
  fi
  if [[ -n $fail ]]; then
    log "  $mode $body $target: FAILED - $fail"
    add_row "$started" "$rep" "$mode" "$body" "$target" "$port" "$CONNS" "$threads" "$workers" "$DURATION" \
      0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$(builds_running)" fail "$fail"
    return 0
  fi
  local -a wrk_cmd=(wrk -t"$threads" -c"$CONNS")
  if (( WARMUP > 0 )); then
    (run_on "$cpus" timeout -k 5 $((WARMUP + 10)) "${wrk_cmd[@]}" -d"${WARMUP}s" "$url") >/dev/null 2>&1 || true
  fi
  b0=$(builds_running); t0=$(proc_ticks "$pid")
  rc=0
  out=$( (run_on "$cpus" timeout -k 5 $((DURATION + 10)) "${wrk_cmd[@]}" -d"${DURATION}s" --latency -s "$WORK/report.lua" "$url") 2>&1) || rc=$?
  t1=$(proc_ticks "$pid"); b1=$(builds_running)
  printf '%s\n' "$out" > "$WORK/runs/wrk-$rep-$mode-$body-$target.txt"
  if ! line=$(grep '^WRKRESULT' <<<"$out"); then
    fail="wrk gave no result (exit $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    log "  $mode $body $target: FAILED - $fail"
    add_row "$started" "$rep" "$mode" "$body" "$target" "$port" "$CONNS" "$threads" "$workers" "$DURATION" \
      0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$((b0 > b1 ? b0 : b1))" fail "$fail"
    return 0
  fi
  local requests duration_us bytes p50_us p90_us p99_us p999_us max_us err_connect err_read err_write err_timeout non2xx kv
  for kv in ${line#WRKRESULT }; do printf -v "${kv%%=*}" '%s' "${kv#*=}"; done
  local rps cpu_req cpu_pct status=ok note=""
  rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? r / (d / 1e6) : 0) }')
  cpu_req=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')
  cpu_pct=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? 100 * t / hz / (d / 1e6) : 0) }')
  if ! kill -0 "$pid" 2>/dev/null; then status=fail; note="server process $pid died during the run"; fi
  if (( err_connect + err_read + err_write + err_timeout + non2xx > 0 )); then
    [[ $status == ok ]] && status=errors
    note="${note:+$note; }connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout non2xx=$non2xx"
  fi
  (( b0 + b1 > 0 )) && note="${note:+$note; }cargo/rustc running during the run"
  add_row "$started" "$rep" "$mode" "$body" "$target" "$port" "$CONNS" "$threads" "$workers" "$DURATION" \
    "$requests" "$rps" "$p50_us" "$p90_us" "$p99_us" "$p999_us" "$max_us" \
    "$err_connect" "$err_read" "$err_write" "$err_timeout" "$non2xx" "$cpu_req" "$cpu_pct" "$((b0 > b1 ? b0 : b1))" "$status" "$note"
  log "$(printf '  %-8s %-5s %-8s %8s req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %6s us/req (%s%%)  %s' \
    "$mode" "$body" "$target" "$rps" "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" \
    "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" "$cpu_req" "$cpu_pct" "$status${note:+ ($note)}")"
}

# ---------------------------------------------------------------- main
log "ports: upstream $UP_PORT, nginx proxy $NGINX_PORT, tollgate $TG_PORT (admin $TG_ADMIN_PORT); work dir $WORK"
log "tollgate binary: $BIN"
wait_for_builds
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)

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
    [[ " $TARGETS " == *" nginx "* ]] && start_nginx_proxy "$px_cpus" "$px_workers"
    [[ " $TARGETS " == *" tollgate "* ]] && start_tollgate "$px_cpus" "$px_workers"
    body_idx=0
    for body in $BODIES; do
      case $body in small|64k) ;; *) die "unknown body '$body' (small|64k)" ;; esac
      # direct first, then the two proxies in alternating order to spread drift over both
      if (( (rep + body_idx + mode_idx) % 2 )); then order="direct nginx tollgate"; else order="direct tollgate nginx"; fi
      for target in $order; do
        [[ " $TARGETS " == *" $target "* ]] && run_load "$rep" "$mode" "$body" "$target"
      done
      body_idx=$((body_idx + 1))
    done
    if [[ -n $TOLLGATE_PID ]] && ! kill -0 "$TOLLGATE_PID" 2>/dev/null; then
      log "tollgate exited; last log lines:"; tail -n 20 "$WORK/tollgate-${px_workers}w.log" >&2 || true
    fi
    if [[ -n $TOLLGATE_PID ]] && grep -qiE 'warn|error|panick' "$WORK/tollgate-${px_workers}w.log"; then
      log "tollgate log ($mode) has warnings/errors (first 10 lines):"
      grep -iE 'warn|error|panick' "$WORK/tollgate-${px_workers}w.log" | head -n 10 >&2
    fi
    stop_all
    mode_idx=$((mode_idx + 1))
  done
done

{ echo "$TSV_HEADER"; cat "$ROWS"; } > "$TSV"
log "raw rows: $TSV"

# ---------------------------------------------------------------- report (stdout)
echo "## Tollgate proxy benchmark ($START_UTC)"
echo
echo "- host: $(uname -n), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), loopback"
echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), tollgate $( ("$BIN" --version 2>/dev/null || true) | head -n1 | sed "s/^tollgate //")"
echo "- duration ${DURATION}s (+${WARMUP}s warm-up) per run, $CONNS connections, reps $REPS (values are medians over reps)"
echo "- pinned: upstream + wrk (1 thread) on cpu$LOAD_CPU, proxy (1 worker) on cpu$PROXY_CPU; unpinned: nothing pinned, wrk $UNPINNED_WORKERS threads, proxies $UNPINNED_WORKERS workers; upstream nginx $UPSTREAM_WORKERS worker(s)"
echo "- raw rows: ${TSV#"$ROOT"/}"
echo
awk -F'\t' -v modes="$MODES" -v bodies="$BODIES" -v targets="$TARGETS" '
  function med(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  function ms(us) { return sprintf("%.3f", us / 1000) }
  {
    k = $3 SUBSEP $4 SUBSEP $5
    runs[k]++
    if ($26 == "fail") { fails[k]++; why[k] = $27; next }
    n[k]++; R[k, n[k]] = $12; P50[k, n[k]] = $13; P99[k, n[k]] = $15; CU[k, n[k]] = $23; CP[k, n[k]] = $24
    errs[k] += $18 + $19 + $20 + $21; non2xx[k] += $22
  }
  END {
    print "| mode | body | target | req/s | p50 ms | p99 ms | errors / non-2xx | CPU µs/req | CPU % | req/s vs direct | req/s tollgate/nginx | p99 tollgate/nginx |"
    print "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    nm = split(modes, M, " "); nb = split(bodies, B, " "); nt = split(targets, T, " ")
    for (a = 1; a <= nm; a++) for (b = 1; b <= nb; b++) {
      for (t = 1; t <= nt; t++) {
        k = M[a] SUBSEP B[b] SUBSEP T[t]; c = n[k]
        if (c > 0) {
          delete x; for (i = 1; i <= c; i++) x[i] = R[k, i];   rps[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = P50[k, i]; p50[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = P99[k, i]; p99[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = CU[k, i];  cu[T[t]] = med(x, c)
          delete x; for (i = 1; i <= c; i++) x[i] = CP[k, i];  cp[T[t]] = med(x, c)
        } else { rps[T[t]] = ""; p99[T[t]] = "" }
      }
      for (t = 1; t <= nt; t++) {
        tg = T[t]; k = M[a] SUBSEP B[b] SUBSEP tg
        if (!(k in runs)) continue
        if (n[k] == 0) {
          printf "| %s | %s | %s | FAILED | | | | | | | | |\n", M[a], B[b], tg
          failnote[++nf] = sprintf("%s %s %s: %s", M[a], B[b], tg, why[k]); continue
        }
        vsd = (tg != "direct" && rps["direct"] > 0) ? sprintf("%.2f", rps[tg] / rps["direct"]) : ""
        rr = ""; pr = ""
        if (tg == "tollgate" && rps["nginx"] > 0 && p99["nginx"] > 0) {
          rr = sprintf("**%.2f**", rps[tg] / rps["nginx"]); pr = sprintf("**%.2f**", p99[tg] / p99["nginx"])
          verdict[++nv] = sprintf("%s/%s: throughput %.2fx (target >= 1.00) %s, p99 %.2fx (target <= 1.10) %s",
            M[a], B[b], rps[tg] / rps["nginx"], (rps[tg] >= rps["nginx"] ? "met" : "MISSED"),
            p99[tg] / p99["nginx"], (p99[tg] <= 1.1 * p99["nginx"] ? "met" : "MISSED"))
        }
        if (tg == "nginx" && rps["nginx"] > 0) { rr = "1.00"; pr = "1.00" }
        printf "| %s | %s | %s | %.0f | %s | %s | %d / %d | %.1f | %.0f | %s | %s | %s |\n",
          M[a], B[b], tg, rps[tg], ms(p50[tg]), ms(p99[tg]), errs[k], non2xx[k], cu[tg], cp[tg], vsd, rr, pr
        if (fails[k] > 0) failnote[++nf] = sprintf("%s %s %s: %d of %d runs failed: %s", M[a], B[b], tg, fails[k], runs[k], why[k])
      }
    }
    print ""
    print "CPU µs/req and CPU % are of the server under test: the upstream nginx for `direct`, the proxy otherwise (100 % = one core)."
    if (nv > 0) { print ""; print "Target (Tollgate >= 1.0x nginx throughput, p99 <= 1.1x nginx):"; print ""; for (i = 1; i <= nv; i++) print "- " verdict[i] }
    if (nf > 0) { print ""; print "Failures:"; print ""; for (i = 1; i <= nf; i++) print "- " failnote[i] }
  }' "$ROWS"
