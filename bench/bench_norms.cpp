// bench_norms: the fused norm kernels (BatchNorm2d, GroupNorm with 4 groups, the comparison's
// LayerNorm = GroupNorm(1)) at every norm shape of the comparison's model (batch 64) and at one
// out-of-cache shape (64x64x64x64), in training mode with a per-channel affine, without and with
// the fused ReLU. Passes: forward (statistics, running-statistics update for BN, normalise),
// backward (dx, dgamma, dbeta, all written, not accumulated) and forward + backward. The kernels
// are called directly on preallocated buffers (no tape, no allocation: the op layer adds a
// Tensor::empty from the caching allocator and one tape record per call).
//
// Reported per row: microseconds (median, min, max over repeats), GB/s of the median under the
// byte convention below, and that as % of a STREAM-like triad measured in this run at the same
// working-set size (the distinct tensors the pass touches), so an L2- or L3-resident tensor is
// compared with the bandwidth of the level it lives in.
//
//   bench_norms [--threads 2] [--repeats 30] [--warmup 3] [--batch 64] [--csv]
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "cpu_norm_case.hpp"
#include "norm_cases.hpp"
#include "normlab/normlab.hpp"

using namespace normlab;
using bench::kEps;
using bench::NormCase;
using bench::NormKind;
using bench::NormShape;
using bench::PassTraffic;

namespace {

/// The norm inputs of cifar_resnet, in model order (each appears once or twice in the model),
/// then [batch, 64, 64, 64]: 64 MiB per tensor at batch 64, far larger than the 32 MiB L3.
std::vector<NormShape> norm_shapes(int64_t batch) {
  return {{batch, 16, 32, 32}, {batch, 32, 32, 32}, {batch, 16, 16, 16}, {batch, 32, 16, 16},
          {batch, 16, 8, 8},   {batch, 32, 8, 8},   {batch, 64, 64, 64}};
}

const std::string kConvention =
    std::string(bench::kByteConvention) +
    " triad = a[i] = b[i] + s*c[i] (12 bytes per element) over the pass's working set (the "
    "distinct tensors it touches), same threads.";

}  // namespace

int main(int argc, char** argv) {
  const int threads = static_cast<int>(bench::option_int(argc, argv, "--threads", 2));
  const int repeats = static_cast<int>(bench::option_int(argc, argv, "--repeats", 30));
  const int warmup = static_cast<int>(bench::option_int(argc, argv, "--warmup", 3));
  const int64_t batch = bench::option_int(argc, argv, "--batch", 64);
  const bool csv = bench::option_flag(argc, argv, "--csv");
  set_num_threads(threads);

  if (csv) {
    std::printf(
        "norm,N,C,H,W,relu,pass,threads,microseconds_median,microseconds_min,"
        "microseconds_max,bytes,gb_per_s,triad_gb_per_s,percent_of_triad\n");
  } else {
    std::printf(
        "normlab bench_norms: %d threads, %d repeats (+%d warm-up), float32, training "
        "mode, affine, eps %g; gn = GroupNorm(4), ln = GroupNorm(1)\n%s\n",
        threads, repeats, warmup, kEps, kConvention.c_str());
  }

  std::map<int64_t, double> triad_by_working_set;  // bytes -> GB/s, measured once each
  const auto triad = [&](int64_t bytes) {
    auto found = triad_by_working_set.find(bytes);
    if (found == triad_by_working_set.end()) {
      found = triad_by_working_set
                  .emplace(bytes, bench::triad_bandwidth_gbs(static_cast<size_t>(bytes)))
                  .first;
    }
    return found->second;
  };

  Rng rng(1);
  for (const NormKind kind : {NormKind{"bn", 0}, NormKind{"gn", 4}, NormKind{"ln", 1}}) {
    for (const NormShape& s : norm_shapes(batch)) {
      for (const bool relu : {false, true}) {
        NormCase norm(kind, s, relu, rng);
        norm.forward();  // the backward's inputs
        const struct {
          const char* name;
          bench::Timing time;
        } passes[] = {
            {"forward", bench::time_repeated([&] { norm.forward(); }, warmup, repeats)},
            {"backward", bench::time_repeated([&] { norm.backward(); }, warmup, repeats)},
            {"forward_backward", bench::time_repeated(
                                     [&] {
                                       norm.forward();
                                       norm.backward();
                                     },
                                     warmup, repeats)},
        };
        for (const auto& pass : passes) {
          const PassTraffic t = bench::traffic(pass.name, relu);
          const int64_t element_bytes = s.tensor_bytes();
          const double bytes = static_cast<double>(t.tensors_moved * element_bytes);
          const double gbs = bytes / pass.time.median / 1e9;
          const double triad_gbs = triad(t.tensors_touched * element_bytes);
          if (csv) {
            std::printf("%s,%lld,%lld,%lld,%lld,%d,%s,%d,%.2f,%.2f,%.2f,%.0f,%.2f,%.2f,%.1f\n",
                        kind.name, static_cast<long long>(s.n), static_cast<long long>(s.c),
                        static_cast<long long>(s.h), static_cast<long long>(s.w), relu ? 1 : 0,
                        pass.name, threads, 1e6 * pass.time.median, 1e6 * pass.time.min,
                        1e6 * pass.time.max, bytes, gbs, triad_gbs, 100 * gbs / triad_gbs);
          } else {
            const std::string shape = std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                                      std::to_string(s.h) + "x" + std::to_string(s.w);
            std::printf(
                "%s %-12s relu=%d %-16s %10.1f us (min %.1f, max %.1f) %7.1f GB/s, "
                "triad at %6.1f MiB %6.1f GB/s: %5.1f%%\n",
                kind.name, shape.c_str(), relu ? 1 : 0, pass.name, 1e6 * pass.time.median,
                1e6 * pass.time.min, 1e6 * pass.time.max, gbs,
                t.tensors_touched * element_bytes / 1048576.0, triad_gbs, 100 * gbs / triad_gbs);
          }
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}
