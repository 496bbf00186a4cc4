#!/usr/bin/env bash
# Autobahn WebSocket conformance run for ringcast's framing code.
#
# Starts `ringcast start --echo` (the /echo endpoint shares the connection and framing code of app
# connections), drives it with kosoku's fuzzing client over Autobahn cases 1.* to 10.* (12.* and
# 13.* test permessage-deflate, which ringcast does not negotiate), then checks the report:
# every case must be OK, NON-STRICT or INFORMATIONAL with a clean close, and the per-case summary
# must equal the committed expected.json, so any change in behaviour shows up as a diff.
#
#   engine/tests/autobahn/run.sh            run and check
#   engine/tests/autobahn/run.sh --update   run and rewrite expected.json from this run
#
# Environment: RINGCAST_BIN (default target/release/ringcast), KOSOKU (default: the kosoku of the
# virtualenv target/kosoku-venv, created on first use), AUTOBAHN_OUT (report directory, default
# target/autobahn/<driver>), MONOIO_FORCE_LEGACY_DRIVER=1 to run ringcast on epoll.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
KOSOKU_VERSION="0.1.0"
KOSOKU_VENV="$ROOT/target/kosoku-venv"

update=0
case "${1:-}" in
  "") ;;
  --update) update=1 ;;
  *)
    echo "usage: $0 [--update]" >&2
    exit 2
    ;;
esac

BIN="${RINGCAST_BIN:-$ROOT/target/release/ringcast}"
if [[ ! -x "$BIN" ]]; then
  echo "ringcast binary not found at $BIN (cargo build --release -p ringcast)" >&2
  exit 1
fi
BIN="$(realpath "$BIN")"

# The same rule monoio applies to MONOIO_FORCE_LEGACY_DRIVER; the ready line tells which driver
# ringcast really runs (it falls back to epoll where io_uring is unavailable).
case "${MONOIO_FORCE_LEGACY_DRIVER:-}" in
  1 | [Tt][Rr][Uu][Ee] | [Yy][Ee][Ss]) driver="epoll" ;;
  *) driver="io_uring" ;;
esac
OUTDIR="${AUTOBAHN_OUT:-$ROOT/target/autobahn/$driver}"

ensure_kosoku() {
  if [[ -n "${KOSOKU:-}" ]]; then
    return
  fi
  KOSOKU="$KOSOKU_VENV/bin/kosoku"
  local installed=""
  if [[ -x "$KOSOKU" ]]; then
    installed="$("$KOSOKU_VENV/bin/pip" show kosoku 2>/dev/null || true)"
  fi
  if grep -qx "Version: $KOSOKU_VERSION" <<<"$installed"; then
    return
  fi
  echo "creating $KOSOKU_VENV with kosoku==$KOSOKU_VERSION"
  rm -rf "$KOSOKU_VENV"
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -m venv "$KOSOKU_VENV"; then
      break
    fi
    rm -rf "$KOSOKU_VENV"
  done
  if [[ ! -x "$KOSOKU_VENV/bin/pip" ]]; then
    echo "cannot create a Python virtualenv (apt-get install python3-venv)" >&2
    exit 1
  fi
  "$KOSOKU_VENV/bin/pip" install --quiet --disable-pip-version-check "kosoku==$KOSOKU_VERSION"
}
ensure_kosoku
# The interpreter next to kosoku runs the report check, so no other Python is needed.
PYTHON="$(dirname "$KOSOKU")/python3"
[[ -x "$PYTHON" ]] || PYTHON="python3"

port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"
server_log="$OUTDIR/ringcast.log"

echo "starting ringcast --echo on 127.0.0.1:$port ($driver driver)"
# Started inside OUTDIR so that no `.env` file of the working directory changes its configuration.
(
  cd "$OUTDIR"
  REVERB_APP_ID="${REVERB_APP_ID:-autobahn}" \
  REVERB_APP_KEY="${REVERB_APP_KEY:-autobahn-key}" \
  REVERB_APP_SECRET="${REVERB_APP_SECRET:-autobahn-secret}" \
  REVERB_APP_MAX_MESSAGE_SIZE=16777216 \
    exec "$BIN" start --host 127.0.0.1 --port "$port" --workers 2 --echo
) >"$server_log" 2>&1 &
server_pid=$!

stop_server() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT

show_server_log() {
  echo "--- ringcast output (last 50 lines of $server_log) ---" >&2
  tail -n 50 "$server_log" >&2 || true
}

for _ in $(seq 1 150); do
  if grep -q "ringcast listening on 127.0.0.1:$port" "$server_log"; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "ringcast exited before it was ready" >&2
    show_server_log
    exit 1
  fi
  sleep 0.1
done
if ! grep -q "ringcast listening on 127.0.0.1:$port" "$server_log"; then
  echo "ringcast did not print its ready line within 15 s" >&2
  show_server_log
  exit 1
fi

grep -m1 "ringcast listening on" "$server_log"
echo "running kosoku fuzzingclient against ws://127.0.0.1:$port/echo"
kosoku_rc=0
timeout 900 "$KOSOKU" -m fuzzingclient \
  -i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '9.*' -i '10.*' \
  -x '12.*' -x '13.*' \
  -p 2 -o "$OUTDIR" "ws://127.0.0.1:$port/echo" >"$OUTDIR/kosoku.log" 2>&1 || kosoku_rc=$?
tail -n 40 "$OUTDIR/kosoku.log"
echo "kosoku exited with $kosoku_rc"

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "ringcast died during the Autobahn run" >&2
  show_server_log
  exit 1
fi

check_args=("$OUTDIR/index.json" "$HERE/expected.json")
if [[ $update -eq 1 ]]; then
  check_args+=(--update)
fi
if ! "$PYTHON" "$HERE/check.py" "${check_args[@]}"; then
  show_server_log
  exit 1
fi
