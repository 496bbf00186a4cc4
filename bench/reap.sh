#!/usr/bin/env bash
# Measures how a cluster reaps a dead node: two nodes on one Redis (node timeout 5 s), the
# second holding N subscriptions on N channels (ringcast-bench idle), killed with SIGKILL; prints
# how long after the kill the last of its channels left Redis, and the slowest commands Redis
# ran meanwhile (the reaper's steps, from SLOWLOG).
#
#   bench/reap.sh [N]        (default 10000; at most about 19,000 on this machine)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-10000}"
BIN="${RINGCAST_BIN:-$ROOT/target/release/ringcast}"
BENCH_BIN="$ROOT/target/release/ringcast-bench"
for b in "$BIN" "$BENCH_BIN"; do
  [[ -x "$b" ]] || { echo "missing $b: cargo build --release -p ringcast -p ringcast-bench" >&2; exit 2; }
done
OUT="$(mktemp -d "${TMPDIR:-/tmp}/ringcast-reap.XXXXXX")"
# Below the ephemeral range (32768-60999), where the clients' ports are.
BASE=$((20000 + RANDOM % 10000))
export REVERB_APP_ID=1001 REVERB_APP_KEY=bench-key REVERB_APP_SECRET=bench-secret
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
cli() { redis-cli -p "$BASE" "$@"; }

redis-server --bind 127.0.0.1 --port "$BASE" --save '' --appendonly no --dir "$OUT" \
  --slowlog-log-slower-than 10000 --slowlog-max-len 1000 >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
until cli ping >/dev/null 2>&1; do sleep 0.1; done
for i in 1 2; do
  "$BIN" start --host 127.0.0.1 --port $((BASE + i)) --workers 1 --scaling --redis-port "$BASE" \
    --node-timeout 5 >"$OUT/node$i.log" 2>&1 &
  PIDS+=($!)
  until grep -q "ringcast listening" "$OUT/node$i.log" 2>/dev/null; do sleep 0.1; done
done
VICTIM=${PIDS[2]}
ID="$(grep -o 'ringcast node [0-9a-f]*' "$OUT/node2.log" | cut -d' ' -f3)"
"$BENCH_BIN" idle --ws-url "ws://127.0.0.1:$((BASE + 2))" --api-url "http://127.0.0.1:$((BASE + 2))" \
  --connections "$N" --channels "$N" --duration 60 --quiet >"$OUT/idle.log" 2>&1 &
PIDS+=($!)
until [[ "$(cli hlen "reverb:nsubs:$ID")" == "$N" ]]; do sleep 0.5; done
echo "node $ID holds $N subscriptions on $N channels; Redis $(cli info memory | tr -d '\r' | grep '^used_memory_human')"
cli slowlog reset >/dev/null
t0=$(date +%s.%N)
{ kill -9 "$VICTIM"; wait "$VICTIM"; } 2>/dev/null || true
until [[ "$(cli scard reverb:chans:1001)" == "0" ]]; do sleep 0.05; done
t1=$(date +%s.%N)
echo "its channels were all gone $(echo "$t1 - $t0" | bc) s after the kill (node timeout 5 s)"
echo "the slowest script calls Redis ran meanwhile (the reaper's steps), in microseconds:"
cli --no-raw slowlog get 1000 |
  awk '/^ *3\) \(integer\)/ {us=$3} /^ *4\) +1\) "EVALSHA"/ {print us}' | sort -rn | head -3 | sed 's/^/  /'
