// nn modules: PyTorch-equivalent initialisation, parameter/buffer registration and naming,
// train/eval propagation, module composition under autograd, and the summary table.
#include <catch2/catch.hpp>

#include <cmath>

#include "normlab/nn/container.hpp"
#include "normlab/nn/layers.hpp"
#include "normlab/nn/norm.hpp"
#include "normlab/nn/summary.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;

TEST_CASE("Conv2d initialises weight and bias uniformly within 1/sqrt(fan_in)", "[nn][init]") {
  Rng rng(3);
  nn::Conv2d<double> conv(16, 32, 3, {1, 1, true}, rng);
  const double bound = 1.0 / std::sqrt(16.0 * 9.0);
  for (const Tensor<double>& t : {conv.weight(), conv.bias()}) {
    double sum = 0, sum_sq = 0;
    for (double v : t.to_vector()) {
      REQUIRE(std::abs(v) <= bound);
      sum += v;
      sum_sq += v * v;
    }
    if (t.numel() < 1000) continue;  // the bias is too small for moment checks
    const double n = static_cast<double>(t.numel());
    // U(-b, b): mean 0 (sd b/sqrt(3n)), variance b^2/3.
    CHECK(std::abs(sum / n) < 5 * bound / std::sqrt(3 * n));
    CHECK(sum_sq / n == Approx(bound * bound / 3).epsilon(0.05));
  }
  CHECK(conv.weight().shape() == Shape{32, 16, 3, 3});
  nn::Conv2d<float> no_bias(4, 8, 1, {1, 0, false});
  CHECK_FALSE(no_bias.bias().defined());
  CHECK(no_bias.parameters().size() == 1);
}

TEST_CASE("norm modules: gamma=1, beta=0, BatchNorm buffers, named parameters", "[nn]") {
  nn::Sequential<float> seq;
  seq.emplace<nn::BatchNorm2d<float>>(8);
  seq.emplace<nn::GroupNorm<float>>(2, 8);
  seq.emplace<nn::LayerNorm<float>>(8, nn::NormOptions{1e-5, false, false});
  const auto named = seq.named_parameters();
  REQUIRE(named.size() == 4);
  CHECK(named[0].first == "0.weight");
  CHECK(named[3].first == "1.bias");
  for (float v : named[0].second.to_vector()) CHECK(v == 1.0f);
  for (float v : named[1].second.to_vector()) CHECK(v == 0.0f);
  const auto buffers = seq.named_buffers();
  REQUIRE(buffers.size() == 2);
  CHECK(buffers[0].first == "0.running_mean");
  CHECK(buffers[1].first == "0.running_var");
  for (float v : buffers[1].second.to_vector()) CHECK(v == 1.0f);
  REQUIRE_THROWS_WITH(nn::GroupNorm<float>(3, 8), Catch::Contains("3 groups do not divide 8"));
}

TEST_CASE("train/eval propagates to children, and dropout is the identity in eval", "[nn]") {
  auto inner = std::make_shared<nn::Sequential<float>>();
  inner->emplace<nn::Dropout<float>>(0.5);
  nn::Sequential<float> outer;
  outer.add(inner, "inner");
  CHECK(inner->is_training());
  outer.eval();
  CHECK_FALSE(inner->is_training());
  Tensor<float> x = testing::random_tensor<float>({2, 3}, 1);
  Tensor<float> y = outer(x);
  CHECK(y.to_vector() == x.to_vector());
  outer.train();
  CHECK(inner->is_training());
}

TEST_CASE("a composed module's gradients match finite differences", "[nn][gradcheck]") {
  Rng rng(5);
  auto body = std::make_shared<nn::Sequential<double>>();
  body->add(std::make_shared<nn::Conv2d<double>>(2, 4, 3, nn::Conv2dOptions{1, 1, true}, rng));
  body->emplace<nn::GroupNorm<double>>(2, 4);
  auto shortcut = std::make_shared<nn::Conv2d<double>>(2, 4, 1, nn::Conv2dOptions{1, 0, true}, rng);
  nn::Residual<double> block(body, shortcut);
  std::vector<Tensor<double>> inputs{testing::random_tensor<double>({2, 2, 5, 5}, 9)};
  for (const auto& p : block.parameters()) inputs.push_back(p);
  testing::gradcheck(
      [&block](const std::vector<Tensor<double>>& in) { return block(in[0]); }, inputs);
}

TEST_CASE("summary lists every layer with output shapes and parameter counts", "[nn][summary]") {
  nn::Sequential<float> seq;
  seq.add(std::make_shared<nn::Conv2d<float>>(3, 8, 3, nn::Conv2dOptions{1, 1, true}));
  seq.emplace<nn::BatchNorm2d<float>>(8, nn::NormOptions{1e-5, true, true});
  seq.emplace<nn::MaxPool2d<float>>(2);
  const std::string table = nn::summary(seq, Shape{1, 3, 16, 16});
  INFO(table);
  CHECK_THAT(table, Catch::Contains("Conv2d(3, 8, k=3, s=1, p=1)-1") && Catch::Contains("[-1, 8, 16, 16]"));
  CHECK_THAT(table, Catch::Contains("BatchNorm2d(8) + ReLU-2") && Catch::Contains("224"));
  CHECK_THAT(table, Catch::Contains("MaxPool2d(k=2, s=2)-3") && Catch::Contains("[-1, 8, 8, 8]"));
  CHECK_THAT(table, Catch::Contains("Total params: 240"));
  CHECK(seq.is_training());  // summary restores the mode
  CHECK(autograd::tape().size() == 0);
}
