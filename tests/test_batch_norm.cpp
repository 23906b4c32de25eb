// batch_norm2d: forward, saved statistics and backward against the oracle (training with batch
// statistics, eval with running statistics, eval without them) at the model's shapes and awkward
// ones, on normal, offset and constant data; running statistics over several steps; gradients
// by finite differences; argument errors; results independent of the thread count.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "normlab/core/parallel.hpp"
#include "normlab/cpu/batch_norm.hpp"
#include "normlab/ops/norm.hpp"
#include "oracle/norm.hpp"
#include "support/gradcheck.hpp"
#include "support/norm_check.hpp"

using namespace normlab;
using testing::NormCase;
using testing::NormData;
using testing::TensorD;

namespace {

enum class Mode {
  Training,       // batch statistics, running statistics updated
  Eval,           // running statistics
  EvalUntracked,  // eval without running statistics: batch statistics (track_running_stats=False)
};

/// Running statistics near the statistics of the case's data (so eval outputs are O(1)).
std::pair<Tensor<float>, Tensor<float>> running_statistics(const NormCase& c) {
  const double center = c.data == NormData::Offset ? 100.0 : c.data == NormData::Normal ? 0.5 : 3.25;
  const double scale = c.data == NormData::Offset ? 0.01 : c.data == NormData::Normal ? 2.0 : 1.0;
  Rng rng(5);
  Tensor<float> mean = Tensor<float>::randn({c.shape.C}, rng, float(center), float(0.1 * scale));
  Tensor<float> var = Tensor<float>::uniform({c.shape.C}, rng, float(0.5 * scale * scale),
                                             float(1.5 * scale * scale));
  return {mean, var};
}

testing::NormUnderTest batch_norm_under_test(const NormCase& c, Mode mode) {
  const oracle::NormShape s = c.shape;
  Tensor<float> running_mean, running_var;
  if (mode != Mode::EvalUntracked) std::tie(running_mean, running_var) = running_statistics(c);
  const bool training = mode == Mode::Training, fuse_relu = c.fuse_relu;
  testing::NormUnderTest t;
  t.grouping = oracle::batch_norm_grouping(s);
  t.op = [=](const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta) {
    return ops::batch_norm2d(x, gamma, beta, running_mean, running_var, training, 0.1, 1e-5,
                             fuse_relu);
  };
  t.saved_statistics = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                           const Tensor<float>& beta, std::vector<double>& mean,
                           std::vector<double>& rstd) {
    using ops::norm_detail::data_or_null;
    Tensor<float> y = Tensor<float>::empty(x.shape());
    Tensor<float> rm = running_mean.defined() ? running_mean.clone() : Tensor<float>();
    Tensor<float> rv = running_var.defined() ? running_var.clone() : Tensor<float>();
    mean.resize(s.C);
    rstd.resize(s.C);
    cpu::batch_norm_forward(x.data(), data_or_null(gamma), data_or_null(beta), data_or_null(rm),
                            data_or_null(rv), y.data(), mean.data(), rstd.data(), s.N, s.C,
                            s.plane(), mode != Mode::Eval, 0.1, 1e-5, fuse_relu);
  };
  if (mode == Mode::Eval) {
    t.fixed_mean = testing::to_double(running_mean);
    t.fixed_var = testing::to_double(running_var);
  }
  return t;
}

void check_cases(const std::vector<NormCase>& cases, Mode mode) {
  for (const NormCase& c : cases) testing::check_norm_against_oracle(batch_norm_under_test(c, mode), c);
}

const oracle::NormShape model_shapes[] = {{64, 16, 32, 32}, {64, 32, 16, 16}, {64, 32, 8, 8}};

const oracle::NormShape awkward_shapes[] = {
    {1, 3, 5, 7},  // N = 1 (statistics over one plane)
    {7, 5, 1, 1},  // HW = 1 (statistics over the batch)
    {3, 5, 7, 3},  // odd everything
    {2, 1, 3, 3},  // one channel
    {5, 3, 33, 35},  // planes longer than a 1024-element chunk, with tails
};

}  // namespace

TEST_CASE("batch_norm2d training matches the oracle at the model's shapes", "[batch_norm]") {
  std::vector<NormCase> cases;
  for (const auto& s : model_shapes) {
    cases.push_back({s, true, false, NormData::Normal});
    cases.push_back({s, true, true, NormData::Normal});
  }
  cases.push_back({model_shapes[2], false, false, NormData::Offset});
  cases.push_back({model_shapes[1], true, true, NormData::Offset});
  check_cases(cases, Mode::Training);
}

TEST_CASE("batch_norm2d training matches the oracle on awkward shapes and data", "[batch_norm]") {
  std::vector<NormCase> cases;
  for (const auto& s : awkward_shapes)
    for (bool affine : {true, false})
      for (bool relu : {false, true})
        for (NormData data : {NormData::Normal, NormData::Offset, NormData::Constant})
          cases.push_back({s, affine, relu, data});
  check_cases(cases, Mode::Training);
}

TEST_CASE("batch_norm2d eval matches the oracle with and without running statistics",
          "[batch_norm]") {
  std::vector<NormCase> cases;
  for (const auto& s : {model_shapes[2], awkward_shapes[0], awkward_shapes[1], awkward_shapes[2]})
    for (bool affine : {true, false})
      for (bool relu : {false, true})
        for (NormData data : {NormData::Normal, NormData::Offset}) cases.push_back({s, affine, relu, data});
  check_cases(cases, Mode::Eval);
  check_cases(cases, Mode::EvalUntracked);
  check_cases({{awkward_shapes[2], true, false, NormData::Constant}}, Mode::EvalUntracked);
}

TEST_CASE("batch_norm2d updates running statistics as PyTorch over several steps",
          "[batch_norm]") {
  const oracle::NormShape s{4, 3, 5, 7};
  for (double momentum : {0.1, 0.35}) {
    INFO("momentum " << momentum);
    Tensor<float> running_mean = Tensor<float>::zeros({s.C}), running_var = Tensor<float>::ones({s.C});
    std::vector<double> mean_ref(s.C, 0.0), var_ref(s.C, 1.0);
    for (int step = 0; step < 3; ++step) {
      const Tensor<float> x = testing::random_tensor<float>({s.N, s.C, s.H, s.W}, 40 + step,
                                                            step - 1.0, 1.0 + step);
      const std::vector<double> x64 = testing::to_double(x);
      ops::batch_norm2d(x, Tensor<float>(), Tensor<float>(), running_mean, running_var, true,
                        momentum);
      oracle::update_running_statistics(
          mean_ref, var_ref, oracle::norm_statistics(x64, s, oracle::batch_norm_grouping(s)),
          momentum);
    }
    testing::require_close("running_mean", running_mean.data(), mean_ref.data(), s.C, 1e-6, 1e-5);
    testing::require_close("running_var", running_var.data(), var_ref.data(), s.C, 1e-6, 1e-5);

    // Eval normalises with the running statistics and leaves them unchanged.
    const Tensor<float> x = testing::random_tensor<float>({s.N, s.C, s.H, s.W}, 50);
    const std::vector<float> mean_before = running_mean.to_vector(), var_before = running_var.to_vector();
    const Tensor<float> y = ops::batch_norm2d(x, Tensor<float>(), Tensor<float>(), running_mean,
                                              running_var, false, momentum);
    CHECK(running_mean.to_vector() == mean_before);
    CHECK(running_var.to_vector() == var_before);
    const std::vector<double> y_ref = oracle::norm_forward(
        testing::to_double(x), s, oracle::batch_norm_grouping(s), testing::to_double(running_mean),
        testing::to_double(running_var), {}, {}, 1e-5, false);
    testing::require_close("eval y", y.data(), y_ref.data(), s.numel(), 1e-5, 1e-5);
  }
}

TEST_CASE("batch_norm2d's running variance is unbiased (N*H*W - 1)", "[batch_norm]") {
  {
    // Two values per channel, 0 and 2: biased variance 1, unbiased 2.
    Tensor<float> x = Tensor<float>::from_data({2, 1, 1, 1}, {0.0f, 2.0f});
    Tensor<float> running_mean = Tensor<float>::zeros({1}), running_var = Tensor<float>::zeros({1});
    ops::batch_norm2d(x, Tensor<float>(), Tensor<float>(), running_mean, running_var, true, 1.0);
    CHECK(running_mean.item() == 1.0f);
    CHECK(running_var.item() == 2.0f);
  }
}

TEST_CASE("batch_norm2d gradients match finite differences", "[batch_norm][gradcheck]") {
  struct Check {
    std::vector<int64_t> shape;
    Mode mode;
    bool affine, relu;
    NormData data;
  };
  const Check checks[] = {
      {{2, 3, 4, 5}, Mode::Training, true, false, NormData::Normal},
      {{1, 3, 4, 5}, Mode::Training, true, false, NormData::Normal},  // N = 1
      {{5, 3, 1, 1}, Mode::Training, true, false, NormData::Normal},  // HW = 1
      {{3, 5, 3, 3}, Mode::Training, false, false, NormData::Normal},
      {{2, 3, 4, 5}, Mode::Training, true, false, NormData::Offset},
      {{2, 3, 4, 5}, Mode::Training, true, true, NormData::Normal},
      {{2, 3, 4, 5}, Mode::Eval, true, false, NormData::Normal},
      {{2, 3, 4, 5}, Mode::Eval, true, true, NormData::Offset},
      {{2, 3, 2, 3}, Mode::EvalUntracked, true, false, NormData::Normal},
  };
  for (const Check& k : checks) {
    const oracle::NormShape s{k.shape[0], k.shape[1], k.shape[2], k.shape[3]};
    const NormCase c{s, k.affine, k.relu, k.data};
    INFO(c.describe() << " mode " << static_cast<int>(k.mode));
    TensorD x = testing::norm_input<double>(s, k.data, 3);
    auto [gamma, beta] = testing::norm_affine<double>(s.C, k.affine, 4);
    TensorD running_mean, running_var;
    if (k.mode != Mode::EvalUntracked) {
      auto [m, v] = running_statistics(c);
      running_mean = testing::convert<double>(m);
      running_var = testing::convert<double>(v);
    }
    const bool training = k.mode == Mode::Training;
    if (k.relu) {
      autograd::NoGradGuard no_grad;
      const TensorD pre = ops::batch_norm2d(x, gamma, beta, running_mean, running_var, training);
      REQUIRE(testing::distance_from_kink(pre) > 1e-3);
    }
    auto f = [&](const std::vector<TensorD>& in) {
      return ops::batch_norm2d(in[0], k.affine ? in[1] : TensorD(), k.affine ? in[2] : TensorD(),
                               running_mean, running_var, training, 0.1, 1e-5, k.relu);
    };
    testing::gradcheck(f, k.affine ? std::vector<TensorD>{x, gamma, beta} : std::vector<TensorD>{x},
                       testing::norm_gradcheck_options(k.data));
  }
}

TEST_CASE("batch_norm2d rejects bad arguments with the op and shapes in the message",
          "[batch_norm][errors]") {
  const Tensor<float> x = Tensor<float>::zeros({2, 4, 3, 3}), none;
  const Tensor<float> c4 = Tensor<float>::ones({4}), c3 = Tensor<float>::ones({3});
  using Catch::Contains;
  REQUIRE_THROWS_WITH(ops::batch_norm2d(Tensor<float>::zeros({2, 4, 9}), c4, c4, c4, c4, true),
                      Contains("batch_norm2d") && Contains("rank 4") && Contains("[2, 4, 9]"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(x, c3, c4, c4, c4, true),
                      Contains("batch_norm2d") && Contains("gamma") && Contains("[3]") &&
                          Contains("[2, 4, 3, 3]"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(x, c4, c4, c4, Tensor<float>::ones({4, 1}), true),
                      Contains("running_var") && Contains("[4, 1]"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(x, c4, c4, c4, none, true),
                      Contains("running_mean and running_var"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(Tensor<float>::zeros({1, 4, 1, 1}), c4, c4, c4, c4, true),
                      Contains("more than 1 value per channel") && Contains("[1, 4, 1, 1]"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(x, c4, c4, c4, c4, true, 1.5), Contains("momentum"));
  REQUIRE_THROWS_WITH(ops::batch_norm2d(x, c4, c4, c4, c4, true, 0.1, 0.0), Contains("eps"));
  // One value per channel is fine with running statistics in eval mode.
  CHECK_NOTHROW(ops::batch_norm2d(Tensor<float>::zeros({1, 4, 1, 1}), c4, c4, c4, c4, false));
}

TEST_CASE("batch_norm2d results are bit-identical for any thread count", "[batch_norm]") {
  const int saved_threads = num_threads();
  const Tensor<float> x = testing::random_tensor<float>({64, 32, 16, 16}, 8, 0.5, 2.0);
  const Tensor<float> dy = testing::random_tensor<float>(x.shape(), 9);
  auto outputs = [&](int threads) {
    set_num_threads(threads);
    Tensor<float> leaf = x.clone(), running_mean = Tensor<float>::zeros({32}),
                  running_var = Tensor<float>::ones({32});
    auto [gamma, beta] = testing::norm_affine<float>(32, true, 10);
    leaf.set_requires_grad();
    gamma.set_requires_grad();
    beta.set_requires_grad();
    Tensor<float> y = ops::batch_norm2d(leaf, gamma, beta, running_mean, running_var, true, 0.1,
                                        1e-5, true);
    std::vector<std::vector<float>> out = {y.to_vector()};
    testing::backward_from(y, dy);
    for (const Tensor<float>& t : {leaf.grad(), gamma.grad(), beta.grad(), running_mean, running_var})
      out.push_back(t.to_vector());
    return out;
  };
  const auto one = outputs(1);
  CHECK(outputs(2) == one);
  CHECK(outputs(3) == one);
  set_num_threads(saved_threads);
}
