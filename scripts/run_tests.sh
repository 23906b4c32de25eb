#!/usr/bin/env bash
# Builds and runs the whole test suite (unit tests, emulated CUDA tests, nvcc compile checks,
# the consumer-project test, the example's smoke run and reliability tests), then the reliability
# checks of docs/reliability.md: a subset of the tests rebuilt with ASan + UBSan, and each
# libFuzzer target for NORMLAB_FUZZ_SECONDS (default 60; 0 skips fuzzing).
# Usage: scripts/run_tests.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
fuzz_seconds=${NORMLAB_FUZZ_SECONDS:-60}

bash scripts/install_deps.sh clang-14 libclang-rt-14-dev libomp-14-dev
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" -j "$jobs" --output-on-failure

# ASan + UBSan on the subset docs/reliability.md lists (-O1: half the build time of -O3). A
# sanitizer report exits with 86, so a binary test expecting exit code 1 cannot mistake it.
sanitized=(test_reliability_checkpoint test_reliability_errors test_reliability_fuzz_corpus
           test_reliability_cli_errors test_reliability_resume test_reliability_asan_cache
           test_checkpoint test_cifar10 test_loader test_transforms test_csv test_png test_plot
           test_elementwise test_group_norm test_batch_norm test_norm_fusion test_optim test_loss
           test_pool test_nn test_conv2d test_gemm test_model)
cmake -S . -B "$build-asan" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DNORMLAB_SANITIZE=ON -DNORMLAB_BUILD_BENCH=OFF -DNORMLAB_EMU_SANITIZER_TESTS=OFF
cmake --build "$build-asan" -j "$jobs" --target "${sanitized[@]}"
ASAN_OPTIONS=exitcode=86 UBSAN_OPTIONS=exitcode=86:print_stacktrace=1 \
  ctest --test-dir "$build-asan" -j "$jobs" --output-on-failure -R "^($(IFS='|'; echo "${sanitized[*]}")):"

if [ "$fuzz_seconds" -gt 0 ]; then
  CLANGXX=clang++-14 bash tests/fuzz/run_fuzzers.sh "$(realpath -m "$build-fuzz")" "$fuzz_seconds"
fi
