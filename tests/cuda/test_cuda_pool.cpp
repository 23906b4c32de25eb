// cuda::max_pool2d_* and global_avg_pool2d_* (kernels/normlab/cuda/pool.cuh) against the double
// oracle: 2x2 stride 2 (the model's) with odd sizes, N = 1, one window per plane, overlapping
// windows (3x3 s2, 2x2 s1), gaps between windows (2x2 s3), kernel 1, 1x1 planes, a window as tall
// as the plane; random data, ties everywhere (values from {0, 1, 2}: the first maximal element
// wins, as on the CPU), constant planes and NaNs; the saved argmax exactly, y exactly, dx written
// (into NaN) and accumulated; global average pooling with HW = 1, odd HW (planes starting at
// every 16-byte alignment) and several warps' worth of planes; argument errors.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cuda/cuda_op_tests.hpp"
#include "cuda/cuda_test.hpp"
#include "normlab/cuda/pool.cuh"
#include "oracle/pool.hpp"

using namespace normlab;

namespace {

std::string describe(const oracle::PoolGeometry& g) {
  return std::to_string(g.N) + "x" + std::to_string(g.C) + "x" + std::to_string(g.H) + "x" +
         std::to_string(g.W) + " k" + std::to_string(g.kernel) + " s" + std::to_string(g.stride);
}

const oracle::PoolGeometry geometries[] = {
    {2, 3, 7, 5, 2, 2},  // odd H and W: the last row and column are in no window
    {1, 1, 3, 3, 2, 2},  // N = 1, one window in a 3x3 plane
    {2, 2, 2, 2, 2, 2},  // one window per plane
    {2, 4, 8, 8, 2, 2},  // every element in exactly one window
    {2, 3, 9, 7, 3, 2},  // overlapping 3x3 stride 2
    {1, 2, 6, 6, 2, 1},  // overlapping 2x2 stride 1: inner elements in 4 windows
    {2, 2, 8, 7, 2, 3},  // gaps between windows
    {3, 2, 9, 9, 3, 3},  // non-overlapping 3x3
    {2, 3, 5, 4, 1, 1},  // kernel 1: identity
    {2, 3, 5, 4, 1, 2},  // kernel 1, stride 2: subsampling
    {1, 4, 1, 1, 1, 1},  // 1x1 planes
    {1, 1, 4, 9, 4, 1},  // a window as tall as the plane
};

enum class PoolData { Random, Ties, Constant, WithNaN };

std::vector<float> pool_input(const oracle::PoolGeometry& g, PoolData data, uint64_t seed) {
  const int64_t n = g.N * g.C * g.H * g.W;
  std::vector<float> x = testing::random_values<float>(n, seed);
  for (int64_t i = 0; i < n; ++i) {
    switch (data) {
      case PoolData::Random:
        break;
      case PoolData::Ties:
        x[i] = static_cast<float>(static_cast<int64_t>(std::abs(x[i]) * 3) % 3);
        break;
      case PoolData::Constant:
        x[i] = 0.5f;
        break;
      case PoolData::WithNaN:
        if (i % 5 == 2) x[i] = std::numeric_limits<float>::quiet_NaN();
        break;
    }
  }
  return x;
}

/// Bitwise-exact equality where NaN equals NaN.
bool same_values(const std::vector<float>& got, const std::vector<double>& expected) {
  if (got.size() != expected.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(expected[i]);
    if (!both_nan && static_cast<double>(got[i]) != expected[i]) return false;
  }
  return true;
}

void check_max_pool(const oracle::PoolGeometry& g, PoolData data) {
  INFO(describe(g) << ", data " << static_cast<int>(data));
  const int64_t planes = g.N * g.C, outputs = planes * g.out_h() * g.out_w();
  const std::vector<float> x = pool_input(g, data, 7 + g.H * g.W);
  const std::vector<double> x64(x.begin(), x.end());
  const Tensor<float> xd = testing::to_device(x);

  // Forward without argmax (inference), then with it.
  const Tensor<float> y_only = Tensor<float>::empty({outputs}, Device::cuda());
  cuda::max_pool2d_forward<float>(xd.data(), y_only.data(), nullptr, planes, g.H, g.W, g.kernel,
                                  g.stride);
  const Tensor<float> yd = Tensor<float>::empty({outputs}, Device::cuda());
  const testing::DeviceInts argmax(static_cast<size_t>(outputs));
  cuda::max_pool2d_forward(xd.data(), yd.data(), argmax.data(), planes, g.H, g.W, g.kernel,
                           g.stride);
  const std::vector<double> y_ref = oracle::max_pool2d(x64, g);
  CHECK(same_values(testing::to_host(y_only), y_ref));
  CHECK(same_values(testing::to_host(yd), y_ref));
  const std::vector<int64_t> argmax_ref = oracle::max_pool2d_argmax(x64, g);
  const std::vector<int32_t> argmax_got = argmax.to_host();
  CHECK(std::vector<int64_t>(argmax_got.begin(), argmax_got.end()) == argmax_ref);

  const std::vector<float> dy = testing::random_values<float>(outputs, 11);
  const Tensor<float> dyd = testing::to_device(dy);
  const std::vector<double> dx_ref =
      oracle::max_pool2d_backward(x64, std::vector<double>(dy.begin(), dy.end()), g);
  // Sums of up to 4 (overlapping windows) floats, then the prior: a few roundings.
  testing::check_gradient<float>(
      "max_pool2d dx", planes * g.H * g.W,
      [&](GradientOut<float> dx) {
        cuda::max_pool2d_backward(argmax.data(), dyd.data(), dx, planes, g.H, g.W, g.kernel,
                                  g.stride);
      },
      dx_ref, 1e-6, 1e-6);
}

}  // namespace

TEST_CASE("max_pool2d forward, argmax and backward match the oracle on awkward shapes",
          "[cuda][pool][max_pool2d]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const oracle::PoolGeometry& g : geometries) check_max_pool(g, PoolData::Random);
}

TEST_CASE("max_pool2d breaks ties and NaNs as the CPU: first maximum, a NaN wins",
          "[cuda][pool][max_pool2d]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const oracle::PoolGeometry& g : geometries) {
    for (const PoolData data : {PoolData::Ties, PoolData::Constant, PoolData::WithNaN})
      check_max_pool(g, data);
  }
}

TEST_CASE("global_avg_pool2d forward and backward match the oracle", "[cuda][pool][avg_pool]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  struct Case {
    int64_t planes, HW;
  };
  // HW = 1; odd HW, so that planes start at every 16-byte alignment (scalar heads and tails);
  // HW = 64 (the model's 8x8); more planes than a block has warps.
  for (const Case c : {Case{1, 1}, Case{5, 1}, Case{3, 7}, Case{6, 63}, Case{2, 64}, Case{19, 5}}) {
    INFO("planes " << c.planes << ", HW " << c.HW);
    const std::vector<float> x = testing::random_values<float>(c.planes * c.HW, 3, 0.5, 2.0);
    const Tensor<float> xd = testing::to_device(x);
    const Tensor<float> yd = Tensor<float>::empty({c.planes}, Device::cuda());
    cuda::global_avg_pool2d_forward(xd.data(), yd.data(), c.planes, c.HW);
    const std::vector<double> y_ref =
        oracle::global_avg_pool2d(std::vector<double>(x.begin(), x.end()), c.planes, c.HW);
    // Float sums of at most 64 terms of about 2.5: well inside 1e-6 of the scale.
    testing::require_close("global_avg_pool2d y", testing::to_host(yd).data(), y_ref.data(),
                           c.planes, 1e-6, 1e-6);

    const std::vector<float> dy = testing::random_values<float>(c.planes, 4);
    const Tensor<float> dyd = testing::to_device(dy);
    testing::check_gradient<float>(
        "global_avg_pool2d dx", c.planes * c.HW,
        [&](GradientOut<float> dx) {
          cuda::global_avg_pool2d_backward(dyd.data(), dx, c.planes, c.HW);
        },
        oracle::global_avg_pool2d_backward(std::vector<double>(dy.begin(), dy.end()), c.planes,
                                           c.HW),
        1e-6, 1e-6);
  }
}

TEST_CASE("pooling launchers reject bad arguments with the op and sizes in the message",
          "[cuda][pool][errors]") {
  using Catch::Contains;
  const Tensor<float> x = Tensor<float>::zeros({64}).to(Device::cuda());
  float* p = x.data();
  const testing::DeviceInts argmax(16);
  REQUIRE_THROWS_WITH(
      cuda::max_pool2d_forward(p, p, argmax.data(), 2, 3, 5, 4, 2),
      Contains("cuda::max_pool2d_forward") && Contains("kernel 4") && Contains("3x5"));
  REQUIRE_THROWS_WITH(cuda::max_pool2d_forward(p, p, argmax.data(), 2, 4, 4, 2, 0),
                      Contains("cuda::max_pool2d_forward") && Contains("stride 0"));
  REQUIRE_THROWS_WITH(cuda::max_pool2d_forward(p, p, argmax.data(), 1, 0, 4, 1, 1),
                      Contains("cuda::max_pool2d_forward") && Contains("H = 0"));
  REQUIRE_THROWS_WITH(
      cuda::max_pool2d_backward(static_cast<const int32_t*>(nullptr), p, {p, false}, 2, 4, 4, 2, 2),
      Contains("cuda::max_pool2d_backward") && Contains("'argmax'"));
  REQUIRE_THROWS_WITH(cuda::max_pool2d_forward(p, p, argmax.data(), int64_t(1) << 20, 64, 64, 2, 2),
                      Contains("cuda::max_pool2d_forward") && Contains("2^31"));
  REQUIRE_THROWS_WITH(cuda::global_avg_pool2d_forward(p, p, 4, 0),
                      Contains("cuda::global_avg_pool2d_forward") && Contains("HW = 0"));
  REQUIRE_THROWS_WITH(cuda::global_avg_pool2d_backward(p, {p, true}, -1, 4),
                      Contains("cuda::global_avg_pool2d_backward") && Contains("planes = -1"));
}
