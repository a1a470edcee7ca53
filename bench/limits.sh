#!/usr/bin/env bash
# bench/limits.sh - how exact Tollgate's cluster-wide rate limits are: NODES nodes on
# loopback sharing one Redis, a client offering OVERLOAD x the limit spread over the nodes.
#
# What it does (everything on 127.0.0.1 except Redis, which is REDIS_URL; every process it
# starts is stopped on exit; Redis itself is not started, only used):
#   1. installs nginx, wrk and redis-cli (redis-tools) if they are missing (apt-get), checks
#      that Redis answers PING,
#   2. builds Tollgate (`cargo build --release -p tollgate`) unless TOLLGATE_BIN is set,
#   3. starts one upstream nginx (1 worker) answering every path with "ok\n" (`return 200`)
#      and NODES Tollgate nodes: the same config file, each its own data dir,
#      `serve --redis REDIS_URL --workers WORKERS --node-name lim<run>-<i>`, and waits until
#      each answers GET /readyz on its admin port and has registered in Redis (presence set
#      `tollgate:nodes`, a warning only when it has not),
#   4. the config (checked first with `tollgate validate -f`) has one API per scope, named
#      `lim<run stamp>-<scope>` so that Redis keys of earlier runs cannot interfere, each
#      with one route /<scope> and the API-wide policy
#        rate_limit: { limit: LIMIT, window: 1s, burst: LIMIT, by: api, scope: <scope> }
#   5. for each scope in SCOPES, after waiting until no cargo/rustc is running: one curl
#      per node (200, body "ok", a RateLimit-Policy header), a 2 s pause (the budget is
#      whole again), then Redis `INFO commandstats` (evalsha + eval calls) and each node's
#      /metrics are read, NODES wrk processes run in parallel (one per node,
#      `wrk -t1 -cCONNS -dDURATION`), and Redis and /metrics are read again. Each wrk paces
#      its connections with a Lua `delay()` (wrk's delay is per connection, so its mean is
#      CONNS * 1000 / per-node rate ms) so that each node is offered OVERLOAD * LIMIT / NODES
#      req/s: the total offered is OVERLOAD x the limit (the actual rate is a little lower,
#      by each answer's round trip; the report shows the measured one). PACING=poisson
#      draws every delay from an exponential distribution (each connection is a Poisson
#      stream, so the connections do not fire in step); PACING=fixed uses the mean every
#      time, so a node's connections fire together, in bursts of CONNS (a harsher client
#      for cluster_lease, see bench/README.md). wrk truncates a delay to whole ms, so the
#      fraction is dithered and the mean stays exact. The Lua script counts answers by
#      status class (2xx, 429, 5xx, other) and prints them with wrk's totals.
#   6. per scope it reports, summed over the nodes:
#        accepted   = requests - non-2xx/3xx (wrk's count; cross-checked with the 2xx count)
#        ideal      = burst + LIMIT * D: what one GCRA limit that starts full lets through in
#                     D seconds under overload, D = the longest wrk duration of the scope
#        error %    = (accepted - ideal) / ideal * 100
#        Redis calls per request = (delta(evalsha + eval) - presence) / requests, presence
#                     = NODES * W / 2 (every node runs one presence script every 2 s; W =
#                     wall seconds between the two INFO reads); also per accepted request
#        fallbacks  = delta of tollgate_limit_fallback_total over the nodes (requests
#                     decided on a node's share because Redis did not answer within 100 ms)
#        granted by Redis (cluster scopes) = how far the limit's GCRA timestamp in Redis
#                     moved during the run, in emission intervals: the requests Redis handed
#                     out (the key is the one new `tollgate:rl:*` key the pre-check made; it
#                     is a few high, by the time from reading Redis's clock to wrk's first
#                     request). granted - accepted = what the nodes did not serve (leases
#                     that expired unused)
#      and the criterion:
#        cluster        |error| <= 1 %
#        cluster_lease  ideal - NODES * lease_size <= accepted <= ideal + LIMIT * lease_ttl,
#                       lease_size = max(1, burst / 50), lease_ttl = min(window / 10, 1s)
#                       = 0.1 s (the defaults in crates/model/src/traffic.rs)
#        local          informational: every node has the whole limit, so the nodes
#                       together accept about min(offered, NODES * ideal)
#      Any 5xx answer, other non-429 non-2xx answer or wrk socket error is a failure too.
#   7. prints a Markdown report (stdout); raw rows (one per node and scope, plus one
#      `all` row per scope) go to bench/out/limits-<timestamp>.tsv. Progress and
#      diagnostics go to stderr.
#
# Exit status: 0 = every criterion met and no errors; 1 = a criterion missed, or a 5xx /
# socket error / unexpected status; 2 = set-up failure (tools, build, Redis, ports, config).
#
# Redis is shared: another client running Lua scripts on it during a run (tests, another
# bench) inflates "Redis calls"; the report warns when Redis has more clients than the nodes
# plus this script's own connection.
#
# Knobs (environment variables, defaults in brackets):
#   LIMIT [300]          requests per second of every limit (window 1s, burst = LIMIT)
#   DURATION [20]        seconds of each scope's wrk runs (wrapped in `timeout`)
#   NODES [3]            Tollgate nodes
#   SCOPES ["local cluster cluster_lease"]   scopes measured, in this order
#   OVERLOAD [3]         total offered rate / LIMIT (spread evenly over the nodes)
#   CONNS [10]           wrk connections per node (1 wrk thread each)
#   WORKERS [1]          proxy workers per node
#   PACING [poisson]     poisson | fixed: how each wrk connection spaces its requests (above)
#   REDIS_URL [redis://127.0.0.1:6379]
#   BASE_PORT [18380]    first port tried; the first 1 + 2 * NODES free ports from here are used
#   TOLLGATE_BIN         use this binary, skip the cargo build
#   BUILD_WAIT [600]     max seconds to wait for running cargo/rustc before each scope
#   OUT_DIR [bench/out]  where the raw TSV goes
#   KEEP_WORK [0]        1 = keep the temp work dir (config, wrk output, node logs)
#
# Example: TOLLGATE_BIN=target/release/tollgate ./bench/limits.sh     (3 scopes x 20 s, ~1.5 min)
#          LIMIT=1000 DURATION=10 SCOPES=cluster ./bench/limits.sh
set -euo pipefail

LIMIT=${LIMIT:-300}
DURATION=${DURATION:-20}
NODES=${NODES:-3}
SCOPES=${SCOPES:-"local cluster cluster_lease"}
OVERLOAD=${OVERLOAD:-3}
CONNS=${CONNS:-10}
WORKERS=${WORKERS:-1}
PACING=${PACING:-poisson}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
BASE_PORT=${BASE_PORT:-18380}
BUILD_WAIT=${BUILD_WAIT:-600}
KEEP_WORK=${KEEP_WORK:-0}
HOST=127.0.0.1   # loopback only
WINDOW_S=1       # the window of every limit (the bound below assumes it)
PAUSE_S=2        # after the pre-check: > window, so the budget is whole again

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=${OUT_DIR:-$ROOT/bench/out}

log() { printf '%s\n' "$*" >&2; }
die() { log "limits.sh: $*"; exit 2; }

for v in LIMIT DURATION NODES CONNS WORKERS BASE_PORT BUILD_WAIT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[[ $OVERLOAD =~ ^[0-9]+([.][0-9]+)?$ ]] || die "OVERLOAD must be a number (got '$OVERLOAD')"
(( LIMIT > 0 && DURATION > 0 && NODES > 0 && CONNS > 0 && WORKERS > 0 )) \
  || die "LIMIT, DURATION, NODES, CONNS and WORKERS must be > 0"
for s in $SCOPES; do
  case $s in local|cluster|cluster_lease) ;; *) die "unknown scope '$s' (local|cluster|cluster_lease)" ;; esac
done
[[ -n ${SCOPES// /} ]] || die "SCOPES is empty"
case $PACING in poisson) PACING_POISSON=true ;; fixed) PACING_POISSON=false ;; *) die "PACING must be poisson or fixed (got '$PACING')" ;; esac

BURST=$LIMIT
LEASE_SIZE=$(( BURST / 50 > 1 ? BURST / 50 : 1 ))   # RateLimit::lease_size() default
LEASE_TTL_S=0.1                                      # RateLimit::lease_ttl() for a 1 s window
NODE_RATE=$(awk -v o="$OVERLOAD" -v l="$LIMIT" -v n="$NODES" 'BEGIN { printf "%.3f", o * l / n }')
DELAY_MS=$(awk -v c="$CONNS" -v r="$NODE_RATE" 'BEGIN { printf "%.4f", c * 1000 / r }')
awk -v d="$DELAY_MS" 'BEGIN { exit !(d >= 1) }' \
  || die "per-connection delay ${DELAY_MS} ms < 1 ms: wrk cannot pace that; lower CONNS or raise NODES"
UNDERLOAD=0   # ideal and "granted by Redis" assume the offered rate stays above the limit
awk -v o="$OVERLOAD" 'BEGIN { exit !(o <= 1) }' && UNDERLOAD=1

# ---------------------------------------------------------------- tools
ensure_tools() {
  local missing=() pkgs=() t
  for t in nginx wrk redis-cli; do command -v "$t" >/dev/null || missing+=("$t"); done
  if (( ${#missing[@]} )); then
    for t in "${missing[@]}"; do [[ $t == redis-cli ]] && pkgs+=(redis-tools) || pkgs+=("$t"); done
    log "installing ${pkgs[*]} ..."
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; then
      apt-get update >&2 && apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 \
        || die "cannot install ${pkgs[*]}"
    fi
  fi
  for t in nginx wrk redis-cli curl ss timeout awk ps pgrep; do
    command -v "$t" >/dev/null || die "missing tool: $t"
  done
}
ensure_tools

rcli() { redis-cli --no-auth-warning -u "$REDIS_URL" "$@"; }
pong=$(rcli PING 2>&1 | tr -d '\r') || true
[[ $pong == PONG ]] || die "Redis at $REDIS_URL does not answer PING (got: $pong)"

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
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-limits.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/tmp" "$WORK/runs"
ROWS=$WORK/rows.tsv
: > "$ROWS"
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
TSV=$OUT_DIR/limits-$STAMP.tsv
RUN=$(tr 'A-Z' 'a-z' <<<"$STAMP")-$$   # in API and node names: fresh Redis keys every run

declare -a PIDS=() WRK_PIDS=() NODE_PID=() NODE_PORT=() ADMIN_PORT=()
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
cleanup() {
  local pid
  for pid in "${WRK_PIDS[@]:-}" "${PIDS[@]:-}"; do [[ -n $pid ]] && stop_pid "$pid"; done
  WRK_PIDS=(); PIDS=()
  if [[ $KEEP_WORK == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------- ports
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
NPORTS=$((1 + 2 * NODES))
PORTS=()
for (( p = BASE_PORT; p < BASE_PORT + 500 && ${#PORTS[@]} < NPORTS; p++ )); do
  port_free "$p" && PORTS+=("$p")
done
(( ${#PORTS[@]} == NPORTS )) || die "no $NPORTS free ports in $BASE_PORT..$((BASE_PORT + 499))"
UP_PORT=${PORTS[0]}
for (( i = 1; i <= NODES; i++ )); do
  NODE_PORT[i]=${PORTS[$((2 * i - 1))]}; ADMIN_PORT[i]=${PORTS[$((2 * i))]}
done

# ---------------------------------------------------------------- configs
api_name() { echo "lim${RUN}-${1//_/-}"; }

cat > "$WORK/upstream.conf" <<EOF
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
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

{
  cat <<EOF
format_version: 1
upstreams:
  - name: bench
    targets: [{ url: "http://$HOST:$UP_PORT" }]
apis:
EOF
  for s in $SCOPES; do
    cat <<EOF
  - name: $(api_name "$s")
    policies:
      - rate_limit: { limit: $LIMIT, window: ${WINDOW_S}s, burst: $BURST, by: api, scope: $s }
    versions:
      - version: v1
        upstream: bench
        routes: [{ path: /$s }]
EOF
  done
} > "$WORK/tollgate.yaml"

if ! out=$("$BIN" validate -f "$WORK/tollgate.yaml" 2>&1); then
  log "$out"; log "config:"; cat "$WORK/tollgate.yaml" >&2
  die "the generated config does not validate ($BIN validate -f)"
fi

# wrk script: paced connections, answers counted by status class, one result line.
cat > "$WORK/offer.lua" <<EOF
-- each connection waits delay() ms before each request: ${DELAY_MS} ms on average
local d = ${DELAY_MS}
local threads = {}
function setup(thread) table.insert(threads, thread) end
-- args (after --): a seed per wrk process, so that the nodes' streams are independent
function init(args)
  c2xx, c429, c5xx, cother = 0, 0, 0, 0
  math.randomseed(tonumber(args[1] or "0") + os.time())
  for _ = 1, 10 do math.random() end
end
-- PACING poisson: exponential delays (each connection a Poisson stream, so the connections
-- do not fire in step); fixed: every delay is d. wrk truncates a delay to whole ms, so the
-- fraction is dithered: the mean stays exact.
local poisson = ${PACING_POISSON}
function delay()
  local x = d
  if poisson then x = -d * math.log(1 - math.random()) end
  local b = math.floor(x)
  if math.random() < x - b then return b + 1 end
  return b
end
function response(status, headers, body)
  if status >= 200 and status < 300 then c2xx = c2xx + 1
  elseif status == 429 then c429 = c429 + 1
  elseif status >= 500 then c5xx = c5xx + 1
  else cother = cother + 1 end
end
function done(summary, latency, requests)
  local a, b, c, o = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("c2xx"); b = b + t:get("c429"); c = c + t:get("c5xx"); o = o + t:get("cother")
  end
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d s2xx=%d s429=%d s5xx=%d sother=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    a, b, c, o, latency:percentile(50), latency:percentile(99)))
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
  nginx -t -q -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" || die "upstream nginx config invalid"
  nginx -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" -g 'daemon off;' &
  UPSTREAM_PID=$!; PIDS+=("$!")
  wait_http "http://$HOST:$UP_PORT/" "$UPSTREAM_PID" "upstream nginx" || { cat "$WORK/upstream.err" >&2; die "upstream did not start"; }
}

ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')   # 48 hex chars
node_name() { echo "lim${RUN}-$1"; }
start_node() {  # $1 = index (1-based)
  local i=$1 dir=$WORK/node$1
  mkdir -p "$dir/data"
  ( # the caller's own TOLLGATE_* settings must not leak into the nodes
    for v in $(compgen -e); do [[ $v == TOLLGATE_* ]] && unset "$v"; done
    export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN TOLLGATE_PORTAL_LISTEN=off RUST_LOG=warn
    exec "$BIN" serve --config "$WORK/tollgate.yaml" --data-dir "$dir/data" \
      --proxy-listen "$HOST:${NODE_PORT[i]}" --admin-listen "$HOST:${ADMIN_PORT[i]}" \
      --redis "$REDIS_URL" --workers "$WORKERS" --node-name "$(node_name "$i")"
  ) > "$dir/tollgate.log" 2>&1 &
  NODE_PID[i]=$!; PIDS+=("$!")
}

node_log() { echo "$WORK/node$1/tollgate.log"; }

# ---------------------------------------------------------------- measuring helpers
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

redis_script_calls() {  # calls of EVALSHA + EVAL since Redis started
  rcli INFO commandstats | tr -d '\r' \
    | awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { s += $3 } END { printf "%d", s }'
}
redis_clients() { rcli INFO clients | tr -d '\r' | awk -F: '$1 == "connected_clients" { print $2 }'; }

metrics_sum() {  # metrics_sum NAME : sum over every node of every sample of NAME (0 when absent)
  local i s=0 v
  for (( i = 1; i <= NODES; i++ )); do
    v=$(curl -s -m 5 "http://$HOST:${ADMIN_PORT[i]}/metrics" 2>/dev/null \
      | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f", s }') || v=0
    s=$((s + ${v:-0}))
  done
  echo "$s"
}

now_s() { date +%s.%N; }
redis_time_us() { rcli TIME | tr -d '\r' | awk 'NR == 1 { s = $1 } NR == 2 { printf "%.0f", s * 1e6 + $1 }'; }
rl_keys() { rcli --scan --pattern 'tollgate:rl:*' | tr -d '\r' | sort; }
# Tollgate's emission interval in whole microseconds, as in its Redis script
EMISSION_US=$(awk -v l="$LIMIT" -v w="$WINDOW_S" 'BEGIN { printf "%d", int(int(w * 1e9 / l) / 1000) }')

# One raw row = the fields below, in this order; a row is built in the associative array R.
FIELDS=(started scope node port limit burst window_s conns offered_target_rps duration_s
  requests offered_rps accepted s2xx s429 s5xx sother err_connect err_read err_write err_timeout
  p50_us p99_us ideal error_pct lo hi redis_granted redis_calls presence_est redis_calls_per_req
  redis_calls_per_accepted fallbacks redis_errors redis_clients builds_running result
  accepted_per_node note)
declare -A R
new_row() {  # new_row SCOPE NODE : reset R to the common fields
  local f
  for f in "${FIELDS[@]}"; do R[$f]=""; done
  R[started]=$STARTED; R[scope]=$1; R[node]=$2; R[limit]=$LIMIT; R[burst]=$BURST
  R[window_s]=$WINDOW_S; R[conns]=$CONNS; R[offered_target_rps]=$NODE_RATE
}
add_row() {
  local f line="" sep=""
  for f in "${FIELDS[@]}"; do line+="$sep${R[$f]//$'\t'/ }"; sep=$'\t'; done
  echo "$line" >> "$ROWS"
}

FAILURES=()

precheck() {  # precheck SCOPE : every node answers 200 "ok" with a RateLimit-Policy header
  local s=$1 i got
  for (( i = 1; i <= NODES; i++ )); do
    got=$(curl -s -m 5 -D "$WORK/check.head" -o "$WORK/check.body" -w '%{http_code}' \
      "http://$HOST:${NODE_PORT[i]}/$s" 2>&1) || true
    if [[ $got != 200 ]] || [[ $(cat "$WORK/check.body" 2>/dev/null) != ok ]] \
       || ! grep -qi '^ratelimit-policy:' "$WORK/check.head"; then
      echo "node $i: GET /$s gave status '$got', body '$(head -c 100 "$WORK/check.body" 2>/dev/null | tr '\n' ' ')', headers: $(tr -d '\r' < "$WORK/check.head" 2>/dev/null | tr '\n' ' ' | head -c 400)"
      return 1
    fi
  done
}

calc() { awk "BEGIN { printf $1 }"; }   # calc 'FORMAT, EXPR' (numbers only, no user input)

# run_scope SCOPE
run_scope() {
  local s=$1 i why b0 b1 c0 c1 f0 f1 e0 e1 t0 t1 cl0 cl1 rc keys0 rkey="" tb="" tat=""
  STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  log "== scope $s: $NODES x wrk -t1 -c$CONNS -d${DURATION}s, ${NODE_RATE} req/s offered per node (delay ${DELAY_MS} ms per connection)"
  keys0=$(rl_keys)
  if ! why=$(precheck "$s"); then
    log "  $s: FAILED pre-check - $why"
    FAILURES+=("$s: pre-check failed: $why")
    new_row "$s" all; R[builds_running]=$(builds_running); R[result]=fail; R[note]="pre-check failed: $why"; add_row
    return 0
  fi
  # the pre-check made this limit's Redis key (cluster scopes): remember its name
  if [[ $s != local ]]; then
    rkey=$(comm -13 <(echo "$keys0") <(rl_keys) | head -n 2)
    [[ $(wc -l <<<"$rkey") == 1 ]] || rkey=""
  fi
  sleep "$PAUSE_S"   # > window: the key has expired, the budget is whole
  b0=$(builds_running)
  cl0=$(redis_clients); f0=$(metrics_sum tollgate_limit_fallback_total); e0=$(metrics_sum tollgate_limit_redis_errors_total)
  t0=$(now_s); c0=$(redis_script_calls)
  [[ -n $rkey ]] && tb=$(redis_time_us)   # last: the gap to wrk's first request inflates "granted"
  WRK_PIDS=()
  for (( i = 1; i <= NODES; i++ )); do
    timeout -k 5 $((DURATION + 15)) wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/offer.lua" \
      "http://$HOST:${NODE_PORT[i]}/$s" -- "$(( (RANDOM << 15 | RANDOM) + i * 1000003 ))" > "$WORK/runs/wrk-$s-$i.txt" 2>&1 &
    WRK_PIDS+=("$!")
  done
  local -a wrk_rc=()
  for (( i = 1; i <= NODES; i++ )); do
    rc=0; wait "${WRK_PIDS[i - 1]}" || rc=$?; wrk_rc[i]=$rc
  done
  WRK_PIDS=()
  c1=$(redis_script_calls); t1=$(now_s)
  [[ -n $rkey ]] && tat=$(rcli GET "$rkey" | tr -d '\r')
  f1=$(metrics_sum tollgate_limit_fallback_total); e1=$(metrics_sum tollgate_limit_redis_errors_total); cl1=$(redis_clients)
  b1=$(builds_running)
  local builds=$((b0 > b1 ? b0 : b1)) maxcl=$((cl0 > cl1 ? cl0 : cl1))

  # per node
  local line kv requests duration_us non2xx err_connect err_read err_write err_timeout s2xx s429 s5xx sother p50_us p99_us acc
  local T_req=0 T_acc=0 T_2xx=0 T_429=0 T_5xx=0 T_oth=0 T_ec=0 T_er=0 T_ew=0 T_et=0 D_us=0 ok_nodes=0 per_node="" node_fail=""
  for (( i = 1; i <= NODES; i++ )); do
    if ! kill -0 "${NODE_PID[i]}" 2>/dev/null; then
      node_fail="${node_fail:+$node_fail; }node $i died: $(tail -n 3 "$(node_log "$i")" | tr '\n' ' ')"
    fi
    if ! line=$(grep '^WRKRESULT' "$WORK/runs/wrk-$s-$i.txt"); then
      node_fail="${node_fail:+$node_fail; }wrk on node $i gave no result (exit ${wrk_rc[i]}): $(tail -n 3 "$WORK/runs/wrk-$s-$i.txt" | tr '\n' ' ')"
      continue
    fi
    for kv in ${line#WRKRESULT }; do printf -v "${kv%%=*}" '%s' "${kv#*=}"; done
    acc=$((requests - non2xx))
    new_row "$s" "$i"
    R[port]=${NODE_PORT[i]}; R[duration_s]=$(calc "\"%.3f\", $duration_us / 1e6")
    R[requests]=$requests; R[offered_rps]=$(calc "\"%.1f\", ($duration_us > 0 ? $requests / ($duration_us / 1e6) : 0)")
    R[accepted]=$acc; R[s2xx]=$s2xx; R[s429]=$s429; R[s5xx]=$s5xx; R[sother]=$sother
    R[err_connect]=$err_connect; R[err_read]=$err_read; R[err_write]=$err_write; R[err_timeout]=$err_timeout
    R[p50_us]=$p50_us; R[p99_us]=$p99_us; R[builds_running]=$builds; R[result]=node; R[accepted_per_node]=$acc
    (( acc != s2xx )) && R[note]="2xx counted by the script: $s2xx"
    add_row
    T_req=$((T_req + requests)); T_acc=$((T_acc + acc)); T_2xx=$((T_2xx + s2xx)); T_429=$((T_429 + s429))
    T_5xx=$((T_5xx + s5xx)); T_oth=$((T_oth + sother))
    T_ec=$((T_ec + err_connect)); T_er=$((T_er + err_read)); T_ew=$((T_ew + err_write)); T_et=$((T_et + err_timeout))
    (( duration_us > D_us )) && D_us=$duration_us
    ok_nodes=$((ok_nodes + 1))
    per_node="${per_node:+$per_node / }$acc"
  done

  if (( ok_nodes == 0 )); then
    FAILURES+=("$s: $node_fail")
    new_row "$s" all; R[builds_running]=$builds; R[result]=fail; R[note]=$node_fail; add_row
    log "  $s: FAILED - $node_fail"
    return 0
  fi

  # totals
  local D W calls presence ideal err lo hi result note="" granted="" sock=$((T_ec + T_er + T_ew + T_et))
  D=$(calc "\"%.3f\", $D_us / 1e6")
  W=$(calc "\"%.3f\", $t1 - $t0")
  calls=$((c1 - c0))
  presence=$(calc "\"%.0f\", $NODES * $W / 2")
  ideal=$(calc "\"%.1f\", $BURST + $LIMIT * $D")
  err=$(calc "\"%+.2f\", ($T_acc - $ideal) / $ideal * 100")
  # what Redis handed out: the key's TAT moved from (at most) tb to tat, one emission per request
  [[ $tat =~ ^[0-9]+$ && -n $tb && $UNDERLOAD == 0 ]] && granted=$(calc "\"%.0f\", ($tat - $tb) / $EMISSION_US")
  case $s in
    cluster)
      lo=$(calc "\"%.1f\", $ideal * 0.99"); hi=$(calc "\"%.1f\", $ideal * 1.01")
      if awk -v e="$err" 'BEGIN { exit !(e <= 1 && e >= -1) }'; then result=pass; else result=MISSED; fi ;;
    cluster_lease)
      lo=$(calc "\"%.1f\", $ideal - $NODES * $LEASE_SIZE"); hi=$(calc "\"%.1f\", $ideal + $LIMIT * $LEASE_TTL_S")
      if awk -v a="$T_acc" -v lo="$lo" -v hi="$hi" 'BEGIN { exit !(a >= lo && a <= hi) }'; then result=pass; else result=MISSED; fi ;;
    local)
      lo=""; hi=$(calc "\"%.1f\", $ideal * $NODES"); result=info ;;
  esac
  if (( ok_nodes < NODES )) || [[ -n $node_fail ]]; then
    result=fail; note=$node_fail
    FAILURES+=("$s: $node_fail")
  fi
  if (( T_5xx + T_oth + sock > 0 )); then
    [[ $result == fail ]] || result=ERRORS
    note="${note:+$note; }5xx=$T_5xx other-status=$T_oth socket errors: connect=$T_ec read=$T_er write=$T_ew timeout=$T_et"
    FAILURES+=("$s: 5xx=$T_5xx, other non-2xx/non-429 answers=$T_oth, socket errors connect=$T_ec read=$T_er write=$T_ew timeout=$T_et")
  fi
  (( UNDERLOAD )) && [[ $result == MISSED || $result == pass ]] && result=info
  [[ $result == MISSED ]] && FAILURES+=("$s: accepted $T_acc, ideal $ideal (error $err %), allowed ${lo:-?}..${hi:-?}")
  (( T_acc != T_2xx )) && note="${note:+$note; }accepted (requests - non-2xx) $T_acc but 2xx counted $T_2xx"
  (( builds > 0 )) && note="${note:+$note; }cargo/rustc running during the run"
  (( maxcl > NODES + 1 )) && note="${note:+$note; }Redis had $maxcl clients (nodes + this script = $((NODES + 1))): another client may have run scripts"
  [[ $s != local && -z $granted && $UNDERLOAD == 0 ]] && note="${note:+$note; }Redis-granted count unknown (the limit's key was not identified)"
  new_row "$s" all
  R[port]=-; R[duration_s]=$D; R[requests]=$T_req; R[offered_rps]=$(calc "\"%.1f\", ($D > 0 ? $T_req / $D : 0)")
  R[accepted]=$T_acc; R[s2xx]=$T_2xx; R[s429]=$T_429; R[s5xx]=$T_5xx; R[sother]=$T_oth
  R[err_connect]=$T_ec; R[err_read]=$T_er; R[err_write]=$T_ew; R[err_timeout]=$T_et
  R[ideal]=$ideal; R[error_pct]=$err; R[lo]=$lo; R[hi]=$hi; R[redis_granted]=$granted
  R[redis_calls]=$calls; R[presence_est]=$presence
  R[redis_calls_per_req]=$(calc "\"%.3f\", ($T_req > 0 && $calls > $presence ? ($calls - $presence) / $T_req : 0)")
  R[redis_calls_per_accepted]=$(calc "\"%.3f\", ($T_acc > 0 && $calls > $presence ? ($calls - $presence) / $T_acc : 0)")
  R[fallbacks]=$((f1 - f0)); R[redis_errors]=$((e1 - e0)); R[redis_clients]=$maxcl
  R[builds_running]=$builds; R[result]=$result; R[accepted_per_node]=$per_node; R[note]=$note
  add_row
  log "$(printf '  %-13s requests %6d  accepted %6d (%s)  ideal %8s  error %6s %%  Redis granted %s  Redis calls/req %s  fallbacks %d  %s%s' \
    "$s" "$T_req" "$T_acc" "$per_node" "$ideal" "$err" "${granted:--}" "${R[redis_calls_per_req]}" "$((f1 - f0))" "$result" "${note:+ ($note)}")"
}

# ---------------------------------------------------------------- main
log "ports: upstream $UP_PORT, nodes ${NODE_PORT[*]} (admin ${ADMIN_PORT[*]}); Redis $REDIS_URL; work dir $WORK"
log "tollgate binary: $BIN"
(( UNDERLOAD )) && log "WARNING: OVERLOAD=$OVERLOAD <= 1: the ideal assumes overload, so error % has no pass/fail meaning (result: info); Redis calls per request still are"
START_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
start_upstream
for (( i = 1; i <= NODES; i++ )); do start_node "$i"; done
for (( i = 1; i <= NODES; i++ )); do
  if ! wait_http "http://$HOST:${ADMIN_PORT[i]}/readyz" "${NODE_PID[i]}" "tollgate node $i"; then
    tail -n 20 "$(node_log "$i")" >&2 || true
    die "tollgate node $i did not become ready"
  fi
done
# every node registers in Redis at once (presence script); wait up to 10 s to see them all
seen=0
for _ in $(seq 50); do
  seen=$(rcli ZRANGE tollgate:nodes 0 -1 | tr -d '\r' | grep -c "^lim${RUN}-" || true)
  (( seen >= NODES )) && break
  sleep 0.2
done
(( seen >= NODES )) || log "WARNING: only $seen of $NODES nodes seen in Redis's presence set tollgate:nodes after 10 s (is --redis working?)"
log "nodes ready: ${NODE_PID[*]} (pids); $seen registered in Redis"

for s in $SCOPES; do
  wait_for_builds
  run_scope "$s"
done

for (( i = 1; i <= NODES; i++ )); do
  if grep -qiE 'warn|error|panick' "$(node_log "$i")"; then
    log "tollgate node $i log has warnings/errors (first 10 lines):"
    grep -iE 'warn|error|panick' "$(node_log "$i")" | head -n 10 >&2
  fi
done

{ (IFS=$'\t'; echo "${FIELDS[*]}"); cat "$ROWS"; } > "$TSV"
log "raw rows: $TSV"

# ---------------------------------------------------------------- report (stdout)
redis_ver=$(rcli INFO server | tr -d '\r' | awk -F: '$1 == "redis_version" { print $2 }')
echo "## Tollgate cluster rate-limit accuracy ($START_UTC)"
echo
echo "- host: $(uname -n), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r), loopback"
echo "- tollgate $( ("$BIN" --version 2>/dev/null || true) | head -n1 | sed "s/^tollgate //") ($NODES nodes, $WORKERS worker(s) each), Redis $redis_ver ($REDIS_URL), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | sed 's/^nginx version: //') upstream"
echo "- limit: \`rate_limit: { limit: $LIMIT, window: ${WINDOW_S}s, burst: $BURST, by: api }\` per scope; lease_size $LEASE_SIZE, lease_ttl ${LEASE_TTL_S}s (defaults)"
echo "- load: ${DURATION}s per scope, $NODES wrk (1 thread, $CONNS connections each), ${NODE_RATE} req/s offered to each node = ${OVERLOAD}x the limit in total, $PACING pacing"
(( UNDERLOAD )) && echo "- **OVERLOAD ≤ 1**: the offered rate is below the limit, so \`ideal\` (which assumes overload) and \`error %\` do not apply; results are informational"
echo "- raw rows: ${TSV#"$ROOT"/}"
echo
awk -F'\t' -v nodes="$NODES" -v limit="$LIMIT" -v lsz="$LEASE_SIZE" -v lttl="$LEASE_TTL_S" '
  NR == 1 {
    for (i = 1; i <= NF; i++) c[$i] = i
    print "| scope | offered req/s | requests | accepted | accepted per node | 429 | ideal | error % | allowed range | granted by Redis | Redis calls / request | Redis calls / accepted | fallbacks | 5xx+other / socket errors | result |"
    print "|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"
    next
  }
  function f(name) { return $c[name] }
  f("node") != "all" { next }
  f("result") == "fail" { printf "| %s | FAILED | | | | | | | | | | | | | %s |\n", f("scope"), f("note"); next }
  {
    if (f("scope") == "cluster") bound = sprintf("%.0f .. %.0f (±1 %%)", f("lo"), f("hi"))
    else if (f("scope") == "cluster_lease") bound = sprintf("%.0f .. %.0f", f("lo"), f("hi"))
    else bound = sprintf("info: ≈ min(offered, %.0f)", f("hi"))
    res = f("result"); if (res != "info") res = "**" res "**"
    printf "| %s | %.0f | %d | %d | %s | %d | %.0f | %s | %s | %s | %.3f | %.3f | %d | %d / %d | %s |\n",
      f("scope"), f("offered_rps"), f("requests"), f("accepted"), f("accepted_per_node"), f("s429"),
      f("ideal"), f("error_pct"), bound, (f("redis_granted") == "" ? "–" : f("redis_granted")),
      f("redis_calls_per_req"), f("redis_calls_per_accepted"), f("fallbacks"),
      f("s5xx") + f("sother"), f("err_connect") + f("err_read") + f("err_write") + f("err_timeout"), res
  }
  END {
    print ""
    printf "`ideal` = burst + limit × D (D = the longest wrk run of the scope): what one limit that starts full lets through under overload. "
    printf "`error %%` = (accepted − ideal) / ideal. `cluster` must be within ±1 %%; `cluster_lease` within [ideal − nodes × lease_size, ideal + limit × lease_ttl] = [ideal − %d, ideal + %.0f]; ", nodes * lsz, limit * lttl
    printf "`local` is informational (each node applies the whole limit on its own). "
    printf "`granted by Redis`: requests the limit'"'"'s Redis key handed out during the run (how far its GCRA timestamp moved, in emission intervals; a few high, by the time from reading Redis'"'"'s clock to the first request); granted − accepted = what the nodes did not serve. "
    printf "`Redis calls` = EVALSHA + EVAL calls on the Redis server during the run, minus the estimated presence calls (one per node every 2 s). "
    printf "`fallbacks`: requests decided on a node'"'"'s share because Redis did not answer in time.\n"
  }' "$TSV"
notes=$(awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  $c["node"] == "all" && $c["result"] != "fail" && $c["note"] != "" { print "- " $c["scope"] ": " $c["note"] }' "$TSV")
if [[ -n $notes ]]; then echo; echo "Notes:"; echo; echo "$notes"; fi
if (( ${#FAILURES[@]} )); then
  echo; echo "Failures:"; echo
  for f in "${FAILURES[@]}"; do echo "- $f"; done
  exit 1
fi
