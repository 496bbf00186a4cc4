#!/usr/bin/env bash
# Fan-out with webhooks on versus off, in the same run, and the webhooks' delivery latency.
#
#   bench/webhooks.sh [--rounds N] [--connections N] [--whisperers N] [--duration S]
#
# --connections 0 runs the webhook load without the fan-out, for the latency on an idle server.
#
# Each round runs both arms, in alternating order, each against a fresh ringcast (2 workers):
# `ringcast-bench fanout` (one channel, 100-byte events, max rate) beside bench/webhooks/load.mjs,
# which runs a webhook receiver on loopback and makes ringcast decide webhooks all the time:
# whisperers sending a client event about every 110 ms each (a `client_event` webhook each), and
# churners subscribing to and leaving channels of their own (`channel_occupied`, and
# `channel_vacated` 3 s after the last leave). The receiver and the clients are two processes. In the `on` arm the app posts those three event types to the
# receiver, one event per request; in `batch` the same with batching on (hosted Pusher's 250 ms
# and 20 events); in `off` it has no webhook: the clients' load is the same, only the webhooks
# differ. The receiver runs on the same two cores in every arm (idle in `off`). Prints each run
# and the medians: fan-out deliveries/s, server CPU per delivery, webhooks received, and the
# client_event webhook latency (client send to the receiver's arrival) p50/p99.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
CONNECTIONS=10000
WHISPERERS=100
DURATION=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --whisperers) WHISPERERS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

BIN="${RINGCAST_BIN:-$ROOT/target/release/ringcast}"
BENCH_BIN="$ROOT/target/release/ringcast-bench"
for b in "$BIN" "$BENCH_BIN"; do
  [[ -x "$b" ]] || { echo "missing $b: cargo build --release -p ringcast -p ringcast-bench" >&2; exit 2; }
done
[[ -d "$ROOT/engine/tests/js/node_modules/ws" ]] || (cd "$ROOT/engine/tests/js" && npm ci --no-audit --no-fund)

OUT="$(mktemp -d "${TMPDIR:-/tmp}/ringcast-webhooks.XXXXXX")"
# Below the ephemeral range (32768 and up), so that no client socket of the machine holds it.
PORT=$((20000 + RANDOM % 12000))
HOOK_PORT=$((PORT + 1))
export REVERB_APP_ID=1001 REVERB_APP_KEY=bench-key REVERB_APP_SECRET=bench-secret

write_config() {
  local arm="$1" file="$OUT/$1.toml"
  {
    echo "[[apps]]"
    echo "id = \"$REVERB_APP_ID\""
    echo "key = \"$REVERB_APP_KEY\""
    echo "secret = \"$REVERB_APP_SECRET\""
    if [[ $arm != off ]]; then
      echo
      echo "[[apps.webhooks]]"
      echo "url = \"http://127.0.0.1:$HOOK_PORT/hook\""
      echo 'event_types = ["client_event", "channel_occupied", "channel_vacated"]'
      [[ $arm == batch ]] && echo 'batch = { enabled = true }'
    fi
  } >"$file"
  echo "$file"
}

run_one() {
  local arm="$1" round="$2"
  local config
  config="$(write_config "$arm")"
  env -u REVERB_APP_ID -u REVERB_APP_KEY -u REVERB_APP_SECRET \
    "$BIN" start --host 127.0.0.1 --port "$PORT" --workers 2 --config "$config" >"$OUT/server.$arm.$round.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    grep -q "ringcast listening on" "$OUT/server.$arm.$round.log" 2>/dev/null && break
    sleep 0.1
  done
  node "$ROOT/bench/webhooks/load.mjs" receiver --port "$HOOK_PORT" >"$OUT/receiver.$arm.$round.json" &
  local receiver=$!
  node "$ROOT/bench/webhooks/load.mjs" clients --ws "ws://127.0.0.1:$PORT" \
    --whisperers "$WHISPERERS" --churners 20 --duration $((DURATION + 6)) >"$OUT/clients.$arm.$round.json" &
  local clients=$!
  sleep 1.5
  if [[ $CONNECTIONS == 0 ]]; then
    # --connections 0: the webhook load alone, for its latency on an otherwise idle server.
    sleep "$DURATION"
  else
    "$BENCH_BIN" fanout --ws-url "ws://127.0.0.1:$PORT" --api-url "http://127.0.0.1:$PORT" --pid "$pid" \
      --connections "$CONNECTIONS" --channels 1 --payload 100 --duration "$DURATION" --quiet \
      --json "$OUT/fanout.$arm.$round.json" >"$OUT/bench.$arm.$round.log" 2>&1 ||
    echo "  ($arm round $round: the generator reported a failed check; see $OUT/bench.$arm.$round.log)"
  fi
  wait "$clients" || true
  # The whisper channels are vacated when the clients close, and their channel_vacated goes
  # 3 s later; a moment more for what is still queued.
  sleep 4
  kill -TERM "$receiver" 2>/dev/null || true
  wait "$receiver" || true
  awk '{print ($14 + $15) / 100}' "/proc/$pid/stat" >"$OUT/cpu.$arm.$round"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sleep 1
}

echo "ringcast:   $BIN"
echo "machine:    $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "load:       fanout --connections $CONNECTIONS --channels 1 --payload 100 --duration $DURATION, $WHISPERERS whisperers, 20 churners"
echo "rounds:     $ROUNDS, alternating; reports in $OUT"
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then order=(off on batch); else order=(batch on off); fi
  for arm in "${order[@]}"; do
    run_one "$arm" "$round"
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])

def metric(path, name):
    try:
        report = json.load(open(path))
    except FileNotFoundError:
        return 0
    for m in report.get('metrics', []):
        if m['name'] == name:
            return m['value']

rows = {}
for arm in ('off', 'on', 'batch'):
    rows[arm] = []
    for r in range(1, rounds + 1):
        d = metric(f'{out}/fanout.{arm}.{r}.json', 'deliveries_per_sec')
        total = metric(f'{out}/fanout.{arm}.{r}.json', 'delivered')
        cpu = float(open(f'{out}/cpu.{arm}.{r}').read())
        load = json.loads(open(f'{out}/receiver.{arm}.{r}.json').read().strip().splitlines()[-1])
        clients = json.loads(open(f'{out}/clients.{arm}.{r}.json').read().strip().splitlines()[-1])
        load['whispers_sent'] = clients['whispers_sent'] - clients['refused']
        rows[arm].append((d, cpu, total, load))
        lat = load['latency_ms']
        print(f"{arm:5} round {r}: {d:,.0f} deliveries/s, server CPU {cpu:.1f} s "
              f"({cpu * 1e6 / max(total, 1):.2f} us per delivery), whispers accepted {load['whispers_sent']}, "
              f"webhooks {load['received']}, client_event latency p50 {lat['p50']} ms "
              f"p99 {lat['p99']} ms max {lat['max']} ms, since decided p50 {load['since_decided_ms']['p50']} ms "
              f"p99 {load['since_decided_ms']['p99']} ms")
med = lambda xs: statistics.median(xs) if xs else float('nan')
off = med([r[0] for r in rows['off']])
for arm in ('off', 'on', 'batch'):
    d = med([r[0] for r in rows[arm]])
    cpu = med([r[1] * 1e6 / max(r[2], 1) for r in rows[arm]])
    line = f"{arm:5} median: {d:,.0f} deliveries/s (ratio to off {d / off if off else float('nan'):.3f}), server CPU {cpu:.2f} us per delivery"
    if arm != 'off':
        lat = [r[3]['latency_ms'] for r in rows[arm]]
        hooks = [sum(r[3]['received'].values()) for r in rows[arm]]
        sent = [r[3]['whispers_sent'] for r in rows[arm]]
        line += (f", client_event webhook latency p50 {med([l['p50'] for l in lat]):.2f} ms "
                 f"p99 {med([l['p99'] for l in lat]):.2f} ms, webhooks received {hooks} for whispers {sent}")
    print(line)
PY
