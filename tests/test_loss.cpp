// log_softmax, nll_loss and cross_entropy: forward and backward against the oracle (float),
// gradients by finite differences (double), huge logits, label smoothing against a value worked
// out by hand, and bad targets.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "normlab/core/parallel.hpp"
#include "normlab/ops/loss.hpp"
#include "oracle/loss.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using testing::TensorD;

namespace {

std::vector<int32_t> random_targets(int64_t N, int64_t K, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> targets(static_cast<size_t>(N));
  for (int32_t& t : targets) t = static_cast<int32_t>(rng.below(static_cast<uint64_t>(K)));
  return targets;
}

template <typename T>
std::vector<double> as_double(const Tensor<T>& t) {
  return std::vector<double>(t.data(), t.data() + t.numel());
}

/// Runs the tape with `dy` as the gradient of `y`.
template <typename T>
void backward_from(const Tensor<T>& y, const Tensor<T>& dy) {
  y.set_grad(dy);
  autograd::NoGradGuard no_grad;
  autograd::tape().run_backward();
}

// [N, K] shapes (and one [N, K, 1, 1]): the CIFAR head, one class, one row, many classes, and
// enough rows to take the kernels' parallel path.
const std::vector<Shape> score_shapes = {Shape{64, 10},  Shape{1, 1},       Shape{1, 3},
                                         Shape{3, 1000}, Shape{5, 7, 1, 1}, Shape{4099, 10}};

}  // namespace

TEST_CASE("log_softmax matches the oracle forward and backward", "[log_softmax]") {
  for (const Shape& shape : score_shapes) {
    INFO(shape.str());
    const int64_t N = shape[0], K = shape[1];
    Tensor<float> x = testing::random_tensor<float>(shape, 1, 0.5, 3.0);
    x.set_requires_grad();
    Tensor<float> y = ops::log_softmax(x);
    REQUIRE(y.shape() == Shape{N, K});
    const std::vector<double> expected = oracle::log_softmax(as_double(x), N, K);
    testing::require_close("log_softmax y", y.data(), expected.data(), y.numel(), 1e-5, 1e-6);

    Tensor<float> dy = testing::random_tensor<float>(y.shape(), 2);
    const std::vector<double> dx_expected =
        oracle::log_softmax_backward(as_double(x), as_double(dy), N, K);
    backward_from(y, dy);
    REQUIRE(x.grad().shape() == shape);
    testing::require_close("log_softmax dx", x.grad().data(), dx_expected.data(), x.numel(), 1e-5,
                           1e-5);

    Tensor<float> y2 = ops::log_softmax(x);
    backward_from(y2, dy);
    std::vector<double> twice(dx_expected);
    for (double& v : twice) v *= 2;
    testing::require_close("log_softmax dx accumulated", x.grad().data(), twice.data(), x.numel(),
                           1e-5, 1e-5);
  }
}

TEST_CASE("nll_loss matches the oracle forward and backward", "[nll_loss]") {
  for (const Shape& shape : score_shapes) {
    INFO(shape.str());
    const int64_t N = shape[0], K = shape[1];
    Tensor<float> log_probs = testing::random_tensor<float>(shape, 3, -2.0, 1.0);
    log_probs.set_requires_grad();
    const std::vector<int32_t> targets = random_targets(N, K, 4);
    Tensor<float> loss = ops::nll_loss(log_probs, targets);
    REQUIRE(loss.shape() == Shape{1});
    const double expected = oracle::smoothed_nll(as_double(log_probs), targets, K);
    CHECK(loss.item() == Approx(expected).epsilon(1e-6));

    backward_from(loss, Tensor<float>::full({1}, 0.75f));
    const std::vector<double> d_expected = oracle::smoothed_nll_backward(targets, K, 0.75);
    testing::require_close("nll_loss dlog_probs", log_probs.grad().data(), d_expected.data(),
                           log_probs.numel(), 1e-9, 1e-6);
  }
}

TEST_CASE("cross_entropy matches the oracle with and without label smoothing", "[cross_entropy]") {
  for (double eps : {0.0, 0.1, 0.9}) {
    for (const Shape& shape : score_shapes) {
      INFO(shape.str() << " label_smoothing " << eps);
      const int64_t N = shape[0], K = shape[1];
      Tensor<float> logits = testing::random_tensor<float>(shape, 5, 0.0, 4.0);
      logits.set_requires_grad();
      const std::vector<int32_t> targets = random_targets(N, K, 6);
      Tensor<float> loss = ops::cross_entropy(logits, targets, eps);
      REQUIRE(loss.shape() == Shape{1});
      CHECK(loss.item() ==
            Approx(oracle::cross_entropy(as_double(logits), targets, K, eps)).epsilon(1e-6));

      backward_from(loss, Tensor<float>::full({1}, 1.5f));
      const std::vector<double> d_expected =
          oracle::cross_entropy_backward(as_double(logits), targets, K, 1.5, eps);
      testing::require_close("cross_entropy dlogits", logits.grad().data(), d_expected.data(),
                             logits.numel(), 1e-8, 1e-5);
    }
  }
}

TEST_CASE("cross_entropy equals nll_loss of log_softmax, value and gradient", "[cross_entropy]") {
  TensorD logits = testing::random_tensor<double>({64, 10}, 7, 0.0, 2.0);
  logits.set_requires_grad();
  const std::vector<int32_t> targets = random_targets(64, 10, 8);
  TensorD fused = ops::cross_entropy(logits, targets);
  autograd::backward(fused);
  const TensorD fused_grad = logits.grad();
  logits.zero_grad();
  TensorD composed = ops::nll_loss(ops::log_softmax(logits), targets);
  autograd::backward(composed);
  CHECK(fused.item() == Approx(composed.item()).epsilon(1e-14));
  testing::require_close("d logits", fused_grad.data(), logits.grad().data(), logits.numel(), 1e-16,
                         1e-12);
}

TEST_CASE("loss gradients match finite differences",
          "[log_softmax][nll_loss][cross_entropy][gradcheck]") {
  for (const Shape& shape : {Shape{4, 5}, Shape{1, 1}, Shape{1, 6}, Shape{3, 4, 1, 1}}) {
    INFO(shape.str());
    const std::vector<int32_t> targets = random_targets(shape[0], shape[1], 9);
    TensorD x = testing::random_tensor<double>(shape, 10, 0.0, 2.0);
    testing::gradcheck([](const auto& in) { return ops::log_softmax(in[0]); }, {x});
    testing::gradcheck([&](const auto& in) { return ops::nll_loss(in[0], targets); }, {x});
    for (double eps : {0.0, 0.25}) {
      testing::gradcheck([&](const auto& in) { return ops::cross_entropy(in[0], targets, eps); },
                         {x});
    }
    testing::gradcheck(
        [&](const auto& in) { return ops::nll_loss(ops::log_softmax(in[0]), targets); }, {x});
  }
}

TEST_CASE("huge logits neither overflow nor change the result", "[log_softmax][cross_entropy]") {
  const int64_t N = 16, K = 10;
  const std::vector<int32_t> targets = random_targets(N, K, 11);
  TensorD base = testing::random_tensor<double>({N, K}, 12, 0.0, 3.0);
  for (double offset : {1e4, -1e4}) {
    INFO("offset " << offset);
    TensorD shifted = base.clone();
    for (int64_t i = 0; i < shifted.numel(); ++i) shifted.data()[i] += offset;
    for (double eps : {0.0, 0.1}) {
      TensorD a = base.clone(), b = shifted.clone();
      a.set_requires_grad();
      b.set_requires_grad();
      TensorD loss_a = ops::cross_entropy(a, targets, eps);
      autograd::backward(loss_a);
      TensorD loss_b = ops::cross_entropy(b, targets, eps);
      autograd::backward(loss_b);
      CHECK(std::isfinite(loss_b.item()));
      CHECK(loss_b.item() == Approx(loss_a.item()).epsilon(1e-10));
      testing::require_close("cross_entropy dlogits", b.grad().data(), a.grad().data(), N * K,
                             1e-12, 1e-9);
    }
    TensorD y_base = ops::log_softmax(base), y_shifted = ops::log_softmax(shifted);
    testing::require_close("log_softmax", y_shifted.data(), y_base.data(), N * K, 1e-11, 1e-11);

    // In float the shifted logits are rounded (ulp 1e-3 at 1e4), but nothing overflows and the
    // result is the oracle's for those rounded logits.
    Tensor<float> f = testing::convert<float>(shifted);
    Tensor<float> f_log_probs = ops::log_softmax(f);
    const std::vector<double> expected = oracle::log_softmax(as_double(f), N, K);
    testing::require_close("float log_softmax", f_log_probs.data(), expected.data(), N * K, 1e-5,
                           1e-6);
    CHECK(ops::cross_entropy(f, targets).item() ==
          Approx(oracle::cross_entropy(as_double(f), targets, K, 0.0)).epsilon(1e-6));
  }
  // One dominant logit: its log-probability is 0 and the others' are exactly -1e4 apart.
  Tensor<float> dominant = Tensor<float>::from_data({1, 3}, {1e4f, 0.0f, 0.0f});
  CHECK(ops::log_softmax(dominant).to_vector() == std::vector<float>{0.0f, -1e4f, -1e4f});
  CHECK(ops::cross_entropy(dominant, {1}).item() == 1e4f);
}

TEST_CASE("label smoothing matches a value worked out by hand", "[cross_entropy]") {
  // logits log(1), log(2), log(1): probabilities 1/4, 1/2, 1/4. Target 1, eps 0.3, K 3:
  // q = (0.1, 0.8, 0.1), loss = -(0.1 log 1/4 + 0.8 log 1/2 + 0.1 log 1/4) = 1.2 log 2;
  // d loss / d logits = p - q = (0.15, -0.3, 0.15).
  TensorD logits = TensorD::from_data({1, 3}, {0.0, std::log(2.0), 0.0});
  logits.set_requires_grad();
  TensorD loss = ops::cross_entropy(logits, {1}, 0.3);
  CHECK(loss.item() == Approx(1.2 * std::log(2.0)).epsilon(1e-14));
  autograd::backward(loss);
  const std::vector<double> grad = logits.grad().to_vector();
  CHECK(grad[0] == Approx(0.15).epsilon(1e-14));
  CHECK(grad[1] == Approx(-0.3).epsilon(1e-14));
  CHECK(grad[2] == Approx(0.15).epsilon(1e-14));

  // Two rows average: the second row (uniform logits, target 0) has loss log 3 for any eps.
  TensorD two = TensorD::from_data({2, 3}, {0.0, std::log(2.0), 0.0, 5.0, 5.0, 5.0});
  CHECK(ops::cross_entropy(two, {1, 0}, 0.3).item() ==
        Approx((1.2 * std::log(2.0) + std::log(3.0)) / 2));
}

TEST_CASE("losses reject bad targets and shapes, naming the op, index and value", "[errors]") {
  Tensor<float> scores = Tensor<float>::zeros({3, 4});
  CHECK_THROWS_WITH(ops::nll_loss(scores, {0, 4, 1}),
                    Catch::Contains("nll_loss") && Catch::Contains("index 1") &&
                        Catch::Contains("is 4") && Catch::Contains("[0, 4)"));
  CHECK_THROWS_WITH(ops::cross_entropy(scores, {0, 1, -1}), Catch::Contains("cross_entropy") &&
                                                                Catch::Contains("index 2") &&
                                                                Catch::Contains("is -1"));
  CHECK_THROWS_WITH(ops::cross_entropy(scores, {0, 1}), Catch::Contains("cross_entropy") &&
                                                            Catch::Contains("2 targets") &&
                                                            Catch::Contains("[3, 4]"));
  CHECK_THROWS_WITH(ops::nll_loss(scores, {0, 1, 2, 3}),
                    Catch::Contains("nll_loss") && Catch::Contains("4 targets"));
  CHECK_THROWS_WITH(ops::cross_entropy(scores, {0, 1, 2}, 1.0),
                    Catch::Contains("cross_entropy") && Catch::Contains("label_smoothing"));
  CHECK_THROWS_WITH(ops::cross_entropy(scores, {0, 1, 2}, -0.1),
                    Catch::Contains("cross_entropy") && Catch::Contains("label_smoothing"));
  CHECK_THROWS_WITH(ops::log_softmax(Tensor<float>::zeros({3, 4, 2, 1})),
                    Catch::Contains("log_softmax") && Catch::Contains("[3, 4, 2, 1]"));
  CHECK_THROWS_WITH(ops::log_softmax(Tensor<float>::zeros({12})),
                    Catch::Contains("log_softmax") && Catch::Contains("[12]"));
  CHECK_THROWS_WITH(ops::nll_loss(Tensor<float>::zeros({0, 4}), {}),
                    Catch::Contains("nll_loss") && Catch::Contains("[0, 4]"));
}

TEST_CASE("loss results are bit-identical for any thread count", "[log_softmax][cross_entropy]") {
  const int saved_threads = num_threads();
  // Enough rows for the kernels' parallel path.
  const int64_t N = 4099, K = 10;
  Tensor<float> x = testing::random_tensor<float>({N, K}, 15, 0.0, 3.0);
  const std::vector<int32_t> targets = random_targets(N, K, 16);
  auto outputs = [&](int threads) {
    set_num_threads(threads);
    Tensor<float> leaf = x.clone();
    leaf.set_requires_grad();
    Tensor<float> log_probs = ops::log_softmax(leaf);
    backward_from(log_probs, testing::random_tensor<float>({N, K}, 17));
    Tensor<float> loss = ops::cross_entropy(leaf, targets, 0.1);
    autograd::backward(loss);
    std::vector<float> all = log_probs.to_vector(), grad = leaf.grad().to_vector();
    all.insert(all.end(), grad.begin(), grad.end());
    all.push_back(loss.item());
    return all;
  };
  const std::vector<float> one = outputs(1);
  CHECK(outputs(2) == one);
  CHECK(outputs(3) == one);
  set_num_threads(saved_threads);
}
