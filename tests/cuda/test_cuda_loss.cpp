// cuda::cross_entropy_* (kernels/normlab/cuda/loss.cuh: fused log_softmax + NLL, mean, label
// smoothing) against the double oracle: one row, one class, rows shorter and longer than a warp
// (K = 10, the model's, and 33, 100), more rows than a block has warps; targets at class 0 and
// K - 1; logits far from 0 (1e4 + randn, which overflow exp without the max shift) and spread
// wide (1e3 * randn: nearly one-hot softmax); the saved row max and log-sum, the loss and dlogits
// written (into NaN) and accumulated, with dloss read from the device; the same loss as the CPU
// kernel; targets outside [0, K) reported as an error naming the row; argument errors.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/cuda_op_tests.hpp"
#include "cuda/cuda_test.hpp"
#include "normlab/cpu/loss.hpp"
#include "normlab/cuda/loss.cuh"
#include "oracle/loss.hpp"

using namespace normlab;

namespace {

enum class Logits { Normal, Offset, Spread };

std::vector<float> logits_of(Logits kind, int64_t n, uint64_t seed) {
  switch (kind) {
    case Logits::Normal:
      return testing::random_values<float>(n, seed, 0.0, 2.0);
    case Logits::Offset:
      return testing::random_values<float>(n, seed, 1e4, 1.0);
    case Logits::Spread:
      return testing::random_values<float>(n, seed, 0.0, 1e3);
  }
  return {};
}

/// Targets cycling through the classes from K - 1 down, so that class 0 and class K - 1 occur
/// whenever N >= 2 (and K - 1 with N = 1).
std::vector<int32_t> targets_of(int64_t N, int64_t K) {
  std::vector<int32_t> t(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n)
    t[n] = static_cast<int32_t>(n % 2 == 0 ? K - 1 - n / 2 % K : n / 2 % K);
  return t;
}

/// The device buffers of one forward.
struct DeviceLoss {
  Tensor<float> logits, row_max, row_log_sum, row_loss, loss;
  testing::DeviceInts targets, target_error;
};

DeviceLoss run_forward(const std::vector<float>& logits, const std::vector<int32_t>& targets,
                       double label_smoothing, int64_t N, int64_t K) {
  DeviceLoss d{testing::to_device(logits),
               Tensor<float>::empty({N}, Device::cuda()),
               Tensor<float>::empty({N}, Device::cuda()),
               Tensor<float>::empty({N}, Device::cuda()),
               Tensor<float>::empty({1}, Device::cuda()),
               testing::DeviceInts(targets),
               testing::DeviceInts(2)};
  cuda::cross_entropy_forward(d.logits.data(), d.targets.data(), label_smoothing, d.row_max.data(),
                              d.row_log_sum.data(), d.row_loss.data(), d.loss.data(),
                              d.target_error.data(), N, K);
  return d;
}

void check_cross_entropy(int64_t N, int64_t K, Logits kind, double label_smoothing) {
  INFO("N = " << N << ", K = " << K << ", logits " << static_cast<int>(kind) << ", label smoothing "
              << label_smoothing);
  const std::vector<float> logits = logits_of(kind, N * K, 3 + N + K);
  const std::vector<int32_t> targets = targets_of(N, K);
  const std::vector<double> logits64(logits.begin(), logits.end());
  const DeviceLoss d = run_forward(logits, targets, label_smoothing, N, K);
  CHECK_NOTHROW(cuda::check_cross_entropy_targets(d.target_error.data(), N, K));
  CHECK(d.target_error.to_host() == std::vector<int32_t>{-1, 0});

  // The loss against the oracle (log-probabilities in float carry an absolute error of a few
  // ulp of the logits' magnitude) and against the CPU kernel.
  const double magnitude = kind == Logits::Normal ? 10.0 : kind == Logits::Offset ? 1e4 : 3e3;
  const double loss_ref = oracle::cross_entropy(logits64, targets, K, label_smoothing);
  const float loss = testing::to_host(d.loss)[0];
  testing::require_close("loss", &loss, &loss_ref, 1, 4e-7 * magnitude, 1e-6);
  std::vector<float> cpu_stats(3 * N);
  float cpu_loss = 0;
  cpu::cross_entropy_forward(logits.data(), targets.data(), label_smoothing, cpu_stats.data(),
                             cpu_stats.data() + N, cpu_stats.data() + 2 * N, &cpu_loss, N, K);
  testing::require_close("loss vs the CPU kernel", &loss, &cpu_loss, 1, 4e-7 * magnitude, 1e-6);
  // The saved statistics: the row max exactly, the log-sum as the CPU's.
  CHECK(testing::to_host(d.row_max) ==
        std::vector<float>(cpu_stats.begin(), cpu_stats.begin() + N));
  testing::require_close("row_log_sum", testing::to_host(d.row_log_sum).data(),
                         cpu_stats.data() + N, N, 1e-6, 1e-6);

  const float dloss_value = 0.75f;
  const Tensor<float> dloss = testing::to_device(std::vector<float>{dloss_value});
  const std::vector<double> dlogits_ref =
      oracle::cross_entropy_backward(logits64, targets, K, double(dloss_value), label_smoothing);
  // Each gradient is (p - q) * dloss / N with p from a float log-probability.
  testing::check_gradient<float>(
      "dlogits", N * K,
      [&](GradientOut<float> dlogits) {
        cuda::cross_entropy_backward(d.logits.data(), d.targets.data(), label_smoothing,
                                     d.row_max.data(), d.row_log_sum.data(), dloss.data(), dlogits,
                                     N, K);
      },
      dlogits_ref, 4e-7 * magnitude / N, 1e-5);
}

}  // namespace

TEST_CASE("cross_entropy forward and backward match the oracle on awkward shapes", "[cuda][loss]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  struct Shape2 {
    int64_t N, K;
  };
  for (const Shape2 s : {Shape2{1, 10}, Shape2{3, 1}, Shape2{2, 2}, Shape2{5, 10}, Shape2{4, 33},
                         Shape2{3, 100}, Shape2{19, 10}})
    for (const double label_smoothing : {0.0, 0.1})
      check_cross_entropy(s.N, s.K, Logits::Normal, label_smoothing);
}

TEST_CASE("cross_entropy keeps its digits on large logits", "[cuda][loss]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const Logits kind : {Logits::Offset, Logits::Spread})
    for (const double label_smoothing : {0.0, 0.2}) {
      check_cross_entropy(6, 10, kind, label_smoothing);
      check_cross_entropy(2, 40, kind, label_smoothing);
    }
}

TEST_CASE("cross_entropy reports a target outside 0..K-1 with its row and the shape",
          "[cuda][loss][errors]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  using Catch::Contains;
  const int64_t N = 40, K = 10;
  const std::vector<float> logits = logits_of(Logits::Normal, N * K, 5);
  for (const int32_t bad : {-1, 10, 1000}) {
    INFO("bad target " << bad);
    std::vector<int32_t> targets = targets_of(N, K);
    targets[37] = bad;  // the first bad row; a later one must not be reported instead
    targets[39] = -7;
    const DeviceLoss d = run_forward(logits, targets, 0.0, N, K);
    REQUIRE_THROWS_WITH(cuda::check_cross_entropy_targets(d.target_error.data(), N, K),
                        Contains("cuda::cross_entropy_forward") &&
                            Contains("target at index 37 is " + std::to_string(bad)) &&
                            Contains("outside [0, 10)") && Contains("[40, 10]"));
    CHECK(std::isnan(testing::to_host(d.loss)[0]));
    CHECK(std::isnan(testing::to_host(d.row_loss)[37]));
    CHECK(!std::isnan(testing::to_host(d.row_loss)[36]));
  }
}

TEST_CASE("cross_entropy launchers reject bad arguments with the op and sizes in the message",
          "[cuda][loss][errors]") {
  using Catch::Contains;
  const Tensor<float> x = Tensor<float>::zeros({16}).to(Device::cuda());
  float* p = x.data();
  const testing::DeviceInts targets(4);
  REQUIRE_THROWS_WITH(
      cuda::cross_entropy_forward(p, targets.data(), 0.0, p, p, p, p, targets.data(), 0, 4),
      Contains("cuda::cross_entropy_forward") && Contains("[0, 4]"));
  REQUIRE_THROWS_WITH(
      cuda::cross_entropy_forward(p, targets.data(), 1.0, p, p, p, p, targets.data(), 2, 4),
      Contains("label_smoothing") && Contains("got 1"));
  REQUIRE_THROWS_WITH(cuda::cross_entropy_forward(p, static_cast<const int32_t*>(nullptr), 0.0, p,
                                                  p, p, p, targets.data(), 2, 4),
                      Contains("'targets'"));
  REQUIRE_THROWS_WITH(cuda::cross_entropy_forward(p, targets.data(), 0.0, p, p, p, p, nullptr,
                                                  int64_t(1) << 20, int64_t(1) << 12),
                      Contains("2^31"));
  REQUIRE_THROWS_WITH(
      cuda::cross_entropy_backward(p, targets.data(), 0.0, p, p, static_cast<const float*>(nullptr),
                                   {p, false}, 2, 4),
      Contains("cuda::cross_entropy_backward") && Contains("'dloss'"));
}
