#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time on a
# copy of its committed seed corpus (tests/fuzz/corpus/<target>/). A crash, sanitizer report or
# timeout fails the script; the input that caused it is left in BUILD_DIR/<target>/ (crash-*,
# timeout-*, oom-*): copy it into tests/fuzz/regressions/<target>/ and fix the bug, and the
# replay test test_reliability_fuzz_corpus keeps it fixed.
# Usage: tests/fuzz/run_fuzzers.sh [build-dir] [seconds-per-target]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-fuzz}
seconds=${2:-60}
cxx=${CLANGXX:-clang++}
mkdir -p "$build/cifar10" "$build/checkpoint"

for target in cifar10 checkpoint; do
  exe="$build/fuzz_$target"
  echo "fuzz: building $exe"
  "$cxx" -std=c++17 -O1 -g -fopenmp -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer -Wno-pass-failed -I"$root/include" -I"$root/kernels" "$here/fuzz_$target.cpp" -o "$exe"
  corpus="$build/$target/corpus"  # a copy: new inputs found go there, not into the repository
  rm -rf "$corpus" && mkdir -p "$corpus"
  cp "$here/corpus/$target/"* "$corpus/"
  inputs=("$corpus")
  [ -d "$here/regressions/$target" ] && inputs+=("$here/regressions/$target")
  echo "fuzz: running fuzz_$target for ${seconds}s"
  (cd "$build/$target" && OMP_NUM_THREADS=1 "$exe" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
     -rss_limit_mb=2048 -print_final_stats=1 "${inputs[@]}" > fuzz.log 2>&1) ||
    { tail -n 60 "$build/$target/fuzz.log"; echo "fuzz: fuzz_$target FAILED (input saved in $build/$target)"; exit 1; }
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "$build/$target/fuzz.log" || true
done
