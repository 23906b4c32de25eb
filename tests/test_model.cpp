// The comparison's model: parameter count, output, the ReLU fusion being exact, gradients.
#include <catch2/catch.hpp>

#include <cmath>

#include "normlab/models/cifar_resnet.hpp"
#include "normlab/nn/summary.hpp"
#include "normlab/ops/loss.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using models::NormKind;

namespace {
models::CifarResNetOptions options_for(NormKind kind, bool fuse_epilogues = true, double dropout = 0.02) {
  models::CifarResNetOptions o;
  o.norm = kind;
  o.fuse_epilogues = fuse_epilogues;
  o.dropout = dropout;
  return o;
}
}  // namespace

TEST_CASE("the model has 40,394 parameters with every norm", "[model]") {
  for (NormKind kind : {NormKind::Batch, NormKind::Group, NormKind::Layer}) {
    auto net = models::cifar_resnet<float>(options_for(kind));
    CHECK(net->parameter_count() == 40394);
  }
  auto net = models::cifar_resnet<float>(options_for(NormKind::Group));
  const std::string table = nn::summary(*net, Shape{1, 3, 32, 32});
  INFO(table);
  CHECK_THAT(table, Catch::Contains("Total params: 40,394") && Catch::Contains("GroupNorm(4, 32) + ReLU"));
  CHECK_THAT(table, Catch::Contains("[-1, 32, 8, 8]") && Catch::Contains("[-1, 10]"));
}

TEST_CASE("the model outputs log-probabilities of shape [N, 10]", "[model]") {
  auto net = models::cifar_resnet<float>(options_for(NormKind::Layer));
  Tensor<float> x = testing::random_tensor<float>({3, 3, 32, 32}, 4);
  Tensor<float> y = (*net)(x);
  REQUIRE(y.shape() == Shape{3, 10});
  for (int64_t n = 0; n < 3; ++n) {
    double total = 0;
    for (int64_t k = 0; k < 10; ++k) total += std::exp(static_cast<double>(y.at({n, k})));
    CHECK(total == Approx(1.0).epsilon(1e-5));
  }
  autograd::tape().clear();
}

TEST_CASE("fusing ReLU and dropout into the norms changes no number", "[model]") {
  // Same initialisation and dropout streams: the fused model (norm + ReLU + dropout in one pass)
  // and the plain one (separate ReLU and Dropout modules) must agree bit for bit, in training.
  for (NormKind kind : {NormKind::Batch, NormKind::Group, NormKind::Layer}) {
    INFO("norm " << models::norm_kind_name(kind));
    Rng init_a(1), init_b(1), drop_a(2), drop_b(2);
    auto fused = models::cifar_resnet<float>(options_for(kind, true, 0.2), init_a, drop_a);
    auto plain = models::cifar_resnet<float>(options_for(kind, false, 0.2), init_b, drop_b);
    REQUIRE(fused->children().size() < plain->children().size());
    Tensor<float> x = testing::random_tensor<float>({3, 3, 32, 32}, 8);
    const std::vector<int32_t> labels{3, 7, 1};
    Tensor<float> loss_a = ops::nll_loss((*fused)(x), labels);
    autograd::backward(loss_a);  // (backward clears the tape: one model at a time)
    Tensor<float> loss_b = ops::nll_loss((*plain)(x), labels);
    autograd::backward(loss_b);
    CHECK(loss_a.item() == loss_b.item());
    const auto a = fused->parameters(), b = plain->parameters();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      REQUIRE(a[i].has_grad());
      CHECK(a[i].grad().to_vector() == b[i].grad().to_vector());
    }
  }
}

TEST_CASE("the model's parameter gradients match finite differences", "[model][gradcheck]") {
  // The model is fully convolutional up to its global pool, so an 8x8 input exercises every layer
  // (32 -> 16 -> 8 becomes 8 -> 4 -> 2). Small inputs and a small step keep the chance that a
  // finite-difference step moves a ReLU or max-pool input across its kink negligible: at 32x32
  // and h = 1e-5 a step crosses about one kink per evaluation and the quotient is off by ~1e-3.
  for (NormKind kind : {NormKind::Batch, NormKind::Group, NormKind::Layer}) {
    INFO("norm " << models::norm_kind_name(kind));
    Rng init(11);
    auto net = models::cifar_resnet<double>(options_for(kind, true, 0.0), init);
    Tensor<double> x = testing::random_tensor<double>({2, 3, 8, 8}, 12);
    std::vector<Tensor<double>> inputs{x};
    for (const auto& p : net->parameters()) inputs.push_back(p);
    testing::GradcheckOptions options;
    options.step = 1e-7;
    options.max_checked_per_input = 4;
    options.rel_tolerance = 1e-4;
    testing::gradcheck([&net](const std::vector<Tensor<double>>& in) { return (*net)(in[0]); }, inputs,
                       options);
  }
}
