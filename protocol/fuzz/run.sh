#!/usr/bin/env bash
# Runs the fuzz targets with libFuzzer on stable Rust, one after the other.
#
#   protocol/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 600 seconds, every target. Builds with the same coverage flags `cargo fuzz build
# --sanitizer none` uses (no nightly needed), keeps what libFuzzer finds in work/<target>
# (ignored by git; the committed seeds in corpus/<target> are read, never written), and writes
# crashing inputs to artifacts/<target>/. Exits non-zero if any target found a crash.
set -euo pipefail
cd "$(dirname "$0")"

secs="${1:-600}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(frame_decoder handshake pusher_message api_auth)
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Coverflow-checks"
# --target keeps the coverage flags off build scripts and proc macros, which cannot link them.
cargo build --release --target "$triple" --bins

status=0
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "artifacts/$t"
  echo "== $t: ${secs}s"
  if ! "target/$triple/release/$t" "work/$t" "corpus/$t" \
      -max_total_time="$secs" -artifact_prefix="artifacts/$t/" -print_final_stats=1 \
      2> "work/$t.log"; then
    echo "!! $t failed; see protocol/fuzz/work/$t.log and protocol/fuzz/artifacts/$t/"
    status=1
  fi
  grep -E "DONE|^stat::number_of_executed_units" "work/$t.log" || true
done
exit "$status"
