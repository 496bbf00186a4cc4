#!/usr/bin/env bash
# Compares this build of ringcast with an earlier one, in the same session, on the same machine:
# each scenario runs against one server and then the other, alternating, for several rounds, and
# the medians and the ratio (this build / the earlier one) are printed. The load generator is
# this build's for both, so only the server differs.
#
#   bench/compare.sh [--rounds N] [--scenarios a,b,...] [--short] [--metrics] [--tls] BASELINE
#
# BASELINE is a git revision (built into a temporary worktree once, then reused) or the path of
# an earlier `ringcast` binary. --short runs every scenario once at smoke size (a CI check that
# the script and both servers work; its figures mean nothing). The script exits 1 when a run
# failed one of the generator's checks (loss, duplicates, order, ...) or gave no figure. --metrics starts this build with
# `--metrics-addr` and scrapes its /metrics once a second while the generator runs (fifteen
# times Prometheus' default rate); with this build's own binary as BASELINE it measures what
# serving metrics costs. --tls starts this build with a certificate (an ECDSA P-256 one signed by
# a CA made with openssl for the run) and points the generator at wss:// and https:// trusting
# that CA, while the baseline stays on plain TCP; with this build's own binary as BASELINE it
# measures what TLS costs. Scenarios:
#
#   idle      idle --connections 15000 --duration 5            server_rss_per_connection (bytes, lower is better)
#   fanout1   fanout --connections 10000 --channels 1 --payload 100 --duration 10
#                                                              deliveries_per_sec, server CPU µs per delivery
#                                                              (lower is better), publish request p99 (ms)
#   fanout100 fanout --connections 10000 --channels 100 --payload 1024 --duration 10
#                                                              deliveries_per_sec, server CPU µs per delivery,
#                                                              end-to-end max (ms)
#   rate4     fanout --connections 10000 --channels 1 --payload 100 --duration 10 --rate 4
#                                                              end-to-end p99 (ms), publish request p99 (ms)
#   connect   connect --duration 10 --concurrency 64           handshakes_per_sec, server CPU µs per
#                                                              handshake (lower is better)
#   trigger   trigger --duration 10                            requests_per_sec
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
SCENARIOS="idle,fanout1,connect"
SHORT=0
METRICS=0
TLS=0
BASELINE=""
FAILED=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --scenarios) SCENARIOS="$2"; shift 2 ;;
    --short) SHORT=1; ROUNDS=1; shift ;;
    --metrics) METRICS=1; shift ;;
    --tls) TLS=1; shift ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) BASELINE="$1"; shift ;;
  esac
done
[[ -n "$BASELINE" ]] || { echo "usage: bench/compare.sh [--rounds N] [--scenarios ...] [--short] [--metrics] [--tls] BASELINE" >&2; exit 2; }

CURRENT_BIN="${RINGCAST_BIN:-$ROOT/target/release/ringcast}"
BENCH_BIN="$ROOT/target/release/ringcast-bench"
for b in "$CURRENT_BIN" "$BENCH_BIN"; do
  [[ -x "$b" ]] || { echo "missing $b: cargo build --release -p ringcast -p ringcast-bench" >&2; exit 2; }
done

if [[ -x "$BASELINE" && ! -d "$BASELINE" ]]; then
  BASE_BIN="$BASELINE"
else
  rev="$(git -C "$ROOT" rev-parse --short "$BASELINE")"
  tree="${TMPDIR:-/tmp}/ringcast-baseline-$rev"
  if [[ ! -x "$tree/target/release/ringcast" ]]; then
    [[ -d "$tree" ]] || git -C "$ROOT" worktree add --detach "$tree" "$rev" >/dev/null
    echo "building the baseline $rev in $tree"
    (cd "$tree" && CARGO_TARGET_DIR="$tree/target" cargo build --release -p ringcast >&2)
  fi
  BASE_BIN="$tree/target/release/ringcast"
fi

OUT="$(mktemp -d "${TMPDIR:-/tmp}/ringcast-compare.XXXXXX")"
PORT=$((20000 + RANDOM % 20000))
export REVERB_APP_ID=1001 REVERB_APP_KEY=bench-key REVERB_APP_SECRET=bench-secret

if [[ $TLS == 1 ]]; then
  # A CA and a server certificate for localhost, for this run only.
  (
    cd "$OUT"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -out ca.pem -days 2 -subj "/CN=ringcast bench CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
      -out server.csr -subj "/CN=localhost" 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
      -days 2 -extfile san.ext 2>/dev/null
  )
fi

# args and the figures to read from the report (metric names, or latency label:field)
scenario_args() {
  local s="$1" smoke=()
  [[ $SHORT == 1 ]] && smoke=(--smoke)
  case "$s" in
    idle) [[ $SHORT == 1 ]] && echo "idle --smoke" || echo "idle --connections 15000 --duration 5" ;;
    fanout1) [[ $SHORT == 1 ]] && echo "fanout --smoke --channels 1" || echo "fanout --connections 10000 --channels 1 --payload 100 --duration 10" ;;
    fanout100) [[ $SHORT == 1 ]] && echo "fanout --smoke --channels 10 --payload 1024" || echo "fanout --connections 10000 --channels 100 --payload 1024 --duration 10" ;;
    rate4) [[ $SHORT == 1 ]] && echo "fanout --smoke --channels 1 --rate 4" || echo "fanout --connections 10000 --channels 1 --payload 100 --duration 10 --rate 4" ;;
    connect) [[ $SHORT == 1 ]] && echo "connect --smoke" || echo "connect --duration 10 --concurrency 64" ;;
    trigger) [[ $SHORT == 1 ]] && echo "trigger --smoke" || echo "trigger --duration 10" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
}

scenario_figures() {
  case "$1" in
    idle) echo "server_rss_per_connection" ;;
    fanout1) echo "deliveries_per_sec cpu_us_per_delivery publish:p99_ms" ;;
    fanout100) echo "deliveries_per_sec cpu_us_per_delivery end-to-end:max_ms" ;;
    rate4) echo "end-to-end:p99_ms publish:p99_ms" ;;
    connect) echo "handshakes_per_sec cpu_us_per_handshake" ;;
    trigger) echo "requests_per_sec" ;;
  esac
}

run_one() {
  local label="$1" bin="$2" scenario="$3" round="$4"
  local json="$OUT/$scenario.$label.$round.json"
  rm -f "$OUT/server.log"
  local extra=() scraper="" urls=(--ws-url "ws://127.0.0.1:$PORT" --api-url "http://127.0.0.1:$PORT")
  [[ $METRICS == 1 && $label == current ]] && extra=(--metrics-addr "127.0.0.1:$((PORT + 1))")
  if [[ $TLS == 1 && $label == current ]]; then
    extra+=(--tls-cert "$OUT/server.pem" --tls-key "$OUT/server.key")
    urls=(--ws-url "wss://localhost:$PORT" --api-url "https://localhost:$PORT" --ca-file "$OUT/ca.pem")
  fi
  "$bin" start --host 127.0.0.1 --port "$PORT" --workers 2 "${extra[@]}" >"$OUT/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    grep -q "ringcast listening on" "$OUT/server.log" 2>/dev/null && break
    sleep 0.1
  done
  if [[ $METRICS == 1 && $label == current ]]; then
    (
      while sleep 1; do
        curl -sf -o /dev/null "http://127.0.0.1:$((PORT + 1))/metrics" && echo scraped >>"$OUT/scrapes.$label.$round"
      done
    ) &
    scraper=$!
  fi
  # shellcheck disable=SC2046
  "$BENCH_BIN" $(scenario_args "$scenario") "${urls[@]}" \
    --pid "$pid" --quiet --json "$json" >"$OUT/bench.log" 2>&1 ||
    { echo "  ($label $scenario round $round: the generator reported a failed check; see $OUT/bench.log)"; FAILED=1; }
  # The server's CPU time (user + system, clock ticks) over the whole run: per delivery it is
  # less disturbed by other work on the machine than the rate is.
  awk '{print $14 + $15}' "/proc/$pid/stat" >"$OUT/$scenario.$label.$round.cpu" 2>/dev/null || true
  if [[ -n "$scraper" ]]; then
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "this build: $CURRENT_BIN"
echo "baseline:   $BASE_BIN"
echo "machine:    $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "rounds:     $ROUNDS, alternating; reports in $OUT"
[[ $METRICS == 1 ]] && echo "metrics:    this build serves /metrics on port $((PORT + 1)), scraped once a second"
[[ $TLS == 1 ]] && echo "tls:        this build terminates TLS (ECDSA P-256), the generator connects over wss:// and https://"
IFS=',' read -r -a list <<<"$SCENARIOS"
for scenario in "${list[@]}"; do
  for round in $(seq "$ROUNDS"); do
    # Alternate which build goes first, so that a drift of the machine hits both alike.
    if (( round % 2 )); then order=(current baseline); else order=(baseline current); fi
    for label in "${order[@]}"; do
      bin="$CURRENT_BIN"; [[ $label == baseline ]] && bin="$BASE_BIN"
      run_one "$label" "$bin" "$scenario" "$round"
    done
  done
  if BENCH_DIR="$ROOT/bench" PYTHONDONTWRITEBYTECODE=1 python3 - "$OUT" "$scenario" "$(scenario_figures "$scenario")" <<'PY'
import glob, os, statistics, sys
sys.path.insert(0, os.environ['BENCH_DIR'])
from figures import value
out, scenario, figures = sys.argv[1], sys.argv[2], sys.argv[3].split()

TICK_US = 1e6 / float(__import__('os').sysconf('SC_CLK_TCK'))

def figure(path, name):
    if name in ('cpu_us_per_delivery', 'cpu_us_per_handshake'):
        try:
            ticks = float(open(path[:-len('.json')] + '.cpu').read())
        except (OSError, ValueError):
            return None
        count = 'delivered' if name == 'cpu_us_per_delivery' else 'handshakes'
        done = value(path, count)
        return ticks * TICK_US / done if done else None
    return value(path, name)

missing = False
for name in figures:
    vals = {}
    for label in ('current', 'baseline'):
        got = [figure(p, name) for p in sorted(glob.glob(f'{out}/{scenario}.{label}.*.json'))]
        vals[label] = [v for v in got if v is not None]
    if not vals['current'] or not vals['baseline']:
        print(f'{scenario:10} {name:28} no figure (see the reports in {out})')
        missing = True
        continue
    cur, base = statistics.median(vals['current']), statistics.median(vals['baseline'])
    ratio = cur / base if base else float('nan')
    runs = lambda v: ' '.join(f'{x:.6g}' for x in v)
    print(f'{scenario:10} {name:28} this {cur:12.6g}  baseline {base:12.6g}  ratio {ratio:6.3f}'
          f'   (runs: {runs(vals["current"])} | {runs(vals["baseline"])})')
sys.exit(3 if missing else 0)
PY
  then :; else FAILED=1; fi
done
if [[ $METRICS == 1 ]]; then
  echo "scrapes answered by this build during the runs: $(cat "$OUT"/scrapes.* 2>/dev/null | wc -l)"
fi
if [[ $FAILED == 1 ]]; then
  echo "a run failed a check or gave no figure: the ratios above are incomplete" >&2
  exit 1
fi
