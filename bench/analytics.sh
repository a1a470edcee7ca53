#!/usr/bin/env bash
# bench/analytics.sh - what analytics and the access log cost Tollgate in throughput and CPU, how
# fresh the analytics queries are, and how long a Prometheus scrape takes with thousands of
# routes; on loopback, in one bounded run.
#
# What it does (everything on 127.0.0.1, every process it starts is stopped on exit):
#   1. installs nginx and wrk if they are missing (apt-get). It never builds Tollgate: it uses
#      TOLLGATE_BIN (default target/release/tollgate) and, since that binary may still be
#      building, polls up to BIN_WAIT seconds until `tollgate serve --help` mentions
#      `--analytics`; then it waits (up to BUILD_WAIT) until no cargo/rustc process has run for
#      3 s in a row, and again before every measured run,
#   2. starts an upstream nginx (1 worker) answering every path with "ok\n" (`return 200`) and
#      two Tollgate nodes with the same API `bench` (version v1, routes /open and /fresh1..N):
#        tg-off   `--analytics off`, no access_log
#        tg-on    analytics on (the default), the API has `access_log: { headers: [user-agent] }`,
#                 `--access-log WORK/access.log`
#      (`serve --config F --data-dir D --proxy-listen ... --admin-listen ... --workers WORKERS`,
#      TOLLGATE_ADMIN_TOKEN=<random>, RUST_LOG=warn; configs checked with `validate -f` first),
#   3. checks: both answer 200 "ok\n" on /open; tg-on's access log grows and its lines carry
#      the user-agent header; tg-off's does not; after traffic, GET /api/analytics/top?dimension=api
#      answers rows: [] on tg-off and counts the requests on tg-on,
#   4. Part 1 - throughput: per rep, wrk (WORKERS threads, CONNS connections, a User-Agent
#      header on every request) against `direct` (the upstream), then tg-off and tg-on in an
#      order that alternates between reps; warm-up + measured run each. Reports req/s, p50/p99,
#      CPU us/req and CPU % of the server under test (/proc/PID/stat utime+stime), the share of
#      the busiest thread, and the Tollgate-side counts of each run (requests answered,
#      analytics events and access-log lines dropped, from /metrics). Requirement:
#      tg-on / tg-off >= 0.97 in throughput (analytics + access log cost at most 3 %), judged
#      on the median of the per-rep ratios (tg-off and tg-on run back to back in each rep, so
#      slow drifts of a shared machine cancel; a rep's ratio still varies by several percent
#      on 2 cores, so use REPS >= 5); the ratio of the medians is printed too,
#   5. Part 2 - freshness: on tg-on, one request to a route nobody called yet (/fresh<i>), then
#      GET /api/analytics/top?dimension=route&route=/fresh<i> every 50 ms until requests >= 1;
#      FRESH_TRIES tries, each after a random pause (so the 2-second flush tick is hit at a
#      random phase); reports median, min, max. Target: <= 5 s,
#   6. Part 3 - scrape: stops tg-off/tg-on, starts tg-many (one API, one version, MANY_ROUTES
#      routes /r0 .. /r<N-1>), sends 3 requests to each of HIT_ROUTES routes spread over them,
#      then times `curl .../metrics` SCRAPES times (median, p95, body size, CPU per scrape), and
#      validates the body with `promtool check metrics` or, without promtool, with the
#      prometheus_client text parser (python3; installed with `pip install --user` if missing,
#      skipped when pip is not there). tg-on's own /metrics is timed the same way first, as the
#      small-config reference,
#   7. prints a Markdown report (stdout); progress on stderr; raw rows (one per measured wrk
#      run, plus one per freshness try and per scrape set) in bench/out/analytics-<stamp>.tsv.
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [8]           seconds of each measured wrk run (wrapped in `timeout`)
#   WARMUP [2]             seconds of an unreported wrk run before each measured run (0 = none)
#   CONNS [64]             wrk connections
#   REPS [5]               repetitions of direct, tg-off, tg-on; the table shows medians
#   WORKERS [2]            Tollgate workers and wrk threads
#   UPSTREAM_WORKERS [1]   nginx workers of the upstream
#   FRESH_TRIES [5]        freshness tries (one new route each)
#   FRESH_MAX [15]         seconds a freshness try waits at most
#   MANY_ROUTES [2000]     routes of tg-many
#   HIT_ROUTES [100]       routes of tg-many that get traffic before the scrapes
#   SCRAPES [20]           timed scrapes per node
#   BASE_PORT [18080]      first port tried; the first 7 free ports from here are used
#   TOLLGATE_BIN           the binary [target/release/tollgate]
#   BIN_WAIT [900]         max seconds to wait for that binary to know `--analytics`
#   BUILD_WAIT [600]       max seconds to wait for running cargo/rustc before measuring
#   OUT_DIR [bench/out]    where the raw TSV goes
#   KEEP_WORK [0]          1 = keep the temp work dir (configs, logs, access log, wrk output)
#   ON_ACCESS_LOG [1]      0 = tg-on keeps analytics on but has no access_log (the cost of
#                          analytics alone; the access-log line check then warns)
#
# Exit status: 0 when the run completed and every check passed (a MISSED requirement is a
# result, not an error), 1 when a check failed or a run failed, 2 for a set-up failure.
# With the defaults: 15 wrk runs of 10 s plus checks, freshness and scrapes: about 4 minutes.
# Example: ./bench/analytics.sh > bench/out/analytics.md
#          DURATION=4 REPS=1 FRESH_TRIES=3 ./bench/analytics.sh
set -euo pipefail

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-64}
REPS=${REPS:-5}
WORKERS=${WORKERS:-2}
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
FRESH_TRIES=${FRESH_TRIES:-5}
FRESH_MAX=${FRESH_MAX:-15}
MANY_ROUTES=${MANY_ROUTES:-2000}
HIT_ROUTES=${HIT_ROUTES:-100}
SCRAPES=${SCRAPES:-20}
BASE_PORT=${BASE_PORT:-18080}
BIN_WAIT=${BIN_WAIT:-900}
BUILD_WAIT=${BUILD_WAIT:-600}
KEEP_WORK=${KEEP_WORK:-0}
HOST=127.0.0.1      # loopback only
BODY_BYTES=3        # "ok\n"
UA="wrk/4.1 (bench/analytics.sh)"   # sent by every client here; tg-on logs it
REQUIREMENT=0.97    # tg-on / tg-off throughput
FRESH_TARGET=5      # seconds

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}
BIN=${TOLLGATE_BIN:-$ROOT/target/release/tollgate}

log() { printf '%s\n' "$*" >&2; }
die() { log "analytics.sh: $*"; exit 2; }

for v in DURATION WARMUP CONNS REPS WORKERS UPSTREAM_WORKERS FRESH_TRIES FRESH_MAX MANY_ROUTES \
         HIT_ROUTES SCRAPES BASE_PORT BIN_WAIT BUILD_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION > 0 && CONNS > 0 && REPS > 0 && WORKERS > 0 && UPSTREAM_WORKERS > 0 && SCRAPES > 0 )) \
  || die "DURATION, CONNS, REPS, WORKERS, UPSTREAM_WORKERS and SCRAPES must be > 0"
(( HIT_ROUTES <= MANY_ROUTES && MANY_ROUTES > 0 && FRESH_MAX > 0 )) \
  || die "need 0 < MANY_ROUTES, HIT_ROUTES <= MANY_ROUTES and FRESH_MAX > 0"

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
  for t in nginx wrk curl python3 ss timeout awk ps pgrep od cmp sort; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
}
ensure_tools

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

# The binary may still be building: wait until it exists and its `serve` knows --analytics.
# (`tollgate --help` lists only the subcommands; the flag is in `tollgate serve --help`.)
bin_ready() {
  [[ -x $BIN ]] || return 1
  { timeout 10 "$BIN" serve --help 2>/dev/null || true; timeout 10 "$BIN" --help 2>/dev/null || true; } \
    | grep -q -- '--analytics'
}
waited=0
until bin_ready; do
  (( waited >= BIN_WAIT )) && die "$BIN did not become a binary whose 'serve --help' mentions --analytics within ${BIN_WAIT}s"
  (( waited % 60 == 0 )) && log "waiting for $BIN to know --analytics (still building?) (${waited}s/${BIN_WAIT}s) ..."
  sleep 5; waited=$((waited + 5))
done
log "tollgate binary: $BIN ($(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"

# ---------------------------------------------------------------- work dir, cleanup
NCPU=$(nproc)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-anbench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/tmp" "$WORK/runs"
ROWS=$WORK/rows.tsv       # wrk runs
FROWS=$WORK/fresh.tsv     # freshness tries
SROWS=$WORK/scrape.tsv    # scrapes
: > "$ROWS"; : > "$FROWS"; : > "$SROWS"
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$OUT_DIR/analytics-$STAMP.tsv
ACCESS_LOG=$WORK/access.log

declare -a PIDS=()
declare -A TG_PID=() TG_PORT=() TG_ADMIN=() TG_FAIL=()
UPSTREAM_PID=""
CHECKS=()     # "ok|FAIL<TAB>text"
WARNINGS=()
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
  PIDS=()
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

# ---------------------------------------------------------------- ports
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
PORTS=()
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < 7; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == 7 )) || die "no 7 free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]}
TG_PORT[off]=${PORTS[1]}; TG_ADMIN[off]=${PORTS[2]}
TG_PORT[on]=${PORTS[3]};  TG_ADMIN[on]=${PORTS[4]}
TG_PORT[many]=${PORTS[5]}; TG_ADMIN[many]=${PORTS[6]}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN_TOKEN=$(rand_hex 24)          # 48 hex chars

# ---------------------------------------------------------------- configs
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
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fcgi;
  uwsgi_temp_path $WORK/tmp/uwsgi;
  scgi_temp_path $WORK/tmp/scgi;
  server {
    listen $HOST:$UP_PORT backlog=4096;
    location / { default_type text/plain; return 200 "ok\n"; }
  }
}
EOF
}

# write_bench_conf FILE WITH_ACCESS_LOG(0|1): tg-off and tg-on differ only in the access_log block
write_bench_conf() {
  local i
  {
    cat <<EOF
format_version: 1
upstreams:
  - name: bench
    targets: [{ url: "http://$HOST:$UP_PORT" }]
apis:
  - name: bench
EOF
    if [[ $2 == 1 ]]; then echo "    access_log: { headers: [user-agent] }"; fi
    cat <<EOF
    versions:
      - version: v1
        upstream: bench
        routes:
          - { path: /open }
EOF
    for (( i = 1; i <= FRESH_TRIES; i++ )); do echo "          - { path: /fresh$i }"; done
  } > "$1"
}

write_many_conf() {
  local i
  {
    cat <<EOF
format_version: 1
upstreams:
  - name: bench
    targets: [{ url: "http://$HOST:$UP_PORT" }]
apis:
  - name: many
    versions:
      - version: v1
        upstream: bench
        routes:
EOF
    for (( i = 0; i < MANY_ROUTES; i++ )); do echo "          - { path: /r$i }"; done
  } > "$1"
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
wait_http() {  # wait_http URL PID WHAT SECONDS : until URL answers 2xx or PID dies
  local url=$1 pid=$2 what=$3 secs=${4:-30} _
  for _ in $(seq $((secs * 10))); do
    curl -sf -m 1 -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { log "$what exited during start-up"; return 1; }
    sleep 0.1
  done
  log "$what: no 2xx from $url after ${secs} s"; return 1
}

start_upstream() {
  write_upstream_conf
  nginx -t -q -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" || die "upstream nginx config invalid"
  nginx -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" -g 'daemon off;' &
  UPSTREAM_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$UP_PORT/open" "$UPSTREAM_PID" "upstream nginx" || { cat "$WORK/upstream.err" >&2; die "upstream did not start"; }
}

# start_tollgate NAME CONFIG [EXTRA ARGS...] : sets TG_PID[NAME], or TG_FAIL[NAME] on failure
start_tollgate() {
  local name=$1 conf=$2 out; shift 2
  TG_FAIL[$name]=""
  if ! out=$("$BIN" validate -f "$conf" 2>&1); then
    log "$out"; die "the generated config of tg-$name does not validate ($BIN validate -f $conf)"
  fi
  mkdir -p "$WORK/data-$name"
  (while read -r v; do unset "$v"; done < <(compgen -e | grep '^TOLLGATE_' || true)   # the caller's settings
   export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=warn
   exec "$BIN" serve --config "$conf" --data-dir "$WORK/data-$name" \
     --proxy-listen "$HOST:${TG_PORT[$name]}" --admin-listen "$HOST:${TG_ADMIN[$name]}" \
     --workers "$WORKERS" "$@") > "$WORK/tg-$name.log" 2>&1 &
  TG_PID[$name]=$!; PIDS+=("$!")
  if ! wait_http "http://$HOST:${TG_ADMIN[$name]}/readyz" "${TG_PID[$name]}" "tg-$name" 60; then
    local rc=running
    kill -0 "${TG_PID[$name]}" 2>/dev/null || { rc=0; wait "${TG_PID[$name]}" || rc=$?; rc="exit $rc"; }
    TG_FAIL[$name]="did not become ready (GET /readyz on the admin port; process: $rc); log: $(tail -n 5 "$WORK/tg-$name.log" | tr '\n' ' ')"
    log "tg-$name: ${TG_FAIL[$name]}"
  fi
}

admin_get() {  # admin_get NAME PATH : body on stdout; status in $WORK/admin.status
  curl -s -m 5 -H "Authorization: Bearer $ADMIN_TOKEN" -o "$WORK/admin.body" -w '%{http_code}' \
    "http://$HOST:${TG_ADMIN[$1]}$2" > "$WORK/admin.status" 2>/dev/null || echo 000 > "$WORK/admin.status"
  cat "$WORK/admin.body" 2>/dev/null || true
}
# sum of "requests" in a top answer (0 for rows: [])
top_requests() { { grep -o '"requests":[0-9]*' || true; } | awk -F: '{ s += $2 } END { print s + 0 }'; }

# metrics NAME : "requests_total(api bench or many) events_dropped access_log_dropped(NA when absent)"
metrics() {
  curl -s -m 5 "http://$HOST:${TG_ADMIN[$1]}/metrics" 2>/dev/null | awk '
    /^tollgate_requests_total\{/ && /api="(bench|many)"/ { r += $NF }
    /^tollgate_events_dropped_total/ { e += $NF }
    /^tollgate_access_log_dropped_total/ { a += $NF; seen = 1 }
    END { printf "%.0f %.0f %s\n", r, e, (seen ? sprintf("%.0f", a) : "NA") }' || true
}

now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }
# the access log and its rotated files (access.log.1 .. .5)
log_files() { local f; for f in "$ACCESS_LOG" "$ACCESS_LOG".[0-9]; do if [[ -f $f ]]; then echo "$f"; fi; done; }
log_lines() { local f n=0; while read -r f; do n=$((n + $(wc -l < "$f"))); done < <(log_files); echo "$n"; }
log_bytes() { local f n=0; while read -r f; do n=$((n + $(stat -c %s "$f"))); done < <(log_files); echo "$n"; }
# log_snapshot : "inode lines" per file. Files are rotated by renaming (the inode stays) and the
# oldest is removed, so lines written between two snapshots = lines now - lines then of the
# files that still exist (see lines_written)
log_snapshot() { local f; while read -r f; do echo "$(stat -c %i "$f") $(wc -l < "$f")"; done < <(log_files); }
lines_written() {  # lines_written BEFORE AFTER (files of log_snapshot)
  awk 'NR == FNR { b[$1] = $2; next } { n += $2; if ($1 in b) n -= b[$1] } END { print n + 0 }' "$1" "$2"
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
UNEVEN_PCT=85   # with 2 workers, a busiest thread above this share means the load was not spread

TSV_HEADER='started	rep	target	server	analytics	access_log	port	conns	wrk_threads	workers	duration_s	requests	rps	p50_us	p90_us	p99_us	p999_us	max_us	err_connect	err_read	err_write	err_timeout	non2xx	server_cpu_us_per_req	server_cpu_pct	busiest_thread_pct	builds_running	status	note	tg_answered	tg_events_dropped	tg_access_log_dropped	access_log_lines_written'

add_row() { local IFS=$'\t'; echo "$*" >> "$ROWS"; }

# target_info TARGET : T_SERVER T_PORT T_PID T_NODE T_ANALYTICS T_ALOG
target_info() {
  case $1 in
    direct) T_SERVER=upstream; T_NODE="";  T_PORT=$UP_PORT;        T_PID=$UPSTREAM_PID; T_ANALYTICS=-;   T_ALOG=- ;;
    tg-off) T_SERVER=tollgate; T_NODE=off; T_PORT=${TG_PORT[off]}; T_PID=${TG_PID[off]:-}; T_ANALYTICS=off; T_ALOG=no ;;
    tg-on)  T_SERVER=tollgate; T_NODE=on;  T_PORT=${TG_PORT[on]};  T_PID=${TG_PID[on]:-};  T_ANALYTICS=on;  T_ALOG=yes ;;
  esac
}

check_target() {  # prints the reason and returns 1 when TARGET does not answer 200 "ok\n" on /open
  local got
  got=$(curl -s -m 5 -A "$UA" -o "$WORK/check.body" -w '%{http_code} %{size_download}' "http://$HOST:$T_PORT/open" 2>&1) || true
  if [[ $got != "200 $BODY_BYTES" ]]; then
    echo "GET /open gave status/size '$got' (want '200 $BODY_BYTES'); body: $(head -c 200 "$WORK/check.body" 2>/dev/null | tr '\n' ' ')"
    return 1
  fi
  cmp -s "$WORK/check.body" <(printf 'ok\n') || { echo "GET /open: body is not the upstream's 'ok'"; return 1; }
}

# run_load REP TARGET
run_load() {
  local rep=$1 target=$2 out rc t0 t1 line why b0 b1 started fail="" workers=$WORKERS m0 m1
  target_info "$target"
  [[ $target == direct ]] && workers=$UPSTREAM_WORKERS
  local -a meta=("$target" "$T_SERVER" "$T_ANALYTICS" "$T_ALOG" "$T_PORT" "$CONNS" "$WORKERS" "$workers" "$DURATION")
  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [[ -n $T_NODE && -n ${TG_FAIL[$T_NODE]:-} ]]; then fail=${TG_FAIL[$T_NODE]}
  elif [[ -z $T_PID ]] || ! kill -0 "$T_PID" 2>/dev/null; then fail="server process not running"
  elif ! why=$(check_target); then fail="pre-check failed: $why"
  fi
  if [[ -n $fail ]]; then
    log "  $target: FAILED - $fail"
    [[ -n $T_NODE ]] && { log "  tg-$T_NODE log (last 15 lines):"; tail -n 15 "$WORK/tg-$T_NODE.log" >&2 || true; }
    add_row "$started" "$rep" "${meta[@]}" 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$(builds_running)" fail "$fail" 0 0 0 0
    return 0
  fi
  wait_for_builds
  local -a wrk_cmd=(wrk -t"$WORKERS" -c"$CONNS" -H "User-Agent: $UA")
  local url="http://$HOST:$T_PORT/open"
  if (( WARMUP > 0 )); then
    timeout -k 5 $((WARMUP + 10)) "${wrk_cmd[@]}" -d"${WARMUP}s" -s "$WORK/report.lua" "$url" >/dev/null 2>&1 || true
  fi
  m0="0 0 NA"; [[ -n $T_NODE ]] && { sleep 0.2; m0=$(metrics "$T_NODE"); }   # let in-flight warm-up answers finish
  if [[ $target == tg-on ]]; then log_snapshot > "$WORK/ls0"; fi
  b0=$(builds_running); task_ticks "$T_PID" > "$WORK/tt0"; t0=$(proc_ticks "$T_PID")
  rc=0
  out=$(timeout -k 5 $((DURATION + 10)) "${wrk_cmd[@]}" -d"${DURATION}s" --latency -s "$WORK/report.lua" "$url" 2>&1) || rc=$?
  t1=$(proc_ticks "$T_PID"); task_ticks "$T_PID" > "$WORK/tt1"; b1=$(builds_running)
  m1="0 0 NA"; [[ -n $T_NODE ]] && { sleep 0.2; m1=$(metrics "$T_NODE"); }
  printf '%s\n' "$out" > "$WORK/runs/wrk-$rep-$target.txt"
  if ! line=$(grep '^WRKRESULT' <<<"$out"); then
    fail="wrk gave no result (exit $rc): $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    log "  $target: FAILED - $fail"
    add_row "$started" "$rep" "${meta[@]}" 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "$((b0 > b1 ? b0 : b1))" fail "$fail" 0 0 0 0
    return 0
  fi
  local requests duration_us bytes p50_us p90_us p99_us p999_us max_us err_connect err_read err_write err_timeout non2xx kv
  for kv in ${line#WRKRESULT }; do printf -v "${kv%%=*}" '%s' "${kv#*=}"; done
  local rps cpu_req cpu_pct busy status=ok note="" answered ev_drop al_drop written=0
  local -a a0 a1
  read -r -a a0 <<<"$m0"; read -r -a a1 <<<"$m1"
  answered=$(( a1[0] - a0[0] )); ev_drop=$(( a1[1] - a0[1] ))
  if [[ ${a1[2]} == NA || ${a0[2]} == NA ]]; then al_drop=NA; else al_drop=$(( a1[2] - a0[2] )); fi
  if [[ $target == tg-on ]]; then sleep 0.5; log_snapshot > "$WORK/ls1"; written=$(lines_written "$WORK/ls0" "$WORK/ls1"); fi
  busy=$(busiest_pct "$WORK/tt0" "$WORK/tt1")
  rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? r / (d / 1e6) : 0) }')
  cpu_req=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$requests" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')
  cpu_pct=$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v d="$duration_us" 'BEGIN { printf "%.0f", (d > 0 ? 100 * t / hz / (d / 1e6) : 0) }')
  if ! kill -0 "$T_PID" 2>/dev/null; then status=fail; note="server process $T_PID died during the run"; fi
  if (( err_connect + err_read + err_write + err_timeout + non2xx > 0 )); then
    [[ $status == ok ]] && status=errors
    note="${note:+$note; }connect=$err_connect read=$err_read write=$err_write timeout=$err_timeout non2xx=$non2xx"
    (( non2xx > 0 )) && log "  WARNING: $target answered $non2xx non-2xx responses during the measured run"
  fi
  (( b0 + b1 > 0 )) && note="${note:+$note; }cargo/rustc running during the run"
  if (( workers > 1 && busy >= UNEVEN_PCT )); then
    note="${note:+$note; }uneven: one thread did $busy % of the server's CPU"
  fi
  add_row "$started" "$rep" "${meta[@]}" \
    "$requests" "$rps" "$p50_us" "$p90_us" "$p99_us" "$p999_us" "$max_us" \
    "$err_connect" "$err_read" "$err_write" "$err_timeout" "$non2xx" "$cpu_req" "$cpu_pct" "$busy" \
    "$((b0 > b1 ? b0 : b1))" "$status" "$note" "$answered" "$ev_drop" "$al_drop" "$written"
  log "$(printf '  %-7s %8s req/s  p50 %7.3f ms  p99 %7.3f ms  cpu %6s us/req (%s%%, busiest thread %s%%)%s  %s' \
    "$target" "$rps" "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" \
    "$cpu_req" "$cpu_pct" "$busy" \
    "$([[ -n $T_NODE ]] && printf '  answered %s, events dropped %s, log lines dropped %s' "$answered" "$ev_drop" "$al_drop")" \
    "$status${note:+ ($note)}")"
}

# ---------------------------------------------------------------- checks before measuring
precheck() {
  local n=20 codes size0 size1 lines0 lines1 off_size body st t0 seen=0 _ i want
  for node in off on; do
    if [[ -n ${TG_FAIL[$node]} ]]; then check FAIL "tg-$node did not start: ${TG_FAIL[$node]}"; continue; fi
    target_info "tg-$node"
    if why=$(check_target); then check ok "tg-$node answers 200 \"ok\\n\" on /open"
    else check FAIL "tg-$node: $why"; fi
  done
  [[ -z ${TG_FAIL[on]} && -z ${TG_FAIL[off]} ]] || return 0
  size0=$(stat -c %s "$ACCESS_LOG" 2>/dev/null || echo 0); lines0=$(log_lines)
  # n requests to each node, one connection each
  local -a urls_on=() urls_off=()
  for (( i = 0; i < n; i++ )); do   # curl's -o applies to one URL: one per URL
    urls_on+=(-o /dev/null "http://$HOST:${TG_PORT[on]}/open"); urls_off+=(-o /dev/null "http://$HOST:${TG_PORT[off]}/open")
  done
  t0=$SECONDS
  codes=$( { curl -s -m 10 -A "$UA" -w '%{http_code}\n' "${urls_on[@]}" "${urls_off[@]}" || true; } | sort | uniq -c | tr -s ' \n' ' ')
  if [[ $codes == " $((2 * n)) 200 " ]]; then check ok "$n requests to each node: all 200"
  else check FAIL "$n requests to each node: status counts '$codes' (want $((2 * n)) x 200)"; fi
  # access log of tg-on grows by n lines that carry the user-agent
  for _ in $(seq 50); do
    lines1=$(log_lines); (( lines1 - lines0 >= n )) && break; sleep 0.1
  done
  size1=$(stat -c %s "$ACCESS_LOG" 2>/dev/null || echo 0)
  if (( lines1 - lines0 >= n && size1 > size0 )); then
    check ok "tg-on's access log grew by $((lines1 - lines0)) lines ($((size1 - size0)) bytes) for $n requests"
  else
    check FAIL "tg-on's access log ($ACCESS_LOG) grew by $((lines1 - lines0)) lines, $((size1 - size0)) bytes after $n requests (want >= $n lines)"
  fi
  SAMPLE_LINE=$(tail -n 1 "$ACCESS_LOG" 2>/dev/null || true)
  SAMPLE_BYTES=$(( ${#SAMPLE_LINE} + 1 ))
  if [[ $SAMPLE_LINE == *'"user-agent":"'"$UA"'"'* ]]; then check ok "tg-on's access-log line carries the user-agent header ($SAMPLE_BYTES bytes a line)"
  else check FAIL "tg-on's last access-log line has no user-agent \"$UA\": $SAMPLE_LINE"; fi
  off_size=$(stat -c %s "$WORK/data-off/access.log" 2>/dev/null || echo 0)
  if (( off_size == 0 )); then check ok "tg-off writes no access-log lines (its default $WORK/data-off/access.log is empty or absent)"
  else check FAIL "tg-off wrote $off_size bytes to $WORK/data-off/access.log (its API has no access_log)"; fi
  # analytics: tg-on counts the requests, tg-off answers rows: []
  want=$n
  for _ in $(seq 100); do
    body=$(admin_get on "/api/analytics/top?dimension=api"); st=$(cat "$WORK/admin.status")
    if [[ $st == 200 ]] && (( $(top_requests <<<"$body") >= want )); then seen=1; break; fi
    sleep 0.1
  done
  if (( seen )); then check ok "tg-on: GET /api/analytics/top?dimension=api counts the requests after $((SECONDS - t0)) s: $(tr -d '\n' <<<"$body" | head -c 200)"
  else check FAIL "tg-on: GET /api/analytics/top?dimension=api did not reach $want requests within 10 s (status $st): $(tr -d '\n' <<<"$body" | head -c 200)"; fi
  while (( SECONDS - t0 < 5 )); do sleep 0.5; done    # more than two 2-second flush ticks after the requests
  body=$(admin_get off "/api/analytics/top?dimension=api"); st=$(cat "$WORK/admin.status")
  if [[ $st == 200 && $(tr -d ' \n' <<<"$body") == *'"rows":[]'* ]]; then check ok "tg-off (--analytics off): GET /api/analytics/top?dimension=api answers $(tr -d '\n' <<<"$body" | head -c 120) $((SECONDS - t0)) s after its requests"
  else check FAIL "tg-off (--analytics off): GET /api/analytics/top?dimension=api gave status $st: $(tr -d '\n' <<<"$body" | head -c 200) (want rows: [])"; fi
}

# after the runs: tg-on's analytics equal its own request counter (nothing lost), tg-off still empty
postcheck() {
  local m body st an _ tot
  [[ -z ${TG_FAIL[on]} ]] && kill -0 "${TG_PID[on]}" 2>/dev/null || return 0
  sleep 3   # one flush tick and more
  read -r tot _ <<<"$(metrics on)"
  for _ in $(seq 20); do
    body=$(admin_get on "/api/analytics/top?dimension=api"); st=$(cat "$WORK/admin.status")
    an=$(top_requests <<<"$body"); (( an >= tot )) && break; sleep 0.5
  done
  m=$(metrics on)
  if [[ $st == 200 ]] && (( an == tot )); then check ok "after the runs: tg-on's analytics count $an requests for api bench = its tollgate_requests_total ($tot)"
  else check FAIL "after the runs: tg-on's analytics count $an requests (status $st), its tollgate_requests_total says $tot (events dropped so far: $(cut -d' ' -f2 <<<"$m"))"; fi
  if [[ -z ${TG_FAIL[off]} ]]; then
    body=$(admin_get off "/api/analytics/top?dimension=api"); st=$(cat "$WORK/admin.status")
    if [[ $st == 200 && $(tr -d ' \n' <<<"$body") == *'"rows":[]'* ]]; then check ok "after the runs: tg-off still answers rows: []"
    else check FAIL "after the runs: tg-off answers status $st: $(tr -d '\n' <<<"$body" | head -c 200)"; fi
  fi
}

# ---------------------------------------------------------------- freshness (tg-on)
freshness() {
  local i route t0 t1 body got polls st secs
  for (( i = 1; i <= FRESH_TRIES; i++ )); do
    route=/fresh$i
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.5 + 2 * r / 32768 }')"   # a random phase of the flush tick
    body=$(admin_get on "/api/analytics/top?dimension=route&route=$route")
    if (( $(top_requests <<<"$body") > 0 )); then
      log "  freshness $route: already counted before the request; skipped"
      printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$route" fail 0 "already counted" >> "$FROWS"; continue
    fi
    t0=$(now_us)
    got=$(curl -s -m 5 -A "$UA" -o /dev/null -w '%{http_code}' "http://$HOST:${TG_PORT[on]}$route" 2>&1) || true
    if [[ $got != 200 ]]; then
      log "  freshness $route: request answered '$got'"
      printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$route" fail 0 "request answered $got" >> "$FROWS"; continue
    fi
    polls=0; t1=""
    while (( $(now_us) - t0 < FRESH_MAX * 1000000 )); do
      body=$(admin_get on "/api/analytics/top?dimension=route&route=$route"); st=$(cat "$WORK/admin.status"); polls=$((polls + 1))
      if [[ $st == 200 ]] && (( $(top_requests <<<"$body") >= 1 )); then t1=$(now_us); break; fi
      sleep 0.05
    done
    if [[ -n $t1 ]]; then
      secs=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e6 }')
      log "  freshness $route: seen after $secs s ($polls polls)"
      printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$route" "$secs" "$polls" ok >> "$FROWS"
    else
      log "  freshness $route: not seen within ${FRESH_MAX}s (last status $st)"
      printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$route" timeout "$polls" "not seen within ${FRESH_MAX}s" >> "$FROWS"
    fi
  done
}

# ---------------------------------------------------------------- scrapes
PROM_NOTE=""
ensure_prom_parser() {  # sets PROM_TOOL to promtool | python | none, and PROM_NOTE
  if command -v promtool >/dev/null; then PROM_TOOL=promtool; return; fi
  if python3 -c 'import prometheus_client.parser' 2>/dev/null; then PROM_TOOL=python; return; fi
  if python3 -m pip --version >/dev/null 2>&1; then
    log "installing prometheus-client (pip install --user) to check the scrape format ..."
    if timeout 300 python3 -m pip install --user -q prometheus-client >&2 && python3 -c 'import prometheus_client.parser' 2>/dev/null; then
      PROM_TOOL=python; return
    fi
    PROM_TOOL=none; PROM_NOTE="promtool not found, and pip install --user prometheus-client failed: format not checked"; return
  fi
  PROM_TOOL=none; PROM_NOTE="neither promtool nor pip is available: format not checked"
}

# validate FILE : one line "valid|INVALID<TAB>families<TAB>series<TAB>requests_total series<TAB>detail"
validate_metrics() {
  local f=$1 out rc=0 fam ser req
  ser=$(grep -cv '^#\|^$' "$f" || true); fam=$(grep -c '^# TYPE ' "$f" || true)
  req=$(grep -c '^tollgate_requests_total{' "$f" || true)
  case $PROM_TOOL in
    promtool)
      out=$(promtool check metrics < "$f" 2>&1) || rc=$?
      if (( rc == 0 )); then printf 'valid\t%s\t%s\t%s\tpromtool check metrics: ok%s\n' "$fam" "$ser" "$req" "${out:+ ($(head -c 300 <<<"$out" | tr '\n' ' '))}"
      else printf 'INVALID\t%s\t%s\t%s\tpromtool check metrics: %s\n' "$fam" "$ser" "$req" "$(head -c 300 <<<"$out" | tr '\n' ' ')"; fi ;;
    python)
      python3 - "$f" <<'EOF'
import sys
from importlib.metadata import version
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
req = sum(1 for l in text.splitlines() if l.startswith("tollgate_requests_total{"))
try:
    fams = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises on a malformed line
    print(f"INVALID\t?\t?\t{req}\tprometheus_client parser: {type(e).__name__}: {str(e)[:200]}")
    sys.exit(0)
samples = [(s.name, tuple(sorted(s.labels.items()))) for f in fams for s in f.samples]
dups = len(samples) - len(set(samples))
untyped = sum(1 for f in fams if f.type == "unknown")
ok = dups == 0
print(f"{'valid' if ok else 'INVALID'}\t{len(fams)}\t{len(samples)}\t{req}\tprometheus_client {version('prometheus-client')} parser: {len(fams)} families, {len(samples)} series, {dups} duplicate series, {untyped} without TYPE")
EOF
      ;;
    *) printf 'unchecked\t%s\t%s\t%s\t%s\n' "$fam" "$ser" "$req" "$PROM_NOTE" ;;
  esac
}

# scrape_set NAME LABEL ROUTES HIT : times SCRAPES scrapes of NAME's /metrics, one row into $SROWS
scrape_set() {
  local name=$1 label=$2 routes=$3 hit=$4 i t c0 c1 bytes v
  local url="http://$HOST:${TG_ADMIN[$name]}/metrics"
  curl -s -m 10 -o "$WORK/metrics-$name.txt" "$url" || true   # one unmeasured scrape (and the body)
  : > "$WORK/scrape-$name.times"
  c0=$(proc_ticks "${TG_PID[$name]}")
  for (( i = 0; i < SCRAPES; i++ )); do
    t=$(curl -s -m 10 -o /dev/null -w '%{time_total}' "$url" 2>/dev/null) || t=fail
    echo "$t" >> "$WORK/scrape-$name.times"
  done
  c1=$(proc_ticks "${TG_PID[$name]}")
  bytes=$(wc -c < "$WORK/metrics-$name.txt")
  v=$(validate_metrics "$WORK/metrics-$name.txt")
  awk -v name="$label" -v routes="$routes" -v hit="$hit" -v bytes="$bytes" -v v="$v" -v cpu="$(( c1 - c0 ))" -v hz="$CLK_TCK" -v n="$SCRAPES" '
    $1 == "fail" { f++; next } { t[++k] = $1 * 1000 }
    END {
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
      med = (k == 0 ? 0 : (k % 2 ? t[(k + 1) / 2] : (t[k / 2] + t[k / 2 + 1]) / 2))
      r95 = int(0.95 * k); if (r95 < 0.95 * k) r95++; if (r95 < 1) r95 = 1
      printf "%s\t%s\t%s\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\t%s\n", name, routes, hit, bytes, k, med, (k ? t[r95] : 0), (k ? t[1] : 0), (k ? t[k] : 0), cpu * 1000 / hz / n, v
    }' "$WORK/scrape-$name.times" >> "$SROWS"
  log "  scrape $label: $(tail -n 1 "$SROWS" | cut -f1-11 | tr '\t' ' ')"
}

# ---------------------------------------------------------------- main
log "ports: upstream $UP_PORT, tg-off ${TG_PORT[off]} (admin ${TG_ADMIN[off]}), tg-on ${TG_PORT[on]} (admin ${TG_ADMIN[on]}), tg-many ${TG_PORT[many]} (admin ${TG_ADMIN[many]}); work dir $WORK"
log "plan: $REPS rep(s) x 3 targets x (${WARMUP}s warm-up + ${DURATION}s), $FRESH_TRIES freshness tries, $SCRAPES scrapes x 2 nodes: about $((REPS * 3 * (WARMUP + DURATION + 2) + FRESH_TRIES * 3 + 40))s"
wait_for_builds
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T_START=$SECONDS

start_upstream
write_bench_conf "$WORK/tg-off.yaml" 0
write_bench_conf "$WORK/tg-on.yaml" "${ON_ACCESS_LOG:-1}"
start_tollgate off "$WORK/tg-off.yaml" --analytics off
start_tollgate on "$WORK/tg-on.yaml" --access-log "$ACCESS_LOG"
SAMPLE_LINE=""; SAMPLE_BYTES=0
log "== checks"
precheck

for rep in $(seq "$REPS"); do
  log "== rep $rep/$REPS: wrk $WORKERS threads, $CONNS connections; Tollgate $WORKERS workers; upstream $UPSTREAM_WORKERS worker(s)"
  wait_for_builds
  if (( rep % 2 )); then order="direct tg-off tg-on"; else order="direct tg-on tg-off"; fi
  for target in $order; do run_load "$rep" "$target"; done
done

log "== after the runs"
postcheck
log "== freshness (tg-on)"
wait_for_builds
if [[ -z ${TG_FAIL[on]} ]] && kill -0 "${TG_PID[on]}" 2>/dev/null && (( FRESH_TRIES > 0 )); then freshness; fi
ACCESS_LOG_FILES=$(find "$WORK" -maxdepth 1 -name 'access.log*' | wc -l)
ACCESS_LOG_BYTES=$(log_bytes)

log "== scrapes"
ensure_prom_parser
if [[ -z ${TG_FAIL[on]} ]] && kill -0 "${TG_PID[on]}" 2>/dev/null; then
  scrape_set on "tg-on" "$((1 + FRESH_TRIES))" "$((1 + FRESH_TRIES))"
fi
for node in off on; do
  if [[ -n ${TG_PID[$node]:-} ]] && ! kill -0 "${TG_PID[$node]}" 2>/dev/null; then
    log "tg-$node exited; last log lines:"; tail -n 20 "$WORK/tg-$node.log" >&2 || true
    WARNINGS+=("tg-$node exited before the end (log: $(tail -n 3 "$WORK/tg-$node.log" | tr '\n' ' '))")
  fi
  [[ -n ${TG_PID[$node]:-} ]] && stop_pid "${TG_PID[$node]}"
done
wait_for_builds
write_many_conf "$WORK/tg-many.yaml"
t_many=$SECONDS
start_tollgate many "$WORK/tg-many.yaml"
MANY_START=$((SECONDS - t_many))
if [[ -z ${TG_FAIL[many]} ]]; then
  step=$(( MANY_ROUTES / (HIT_ROUTES > 0 ? HIT_ROUTES : 1) )); (( step > 0 )) || step=1
  urls=()
  for (( i = 0, k = 0; k < HIT_ROUTES; i += step, k++ )); do
    for _ in 1 2 3; do urls+=(-o /dev/null "http://$HOST:${TG_PORT[many]}/r$i"); done
  done
  if (( ${#urls[@]} )); then
    nreq=$(( ${#urls[@]} / 3 ))
    codes=$( { curl -s -m 60 -A "$UA" -w '%{http_code}\n' "${urls[@]}" || true; } | sort | uniq -c | tr -s ' \n' ' ')
    if [[ $codes == " $nreq 200 " ]]; then check ok "tg-many ($MANY_ROUTES routes, ready after ${MANY_START} s): 3 requests to each of $HIT_ROUTES routes (/r0, /r$step, ...): all 200"
    else check FAIL "tg-many: 3 requests to each of $HIT_ROUTES routes: status counts '$codes' (want $nreq x 200)"; fi
  fi
  sleep 0.5
  scrape_set many "tg-many" "$MANY_ROUTES" "$HIT_ROUTES"
else
  check FAIL "tg-many did not start: ${TG_FAIL[many]}"
fi

for node in off on many; do
  f=$WORK/tg-$node.log
  if [[ -s $f ]] && grep -qiE 'warn|error|panick' "$f"; then
    log "tg-$node log has warnings/errors (first 5 lines):"; grep -m 5 -iE 'warn|error|panick' "$f" >&2 || true
    WARNINGS+=("tg-$node's log has $(grep -ciE 'warn|error|panick' "$f") warning/error line(s), the first: $(grep -m 1 -iE 'warn|error|panick' "$f" | head -c 300)")
  fi
done
stop_all
ELAPSED=$((SECONDS - T_START))

{
  echo "$TSV_HEADER"; cat "$ROWS"
  echo; echo "# freshness"; printf 'try\troute\tseconds\tpolls\tstatus\n'; cat "$FROWS"
  echo; echo "# scrapes"
  printf 'node\troutes\troutes_with_traffic\tbody_bytes\tscrapes\tmedian_ms\tp95_ms\tmin_ms\tmax_ms\tcpu_ms_per_scrape\tformat\tfamilies\tseries\trequests_total_series\tformat_detail\n'
  cat "$SROWS"
} > "$TSV"
log "raw rows: $TSV"
log "total time: ${ELAPSED}s"

# ---------------------------------------------------------------- report (stdout)
fails=$(awk -F'\t' '$28 == "fail" || $28 == "errors"' "$ROWS" | wc -l)
echo "## Analytics and access log cost, freshness, scrape time ($START_UTC)"
echo
echo "- host: $(uname -n), $NCPU CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), loopback"
echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), tollgate $( ("$BIN" --version 2>/dev/null || true) | head -n1 | sed "s/^tollgate //") (\`${BIN#"$ROOT"/}\`, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ))"
echo "- command: \`DURATION=$DURATION WARMUP=$WARMUP REPS=$REPS CONNS=$CONNS WORKERS=$WORKERS TOLLGATE_BIN=${BIN#"$ROOT"/} bench/analytics.sh\`"
echo "- duration ${DURATION}s (+${WARMUP}s warm-up) per run, $CONNS connections, wrk $WORKERS threads, reps $REPS (values are medians over reps; tg-off and tg-on alternate their order per rep); total time ${ELAPSED}s"
echo "- Tollgate nodes: $WORKERS workers each, SQLite store in a temp data dir; upstream nginx $UPSTREAM_WORKERS worker(s) answering \"ok\\n\" (3 bytes, \`return 200\`); every request carries \`User-Agent: $UA\`"
echo "- tg-off: \`--analytics off\`, no \`access_log\`; tg-on: analytics on (default), API-level \`access_log: { headers: [user-agent] }\`, \`--access-log\` to a file in the temp dir (${ACCESS_LOG_BYTES} bytes in ${ACCESS_LOG_FILES} file(s) at the end; the log rotates at 100 MB and keeps 5 old files)"
echo "- raw rows: ${TSV#"$ROOT"/}"
echo
echo "### Checks"
echo
for c in "${CHECKS[@]}"; do
  if [[ ${c%%	*} == ok ]]; then echo "- ok: ${c#*	}"; else echo "- **FAILED**: ${c#*	}"; fi
done
if [[ -n $SAMPLE_LINE ]]; then
  echo
  echo "A tg-on access-log line:"
  echo
  echo '```json'
  echo "$SAMPLE_LINE"
  echo '```'
fi
echo
echo "### Part 1: throughput (route \`/open\`, keep-alive)"
echo
awk -F'\t' -v uneven="$UNEVEN_PCT" -v req="$REQUIREMENT" -v reps="$REPS" '
  function med(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  function ms(us) { return sprintf("%.3f", us / 1000) }
  {
    k = $3; runs[k]++
    if ($28 == "fail") { fails[k]++; why[k] = $29; next }
    n[k]++; R[k, n[k]] = $13; P50[k, n[k]] = $14; P99[k, n[k]] = $16; CU[k, n[k]] = $24; CP[k, n[k]] = $25; BZ[k, n[k]] = $26
    RR[k, $2] = $13; CR[k, $2] = $24
    if ($10 > 1 && $26 >= uneven) unev[k]++
    if ($27 > 0) { nb++; built = built (built == "" ? "" : ", ") k " rep " $2 }
    errs[k] += $19 + $20 + $21 + $22; non2xx[k] += $23
    ans[k] += $30; evd[k] += $31; if ($32 == "NA") alna[k] = 1; else ald[k] += $32; alw[k] += $33; wrkreq[k] += $12
  }
  END {
    DESC["direct"] = "upstream nginx, no proxy"
    DESC["tg-off"] = "Tollgate, `--analytics off`, no access log"
    DESC["tg-on"] = "Tollgate, analytics on + access log (user-agent)"
    split("direct tg-off tg-on", T, " ")
    for (i = 1; i <= 3; i++) {
      k = T[i]; c = n[k]
      if (c > 0) {
        delete x; for (j = 1; j <= c; j++) x[j] = R[k, j];   rps[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = P50[k, j]; p50[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = P99[k, j]; p99[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = CU[k, j];  cu[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = CP[k, j];  cp[k] = med(x, c)
        delete x; for (j = 1; j <= c; j++) x[j] = BZ[k, j];  bz[k] = med(x, c)
      }
    }
    print "| target | what | req/s | p50 ms | p99 ms | errors / non-2xx | CPU µs/req | CPU % | busiest thread % | req/s vs tg-off | CPU µs/req vs tg-off |"
    print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= 3; i++) {
      k = T[i]
      if (n[k] == 0) { printf "| %s | %s | FAILED | | | | | | | | |\n", k, DESC[k]; continue }
      vr = ""; vc = ""
      if (k != "direct" && n["tg-off"] > 0) { vr = sprintf("%.3f", rps[k] / rps["tg-off"]); vc = sprintf("%+.1f", cu[k] - cu["tg-off"]); if (k == "tg-on") vr = "**" vr "**" }
      printf "| %s | %s | %.0f | %s | %s | %d / %d | %.1f | %.0f | %.0f%s | %s | %s |\n",
        k, DESC[k], rps[k], ms(p50[k]), ms(p99[k]), errs[k], non2xx[k], cu[k], cp[k], bz[k], (unev[k] > 0 ? " ⚠" : ""), vr, vc
    }
    print ""
    if (n["tg-on"] > 0 && n["tg-off"] > 0) {
      r = rps["tg-on"] / rps["tg-off"]
      pr = ""; np = 0
      for (j = 1; j <= reps; j++) if ((("tg-on", j) in RR) && (("tg-off", j) in RR) && RR["tg-off", j] > 0) { np++; pv[np] = RR["tg-on", j] / RR["tg-off", j]; pr = pr (pr == "" ? "" : ", ") sprintf("%.3f", pv[np]) }
      # Judged on the paired ratios: each rep runs tg-off and tg-on back to back, so the slow
      # drift of a shared machine cancels; without pairs, on the ratio of the medians.
      if (np > 0) { delete x; for (j = 1; j <= np; j++) x[j] = pv[j]; pm = med(x, np); what = "median of the per-rep ratios" } else { pm = r; what = "ratio of the medians" }
      printf "- **tg-on / tg-off = %.3f** (throughput, %s) — requirement >= %s (analytics + access log cost at most %d %%): **%s**\n",
        pm, what, req, int((1 - req) * 100 + 0.5), (pm >= req ? "met" : "MISSED")
      if (np > 0) printf "- per rep (tg-on / tg-off of the same rep): %s; median %.3f; ratio of the medians %.3f\n", pr, pm, r
      printf "- CPU per request: tg-on %.1f vs tg-off %.1f µs, **%+.1f µs/req** (%+.1f %%); p99 tg-on/tg-off %.2fx, p50 %.2fx\n",
        cu["tg-on"], cu["tg-off"], cu["tg-on"] - cu["tg-off"], (cu["tg-off"] > 0 ? 100 * (cu["tg-on"] - cu["tg-off"]) / cu["tg-off"] : 0),
        (p99["tg-off"] > 0 ? p99["tg-on"] / p99["tg-off"] : 0), (p50["tg-off"] > 0 ? p50["tg-on"] / p50["tg-off"] : 0)
      if (n["direct"] > 0) printf "- vs direct: tg-off %.2f, tg-on %.2f of the upstream'"'"'s own throughput\n", rps["tg-off"] / rps["direct"], rps["tg-on"] / rps["direct"]
      printf "- tg-on, all measured runs: Tollgate answered %d requests (wrk counted %d complete), access-log lines written %d, dropped %s; analytics events dropped %d\n",
        ans["tg-on"], wrkreq["tg-on"], alw["tg-on"], (alna["tg-on"] ? "n/a (no tollgate_access_log_dropped_total in /metrics)" : sprintf("%d", ald["tg-on"])), evd["tg-on"]
      if (!alna["tg-on"] && ald["tg-on"] > 0) warn[++nw] = sprintf("tg-on dropped %d access-log lines (%.1f %% of %d answered): the writer fell behind, so part of the logging cost was not paid", ald["tg-on"], 100 * ald["tg-on"] / (ans["tg-on"] > 0 ? ans["tg-on"] : 1), ans["tg-on"])
      if (evd["tg-on"] > 0) warn[++nw] = sprintf("tg-on dropped %d analytics events: the numbers undercount", evd["tg-on"])
      if (ans["tg-on"] > 0 && alw["tg-on"] + ald["tg-on"] < ans["tg-on"] * 0.99) warn[++nw] = sprintf("tg-on: access-log lines written (%d) + dropped (%d) fall short of the requests answered (%d)", alw["tg-on"], ald["tg-on"], ans["tg-on"])
    }
    print ""
    print "CPU µs/req and CPU % are of the server under test (the upstream for `direct`; 100 % = one core). `busiest thread %`: the share of that CPU used by the busiest thread; ⚠ marks medians with a run where one thread did >= " uneven " % (the connections stayed on one worker)."
    for (i = 1; i <= 3; i++) {
      k = T[i]
      if (unev[k] > 0) warn[++nw] = sprintf("%s: in %d of %d runs one thread did >= %d %% of the server CPU (connections not spread over the workers)", k, unev[k], n[k], uneven)
      if (fails[k] > 0) warn[++nw] = sprintf("%s: %d of %d runs failed: %s", k, fails[k], runs[k], why[k])
      if (non2xx[k] > 0) warn[++nw] = sprintf("%s: %d non-2xx answers (must be 0)", k, non2xx[k])
      else if (errs[k] > 0) warn[++nw] = sprintf("%s: %d wrk socket errors", k, errs[k])
    }
    if (nb > 0) warn[++nw] = sprintf("cargo/rustc ran at the start or end of %d measured run(s) (%s): those figures are suspect", nb, built)
    if (nw > 0) { print ""; print "Warnings (part 1):"; print ""; for (i = 1; i <= nw; i++) print "- " warn[i] }
  }' "$ROWS"
echo
echo "### Part 2: freshness (tg-on, one request to a new route, then \`GET /api/analytics/top?dimension=route&route=…\` every 50 ms)"
echo
if [[ -s $FROWS ]]; then
  echo "| try | route | seconds until counted | polls |"
  echo "|---:|---|---:|---:|"
  awk -F'\t' '{ printf "| %s | `%s` | %s | %s |\n", $1, $2, ($3 ~ /^[0-9.]+$/ ? $3 : "**" $3 "** (" $5 ")"), $4 }' "$FROWS"
  echo
  awk -F'\t' -v target="$FRESH_TARGET" -v max="$FRESH_MAX" '
    $3 ~ /^[0-9.]+$/ { t[++k] = $3 + 0; next } $3 == "timeout" { to++ } { bad++ }
    END {
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
      if (k == 0) { print "- no try was counted within " max " s: target <= " target " s **MISSED**"; exit }
      m = (k % 2 ? t[(k + 1) / 2] : (t[k / 2] + t[k / 2 + 1]) / 2)
      ok = (m <= target && to == 0)
      printf "- **median %.2f s** (min %.2f, max %.2f, %d tries counted%s) — target <= %d s: **%s**\n", m, t[1], t[k], k, (bad > 0 ? sprintf(", %d not (%d timed out)", bad, to) : ""), target, (ok ? "met" : "MISSED")
      print "- the node writes its aggregates every 2 s, so a try waits for the next write (0-2 s, by the phase at which it lands) plus the write and the poll (50 ms apart); each try starts after a random 0.5-2.5 s pause"
    }' "$FROWS"
else
  echo "not measured (tg-on unavailable or FRESH_TRIES=0)"
fi
echo
echo "### Part 3: Prometheus scrape (\`curl -s -o /dev/null -w '%{time_total}' http://127.0.0.1:ADMIN/metrics\`, $SCRAPES times, one after another, idle node)"
echo
if [[ -s $SROWS ]]; then
  echo "| node | routes in config | routes with traffic | body bytes | series | \`tollgate_requests_total\` series | scrape median ms | p95 ms | min / max ms | CPU ms/scrape | format |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.2f / %.2f | %.1f | %s |\n", $1, $2, $3, $4, $13, $14, $6, $7, $8, $9, $10, ($11 == "valid" ? "valid" : "**" $11 "**") }' "$SROWS"
  echo
  awk -F'\t' '{ printf "- %s: %s\n", $1, $15 }' "$SROWS"
  echo "- p95 = nearest rank ($SCRAPES scrapes); \`CPU ms/scrape\` = the node's utime+stime over the $SCRAPES scrapes / $SCRAPES (10 ms ticks, so coarse); tg-many's traffic: 3 requests to each of $HIT_ROUTES routes; the tg-on row is the small-config reference (after the part 1 runs)"
  awk -F'\t' '$1 == "tg-many" && $11 != "valid" && $11 != "unchecked" { bad = 1 } END { exit !bad }' "$SROWS" && NFAIL=$((NFAIL + 1))
else
  echo "not measured (tg-many did not start)"
fi
if (( ${#WARNINGS[@]} )); then
  echo; echo "Warnings:"; echo
  for w in "${WARNINGS[@]}"; do echo "- $w"; done
fi
if (( NFAIL + fails > 0 )); then
  echo; echo "**$NFAIL check(s) and $fails run(s) failed or had errors: see above.**"
  exit 1
fi
exit 0
