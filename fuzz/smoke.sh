#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short smoke period (default 20 s).
# Usage: fuzz/smoke.sh [SECONDS]. A crash fails the script and leaves the input in
# fuzz/artifacts/<target>/.
#
# cargo-fuzz drives libFuzzer; the stable toolchain is told to accept the flags it uses
# (RUSTC_BOOTSTRAP) and no sanitizer is requested, so no nightly toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O --sanitizer none
for target in $(cargo fuzz list); do
  echo "--- $target (${seconds}s)"
  mkdir -p "corpus/$target"
  cargo fuzz run -O --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    grep -E 'Done [0-9]+ runs|ERROR|panicked|deadly signal|stat::number_of_executed_units' || true
  # cargo fuzz run exits non-zero on a crash; pipefail would hide grep's status, so
  # check for artifacts explicitly.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz target $target found a failing input:" >&2
    ls "artifacts/$target" >&2
    exit 1
  fi
done
