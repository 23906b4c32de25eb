#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time on a
# copy of its committed seed corpus (tests/fuzz/corpus/<target>/) plus the crash reproducers in
# tests/fuzz/regressions/<target>/, both targets at once (one core each). A crash, sanitizer
# report, timeout or out-of-memory fails the script; the input that caused it is left in
# BUILD_DIR/<target>/ (crash-*, timeout-*, oom-*): copy it into tests/fuzz/regressions/<target>/
# and fix the bug, and the replay test test_reliability_fuzz_corpus keeps it fixed.
# Usage: tests/fuzz/run_fuzzers.sh [build-dir] [seconds-per-target]   (CLANGXX picks the compiler)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(realpath -m "${1:-$root/build-fuzz}")
seconds=${2:-60}
cxx=${CLANGXX:-clang++}

fuzz() {
  local target=$1 dir="$build/$1"
  local exe="$dir/fuzz_$target" corpus="$dir/corpus"  # a copy: new inputs stay out of the repository
  mkdir -p "$dir"
  "$cxx" -std=c++17 -O1 -g -fopenmp -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer -Wno-pass-failed -I"$root/include" -I"$root/kernels" \
    "$here/fuzz_$target.cpp" -o "$exe"
  rm -rf "$corpus" && mkdir -p "$corpus"
  cp "$here/corpus/$target/"* "$corpus/"
  local inputs=("$corpus")
  [ -d "$here/regressions/$target" ] && inputs+=("$here/regressions/$target")
  cd "$dir" && OMP_NUM_THREADS=1 "$exe" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "${inputs[@]}" > fuzz.log 2>&1
}

pids=()
for target in cifar10 checkpoint; do
  echo "fuzz: building and running fuzz_$target for ${seconds}s"
  fuzz "$target" &
  pids+=($!)
done
status=0
for i in 0 1; do
  target=$([ $i -eq 0 ] && echo cifar10 || echo checkpoint)
  if wait "${pids[$i]}"; then
    grep -E "DONE|stat::number_of_executed_units" "$build/$target/fuzz.log" | sed "s/^/fuzz_$target: /"
  else
    tail -n 60 "$build/$target/fuzz.log" 2>/dev/null || true
    echo "fuzz: fuzz_$target FAILED (the input is saved in $build/$target)"
    status=1
  fi
done
exit $status
