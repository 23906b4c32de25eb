// relu, add, dropout, reshape: forward against the oracle, gradients by finite differences,
// dropout's keep rate and scaling statistics.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "normlab/ops/elementwise.hpp"
#include "oracle/elementwise.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using testing::TensorD;

TEST_CASE("relu forward matches the oracle at odd sizes", "[relu]") {
  for (int64_t n : {1, 7, 1023, 64 * 16 * 32 * 32 + 3}) {
    Tensor<float> x = testing::random_tensor<float>({n}, 11);
    Tensor<float> y = ops::relu(x);
    const std::vector<float> expected = oracle::relu(x.to_vector());
    testing::require_close("relu", y.data(), expected.data(), n, 1e-30, 0.0);
  }
}

TEST_CASE("relu, add, reshape gradients match finite differences", "[relu][add][gradcheck]") {
  // Entries kept away from relu's kink at 0 so the central difference is exact.
  TensorD x = testing::random_tensor<double>({2, 3, 5}, 3);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += x.data()[i] > 0 ? 0.1 : -0.1;
  testing::gradcheck([](const auto& in) { return ops::relu(in[0]); }, {x});

  TensorD a = testing::random_tensor<double>({3, 4}, 5), b = testing::random_tensor<double>({3, 4}, 6);
  testing::gradcheck([](const auto& in) { return ops::add(in[0], in[1]); }, {a, b});
  // The same tensor on both sides: its gradient accumulates from both uses.
  testing::gradcheck([](const auto& in) { return ops::add(in[0], ops::relu(in[0])); }, {x});
  testing::gradcheck([](const auto& in) { return ops::reshape(in[0], Shape{5, 6}); }, {x});
}

TEST_CASE("add rejects mismatched shapes with both shapes in the message", "[add][errors]") {
  Tensor<float> a = Tensor<float>::zeros({2, 3}), b = Tensor<float>::zeros({3, 2});
  REQUIRE_THROWS_WITH(ops::add(a, b), Catch::Contains("add") && Catch::Contains("[2, 3]") &&
                                          Catch::Contains("[3, 2]"));
  REQUIRE_THROWS_WITH(ops::reshape(a, Shape{4}), Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
}

TEST_CASE("dropout keeps 1-p of the elements, scales them by 1/(1-p), and matches the oracle mask",
          "[dropout]") {
  const int64_t n = 1 << 20;
  for (double p : {0.02, 0.5}) {
    Tensor<float> x = Tensor<float>::ones({n});
    Rng rng(42);
    const Rng::State before = rng.state();
    Tensor<float> y = ops::dropout(x, p, /*training=*/true, rng);
    const std::vector<bool> mask = oracle::dropout_mask(n, 1.0 - p, before.seed, before.counter);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float expected = mask[i] ? static_cast<float>(1.0 / (1.0 - p)) : 0.0f;
      if (y.data()[i] != expected) FAIL("element " << i << ": " << y.data()[i] << " vs " << expected);
      kept += mask[i];
    }
    // Binomial(n, 1-p): the kept fraction lies within 5 standard deviations of 1-p.
    const double sd = std::sqrt(p * (1 - p) / n);
    CHECK(std::abs(static_cast<double>(kept) / n - (1 - p)) < 5 * sd);
    // The mean is preserved in expectation (inverted scaling).
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += y.data()[i];
    CHECK(std::abs(mean / n - 1.0) < 5 * sd / (1 - p));
  }
}

TEST_CASE("the vectorised Philox span equals the scalar generator bit for bit", "[dropout][philox]") {
  // Counters around 2^32 check the carry into the counter's high word inside a span.
  for (uint64_t seed : {uint64_t(0), uint64_t(0x0123456789ABCDEF), ~uint64_t(0)}) {
    for (uint64_t first : {uint64_t(0), uint64_t(977), (uint64_t(1) << 32) - 5, ~uint64_t(0) - 20}) {
      uint32_t words[cpu::detail::kDropoutSpan];
      cpu::detail::philox_span(seed, first, words);
      for (int64_t b = 0; b < cpu::detail::kDropoutBlocks; ++b) {
        const Philox4 expected = philox4x32(seed, first + static_cast<uint64_t>(b), 0);
        for (int w = 0; w < 4; ++w) {
          INFO("seed " << seed << " block " << first + b << " word " << w);
          REQUIRE(words[4 * b + w] == expected.v[w]);
        }
      }
    }
  }
}

TEST_CASE("dropout lets NaN and Inf through where kept and multiplies them by 0 where dropped",
          "[dropout]") {
  Rng rng(5);
  Tensor<float> x = Tensor<float>::full({1000}, std::numeric_limits<float>::infinity());
  const Tensor<float> y = ops::dropout(x, 0.5, true, rng);
  int64_t inf = 0, nan = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    inf += std::isinf(y.data()[i]);
    nan += std::isnan(y.data()[i]);
  }
  CHECK(inf + nan == 1000);  // nothing silently becomes a finite number
  CHECK(inf > 400);
  CHECK(nan > 400);
}

TEST_CASE("dropout is the identity in eval mode and its gradient uses the forward's mask",
          "[dropout][gradcheck]") {
  Tensor<float> x = testing::random_tensor<float>({100}, 1);
  Tensor<float> y = ops::dropout(x, 0.3, /*training=*/false);
  CHECK(y.same(x));

  // Each gradcheck evaluation must redraw the same mask: give it a fresh generator every call.
  TensorD z = testing::random_tensor<double>({4, 9}, 2);
  testing::gradcheck(
      [](const auto& in) {
        Rng rng(7);
        return ops::dropout(in[0], 0.25, true, rng);
      },
      {z});
}

TEST_CASE("backward accumulates into leaves and clears the tape", "[autograd]") {
  TensorD w = TensorD::from_data({1}, {2.0});
  w.set_requires_grad();
  TensorD loss = ops::add(w, w);
  autograd::backward(loss);
  CHECK(w.grad().item() == 2.0);
  CHECK(autograd::tape().size() == 0);
  TensorD loss2 = ops::add(w, w);
  autograd::backward(loss2);
  CHECK(w.grad().item() == 4.0);  // accumulated, as in PyTorch
  w.zero_grad();
  CHECK_FALSE(w.has_grad());
  {
    autograd::NoGradGuard no_grad;
    TensorD untracked = ops::add(w, w);
    CHECK_FALSE(untracked.requires_grad());
    CHECK(autograd::tape().size() == 0);
    REQUIRE_THROWS_WITH(autograd::backward(untracked), Catch::Contains("does not require a gradient"));
  }
}
