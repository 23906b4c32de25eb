// Shared by the benchmarks: repeated timing with median/min/max, and the two machine ceilings the
// results are reported against, both measured in the same binary and run: memory bandwidth (a
// STREAM-like triad at a chosen working-set size, so a tensor that lives in L2 is compared with
// L2 bandwidth) and fp32 FMA throughput. Timing, its summary and the option parsing are in
// timing.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>
#include <vector>

#include <omp.h>

#include "normlab/core/tensor.hpp"
#include "timing.hpp"

namespace normlab::bench {

/// Ensures: the median/min/max wall time of `repeats` calls of fn after `warmup` calls.
template <typename F>
Timing time_repeated(F&& fn, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return summarize(std::move(seconds));
}

/// Triad a[i] = b[i] + s * c[i] over three float arrays totalling `working_set_bytes`, on the
/// current OpenMP threads. Bytes counted: read b, c and write a (12 bytes per element; the
/// write-allocate read of a is not counted, as in STREAM). Ensures: median GB/s.
inline double triad_bandwidth_gbs(size_t working_set_bytes, int repeats = 15) {
  const size_t n = std::max<size_t>(working_set_bytes / (3 * sizeof(float)), 1024);
  Tensor<float> a = Tensor<float>::zeros({static_cast<int64_t>(n)});
  Tensor<float> b = Tensor<float>::ones({static_cast<int64_t>(n)});
  Tensor<float> c = Tensor<float>::full({static_cast<int64_t>(n)}, 2.0f);
  float *pa = a.data(), *pb = b.data(), *pc = c.data();
  const int64_t count = static_cast<int64_t>(n);
  // Small working sets are timed in batches so the clock's resolution does not matter.
  const int inner = static_cast<int>(std::max<size_t>(1, (size_t(64) << 20) / (12 * n)));
  const Timing t = time_repeated(
      [&] {
        for (int r = 0; r < inner; ++r) {
#pragma omp parallel for simd schedule(static)
          for (int64_t i = 0; i < count; ++i) pa[i] = pb[i] + 0.5f * pc[i];
        }
      },
      3, repeats);
  return 12.0 * n * inner / t.median / 1e9;
}

/// Peak fp32 multiply-add rate: every thread runs independent FMA chains in registers.
/// Ensures: median GFLOP/s (2 flops per FMA per lane).
inline double fma_peak_gflops(int repeats = 9) {
  const int64_t iterations = 20'000'000;
  constexpr int chains = 16, lanes = 16;
  const Timing t = time_repeated(
      [&] {
#pragma omp parallel
        {
          float acc[chains][lanes];
          for (int c = 0; c < chains; ++c)
            for (int l = 0; l < lanes; ++l) acc[c][l] = 1.0f + 1e-3f * (c + l);
          const float m = 0.999999f, s = 1e-7f;
          for (int64_t it = 0; it < iterations / lanes / chains * 16; ++it)
            for (int c = 0; c < chains; ++c)
#pragma omp simd
              for (int l = 0; l < lanes; ++l) acc[c][l] = acc[c][l] * m + s;
          float sink = 0;
          for (int c = 0; c < chains; ++c)
            for (int l = 0; l < lanes; ++l) sink += acc[c][l];
          if (sink == 42.0f) std::printf(" ");  // keeps the chains alive
        }
      },
      1, repeats);
  const double flops = 2.0 * chains * lanes * (iterations / lanes / chains * 16) * omp_get_max_threads();
  return flops / t.median / 1e9;
}

}  // namespace normlab::bench
