// group_norm: forward, saved statistics and backward against the oracle at the model's shapes
// and awkward ones (N=1, HW=1, one element per group, G=1, G=C, odd sizes, groups longer than a
// chunk), on normal, offset and constant data; gradients by finite differences; argument errors;
// results independent of the thread count. Also the Welford/Chan helpers of norm_math.hpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "normlab/common/norm_math.hpp"
#include "normlab/core/parallel.hpp"
#include "normlab/cpu/group_norm.hpp"
#include "normlab/ops/norm.hpp"
#include "oracle/norm.hpp"
#include "support/gradcheck.hpp"
#include "support/norm_check.hpp"

using namespace normlab;
using testing::NormCase;
using testing::NormData;
using testing::TensorD;

namespace {

testing::NormUnderTest group_norm_under_test(const NormCase& c, int64_t G) {
  const oracle::NormShape s = c.shape;
  const bool fuse_relu = c.fuse_relu;
  testing::NormUnderTest t;
  t.grouping = oracle::group_norm_grouping(s, G);
  t.op = [=](const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta) {
    return ops::group_norm(x, G, gamma, beta, 1e-5, fuse_relu);
  };
  t.saved_statistics = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                           const Tensor<float>& beta, std::vector<double>& mean,
                           std::vector<double>& rstd) {
    using ops::norm_detail::data_or_null;
    Tensor<float> y = Tensor<float>::empty(x.shape());
    mean.resize(s.N * G);
    rstd.resize(s.N * G);
    cpu::group_norm_forward(x.data(), data_or_null(gamma), data_or_null(beta), y.data(),
                            mean.data(), rstd.data(), s.N, s.C, s.plane(), G, 1e-5, fuse_relu);
  };
  return t;
}

struct GroupShape {
  oracle::NormShape shape;
  int64_t groups;
};

const GroupShape awkward_shapes[] = {
    {{1, 8, 5, 5}, 4},    // N = 1
    {{4, 6, 1, 1}, 2},    // HW = 1, three channels per group
    {{2, 4, 1, 1}, 4},    // one element per group: variance 0
    {{3, 6, 5, 5}, 6},    // G = C (InstanceNorm)
    {{2, 6, 3, 3}, 1},    // G = 1
    {{3, 15, 7, 3}, 5},   // odd everything
    {{2, 4, 33, 35}, 2},  // groups of 2310 elements: several chunks and a scalar tail
};

}  // namespace

TEST_CASE("group_norm matches the oracle at the model's shapes", "[group_norm]") {
  for (const oracle::NormShape& s :
       {oracle::NormShape{64, 16, 32, 32}, oracle::NormShape{64, 32, 16, 16},
        oracle::NormShape{64, 32, 8, 8}}) {
    for (bool relu : {false, true})
      testing::check_norm_against_oracle(group_norm_under_test({s, true, relu}, 4), {s, true, relu});
  }
  const NormCase offset{{64, 32, 8, 8}, false, false, NormData::Offset};
  testing::check_norm_against_oracle(group_norm_under_test(offset, 4), offset);
  const NormCase instance{{64, 32, 8, 8}, true, true, NormData::Normal};
  testing::check_norm_against_oracle(group_norm_under_test(instance, 32), instance);
}

TEST_CASE("group_norm matches the oracle on awkward shapes and data", "[group_norm]") {
  for (const GroupShape& gs : awkward_shapes)
    for (bool affine : {true, false})
      for (bool relu : {false, true})
        for (NormData data : {NormData::Normal, NormData::Offset, NormData::Constant}) {
          const NormCase c{gs.shape, affine, relu, data};
          INFO("groups " << gs.groups);
          testing::check_norm_against_oracle(group_norm_under_test(c, gs.groups), c);
        }
}

TEST_CASE("group_norm gradients match finite differences", "[group_norm][gradcheck]") {
  struct Check {
    oracle::NormShape shape;
    int64_t groups;
    bool affine, relu;
    NormData data;
  };
  const Check checks[] = {
      {{2, 6, 3, 3}, 3, true, false, NormData::Normal},
      {{1, 6, 2, 3}, 2, true, false, NormData::Normal},  // N = 1
      {{3, 6, 1, 1}, 2, true, false, NormData::Normal},  // HW = 1
      {{2, 4, 3, 3}, 1, true, false, NormData::Normal},  // G = 1
      {{2, 4, 3, 3}, 4, true, false, NormData::Normal},  // G = C
      {{1, 9, 3, 5}, 3, false, false, NormData::Normal},  // odd, no affine
      {{2, 6, 3, 3}, 3, true, false, NormData::Offset},
      {{2, 6, 3, 3}, 3, true, true, NormData::Normal},
      {{1, 4, 3, 5}, 2, true, true, NormData::Offset},
  };
  for (const Check& k : checks) {
    const oracle::NormShape& s = k.shape;
    const NormCase c{s, k.affine, k.relu, k.data};
    INFO(c.describe() << " groups " << k.groups);
    const TensorD x = testing::norm_input<double>(s, k.data, 3);
    const auto [gamma, beta] = testing::norm_affine<double>(s.C, k.affine, 4);
    if (k.relu) {
      autograd::NoGradGuard no_grad;
      REQUIRE(testing::distance_from_kink(ops::group_norm(x, k.groups, gamma, beta)) > 1e-3);
    }
    auto f = [&](const std::vector<TensorD>& in) {
      return ops::group_norm(in[0], k.groups, k.affine ? in[1] : TensorD(),
                             k.affine ? in[2] : TensorD(), 1e-5, k.relu);
    };
    testing::gradcheck(f, k.affine ? std::vector<TensorD>{x, gamma, beta} : std::vector<TensorD>{x},
                       testing::norm_gradcheck_options(k.data));
  }
}

TEST_CASE("group_norm rejects bad arguments with the op and shapes in the message",
          "[group_norm][errors]") {
  const Tensor<float> x = Tensor<float>::zeros({2, 6, 3, 3}), c6 = Tensor<float>::ones({6});
  using Catch::Contains;
  REQUIRE_THROWS_WITH(ops::group_norm(x, 4, c6, c6),
                      Contains("group_norm") && Contains("6 channels") &&
                          Contains("[2, 6, 3, 3]") && Contains("4 groups"));
  REQUIRE_THROWS_WITH(ops::group_norm(x, 0, c6, c6), Contains("group_norm") && Contains("0 groups"));
  REQUIRE_THROWS_WITH(ops::group_norm(x, 3, c6, Tensor<float>::ones({3})),
                      Contains("group_norm") && Contains("beta") && Contains("[3]") &&
                          Contains("[2, 6, 3, 3]"));
  REQUIRE_THROWS_WITH(ops::group_norm(Tensor<float>::zeros({6, 9}), 3, c6, c6),
                      Contains("group_norm") && Contains("rank 4") && Contains("[6, 9]"));
  REQUIRE_THROWS_WITH(ops::group_norm(Tensor<float>::zeros({0, 6, 3, 3}), 3, c6, c6),
                      Contains("group_norm") && Contains("empty"));
  REQUIRE_THROWS_WITH(ops::group_norm(x, 3, c6, c6, -1.0), Contains("eps"));
}

TEST_CASE("group_norm results are bit-identical for any thread count", "[group_norm]") {
  const int saved_threads = num_threads();
  const Tensor<float> x = testing::random_tensor<float>({64, 32, 16, 16}, 8, 0.5, 2.0);
  const Tensor<float> dy = testing::random_tensor<float>(x.shape(), 9);
  auto outputs = [&](int threads) {
    set_num_threads(threads);
    Tensor<float> leaf = x.clone();
    auto [gamma, beta] = testing::norm_affine<float>(32, true, 10);
    leaf.set_requires_grad();
    gamma.set_requires_grad();
    beta.set_requires_grad();
    Tensor<float> y = ops::group_norm(leaf, 4, gamma, beta, 1e-5, true);
    std::vector<std::vector<float>> out = {y.to_vector()};
    testing::backward_from(y, dy);
    for (const Tensor<float>& t : {leaf.grad(), gamma.grad(), beta.grad()}) out.push_back(t.to_vector());
    return out;
  };
  const auto one = outputs(1);
  CHECK(outputs(2) == one);
  CHECK(outputs(3) == one);
  set_num_threads(saved_threads);
}

TEST_CASE("Welford push, Chan merge and shifted sums agree, also on offset and constant data",
          "[norm_math]") {
  Rng rng(12);
  for (const double offset : {0.0, 1e4}) {
    std::vector<double> x(1000);
    for (double& v : x) v = offset + 0.01 * rng.normal();
    WelfordState<double> pushed, left, right;
    for (size_t i = 0; i < x.size(); ++i) {
      welford_push(pushed, x[i]);
      welford_push(i < 300 ? left : right, x[i]);
    }
    const WelfordState<double> merged = welford_merge(left, right);
    double sum = 0, sum_sq = 0;
    for (double v : x) {
      sum += v - x[0];
      sum_sq += (v - x[0]) * (v - x[0]);
    }
    const WelfordState<double> shifted = welford_from_shifted_sums<double>(1000, x[0], sum, sum_sq);
    double mean = 0, m2 = 0;
    for (double v : x) mean += v / 1000;
    for (double v : x) m2 += (v - mean) * (v - mean);
    for (const WelfordState<double>& s : {pushed, merged, shifted}) {
      CHECK(s.count == 1000);
      CHECK(std::abs(s.mean - mean) < 1e-9 * 0.01);
      CHECK(std::abs(s.m2 - m2) < 1e-9 * m2);
    }
    // Merging with an empty state changes nothing.
    CHECK(welford_merge(WelfordState<double>{}, merged).mean == merged.mean);
    CHECK(welford_merge(merged, WelfordState<double>{}).m2 == merged.m2);
  }
  WelfordState<double> constant;
  for (int i = 0; i < 77; ++i) welford_push(constant, 0.1);
  CHECK(welford_variance(constant) == 0.0);
  CHECK(welford_variance(welford_from_shifted_sums<double>(5, 0.1, 0.0, 0.0)) == 0.0);
}
