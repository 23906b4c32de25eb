// conv2d: the fast float kernels (forward, dgrad, wgrad) against the naive double oracle at every
// conv shape of the CIFAR model and at awkward shapes; finite-difference gradchecks in double;
// gradient accumulation and partial requires_grad; determinism across runs and thread counts;
// error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "normlab/core/parallel.hpp"
#include "normlab/ops/conv.hpp"
#include "normlab/ops/elementwise.hpp"
#include "oracle/conv.hpp"
#include "support/conv_check.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using testing::absolute;
using testing::check_close;
using testing::TensorD;

namespace {

struct ConvCase {
  std::string name;
  oracle::ConvShape s;
  bool bias;
};

std::vector<double> to_double(const Tensor<float>& t) {
  if (!t.defined()) return {};
  return std::vector<double>(t.data(), t.data() + t.numel());
}

/// Runs conv2d forward and backward in float (every input requiring a gradient) and compares
/// y, dx, dweight and dbias with the double oracle.
void check_against_oracle(const ConvCase& c, uint64_t seed) {
  INFO("case " << c.name);
  const oracle::ConvShape& s = c.s;
  const double fan_in = static_cast<double>(s.Cin * s.KH * s.KW);
  Tensor<float> x = testing::random_tensor<float>({s.N, s.Cin, s.H, s.W}, seed);
  Tensor<float> w = testing::random_tensor<float>({s.Cout, s.Cin, s.KH, s.KW}, seed + 1, 0.0, 1.0 / std::sqrt(fan_in));
  Tensor<float> b = c.bias ? testing::random_tensor<float>({s.Cout}, seed + 2) : Tensor<float>();
  Tensor<float> dy = testing::random_tensor<float>({s.N, s.Cout, s.OH(), s.OW()}, seed + 3);
  x.set_requires_grad();
  w.set_requires_grad();
  if (c.bias) b.set_requires_grad();

  Tensor<float> y = ops::conv2d(x, w, b, s.stride, s.padding);
  REQUIRE(y.shape() == Shape({s.N, s.Cout, s.OH(), s.OW()}));
  y.set_grad(dy);
  {
    autograd::NoGradGuard no_grad;
    autograd::tape().run_backward();
  }

  const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
  check_close("y", y.to_vector(), oracle::conv2d_forward(xd, wd, bd, s),
              oracle::conv2d_forward(absolute(xd), absolute(wd), absolute(bd), s),
              s.Cin * s.KH * s.KW + 1);
  const auto exact = oracle::conv2d_backward(xd, wd, dyd, s);
  const auto magnitude = oracle::conv2d_backward(absolute(xd), absolute(wd), absolute(dyd), s);
  check_close("dx", x.grad().to_vector(), exact.dx, magnitude.dx, s.Cout * s.KH * s.KW);
  check_close("dweight", w.grad().to_vector(), exact.dw, magnitude.dw, s.N * s.OH() * s.OW());
  if (c.bias) check_close("dbias", b.grad().to_vector(), exact.db, magnitude.db, s.N * s.OH() * s.OW());
}

/// The conv layers of the CIFAR model (seed-model.md), all with bias, at batch `batch`.
std::vector<ConvCase> model_layers(int64_t batch) {
  std::vector<ConvCase> layers = {
      {"3->16 3x3 p1 @32x32", {batch, 3, 32, 32, 16, 3, 3, 1, 1}, true},
      {"16->32 3x3 p1 @32x32", {batch, 16, 32, 32, 32, 3, 3, 1, 1}, true},
      {"32->16 1x1 @32x32", {batch, 32, 32, 32, 16, 1, 1, 1, 0}, true},
      {"32->10 1x1 @1x1", {batch, 32, 1, 1, 10, 1, 1, 1, 0}, true},
  };
  for (int64_t hw : {16, 8}) {
    const std::string at = " @" + std::to_string(hw) + "x" + std::to_string(hw);
    layers.push_back({"16->16 3x3 p1" + at, {batch, 16, hw, hw, 16, 3, 3, 1, 1}, true});
    layers.push_back({"16->32 3x3 p1" + at, {batch, 16, hw, hw, 32, 3, 3, 1, 1}, true});
    layers.push_back({"32->32 3x3 p1" + at, {batch, 32, hw, hw, 32, 3, 3, 1, 1}, true});
    layers.push_back({"16->32 1x1" + at, {batch, 16, hw, hw, 32, 1, 1, 1, 0}, true});
    layers.push_back({"32->16 1x1" + at, {batch, 32, hw, hw, 16, 1, 1, 1, 0}, true});
  }
  return layers;
}

const std::vector<ConvCase> kAwkwardCases = {
    {"N=1 Cin=1 Cout=1 3x3 p1 @7x5", {1, 1, 7, 5, 1, 3, 3, 1, 1}, true},
    {"5x5 p2 @9x11", {2, 3, 9, 11, 5, 5, 5, 1, 2}, true},
    {"3x3 s2 p1 @9x7", {3, 4, 9, 7, 6, 3, 3, 2, 1}, false},
    {"1x1 s2 @7x5", {2, 5, 7, 5, 3, 1, 1, 2, 0}, true},
    {"1x1 p2 (outputs of padding only)", {2, 3, 4, 5, 4, 1, 1, 1, 2}, false},
    {"3x3 p0 @6x6", {2, 2, 6, 6, 3, 3, 3, 1, 0}, true},
    {"output 1x1: 3x3 p0 @3x3", {3, 4, 3, 3, 5, 3, 3, 1, 0}, true},
    {"output 1x1: 4x4 p1 @2x2", {2, 3, 2, 2, 2, 4, 4, 1, 1}, false},
    {"1x3 kernel s3 p1 @8x10", {2, 3, 8, 10, 4, 1, 3, 3, 1}, true},
    {"ragged tiles: 19->37 3x3 p1 @13x11", {2, 19, 13, 11, 37, 3, 3, 1, 1}, true},
    {"patch > KC, dgrad M > MC: 40->9 3x3 p1 @6x6", {2, 40, 6, 6, 9, 3, 3, 1, 1}, true},
    {"wide 1x1: 300->17 @5x7", {2, 300, 5, 7, 17, 1, 1, 1, 0}, false},
};

}  // namespace

TEST_CASE("conv2d forward and backward match the oracle at the model's layer shapes", "[conv2d]") {
  uint64_t seed = 10;
  for (const ConvCase& c : model_layers(4)) check_against_oracle(c, seed += 10);
}

TEST_CASE("conv2d matches the oracle on the 16->32 3x3 layer at full batch 64", "[conv2d]") {
  check_against_oracle(model_layers(64)[1], 7);
}

TEST_CASE("conv2d matches the oracle at awkward shapes", "[conv2d]") {
  uint64_t seed = 500;
  for (const ConvCase& c : kAwkwardCases) check_against_oracle(c, seed += 10);
}

TEST_CASE("conv2d matches the oracle with more threads than images and is bit-reproducible",
          "[conv2d][threads]") {
  const int saved = num_threads();
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    INFO(threads << " threads");
    // N = 2 over 3 threads leaves one thread without images.
    check_against_oracle({"16->8 3x3 p1 @10x9", {2, 16, 10, 9, 8, 3, 3, 1, 1}, true}, 40);
    check_against_oracle({"1x1 @6x6", {2, 16, 6, 6, 8, 1, 1, 1, 0}, true}, 50);
  }
  set_num_threads(saved);

  // Two runs with the same thread count give identical bits.
  auto run = [] {
    Tensor<float> x = testing::random_tensor<float>({5, 16, 12, 12}, 1);
    Tensor<float> w = testing::random_tensor<float>({24, 16, 3, 3}, 2, 0.0, 0.1);
    Tensor<float> b = testing::random_tensor<float>({24}, 3);
    x.set_requires_grad();
    w.set_requires_grad();
    b.set_requires_grad();
    Tensor<float> y = ops::conv2d(x, w, b, 1, 1);
    y.set_grad(testing::random_tensor<float>(y.shape(), 4));
    autograd::NoGradGuard no_grad;
    autograd::tape().run_backward();
    return std::vector<std::vector<float>>{y.to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                                           b.grad().to_vector()};
  };
  CHECK(run() == run());
}

TEST_CASE("conv2d gradients match finite differences", "[conv2d][gradcheck]") {
  struct Config {
    Shape x, w;
    bool bias;
    int64_t stride, padding;
  };
  const std::vector<Config> configs = {
      {{2, 3, 5, 4}, {2, 3, 3, 3}, true, 1, 1},   // 3x3 "same"
      {{2, 2, 7, 6}, {3, 2, 3, 3}, true, 2, 1},   // stride 2, padding 1
      {{1, 3, 4, 4}, {2, 3, 1, 1}, true, 1, 0},   // pointwise
      {{2, 2, 5, 5}, {2, 2, 2, 3}, false, 2, 0},  // non-square kernel, no bias
      {{1, 2, 3, 3}, {2, 2, 5, 5}, true, 1, 2},   // kernel larger than the unpadded input
  };
  uint64_t seed = 70;
  for (const Config& c : configs) {
    INFO("x " << c.x.str() << " weight " << c.w.str() << " stride " << c.stride << " padding " << c.padding);
    std::vector<TensorD> inputs = {testing::random_tensor<double>(c.x, seed++),
                                   testing::random_tensor<double>(c.w, seed++)};
    if (c.bias) inputs.push_back(testing::random_tensor<double>({c.w[0]}, seed++));
    testing::gradcheck(
        [&c](const std::vector<TensorD>& in) {
          return ops::conv2d(in[0], in[1], c.bias ? in[2] : TensorD(), c.stride, c.padding);
        },
        inputs);
  }
}

TEST_CASE("conv2d gradients accumulate over uses and respect requires_grad", "[conv2d][gradcheck]") {
  // The same x, weight and bias feed two convolutions: every gradient is the sum of both uses.
  testing::gradcheck(
      [](const std::vector<TensorD>& in) {
        return ops::add(ops::conv2d(in[0], in[1], in[2], 1, 1), ops::conv2d(in[0], in[1], in[2], 2, 3));
      },
      {testing::random_tensor<double>({2, 2, 5, 5}, 1), testing::random_tensor<double>({3, 2, 3, 3}, 2),
       testing::random_tensor<double>({3}, 3)});

  // Only some inputs require a gradient: the others get none, the rest match the full run.
  Tensor<float> x = testing::random_tensor<float>({2, 3, 6, 6}, 4);
  Tensor<float> w = testing::random_tensor<float>({4, 3, 3, 3}, 5);
  Tensor<float> b = testing::random_tensor<float>({4}, 6);
  Tensor<float> dy = testing::random_tensor<float>({2, 4, 6, 6}, 7);
  auto backward = [&](bool x_grad, bool w_grad, bool b_grad) {
    for (Tensor<float>* t : {&x, &w, &b}) t->zero_grad();
    x.set_requires_grad(x_grad);
    w.set_requires_grad(w_grad);
    b.set_requires_grad(b_grad);
    Tensor<float> y = ops::conv2d(x, w, b, 1, 1);
    y.set_grad(dy);
    autograd::NoGradGuard no_grad;
    autograd::tape().run_backward();
  };
  backward(true, true, true);
  const Tensor<float> dx = x.grad(), dw = w.grad(), db = b.grad();
  for (auto [x_grad, w_grad, b_grad] : {std::tuple{false, true, true}, std::tuple{true, false, false},
                                        std::tuple{false, false, true}}) {
    backward(x_grad, w_grad, b_grad);
    CHECK(x.has_grad() == x_grad);
    CHECK(w.has_grad() == w_grad);
    CHECK(b.has_grad() == b_grad);
    if (x_grad) CHECK(x.grad().to_vector() == dx.to_vector());
    if (w_grad) CHECK(w.grad().to_vector() == dw.to_vector());
    if (b_grad) CHECK(b.grad().to_vector() == db.to_vector());
  }
  {
    autograd::NoGradGuard no_grad;
    CHECK_FALSE(ops::conv2d(x, w, b, 1, 1).requires_grad());
  }
}

TEST_CASE("float conv2d gradients accumulate over two uses on the fast kernels", "[conv2d]") {
  // y = conv(x) + conv(x) with one weight: the second backward adds into dx and dweight, so the
  // kernels run with accumulate set (the direct 3x3 kernels for float with AVX-512). Cout = 6
  // leaves a partial block of output channels; the gradients must be twice the oracle's.
  const oracle::ConvShape s{3, 5, 9, 7, 6, 3, 3, 1, 1};
  Tensor<float> x = testing::random_tensor<float>({s.N, s.Cin, s.H, s.W}, 31);
  Tensor<float> w = testing::random_tensor<float>({s.Cout, s.Cin, s.KH, s.KW}, 32);
  Tensor<float> b = testing::random_tensor<float>({s.Cout}, 33);
  Tensor<float> dy = testing::random_tensor<float>({s.N, s.Cout, s.OH(), s.OW()}, 34);
  for (Tensor<float>* t : {&x, &w, &b}) t->set_requires_grad();
  Tensor<float> y = ops::add(ops::conv2d(x, w, b, 1, 1), ops::conv2d(x, w, b, 1, 1));
  y.set_grad(dy);
  {
    autograd::NoGradGuard no_grad;
    autograd::tape().run_backward();
  }
  const std::vector<double> xd = to_double(x), wd = to_double(w), dyd = to_double(dy);
  auto twice = [](std::vector<double> v) {
    for (double& e : v) e *= 2;
    return v;
  };
  const auto exact = oracle::conv2d_backward(xd, wd, dyd, s);
  const auto magnitude = oracle::conv2d_backward(absolute(xd), absolute(wd), absolute(dyd), s);
  check_close("dx", x.grad().to_vector(), twice(exact.dx), twice(magnitude.dx), 2 * s.Cout * s.KH * s.KW);
  check_close("dweight", w.grad().to_vector(), twice(exact.dw), twice(magnitude.dw), 2 * s.N * s.OH() * s.OW());
  check_close("dbias", b.grad().to_vector(), twice(exact.db), twice(magnitude.db), 2 * s.N * s.OH() * s.OW());
}

TEST_CASE("conv2d rejects bad arguments with the op name and the shapes", "[conv2d][errors]") {
  const Tensor<float> x = Tensor<float>::zeros({2, 3, 8, 8});
  const Tensor<float> w = Tensor<float>::zeros({4, 3, 3, 3});
  const Tensor<float> b = Tensor<float>::zeros({4});
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor<float>::zeros({4, 5, 3, 3}), b),
                      Catch::Contains("conv2d") && Catch::Contains("[2, 3, 8, 8]") &&
                          Catch::Contains("[4, 5, 3, 3]") && Catch::Contains("channels"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor<float>::zeros({4, 3, 9, 9}), b),
                      Catch::Contains("conv2d") && Catch::Contains("[4, 3, 9, 9]") &&
                          Catch::Contains("[2, 3, 8, 8]") && Catch::Contains("non-positive"));
  CHECK_NOTHROW(ops::conv2d(x, Tensor<float>::zeros({4, 3, 9, 9}), b, 1, 1));  // 8 + 2 >= 9
  REQUIRE_THROWS_WITH(ops::conv2d(Tensor<float>::zeros({3, 8, 8}), w, b),
                      Catch::Contains("conv2d") && Catch::Contains("'x'") && Catch::Contains("rank 4") &&
                          Catch::Contains("[3, 8, 8]"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor<float>::zeros({4, 3, 3}), b),
                      Catch::Contains("conv2d") && Catch::Contains("'weight'") && Catch::Contains("[4, 3, 3]"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, Tensor<float>::zeros({3})),
                      Catch::Contains("conv2d") && Catch::Contains("bias") && Catch::Contains("[3]") &&
                          Catch::Contains("[4, 3, 3, 3]"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, b, 0, 1), Catch::Contains("conv2d") && Catch::Contains("stride"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, w, b, 1, -1), Catch::Contains("conv2d") && Catch::Contains("padding"));
  REQUIRE_THROWS_WITH(ops::conv2d(x, Tensor<float>::zeros({0, 3, 3, 3}), Tensor<float>()),
                      Catch::Contains("conv2d") && Catch::Contains("empty") && Catch::Contains("[0, 3, 3, 3]"));
}
