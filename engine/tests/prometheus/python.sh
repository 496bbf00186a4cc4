#!/usr/bin/env bash
# Runs Python with PyPI's prometheus_client, the reference parser of the Prometheus text format,
# from a virtualenv of its own (created on first use, under the cargo target directory):
#
#   engine/tests/prometheus/python.sh engine/tests/prometheus/parse.py < scrape.txt
#
# The engine's metrics test (engine/tests/metrics.rs) parses every scrape through it, so the
# exposition is checked by the parser Prometheus' own Python client ships, not by ours.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VERSION="0.26.0"
VENV="${CARGO_TARGET_DIR:-$ROOT/target}/prometheus-venv"

ensure_venv() {
  if [[ -x "$VENV/bin/python3" ]] &&
    grep -qx "Version: $VERSION" <<<"$("$VENV/bin/pip" show prometheus-client 2>/dev/null || true)"; then
    return
  fi
  echo "creating $VENV with prometheus-client==$VERSION" >&2
  rm -rf "$VENV"
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -m venv "$VENV" >&2; then
      break
    fi
    rm -rf "$VENV"
  done
  if [[ ! -x "$VENV/bin/pip" ]]; then
    echo "cannot create a Python virtualenv (apt-get install python3-venv)" >&2
    exit 1
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "prometheus-client==$VERSION" >&2
}

mkdir -p "$(dirname "$VENV")"
# Tests run in parallel: one of them creates the virtualenv, the others wait for it.
exec 9>"$VENV.lock"
flock 9
ensure_venv
flock -u 9
exec "$VENV/bin/python3" "$@"
