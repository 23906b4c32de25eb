// The CPU column of bench_norms_cuda (see bench_norms_cuda.hpp).
#include "bench_norms_cuda.hpp"
#include "bench_support.hpp"
#include "cpu_norm_case.hpp"

namespace normlab::bench {

CpuPassTimes time_cpu_norm(const NormKind& kind, const NormShape& shape, bool relu, int threads,
                           int warmup, int repeats) {
  set_num_threads(threads);
  Rng rng(1);
  NormCase norm(kind, shape, relu, rng);
  norm.forward();  // the backward's inputs
  const Timing forward = time_repeated([&] { norm.forward(); }, warmup, repeats);
  const Timing backward = time_repeated([&] { norm.backward(); }, warmup, repeats);
  return {forward, backward};
}

}  // namespace normlab::bench
