// bench_norms_cuda's two translation units meet here: the GPU driver (bench_norms_cuda.cu, nvcc)
// times the CPU kernels on the same shapes through time_cpu_norm (bench_norms_cuda_cpu.cpp,
// compiled by the host compiler with the flags of the CPU benchmarks, so its numbers are
// bench_norms' numbers).
#pragma once

#include "norm_cases.hpp"
#include "timing.hpp"

namespace normlab::bench {

struct CpuPassTimes {
  Timing forward, backward;
};

/// Times bench_norms' NormCase (cpu_norm_case.hpp) of `kind` on `shape` with `threads` OpenMP
/// threads. Requires: threads, repeats >= 1. Ensures: the forward's and the backward's
/// median/min/max over `repeats` calls after `warmup` calls.
CpuPassTimes time_cpu_norm(const NormKind& kind, const NormShape& shape, bool relu, int threads,
                           int warmup, int repeats);

}  // namespace normlab::bench
