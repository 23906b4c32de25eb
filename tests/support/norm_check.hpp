// The oracle comparison shared by the norm tests (test_batch_norm, test_group_norm,
// test_layer_norm): run a norm op in float on a case (shape, data, affine, fused ReLU), then
// compare y, the saved statistics, dx, dgamma, dbeta (fresh and accumulated) with the double
// oracle of tests/oracle/norm.hpp.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "normlab/autograd/tape.hpp"
#include "oracle/norm.hpp"
#include "support/gradcheck.hpp"

namespace normlab::testing {

enum class NormData {
  Normal,    // 0.5 + 2 * randn
  Offset,    // 100 + 0.01 * randn: plain float sum / sum-of-squares statistics fail here
  Constant,  // every element 3.25: variance exactly 0
};

struct NormCase {
  oracle::NormShape shape;
  bool affine = true;
  bool fuse_relu = false;
  NormData data = NormData::Normal;

  std::string describe() const {
    static const char* data_names[] = {"normal", "offset", "constant"};
    return std::to_string(shape.N) + "x" + std::to_string(shape.C) + "x" + std::to_string(shape.H) +
           "x" + std::to_string(shape.W) + (affine ? " affine" : " no-affine") +
           (fuse_relu ? " +relu " : " ") + data_names[static_cast<int>(data)] + " data";
  }
};

template <typename T>
Tensor<T> norm_input(const oracle::NormShape& s, NormData data, uint64_t seed) {
  switch (data) {
    case NormData::Normal: return random_tensor<T>({s.N, s.C, s.H, s.W}, seed, 0.5, 2.0);
    case NormData::Offset: return random_tensor<T>({s.N, s.C, s.H, s.W}, seed, 100.0, 0.01);
    case NormData::Constant: break;
  }
  return Tensor<T>::full({s.N, s.C, s.H, s.W}, T(3.25));
}

/// Per-channel gamma = 1 + 0.5 * randn and beta = 0.5 * randn, or undefined when !affine.
template <typename T>
std::pair<Tensor<T>, Tensor<T>> norm_affine(int64_t C, bool affine, uint64_t seed) {
  if (!affine) return {};
  return {random_tensor<T>({C}, seed, 1.0, 0.5), random_tensor<T>({C}, seed + 1, 0.0, 0.5)};
}

template <typename T>
std::vector<double> to_double(const Tensor<T>& t) {
  if (!t.defined()) return {};
  return std::vector<double>(t.data(), t.data() + t.numel());
}

/// Runs the tape with `dy` as the gradient of `y`.
template <typename T>
void backward_from(const Tensor<T>& y, const Tensor<T>& dy) {
  y.set_grad(dy);
  autograd::NoGradGuard no_grad;
  autograd::tape().run_backward();
}

/// Ensures: a failure unless |got - expected| <= tolerance * (scale + |expected|) elementwise,
/// with scale = max(max|expected|, min_scale): an error relative to the vector's scale (or to the
/// size of the terms it was computed from, when they cancel to much less).
template <typename A>
void require_close_to_scale(const char* what, const A* got, const std::vector<double>& expected,
                            double tolerance, double min_scale = 0) {
  double scale = min_scale;
  for (double e : expected) scale = std::max(scale, std::abs(e));
  require_close(what, got, expected.data(), static_cast<int64_t>(expected.size()),
                tolerance * scale + 1e-30, tolerance);
}

/// Tolerances of the float kernels against the double oracle. The forward output is computed per
/// element in float as (x - center) * scale + shift (norm_math.hpp: ChannelAffine): with u = 2^-24
/// the subtraction, the rounded scale and the FMA each contribute at most u relative, the rounded
/// shift u * |beta|, so |error| <= 3u * (|y| + |beta|) + O(u^2) <= 4u * (max(1, |beta|) + |y|),
/// the tolerance of the y check. (The Offset check below shows the bound still has teeth: float
/// sum / sum-of-squares statistics miss it by orders of magnitude.)
constexpr double kOutputTolerance = 2 * 1.1920928955078125e-07;  // 4u: absolute and relative
constexpr double kGradientTolerance = 2e-7;  // dx, dgamma, dbeta: relative to the vector's scale

/// How a norm is seen by check_norm_against_oracle.
struct NormUnderTest {
  oracle::NormGrouping grouping;
  /// The op in float: y = op(x, gamma, beta) (records on the tape when inputs require grad).
  std::function<Tensor<float>(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&)> op;
  /// The kernel's saved mean and rstd per group for (x, gamma, beta), called directly.
  std::function<void(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&,
                     std::vector<double>&, std::vector<double>&)>
      saved_statistics;
  /// Empty: batch statistics (the oracle computes them from x). Else the statistics used.
  std::vector<double> fixed_mean, fixed_var;
  double eps = 1e-5;
};

/// y of the plain float sum / sum-of-squares algorithm (what the kernels must not do), used to
/// show that the tolerances reject it on offset data.
inline std::vector<double> naive_float_norm(const std::vector<double>& x, const oracle::NormShape& s,
                                            const oracle::NormGrouping& grouping, float eps) {
  std::vector<float> sum(grouping.count, 0.0f), sum_sq(grouping.count, 0.0f);
  std::vector<int64_t> count(grouping.count, 0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const float v = static_cast<float>(x[(n * s.C + c) * s.plane() + i]);
        const int64_t g = grouping.of(n, c);
        sum[g] += v;
        sum_sq[g] += v * v;
        count[g] += 1;
      }
  std::vector<double> y(x.size());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const int64_t g = grouping.of(n, c), at = (n * s.C + c) * s.plane() + i;
        const float mean = sum[g] / count[g];
        const float var = std::max(sum_sq[g] / count[g] - mean * mean, 0.0f);
        y[at] = (static_cast<float>(x[at]) - mean) / std::sqrt(var + eps);
      }
  return y;
}

/// Checks a norm in float against the oracle on case `c`: the forward output (and, for
/// Constant data with batch statistics, y == beta exactly), the saved statistics, and dx, dgamma, dbeta, first
/// written and then accumulated by a second use of the same inputs.
inline void check_norm_against_oracle(const NormUnderTest& norm, const NormCase& c) {
  INFO(c.describe());
  const oracle::NormShape& s = c.shape;
  Tensor<float> x = norm_input<float>(s, c.data, 17);
  auto [gamma, beta] = norm_affine<float>(s.C, c.affine, 23);
  const std::vector<double> x64 = to_double(x), gamma64 = to_double(gamma), beta64 = to_double(beta);

  oracle::NormStatistics<double> stats = oracle::norm_statistics(x64, s, norm.grouping);
  const bool statistics_from_x = norm.fixed_mean.empty();
  if (!statistics_from_x) {
    stats.mean = norm.fixed_mean;
    stats.var = norm.fixed_var;
  }
  const std::vector<double> y_ref = oracle::norm_forward(x64, s, norm.grouping, stats.mean, stats.var,
                                                         gamma64, beta64, norm.eps, c.fuse_relu);

  // Saved statistics: mean within 1e-6 standard deviations, rstd within 1e-5 relative.
  std::vector<double> mean, rstd;
  norm.saved_statistics(x, gamma, beta, mean, rstd);
  REQUIRE(mean.size() == static_cast<size_t>(norm.grouping.count));
  for (int64_t g = 0; g < norm.grouping.count; ++g) {
    const double rstd_ref = 1.0 / std::sqrt(stats.var[g] + norm.eps);
    INFO("group " << g << ": mean " << mean[g] << " vs " << stats.mean[g] << ", rstd " << rstd[g]
                  << " vs " << rstd_ref);
    CHECK(std::abs(mean[g] - stats.mean[g]) * rstd_ref <= 1e-6);
    CHECK(std::abs(rstd[g] - rstd_ref) <= 1e-5 * rstd_ref);
  }

  // Forward and backward through the op.
  x.set_requires_grad();
  if (c.affine) {
    gamma.set_requires_grad();
    beta.set_requires_grad();
  }
  Tensor<float> y = norm.op(x, gamma, beta);
  REQUIRE(y.shape() == x.shape());
  double beta_scale = 1;  // the bound above is 4u * (max(1, |beta|) + |y|)
  for (double b : beta64) beta_scale = std::max(beta_scale, std::abs(b));
  require_close("y", y.data(), y_ref.data(), s.numel(), kOutputTolerance * beta_scale, kOutputTolerance);
  if (c.data == NormData::Constant && statistics_from_x) {
    // x - mean is exactly 0: y is beta (or relu(beta)) to the last bit.
    std::vector<float> exact(y_ref.begin(), y_ref.end());
    CHECK(std::equal(exact.begin(), exact.end(), y.data()));
  }
  if (c.data == NormData::Offset && statistics_from_x && !c.affine && !c.fuse_relu &&
      stats.count[0] > 1) {
    const std::vector<double> naive = naive_float_norm(x64, s, norm.grouping, norm.eps);
    INFO("float sum / sum-of-squares statistics must fail this comparison");
    CHECK(normalized_error(naive.data(), y_ref.data(), s.numel(), kOutputTolerance,
                           kOutputTolerance) > 1.0);
  }

  const Tensor<float> dy = random_tensor<float>(x.shape(), 29);
  const oracle::NormGradients<double> ref =
      oracle::norm_backward(x64, to_double(dy), c.fuse_relu ? y_ref : std::vector<double>{}, s,
                            norm.grouping, stats.mean, stats.var, gamma64, norm.eps, statistics_from_x);
  // dx = rstd * gamma_c * g + (terms of the same size): when they cancel (a group of one
  // element has dx = 0) the error is relative to that first term.
  // dgamma_c = sum(g * x_hat) and dbeta_c = sum(g) are float sums that can cancel: their error is
  // relative to the sums of |terms| (the standard bound for floating-point summation).
  double dx_terms = 0, dgamma_terms = 0, dbeta_terms = 0;
  std::vector<double> abs_g_xhat(s.C, 0.0), abs_g(s.C, 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t ch = 0; ch < s.C; ++ch) {
      const int64_t g = norm.grouping.of(n, ch);
      const double gamma_c = gamma64.empty() ? 1.0 : gamma64[ch];
      const double rstd_g = 1.0 / std::sqrt(stats.var[g] + norm.eps);
      for (int64_t i = 0; i < s.plane(); ++i) {
        const int64_t at = (n * s.C + ch) * s.plane() + i;
        const double dy_i = dy.data()[at];
        dx_terms = std::max(dx_terms, std::abs(gamma_c * dy_i) * rstd_g);
        const double masked = c.fuse_relu && !(y_ref[at] > 0) ? 0.0 : dy_i;
        abs_g_xhat[ch] += std::abs(masked * (x64[at] - stats.mean[g]) * rstd_g);
        abs_g[ch] += std::abs(masked);
      }
    }
  for (int64_t ch = 0; ch < s.C; ++ch) {
    dgamma_terms = std::max(dgamma_terms, abs_g_xhat[ch]);
    dbeta_terms = std::max(dbeta_terms, abs_g[ch]);
  }
  backward_from(y, dy);
  require_close_to_scale("dx", x.grad().data(), ref.dx, kGradientTolerance, dx_terms);
  const float* dx = x.grad().data();
  CHECK(std::all_of(dx, dx + x.numel(), [](float v) { return std::isfinite(v); }));
  if (c.affine) {
    require_close_to_scale("dgamma", gamma.grad().data(), ref.dgamma, kGradientTolerance, dgamma_terms);
    require_close_to_scale("dbeta", beta.grad().data(), ref.dbeta, kGradientTolerance, dbeta_terms);
  }

  // A second use of the same inputs adds its gradients to the first ones.
  Tensor<float> y2 = norm.op(x, gamma, beta);
  backward_from(y2, dy);
  auto doubled = [](std::vector<double> v) {
    for (double& e : v) e *= 2;
    return v;
  };
  require_close_to_scale("dx accumulated", x.grad().data(), doubled(ref.dx), kGradientTolerance,
                         2 * dx_terms);
  if (c.affine) {
    require_close_to_scale("dgamma accumulated", gamma.grad().data(), doubled(ref.dgamma),
                           kGradientTolerance, 2 * dgamma_terms);
    require_close_to_scale("dbeta accumulated", beta.grad().data(), doubled(ref.dbeta),
                           kGradientTolerance, 2 * dbeta_terms);
  }
}

/// Gradcheck settings for a norm on `data`. On offset data every output carries a rounding error
/// of about ulp(100) * rstd = 1.4e-12, so the difference quotient's noise is ~1e-6 at the default
/// step: the absolute tolerance is raised to 1e-5 (gradients there are O(1)).
inline GradcheckOptions norm_gradcheck_options(NormData data) {
  GradcheckOptions options;
  if (data == NormData::Offset) options.abs_tolerance = 1e-5;
  return options;
}

/// The smallest |entry| of a norm's output without ReLU: a fused-ReLU gradcheck is only valid
/// when no finite-difference step moves an entry across the kink at 0.
template <typename T>
double distance_from_kink(const Tensor<T>& pre_relu) {
  double closest = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < pre_relu.numel(); ++i)
    closest = std::min(closest, std::abs(static_cast<double>(pre_relu.data()[i])));
  return closest;
}

}  // namespace normlab::testing
