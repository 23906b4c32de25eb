// The norms' fused epilogue: norm + ReLU + dropout in one pass must give exactly the numbers of
// the separate ops (dropout(relu(norm(x))) with the same Rng state), forward and backward; its
// gradient matches finite differences; misuse is rejected.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "normlab/ops/elementwise.hpp"
#include "normlab/ops/norm.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;

namespace {

/// A norm op with a fused ReLU and the given fused dropout.
template <typename T>
using FusedNorm = std::function<Tensor<T>(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                          const ops::FusedDropout& dropout)>;

template <typename T>
std::vector<std::pair<const char*, FusedNorm<T>>> fused_norms(int64_t groups) {
  return {
      {"batch_norm2d",
       [](const Tensor<T>& x, const Tensor<T>& g, const Tensor<T>& b, const ops::FusedDropout& d) {
         return ops::batch_norm2d(x, g, b, Tensor<T>(), Tensor<T>(), true, 0.1, 1e-5, true, d);
       }},
      {"group_norm",
       [groups](const Tensor<T>& x, const Tensor<T>& g, const Tensor<T>& b, const ops::FusedDropout& d) {
         return ops::group_norm(x, groups, g, b, 1e-5, true, d);
       }},
      {"layer_norm", [](const Tensor<T>& x, const Tensor<T>& g, const Tensor<T>& b,
                        const ops::FusedDropout& d) { return ops::layer_norm(x, g, b, 1e-5, true, d); }},
  };
}

}  // namespace

TEST_CASE("norm + ReLU + dropout fused equals the separate ops bit for bit", "[norm][dropout]") {
  // Odd plane sizes put plane boundaries inside the dropout's 64-element Philox spans.
  for (const Shape& shape : {Shape{1, 3, 5, 7}, Shape{3, 6, 7, 3}, Shape{2, 4, 33, 35}, Shape{4, 6, 1, 1}}) {
    for (const auto& [name, norm] : fused_norms<float>(shape[1] / 2)) {
      INFO(name << " " << shape.str());
      Tensor<float> x_a = testing::random_tensor<float>(shape, 3), x_b = x_a.clone();
      Tensor<float> g_a = testing::random_tensor<float>({shape[1]}, 4, 1.0, 0.3), g_b = g_a.clone();
      Tensor<float> b_a = testing::random_tensor<float>({shape[1]}, 5, 0.2, 0.3), b_b = b_a.clone();
      for (Tensor<float>* t : {&x_a, &x_b, &g_a, &g_b, &b_a, &b_b}) t->set_requires_grad();
      Rng rng_a(9), rng_b(9);
      const Tensor<float> fused = norm(x_a, g_a, b_a, {0.3, &rng_a});
      const Tensor<float> plain = ops::dropout(norm(x_b, g_b, b_b, {}), 0.3, true, rng_b);
      REQUIRE(fused.to_vector() == plain.to_vector());
      const Tensor<float> dy = testing::random_tensor<float>(shape, 6);
      fused.set_grad(dy);
      plain.set_grad(dy);
      {
        autograd::NoGradGuard no_grad;
        autograd::tape().run_backward();
      }
      CHECK(x_a.grad().to_vector() == x_b.grad().to_vector());
      CHECK(g_a.grad().to_vector() == g_b.grad().to_vector());
      CHECK(b_a.grad().to_vector() == b_b.grad().to_vector());
      CHECK(rng_a.state().counter == rng_b.state().counter);  // the same Philox blocks were reserved
    }
  }
}

TEST_CASE("fused norm + ReLU + dropout gradients match finite differences", "[norm][dropout][gradcheck]") {
  for (const auto& [name, norm] : fused_norms<double>(2)) {
    INFO(name);
    std::vector<Tensor<double>> inputs{testing::random_tensor<double>({2, 4, 3, 5}, 7),
                                       testing::random_tensor<double>({4}, 8, 1.0, 0.3),
                                       testing::random_tensor<double>({4}, 9, 0.2, 0.3)};
    testing::gradcheck(
        [&norm](const std::vector<Tensor<double>>& in) {
          Rng rng(11);  // the same mask at every evaluation
          return norm(in[0], in[1], in[2], {0.4, &rng});
        },
        inputs);
  }
}

TEST_CASE("a fused dropout needs the fused ReLU and a probability below 1", "[norm][dropout][errors]") {
  const Tensor<float> x = Tensor<float>::ones({2, 4, 3, 3}), c4 = Tensor<float>::ones({4});
  Rng rng(1);
  REQUIRE_THROWS_WITH(ops::group_norm(x, 2, c4, c4, 1e-5, false, {0.1, &rng}),
                      Catch::Contains("group_norm") && Catch::Contains("fused ReLU"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(x, c4, c4, Tensor<float>(), Tensor<float>(), true, 0.1, 1e-5, true,
                                        {1.0, &rng}),
                      Catch::Contains("batch_norm2d") && Catch::Contains("[0, 1)"));
}

TEST_CASE("a NaN input stays visible through the fused norm + ReLU and through relu", "[norm][relu]") {
  Tensor<float> x = testing::random_tensor<float>({2, 4, 3, 3}, 12);
  x.data()[5] = std::numeric_limits<float>::quiet_NaN();  // sample 0, group 0 of 2
  const Tensor<float> c4 = Tensor<float>::ones({4});
  const Tensor<float> y = ops::group_norm(x, 2, c4, c4, 1e-5, true);
  for (int64_t i = 0; i < 18; ++i) CHECK(std::isnan(y.data()[i]));  // the NaN's group
  for (int64_t i = 18; i < y.numel(); ++i) CHECK(std::isfinite(y.data()[i]));
  const Tensor<float> r = ops::relu(x);
  CHECK(std::isnan(r.data()[5]));
}
