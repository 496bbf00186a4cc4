#!/usr/bin/env bash
# Measures ringcast's scale-out on one machine, in one session: the same fan-out and presence
# joins against a lone node, one node of a cluster and two nodes of a cluster on one Redis,
# alternating, for several rounds; prints the medians, the ratios to the lone node, and Redis's
# CPU time per 1,000 broadcasts (from its INFO cpu, to the microsecond).
#
#   bench/cluster.sh [--rounds N] [--figures max,rate2,many,join] [--short]
#
# Configurations (the app of the environment below):
#   lone   one node, --workers 2, scaling off
#   one    one node, --workers 2, scaling on, on a Redis of its own (Debian's redis-server,
#          persistence off)
#   two    two nodes, --workers 1 each (the same two cores, split), scaling on, on one Redis:
#          the subscribers split over both (round robin), the publisher on the first
# Figures:
#   max    fanout --connections 10000 --channels 1 --payload 100 --duration 10
#          deliveries_per_sec, end-to-end p99, and the CPU of Redis and of the nodes per 1,000
#          broadcasts (net of what they use with nothing published, sampled for 2 s first)
#   rate2  the same at --rate 2 (2 broadcasts a second, 20,000 deliveries a second: below the
#          maximum of every configuration), end-to-end p50 and p99 (ms)
#   many   fanout --connections 1000 --channels 100 --payload 100 --duration 10: many small
#          broadcasts, for Redis's CPU per broadcast
#   join   connect --presence --concurrency 16 --duration 10 (each loop a presence channel of
#          its own, joined as a new user; connections spread over the nodes)
#          presence join p50 and p99 (ms), joins per second
# --short runs every figure once at smoke size (a check that the script works; its figures mean
# nothing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
FIGURES="max,rate2,many,join"
SHORT=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --figures) FIGURES="$2"; shift 2 ;;
    --short) SHORT=1; ROUNDS=1; shift ;;
    -h|--help) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "usage: bench/cluster.sh [--rounds N] [--figures ...] [--short]" >&2; exit 2 ;;
  esac
done

BIN="${RINGCAST_BIN:-$ROOT/target/release/ringcast}"
BENCH_BIN="$ROOT/target/release/ringcast-bench"
for b in "$BIN" "$BENCH_BIN"; do
  [[ -x "$b" ]] || { echo "missing $b: cargo build --release -p ringcast -p ringcast-bench" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 2; }

OUT="$(mktemp -d "${TMPDIR:-/tmp}/ringcast-cluster.XXXXXX")"
# Below the ephemeral range (32768-60999), where the clients' ports in TIME_WAIT are.
BASE=$((20000 + RANDOM % 10000))
export REVERB_APP_ID=1001 REVERB_APP_KEY=bench-key REVERB_APP_SECRET=bench-secret
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT

figure_args() {
  case "$1" in
    max) [[ $SHORT == 1 ]] && echo "fanout --smoke --channels 1" || echo "fanout --connections 10000 --channels 1 --payload 100 --duration 10" ;;
    rate2) [[ $SHORT == 1 ]] && echo "fanout --smoke --channels 1 --rate 2" || echo "fanout --connections 10000 --channels 1 --payload 100 --duration 10 --rate 2" ;;
    many) [[ $SHORT == 1 ]] && echo "fanout --smoke --channels 10" || echo "fanout --connections 1000 --channels 100 --payload 100 --duration 10" ;;
    join) [[ $SHORT == 1 ]] && echo "connect --smoke --presence" || echo "connect --presence --concurrency 16 --duration 10" ;;
  esac
}

wait_ready() {
  for _ in $(seq 100); do
    grep -q "ringcast listening on" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "a node did not start: $(cat "$1")" >&2
  return 1
}

# Starts a configuration; sets NODE_PIDS, WS (comma-separated URLs), API and REDIS_PID.
start_config() {
  local config="$1"
  NODE_PIDS=()
  REDIS_PID=""
  local scaling=()
  if [[ $config != lone ]]; then
    # Removed first: the shell truncates a redirected file only once the child runs, and the
    # wait below must not find the last run's lines.
    rm -f "$OUT/redis.log"
    redis-server --bind 127.0.0.1 --port "$BASE" --save '' --appendonly no --dir "$OUT" \
      >"$OUT/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    local ready=0
    for _ in $(seq 100); do
      grep -q "Ready to accept connections" "$OUT/redis.log" 2>/dev/null && { ready=1; break; }
      sleep 0.1
    done
    [[ $ready == 1 ]] || { echo "redis-server did not start: $(cat "$OUT/redis.log")" >&2; return 1; }
    scaling=(--scaling --redis-port "$BASE")
  fi
  local n=1 workers=2
  [[ $config == two ]] && n=2 workers=1
  WS=""
  for i in $(seq "$n"); do
    local port=$((BASE + i))
    rm -f "$OUT/node$i.log"
    "$BIN" start --host 127.0.0.1 --port "$port" --workers "$workers" "${scaling[@]}" >"$OUT/node$i.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    NODE_PIDS+=("$pid")
    wait_ready "$OUT/node$i.log"
    WS="${WS:+$WS,}ws://127.0.0.1:$port"
  done
  API="http://127.0.0.1:$((BASE + 1))"
}

run_one() {
  local config="$1" figure="$2" round="$3"
  local json="$OUT/$figure.$config.$round.json"
  start_config "$config"
  local extra=(--pid "${NODE_PIDS[0]}")
  [[ ${#NODE_PIDS[@]} -gt 1 ]] && extra+=(--cpu-pids "${NODE_PIDS[1]}")
  [[ -n "$REDIS_PID" ]] && extra+=(--redis-addr "127.0.0.1:$BASE")
  # shellcheck disable=SC2046
  "$BENCH_BIN" $(figure_args "$figure") --ws-url "$WS" --api-url "$API" "${extra[@]}" \
    --quiet --json "$json" >"$OUT/bench.$figure.$config.$round.log" 2>&1 ||
    echo "  ($config $figure round $round: the generator reported a failed check; see $OUT/bench.$figure.$config.$round.log)"
  # Where Redis spent it: the scripts (EVALSHA) and the inbox reads (XREAD), per command.
  [[ -n "$REDIS_PID" ]] && redis-cli -p "$BASE" info commandstats >"$OUT/redis.$figure.$config.$round.txt" 2>/dev/null || true
  cleanup
}

echo "ringcast:   $BIN"
echo "machine:    $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "load:       $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before the runs"
echo "rounds:     $ROUNDS, the configurations alternating; reports in $OUT"
IFS=',' read -r -a figure_list <<<"$FIGURES"
for figure in "${figure_list[@]}"; do
  for round in $(seq "$ROUNDS"); do
    # Rotate which configuration goes first, so that a drift of the machine hits all alike.
    case $((round % 3)) in
      1) order=(lone one two) ;;
      2) order=(two lone one) ;;
      0) order=(one two lone) ;;
    esac
    for config in "${order[@]}"; do
      run_one "$config" "$figure" "$round"
    done
  done
done

BENCH_DIR="$ROOT/bench" PYTHONDONTWRITEBYTECODE=1 python3 - "$OUT" <<'PY'
import glob, os, statistics, sys
sys.path.insert(0, os.environ['BENCH_DIR'])
from figures import value
out = sys.argv[1]


rows = [
    ('max', 'deliveries_per_sec', 'deliveries/s at the maximum rate'),
    ('max', 'end-to-end:p99_ms', 'end-to-end p99 at the maximum rate (ms)'),
    ('max', 'redis_cpu_ms_per_1000_broadcasts_net', 'Redis CPU per 1,000 broadcasts, net (ms)'),
    ('max', 'redis_idle_cpu_ms_per_s', 'Redis CPU with nothing published (ms/s)'),
    ('max', 'server0_cpu_ms_per_1000_broadcasts_net', 'first node CPU per 1,000 broadcasts, net (ms)'),
    ('max', 'server1_cpu_ms_per_1000_broadcasts_net', 'second node CPU per 1,000 broadcasts, net (ms)'),
    ('max', 'lost', 'lost'),
    ('rate2', 'end-to-end:p50_ms', 'end-to-end p50 at 2 broadcasts/s (ms)'),
    ('rate2', 'end-to-end:p99_ms', 'end-to-end p99 at 2 broadcasts/s (ms)'),
    ('many', 'publishes_per_sec', 'broadcasts/s, 100 channels x 10 subscribers'),
    ('many', 'redis_cpu_ms_per_1000_broadcasts_net', 'Redis CPU per 1,000 of those, net (ms)'),
    ('join', 'presence join:p50_ms', 'presence join p50 (ms)'),
    ('join', 'presence join:p99_ms', 'presence join p99 (ms)'),
    ('join', 'handshakes_per_sec', 'presence joins/s (16 at a time)'),
]
def commandstat(path, cmd):
    for line in open(path):
        if line.startswith(f'cmdstat_{cmd}:'):
            f = dict(kv.split('=') for kv in line.strip().split(':', 1)[1].split(','))
            return float(f['usec_per_call']), int(f['calls'])
    return None

for fig in ('max', 'many'):
    for config in ('one', 'two'):
        for cmd in ('evalsha', 'xread'):
            got = [commandstat(p, cmd) for p in sorted(glob.glob(f'{out}/redis.{fig}.{config}.*.txt'))]
            got = [g for g in got if g]
            if got:
                print(f'{fig:5} {config:4} Redis {cmd:8}: {statistics.median(g[0] for g in got):6.2f} us a call (median), '
                      f'{statistics.median(g[1] for g in got):8.0f} calls a run')

print()
print(f"{'figure':44} {'lone':>10} {'one':>10} {'two':>10} {'one/lone':>9} {'two/lone':>9} {'two/one':>8}")
for fig, name, what in rows:
    med = {}
    runs = {}
    for config in ('lone', 'one', 'two'):
        got = [value(p, name) for p in sorted(glob.glob(f'{out}/{fig}.{config}.*.json'))]
        got = [v for v in got if v is not None]
        runs[config] = got
        med[config] = statistics.median(got) if got else None
    if all(v is None for v in med.values()):
        continue
    cell = lambda v: f'{v:10.4g}' if v is not None else f"{'-':>10}"
    ratio = lambda a, b: f'{a / b:9.3f}' if a is not None and b else f"{'-':>9}"
    print(f'{what:44} {cell(med["lone"])} {cell(med["one"])} {cell(med["two"])} '
          f'{ratio(med["one"], med["lone"])} {ratio(med["two"], med["lone"])} {ratio(med["two"], med["one"]):>8}')
    print(f"{'':44}   runs: " + ' | '.join(' '.join(f'{x:.4g}' for x in runs[c]) for c in ('lone', 'one', 'two')))
PY
