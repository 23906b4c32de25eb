#!/usr/bin/env bash
# Builds and runs the whole test suite (unit tests, emulated CUDA tests, nvcc compile checks,
# the consumer-project test, the example's smoke run). Usage: scripts/run_tests.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

bash scripts/install_deps.sh
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" -j "$jobs" --output-on-failure
