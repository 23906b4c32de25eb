#!/usr/bin/env bash
# Builds and runs cifar10_norms (the full BN/GN/LN comparison, or whatever the arguments say:
# scripts/run_example.sh --help). Outputs go to runs/cifar10_norms/ unless --out says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target cifar10_norms
exec ./build/examples/cifar10_norms "$@"
