// The CUDA loss kernels (kernels/normlab/cuda/loss.cuh) against the double oracle, under every
// emulator schedule.
//
// cuda::cross_entropy_* (fused log_softmax + NLL, mean, label smoothing): one row, one class,
// rows shorter and longer than a warp (K = 10, the model's, and 33, 100), more rows than a block
// has warps; targets at class 0 and K - 1; logits far from 0 (1e4 + randn, which overflow exp
// without the max shift) and spread wide (1e3 * randn: nearly one-hot softmax); the saved row max
// and log-sum, the loss and dlogits written (into NaN) and accumulated, with dloss read from the
// device; the same loss as the CPU kernel; targets outside [0, K) reported as an error naming the
// row; argument errors.
//
// cuda::log_softmax_* and cuda::nll_loss_* (the unfused pair), in float and double: N = 1, K = 1,
// K = 33 and 65 (rows longer than one and two warps), N * K odd, more rows than a block has
// warps, the same large and wide logits; y against the oracle and the CPU kernel, dx and
// dlog_probs written and accumulated; the NLL's row losses exactly -log_probs[n, target] and its
// loss against the oracle and the CPU kernel; bad targets reported with the first row and the
// shape (loss NaN, the bad rows' gradient 0); a null target_error; argument errors.
#include <cmath>
#include <cstdint>
#include <limits>
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

template <typename T = float>
std::vector<T> logits_of(Logits kind, int64_t n, uint64_t seed) {
  switch (kind) {
    case Logits::Normal:
      return testing::random_values<T>(n, seed, 0.0, 2.0);
    case Logits::Offset:
      return testing::random_values<T>(n, seed, 1e4, 1.0);
    case Logits::Spread:
      return testing::random_values<T>(n, seed, 0.0, 1e3);
  }
  return {};
}

/// The largest |x - max| of a row of logits_of(kind) (up to the few hundred elements tested):
/// log-probabilities carry an absolute error of a few ulp of it. The offset's x - max is exact.
double spread_of(Logits kind) { return kind == Logits::Spread ? 6e3 : 20.0; }

/// The error of the double oracle's log-probabilities, x - (max + log_sum): a few ulp of double
/// of the logits' magnitude (1e4 for the offset ones), which matters when T is double.
double oracle_error_of(Logits kind) {
  return 4 * std::numeric_limits<double>::epsilon() * (kind == Logits::Offset ? 1e4 : 1e3);
}

struct Shape2 {
  int64_t N, K;
};

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

/// cuda::log_softmax_forward and _backward in precision T on logits_of(kind) [N, K].
template <typename T>
void check_log_softmax(int64_t N, int64_t K, Logits kind) {
  INFO((sizeof(T) == 4 ? "float" : "double")
       << ", N = " << N << ", K = " << K << ", logits " << static_cast<int>(kind));
  const double eps = std::numeric_limits<T>::epsilon();
  const std::vector<T> x = logits_of<T>(kind, N * K, 7 + N + K);
  const std::vector<double> x64(x.begin(), x.end());
  const Tensor<T> x_device = testing::to_device(x);
  const Tensor<T> y_device = testing::to_device(
      std::vector<T>(static_cast<size_t>(N * K), std::numeric_limits<T>::quiet_NaN()));
  cuda::log_softmax_forward(x_device.data(), y_device.data(), N, K);
  const std::vector<T> y = testing::to_host(y_device);
  // (x - max) - log_sum: a few roundings of values up to the row's spread.
  const double y_atol = 4 * eps * spread_of(kind) + oracle_error_of(kind);
  const std::vector<double> y_ref = oracle::log_softmax(x64, N, K);
  testing::require_close("y", y.data(), y_ref.data(), N * K, y_atol, 4 * eps);
  // The CPU kernel does the same maths; only the order of the exponential sum (in double) differs.
  std::vector<T> y_cpu(static_cast<size_t>(N * K));
  cpu::log_softmax_forward(x.data(), y_cpu.data(), N, K);
  testing::require_close("y vs the CPU kernel", y.data(), y_cpu.data(), N * K,
                         eps * spread_of(kind), eps);

  const std::vector<T> dy = testing::random_values<T>(N * K, 11 + N + K);
  const std::vector<double> dy64(dy.begin(), dy.end());
  const Tensor<T> dy_device = testing::to_device(dy);
  // dy - exp(y) * sum(dy): exp(y) * |y| <= 1/e bounds the effect of y's relative error; sums
  // of up to 100 dy ~ N(0, 1) stay below 40.
  testing::check_gradient<T>(
      "dx", N * K,
      [&](GradientOut<T> dx) {
        cuda::log_softmax_backward(y_device.data(), dy_device.data(), dx, N, K);
      },
      oracle::log_softmax_backward(x64, dy64, N, K), 40 * (4 * eps + oracle_error_of(kind)),
      4 * eps);
}

/// The device buffers of one nll_loss_forward.
template <typename T>
struct DeviceNll {
  Tensor<T> log_probs, row_loss, loss;
  testing::DeviceInts targets, target_error;
};

template <typename T>
DeviceNll<T> run_nll_forward(const std::vector<T>& log_probs, const std::vector<int32_t>& targets,
                             int64_t N, int64_t K, bool report_targets = true) {
  DeviceNll<T> d{testing::to_device(log_probs), Tensor<T>::empty({N}, Device::cuda()),
                 Tensor<T>::empty({1}, Device::cuda()), testing::DeviceInts(targets),
                 testing::DeviceInts(2)};
  cuda::nll_loss_forward(d.log_probs.data(), d.targets.data(), d.row_loss.data(), d.loss.data(),
                         report_targets ? d.target_error.data() : nullptr, N, K);
  return d;
}

/// The log-probabilities of logits_of(kind) [N, K], rounded to T.
template <typename T>
std::vector<T> log_probs_of(Logits kind, int64_t N, int64_t K) {
  const std::vector<double> logits = logits_of<double>(kind, N * K, 13 + N + K);
  const std::vector<double> log_probs = oracle::log_softmax(logits, N, K);
  return std::vector<T>(log_probs.begin(), log_probs.end());
}

/// cuda::nll_loss_forward and _backward in precision T on log_probs_of(kind) [N, K].
template <typename T>
void check_nll_loss(int64_t N, int64_t K, Logits kind) {
  INFO((sizeof(T) == 4 ? "float" : "double")
       << ", N = " << N << ", K = " << K << ", logits " << static_cast<int>(kind));
  const double eps = std::numeric_limits<T>::epsilon();
  const std::vector<T> log_probs = log_probs_of<T>(kind, N, K);
  const std::vector<double> log_probs64(log_probs.begin(), log_probs.end());
  const std::vector<int32_t> targets = targets_of(N, K);
  const DeviceNll<T> d = run_nll_forward(log_probs, targets, N, K);
  CHECK_NOTHROW(cuda::check_nll_loss_targets(d.target_error.data(), N, K));
  CHECK(d.target_error.to_host() == std::vector<int32_t>{-1, 0});

  std::vector<T> row_loss_ref(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) row_loss_ref[n] = -log_probs[n * K + targets[n]];
  CHECK(testing::to_host(d.row_loss) == row_loss_ref);
  // The mean of N losses of one sign in double (in another order than the oracle's and the
  // CPU's), rounded once to T.
  const double loss_rtol = eps + static_cast<double>(N) * std::numeric_limits<double>::epsilon();
  const T loss = testing::to_host(d.loss)[0];
  const double loss_ref = oracle::smoothed_nll(log_probs64, targets, K);
  testing::require_close("loss", &loss, &loss_ref, 1, eps, loss_rtol);
  T cpu_loss = 0;
  cpu::nll_loss_forward(log_probs.data(), targets.data(), &cpu_loss, N, K);
  testing::require_close("loss vs the CPU kernel", &loss, &cpu_loss, 1, eps, loss_rtol);

  const T dloss_value = T(0.75);
  const Tensor<T> dloss = testing::to_device(std::vector<T>{dloss_value});
  testing::check_gradient<T>(
      "dlog_probs", N * K,
      [&](GradientOut<T> dlog_probs) {
        cuda::nll_loss_backward(d.targets.data(), dloss.data(), dlog_probs, N, K);
      },
      oracle::smoothed_nll_backward(targets, K, double(dloss_value)), eps, 2 * eps);
}

/// Shapes for the unfused pair: one element, one row, one class, rows of one, two and three
/// warps' worth of columns, odd N * K, more rows than a block has warps.
const Shape2 kUnfusedShapes[] = {{1, 1},  {1, 10},  {5, 1}, {2, 2},  {7, 33},
                                 {3, 65}, {19, 10}, {9, 7}, {2, 100}};

}  // namespace

TEST_CASE("cross_entropy forward and backward match the oracle on awkward shapes", "[cuda][loss]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
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

TEST_CASE("log_softmax forward and backward match the oracle on awkward shapes",
          "[cuda][loss][log_softmax]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const Shape2 s : kUnfusedShapes) {
    check_log_softmax<float>(s.N, s.K, Logits::Normal);
    check_log_softmax<double>(s.N, s.K, Logits::Normal);
  }
}

TEST_CASE("log_softmax keeps its digits on large logits", "[cuda][loss][log_softmax]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const Logits kind : {Logits::Offset, Logits::Spread})
    for (const Shape2 s : {Shape2{6, 10}, Shape2{3, 65}}) {
      check_log_softmax<float>(s.N, s.K, kind);
      check_log_softmax<double>(s.N, s.K, kind);
    }
}

TEST_CASE("nll_loss forward and backward match the oracle on awkward shapes",
          "[cuda][loss][nll_loss]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const Shape2 s : kUnfusedShapes) {
    check_nll_loss<float>(s.N, s.K, Logits::Normal);
    check_nll_loss<double>(s.N, s.K, Logits::Normal);
  }
  for (const Logits kind : {Logits::Offset, Logits::Spread}) {
    check_nll_loss<float>(6, 10, kind);
    check_nll_loss<float>(3, 65, kind);
  }
}

TEST_CASE("nll_loss reports a target outside 0..K-1 with its row and the shape",
          "[cuda][loss][nll_loss][errors]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  using Catch::Contains;
  const int64_t N = 40, K = 10;
  const std::vector<float> log_probs = log_probs_of<float>(Logits::Normal, N, K);
  for (const int32_t bad : {-1, 10, 1000}) {
    INFO("bad target " << bad);
    std::vector<int32_t> targets = targets_of(N, K);
    targets[37] = bad;  // the first bad row; a later one must not be reported instead
    targets[39] = -7;
    const DeviceNll<float> d = run_nll_forward(log_probs, targets, N, K);
    REQUIRE_THROWS_WITH(cuda::check_nll_loss_targets(d.target_error.data(), N, K),
                        Contains("cuda::nll_loss_forward") &&
                            Contains("target at index 37 is " + std::to_string(bad)) &&
                            Contains("outside [0, 10)") && Contains("log_probs of shape [40, 10]"));
    CHECK(std::isnan(testing::to_host(d.loss)[0]));
    const std::vector<float> row_loss = testing::to_host(d.row_loss);
    CHECK(std::isnan(row_loss[37]));
    CHECK(std::isnan(row_loss[39]));
    CHECK(row_loss[36] == -log_probs[36 * K + targets[36]]);
    // The backward gives the bad rows 0 (the oracle's smoothed target is 0 at every class).
    const Tensor<float> dloss = testing::to_device(std::vector<float>{1.0f});
    testing::check_gradient<float>(
        "dlog_probs", N * K,
        [&](GradientOut<float> dlog_probs) {
          cuda::nll_loss_backward(d.targets.data(), dloss.data(), dlog_probs, N, K);
        },
        oracle::smoothed_nll_backward(targets, K, 1.0), 1e-7, 1e-6);
  }
}

TEST_CASE("nll_loss without a target_error still writes the loss", "[cuda][loss][nll_loss]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  const int64_t N = 12, K = 5;
  const std::vector<float> log_probs = log_probs_of<float>(Logits::Normal, N, K);
  const std::vector<int32_t> targets = targets_of(N, K);
  const DeviceNll<float> d = run_nll_forward(log_probs, targets, N, K, false);
  const std::vector<double> log_probs64(log_probs.begin(), log_probs.end());
  const double loss_ref = oracle::smoothed_nll(log_probs64, targets, K);
  const float loss = testing::to_host(d.loss)[0];
  testing::require_close("loss", &loss, &loss_ref, 1, 1e-7, 1e-6);
}

TEST_CASE("log_softmax and nll_loss launchers reject bad arguments with the op and sizes",
          "[cuda][loss][errors]") {
  using Catch::Contains;
  const Tensor<float> x = Tensor<float>::zeros({16}).to(Device::cuda());
  float* p = x.data();
  const float* none = nullptr;
  const testing::DeviceInts targets(4);
  const int64_t big = int64_t(1) << 20, huge = int64_t(1) << 40;
  REQUIRE_THROWS_WITH(cuda::log_softmax_forward(p, p + 8, 0, 4),
                      Contains("cuda::log_softmax_forward") && Contains("x [0, 4]"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_forward(p, p + 8, 2, 0), Contains("x [2, 0]"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_forward(none, p, 2, 4),
                      Contains("cuda::log_softmax_forward") && Contains("'x'"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_forward(p, static_cast<float*>(nullptr), 2, 4),
                      Contains("'y'"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_forward(p, p + 8, big, int64_t(1) << 11),
                      Contains("x [1048576, 2048]") && Contains("2^31"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_forward(p, p + 8, huge, huge), Contains("2^31"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_backward(p, none, {p + 8, false}, 2, 4),
                      Contains("cuda::log_softmax_backward") && Contains("'dy'"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_backward(none, p, {p + 8, false}, 2, 4), Contains("'y'"));
  REQUIRE_THROWS_WITH(cuda::log_softmax_backward(p, p, {p + 8, true}, -1, 4),
                      Contains("cuda::log_softmax_backward") && Contains("y [-1, 4]"));
  CHECK_NOTHROW(cuda::log_softmax_backward(none, none, {nullptr, false}, 2, 4));

  REQUIRE_THROWS_WITH(cuda::nll_loss_forward(p, targets.data(), p, p, targets.data(), 2, 0),
                      Contains("cuda::nll_loss_forward") && Contains("log_probs [2, 0]"));
  REQUIRE_THROWS_WITH(cuda::nll_loss_forward(none, targets.data(), p, p, targets.data(), 2, 4),
                      Contains("'log_probs'"));
  REQUIRE_THROWS_WITH(
      cuda::nll_loss_forward(p, static_cast<const int32_t*>(nullptr), p, p, targets.data(), 2, 4),
      Contains("'targets'"));
  REQUIRE_THROWS_WITH(cuda::nll_loss_forward(p, targets.data(), static_cast<float*>(nullptr), p,
                                             targets.data(), 2, 4),
                      Contains("'row_loss'"));
  REQUIRE_THROWS_WITH(cuda::nll_loss_forward(p, targets.data(), p, static_cast<float*>(nullptr),
                                             targets.data(), 2, 4),
                      Contains("'loss'"));
  REQUIRE_THROWS_WITH(cuda::nll_loss_forward(p, targets.data(), p, p, nullptr, big, big),
                      Contains("2^31"));
  REQUIRE_THROWS_WITH(cuda::nll_loss_backward(targets.data(), none, {p, false}, 2, 4),
                      Contains("cuda::nll_loss_backward") && Contains("'dloss'"));
  REQUIRE_THROWS_WITH(
      cuda::nll_loss_backward(static_cast<const int32_t*>(nullptr), p, {p + 8, true}, 2, 4),
      Contains("'targets'"));
  REQUIRE_THROWS_WITH(cuda::nll_loss_backward(targets.data(), p, {p + 8, false}, 0, 4),
                      Contains("cuda::nll_loss_backward") && Contains("log_probs [0, 4]"));
  CHECK_NOTHROW(cuda::nll_loss_backward(targets.data(), none, {nullptr, true}, 2, 4));
}
