// max_pool2d and global_avg_pool2d: forward and backward against the oracle at the model's shapes
// and awkward ones (odd sizes, overlapping and gapped windows, N=1, 1x1 planes), the tie and NaN
// rules, gradients by finite differences, and argument errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "normlab/core/parallel.hpp"
#include "normlab/ops/elementwise.hpp"
#include "normlab/ops/pool.hpp"
#include "oracle/pool.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using testing::TensorD;

namespace {

/// Runs the tape with `dy` as the gradient of `y`.
template <typename T>
void backward_from(const Tensor<T>& y, const Tensor<T>& dy) {
  y.set_grad(dy);
  autograd::NoGradGuard no_grad;
  autograd::tape().run_backward();
}

std::string describe(const oracle::PoolGeometry& g) {
  return std::to_string(g.N) + "x" + std::to_string(g.C) + "x" + std::to_string(g.H) + "x" +
         std::to_string(g.W) + " k" + std::to_string(g.kernel) + " s" + std::to_string(g.stride);
}

/// Checks forward (with and without a recorded node) and backward (fresh and accumulating) of
/// max_pool2d in float against the oracle on input `x`.
void check_max_pool_against_oracle(const oracle::PoolGeometry& g, const Tensor<float>& x) {
  INFO(describe(g));
  const std::vector<double> x64(x.data(), x.data() + x.numel());
  const std::vector<double> expected = oracle::max_pool2d(x64, g);
  {
    Tensor<float> y = ops::max_pool2d(x, g.kernel, g.stride);
    REQUIRE(y.shape() == Shape{g.N, g.C, g.out_h(), g.out_w()});
    CHECK(std::equal(expected.begin(), expected.end(), y.data()));
  }

  Tensor<float> leaf = x.detach();
  leaf.set_requires_grad();
  Tensor<float> y = ops::max_pool2d(leaf, g.kernel, g.stride);
  CHECK(std::equal(expected.begin(), expected.end(), y.data()));
  Tensor<float> dy = testing::random_tensor<float>(y.shape(), 99);
  const std::vector<double> dx_expected =
      oracle::max_pool2d_backward(x64, std::vector<double>(dy.data(), dy.data() + dy.numel()), g);
  backward_from(y, dy);
  testing::require_close("max_pool2d dx", leaf.grad().data(), dx_expected.data(), leaf.numel(),
                         1e-6, 1e-6);

  // A second use of the same input accumulates on top of the first gradient.
  const std::vector<float> first = leaf.grad().to_vector();
  Tensor<float> y2 = ops::max_pool2d(leaf, g.kernel, g.stride);
  backward_from(y2, dy);
  std::vector<double> twice(first.size());
  for (size_t i = 0; i < first.size(); ++i) twice[i] = first[i] + dx_expected[i];
  testing::require_close("max_pool2d dx accumulated", leaf.grad().data(), twice.data(),
                         leaf.numel(), 1e-6, 1e-6);
}

const std::vector<oracle::PoolGeometry> awkward_geometries = {
    {2, 3, 7, 5, 2, 2},  // odd H and W: floor, last row and column in no window
    {1, 1, 3, 3, 2, 2},  // N=1, a single 2x2 window in a 3x3 plane
    {2, 2, 2, 2, 2, 2},  // one window per plane
    {2, 3, 9, 7, 3, 2},  // overlapping 3x3 stride 2
    {1, 2, 6, 6, 2, 1},  // overlapping 2x2 stride 1 (general path)
    {2, 2, 8, 7, 2, 3},  // gaps between windows
    {3, 2, 9, 9, 3, 3},  // non-overlapping 3x3
    {2, 3, 5, 4, 1, 1},  // k=1: identity
    {2, 3, 5, 4, 1, 2},  // k=1 stride 2: subsampling
    {1, 4, 1, 1, 1, 1},  // H=W=1
    {1, 1, 4, 9, 4, 1},  // kernel as tall as the plane
};

}  // namespace

TEST_CASE("max_pool2d 2x2 s2 matches the oracle at the model's shapes", "[max_pool2d]") {
  for (const oracle::PoolGeometry g :
       {oracle::PoolGeometry{64, 16, 32, 32, 2, 2}, oracle::PoolGeometry{64, 16, 16, 16, 2, 2}}) {
    check_max_pool_against_oracle(g, testing::random_tensor<float>({g.N, g.C, g.H, g.W}, 5));
  }
}

TEST_CASE("max_pool2d matches the oracle on awkward shapes", "[max_pool2d]") {
  for (const oracle::PoolGeometry& g : awkward_geometries) {
    check_max_pool_against_oracle(g, testing::random_tensor<float>({g.N, g.C, g.H, g.W}, 6));
  }
}

TEST_CASE("max_pool2d ties: the first maximal element of each window gets the gradient",
          "[max_pool2d]") {
  SECTION("constant input sends each window's gradient to its top-left element") {
    for (const oracle::PoolGeometry g :
         {oracle::PoolGeometry{2, 3, 7, 5, 2, 2}, oracle::PoolGeometry{1, 2, 7, 9, 3, 2}}) {
      INFO(describe(g));
      Tensor<float> x = Tensor<float>::full({g.N, g.C, g.H, g.W}, 0.5f);
      x.set_requires_grad();
      Tensor<float> y = ops::max_pool2d(x, g.kernel, g.stride);
      backward_from(y, Tensor<float>::ones(y.shape()));
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t h = 0; h < g.H; ++h)
            for (int64_t w = 0; w < g.W; ++w) {
              const bool window_start = h % g.stride == 0 && w % g.stride == 0 &&
                                        h / g.stride < g.out_h() && w / g.stride < g.out_w();
              CHECK(x.grad().at({n, c, h, w}) == (window_start ? 1.0f : 0.0f));
            }
    }
  }
  SECTION("inputs from {0, 1, 2} (ties everywhere) match the oracle") {
    for (const oracle::PoolGeometry g :
         {oracle::PoolGeometry{4, 8, 16, 16, 2, 2}, oracle::PoolGeometry{2, 3, 9, 7, 3, 2},
          oracle::PoolGeometry{2, 3, 6, 6, 2, 1}}) {
      Tensor<float> x = Tensor<float>::empty({g.N, g.C, g.H, g.W});
      Rng rng(7);
      for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(rng.below(3));
      check_max_pool_against_oracle(g, x);
    }
  }
}

TEST_CASE("max_pool2d propagates NaN and routes its gradient to the NaN", "[max_pool2d]") {
  Tensor<float> x =
      Tensor<float>::from_data({1, 1, 2, 4}, {1, 2, 3, 4,  //
                                              std::numeric_limits<float>::quiet_NaN(), 0, 9, 5});
  x.set_requires_grad();
  Tensor<float> y = ops::max_pool2d(x, 2, 2);
  CHECK(std::isnan(y.data()[0]));
  CHECK(y.data()[1] == 9.0f);
  backward_from(y, Tensor<float>::from_data({1, 1, 1, 2}, {10, 20}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 0, 0, 10, 0, 20, 0});
}

TEST_CASE("max_pool2d gradient matches finite differences", "[max_pool2d][gradcheck]") {
  for (const oracle::PoolGeometry& g : awkward_geometries) {
    INFO(describe(g));
    // Distinct values 0.1 apart in random order: no ties, and no step of the difference
    // quotient changes a window's argmax.
    TensorD x = TensorD::empty({g.N, g.C, g.H, g.W});
    std::vector<int64_t> order(static_cast<size_t>(x.numel()));
    std::iota(order.begin(), order.end(), 0);
    Rng rng(8);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 0.1 * static_cast<double>(order[i]) - 1.0;
    testing::gradcheck([&g](const auto& in) { return ops::max_pool2d(in[0], g.kernel, g.stride); },
                       {x});
    // Two uses of the input: the second backward accumulates.
    testing::gradcheck(
        [&g](const auto& in) {
          return ops::add(ops::max_pool2d(in[0], g.kernel, g.stride),
                          ops::max_pool2d(in[0], g.kernel, g.stride));
        },
        {x});
  }
}

TEST_CASE("max_pool2d rejects bad arguments naming the op and the shape", "[max_pool2d][errors]") {
  Tensor<float> x = Tensor<float>::zeros({2, 3, 4, 5});
  CHECK_THROWS_WITH(ops::max_pool2d(x, 6, 1), Catch::Contains("max_pool2d") &&
                                                  Catch::Contains("kernel 6") &&
                                                  Catch::Contains("[2, 3, 4, 5]"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, 5, 1),
                    Catch::Contains("max_pool2d") && Catch::Contains("[2, 3, 4, 5]"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, 0, 1),
                    Catch::Contains("max_pool2d") && Catch::Contains("kernel 0"));
  CHECK_THROWS_WITH(ops::max_pool2d(x, 2, 0),
                    Catch::Contains("max_pool2d") && Catch::Contains("stride 0"));
  CHECK_THROWS_WITH(ops::max_pool2d(Tensor<float>::zeros({3, 4, 5}), 2, 2),
                    Catch::Contains("max_pool2d") && Catch::Contains("[3, 4, 5]"));
  CHECK_THROWS_WITH(ops::max_pool2d(Tensor<float>(), 2, 2), Catch::Contains("max_pool2d"));
}

TEST_CASE("global_avg_pool2d matches the oracle", "[global_avg_pool2d]") {
  for (const Shape& shape : {Shape{64, 32, 8, 8}, Shape{1, 1, 1, 1}, Shape{1, 5, 7, 3},
                             Shape{3, 2, 1, 1}, Shape{2, 3, 33, 17}}) {
    INFO(shape.str());
    const int64_t planes = shape[0] * shape[1], HW = shape[2] * shape[3];
    // An offset that a float accumulator would lose digits on.
    Tensor<float> x = testing::random_tensor<float>(shape, 10, 100.0, 0.01);
    x.set_requires_grad();
    Tensor<float> y = ops::global_avg_pool2d(x);
    REQUIRE(y.shape() == Shape{shape[0], shape[1], 1, 1});
    const std::vector<double> expected =
        oracle::global_avg_pool2d(std::vector<double>(x.data(), x.data() + x.numel()), planes, HW);
    testing::require_close("global_avg_pool2d y", y.data(), expected.data(), planes, 0.0, 1e-7);

    Tensor<float> dy = testing::random_tensor<float>(y.shape(), 11);
    const std::vector<double> dx_expected = oracle::global_avg_pool2d_backward(
        std::vector<double>(dy.data(), dy.data() + dy.numel()), planes, HW);
    backward_from(y, dy);
    testing::require_close("global_avg_pool2d dx", x.grad().data(), dx_expected.data(), x.numel(),
                           1e-12, 1e-6);
    Tensor<float> y2 = ops::global_avg_pool2d(x);
    backward_from(y2, dy);
    std::vector<double> twice(dx_expected);
    for (double& v : twice) v *= 2;
    testing::require_close("global_avg_pool2d dx accumulated", x.grad().data(), twice.data(),
                           x.numel(), 1e-12, 1e-6);
  }
}

TEST_CASE("global_avg_pool2d gradient matches finite differences",
          "[global_avg_pool2d][gradcheck]") {
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{1, 2, 1, 1}, Shape{1, 1, 3, 7}}) {
    INFO(shape.str());
    testing::gradcheck([](const auto& in) { return ops::global_avg_pool2d(in[0]); },
                       {testing::random_tensor<double>(shape, 12)});
  }
}

TEST_CASE("global_avg_pool2d rejects bad shapes naming the op and the shape",
          "[global_avg_pool2d][errors]") {
  CHECK_THROWS_WITH(ops::global_avg_pool2d(Tensor<float>::zeros({4, 5})),
                    Catch::Contains("global_avg_pool2d") && Catch::Contains("[4, 5]"));
  CHECK_THROWS_WITH(ops::global_avg_pool2d(Tensor<float>::zeros({2, 3, 0, 4})),
                    Catch::Contains("global_avg_pool2d") && Catch::Contains("[2, 3, 0, 4]"));
}

TEST_CASE("pooling results are bit-identical for any thread count",
          "[max_pool2d][global_avg_pool2d]") {
  const int saved_threads = num_threads();
  Tensor<float> x = testing::random_tensor<float>({8, 16, 17, 16}, 13);
  auto outputs = [&x](int threads) {
    set_num_threads(threads);
    Tensor<float> leaf = x.clone();
    leaf.set_requires_grad();
    std::vector<float> all;
    for (Tensor<float> y :
         {ops::max_pool2d(leaf, 2, 2), ops::max_pool2d(leaf, 3, 2), ops::global_avg_pool2d(leaf)}) {
      backward_from(y, testing::random_tensor<float>(y.shape(), 14));
      const std::vector<float> values = y.to_vector(), grad = leaf.grad().to_vector();
      all.insert(all.end(), values.begin(), values.end());
      all.insert(all.end(), grad.begin(), grad.end());
    }
    return all;
  };
  const std::vector<float> one = outputs(1);
  CHECK(outputs(2) == one);
  CHECK(outputs(3) == one);
  set_num_threads(saved_threads);
}
