#!/usr/bin/env bash
# bench/restart.sh - restarts a Tollgate node RESTARTS times while wrk keeps it busy, and
# counts what the clients saw: the proof that a restart fails no request.
#
# What it does (everything on 127.0.0.1, every process it starts is stopped on exit):
#   1. installs nginx and wrk if they are missing (apt-get),
#   2. builds Tollgate (`cargo build --release -p tollgate`) unless TOLLGATE_BIN is set,
#   3. starts an upstream nginx (`GET /` answers 200 `ok`) and Tollgate generation 1
#      (`serve --data-dir D --proxy-listen P --admin-listen A --workers WORKERS`, one API
#      with the catch-all route `/`),
#   4. runs wrk (CONNS keep-alive connections, THREADS threads) for DURATION seconds, and
#      meanwhile, spread evenly over the run, starts generation 2, 3, … with the very same
#      command line: each new process takes the listening sockets over from the running one
#      (see docs/operations.md, "Zero-downtime restart"), which then drains and exits. For
#      every restart it waits until the old process has exited and notes how long that took,
#   5. prints wrk's own output and a summary: total requests, failed requests (wrk's socket
#      errors: connect, read, write, timeout), non-2xx answers, and one line per restart.
#      The exit code is 0 only if every restart happened and nothing failed.
#
# Knobs (environment variables, defaults in brackets):
#   DURATION [10]    seconds of the wrk run
#   RESTARTS [3]     restarts during the run
#   CONNS [32]       wrk connections
#   THREADS [2]      wrk threads
#   WORKERS [2]      Tollgate proxy workers
#   BASE_PORT [19080] first port tried; the first 3 free ports from here are used
#   TOLLGATE_BIN     use this binary, skip the cargo build
#   KEEP_WORK [0]    1 keeps the work dir (configs, every generation's log)
#   MODE [handover]  `stop-start` restarts the plain way instead, for comparison: SIGTERM to
#                    the running process, and the next one started once it has exited
#
# Run:  ./bench/restart.sh                      (about 15 s after the build)
#       TOLLGATE_BIN=target/release/tollgate DURATION=20 RESTARTS=6 ./bench/restart.sh
set -euo pipefail

DURATION=${DURATION:-10}
RESTARTS=${RESTARTS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-2}
BASE_PORT=${BASE_PORT:-19080}
KEEP_WORK=${KEEP_WORK:-0}
MODE=${MODE:-handover}
HOST=127.0.0.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '%s\n' "$*" >&2; }
die() { log "restart.sh: $*"; exit 2; }

for v in DURATION RESTARTS CONNS THREADS WORKERS BASE_PORT KEEP_WORK; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( DURATION >= 2 && CONNS > 0 && THREADS > 0 && WORKERS > 0 )) \
  || die "DURATION must be >= 2, CONNS, THREADS and WORKERS > 0"
[[ $MODE == handover || $MODE == stop-start ]] || die "MODE must be handover or stop-start"

# ---------------------------------------------------------------- tools
missing=()
for t in nginx wrk; do command -v "$t" >/dev/null || missing+=("$t"); done
if (( ${#missing[@]} )); then
  log "installing ${missing[*]} ..."
  if ! apt-get install -y --no-install-recommends nginx wrk >&2; then
    apt-get update >&2 && apt-get install -y --no-install-recommends nginx wrk >&2 \
      || die "cannot install nginx/wrk"
  fi
fi
for t in nginx wrk curl ss awk od timeout; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done

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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-restartbench.XXXXXX")
mkdir -p "$WORK/tmp" "$WORK/data"
declare -a PIDS=()
cleanup() {
  local pid _
  for pid in "${PIDS[@]:-}"; do
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ $KEEP_WORK == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
PORTS=()
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < 3; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == 3 )) || die "no 3 free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]} PROXY_PORT=${PORTS[1]} ADMIN_PORT=${PORTS[2]}

# ---------------------------------------------------------------- upstream
cat > "$WORK/upstream.conf" <<EOF
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fcgi;
  uwsgi_temp_path $WORK/tmp/uwsgi;
  scgi_temp_path $WORK/tmp/scgi;
  server {
    listen $HOST:$UP_PORT;
    location / { return 200 "ok\n"; }
  }
}
EOF
nginx -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" -g 'daemon off;' &
PIDS+=("$!")

cat > "$WORK/tollgate.yaml" <<EOF
format_version: 1
upstreams:
  - name: bench
    targets:
      - url: "http://$HOST:$UP_PORT"
apis:
  - name: bench
    versions:
      - version: v1
        upstream: bench
        routes:
          - { path: / }
EOF

ADMIN_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
GEN_PID=()   # process id of each generation
start_generation() {  # $1 = generation number; every generation has the same command line
  (export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=info
   exec "$BIN" serve --config "$WORK/tollgate.yaml" --data-dir "$WORK/data" \
     --proxy-listen "$HOST:$PROXY_PORT" --admin-listen "$HOST:$ADMIN_PORT" \
     --workers "$WORKERS" --node-name "gen$1") >"$WORK/gen$1.log" 2>&1 &
  GEN_PID[$1]=$!
  PIDS+=("$!")
}

ready() {  # the proxy answers 200 through to the upstream
  [[ $(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://$HOST:$PROXY_PORT/" || true) == 200 ]]
}

start_generation 1
for _ in $(seq 300); do ready && break; sleep 0.1; done
ready || { tail -20 "$WORK/gen1.log" >&2; die "Tollgate did not start"; }

# ---------------------------------------------------------------- the run
log "wrk: ${DURATION}s, $CONNS connections, $THREADS threads; $RESTARTS restarts ($MODE) during the run"
timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
  "http://$HOST:$PROXY_PORT/" > "$WORK/wrk.out" 2>&1 &
WRK=$!
started=$(date +%s.%N)
declare -a RESTART_LINES=()
restart_failures=0
restarts_ok=0
for (( g = 2; g <= RESTARTS + 1; g++ )); do
  # Restarts spread over the run: at DURATION * (g-1) / (RESTARTS+1) seconds.
  at=$(awk -v d="$DURATION" -v i=$((g - 1)) -v n=$((RESTARTS + 1)) 'BEGIN { print d * i / n }')
  now=$(awk -v s="$started" -v t="$(date +%s.%N)" 'BEGIN { print t - s }')
  wait_s=$(awk -v a="$at" -v n="$now" 'BEGIN { w = a - n; print (w > 0 ? w : 0) }')
  sleep "$wait_s"
  old=${GEN_PID[$((g - 1))]}
  t0=$(date +%s.%N)
  if [[ $MODE == handover ]]; then start_generation "$g"; else kill -TERM "$old"; fi
  exited=0
  for _ in $(seq 600); do
    if ! kill -0 "$old" 2>/dev/null; then exited=1; break; fi
    sleep 0.05
  done
  t1=$(date +%s.%N)
  if [[ $MODE == stop-start ]]; then
    start_generation "$g"
    for _ in $(seq 300); do ready && break; sleep 0.02; done
  fi
  status=none
  if (( exited )); then wait "$old" 2>/dev/null && status=0 || status=$?; fi
  took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  at_s=$(awk -v s="$started" -v a="$t0" 'BEGIN { printf "%.1f", a - s }')
  if (( exited )) && [[ $status == 0 ]] && kill -0 "${GEN_PID[$g]}" 2>/dev/null; then
    restarts_ok=$((restarts_ok + 1))
    if [[ $MODE == handover ]]; then
      RESTART_LINES+=("restart $((g - 1)) at ${at_s}s: gen$g took over, gen$((g - 1)) exited (code 0) ${took}s after gen$g was started")
    else
      RESTART_LINES+=("restart $((g - 1)) at ${at_s}s: gen$((g - 1)) stopped (code 0) in ${took}s, then gen$g was started")
    fi
  else
    restart_failures=$((restart_failures + 1))
    RESTART_LINES+=("restart $((g - 1)) at ${at_s}s: FAILED (old exited: $exited, its exit code: $status)")
    tail -20 "$WORK/gen$((g - 1)).log" "$WORK/gen$g.log" >&2 || true
  fi
done
wait "$WRK" || true
last=$((RESTARTS + 1))
ready || { restart_failures=$((restart_failures + 1)); RESTART_LINES+=("after the run: the last generation does not answer"); }

# ---------------------------------------------------------------- report
requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
[[ -n $requests ]] || { cat "$WORK/wrk.out" >&2; die "no wrk summary"; }
read -r connect_e read_e write_e timeout_e < <(awk '
  /Socket errors:/ { gsub(",", ""); print $4, $6, $8, $10; found = 1 }
  END { if (!found) print 0, 0, 0, 0 }' "$WORK/wrk.out")
non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF; found = 1 } END { if (!found) print 0 }' "$WORK/wrk.out")
failed=$((connect_e + read_e + write_e + timeout_e))

echo "# Tollgate restart under load, MODE=$MODE ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
echo
echo "binary: $BIN ($("$BIN" --version 2>/dev/null || echo '?')); $(nproc) CPUs; workers $WORKERS;"
echo "wrk ${DURATION}s, $CONNS connections, $THREADS threads, GET / (upstream nginx, 3-byte body)"
echo
echo '```'
cat "$WORK/wrk.out"
echo '```'
echo
for line in "${RESTART_LINES[@]}"; do echo "- $line"; done
echo
echo "| requests | failed (connect/read/write/timeout) | non-2xx | restarts |"
echo "|---:|---|---:|---:|"
echo "| $requests | $failed ($connect_e/$read_e/$write_e/$timeout_e) | $non2xx | $restarts_ok/$RESTARTS |"

if (( failed > 0 || non2xx > 0 || restart_failures > 0 )); then
  log "restart.sh: FAILED: $failed failed requests, $non2xx non-2xx answers, $restart_failures failed restarts"
  for (( g = 1; g <= last; g++ )); do log "--- gen$g"; tail -5 "$WORK/gen$g.log" >&2 || true; done
  exit 1
fi
