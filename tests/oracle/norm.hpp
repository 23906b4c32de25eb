// Naive reference implementations (oracles) of BatchNorm, GroupNorm and LayerNorm on NCHW data,
// templated, run in double. Written straight from the definitions: every element belongs to one
// statistics group (BatchNorm: its channel; GroupNorm: its sample and group of channels), the
// statistics are a two-pass mean and biased variance over the group, and the backward is the
// textbook formula dx = rstd / M * (M * g' - sum(g') - x_hat * sum(g' * x_hat)) with
// g' = gamma_c * g. None of the kernels' tricks (shifted sums, lanes, folded affines) appear here.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace normlab::oracle {

struct NormShape {
  int64_t N, C, H, W;
  int64_t plane() const { return H * W; }
  int64_t numel() const { return N * C * H * W; }
};

/// The statistics group of each (sample, channel): groups are numbered 0 .. count-1.
struct NormGrouping {
  int64_t count;
  std::function<int64_t(int64_t n, int64_t c)> of;
};

inline NormGrouping batch_norm_grouping(const NormShape& s) {
  return {s.C, [](int64_t, int64_t c) { return c; }};
}

/// Requires: G divides s.C. (LayerNorm is G = 1.)
inline NormGrouping group_norm_grouping(const NormShape& s, int64_t G) {
  const int64_t per_group = s.C / G;
  return {s.N * G, [=](int64_t n, int64_t c) { return n * G + c / per_group; }};
}

template <typename T>
struct NormStatistics {
  std::vector<T> mean, var;  // biased variance
  std::vector<int64_t> count;
};

/// Two-pass mean and biased variance of each group.
template <typename T>
NormStatistics<T> norm_statistics(const std::vector<T>& x, const NormShape& s,
                                  const NormGrouping& grouping) {
  NormStatistics<T> st{std::vector<T>(grouping.count, T(0)), std::vector<T>(grouping.count, T(0)),
                       std::vector<int64_t>(grouping.count, 0)};
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const int64_t g = grouping.of(n, c);
        st.mean[g] += x[(n * s.C + c) * s.plane() + i];
        st.count[g] += 1;
      }
  for (int64_t g = 0; g < grouping.count; ++g) st.mean[g] /= static_cast<T>(st.count[g]);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const int64_t g = grouping.of(n, c);
        const T d = x[(n * s.C + c) * s.plane() + i] - st.mean[g];
        st.var[g] += d * d;
      }
  for (int64_t g = 0; g < grouping.count; ++g) st.var[g] /= static_cast<T>(st.count[g]);
  return st;
}

/// y = gamma_c * (x - mean) / sqrt(var + eps) + beta_c, then max(y, 0) if relu. An empty gamma
/// (beta) means 1 (0).
template <typename T>
std::vector<T> norm_forward(const std::vector<T>& x, const NormShape& s, const NormGrouping& grouping,
                            const std::vector<T>& mean, const std::vector<T>& var,
                            const std::vector<T>& gamma, const std::vector<T>& beta, T eps, bool relu) {
  std::vector<T> y(x.size());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t i = 0; i < s.plane(); ++i) {
        const int64_t g = grouping.of(n, c), at = (n * s.C + c) * s.plane() + i;
        const T x_hat = (x[at] - mean[g]) / std::sqrt(var[g] + eps);
        const T v = (gamma.empty() ? T(1) : gamma[c]) * x_hat + (beta.empty() ? T(0) : beta[c]);
        y[at] = relu && v < T(0) ? T(0) : v;
      }
  return y;
}

template <typename T>
struct NormGradients {
  std::vector<T> dx, dgamma, dbeta;
};

/// Gradients of norm_forward for output gradient dy. relu_output: the forward's y if its ReLU was
/// fused (dy only flows where y > 0), else empty. With statistics_from_x the mean and variance are
/// functions of x (batch statistics); otherwise they are constants (BatchNorm in eval mode).
template <typename T>
NormGradients<T> norm_backward(const std::vector<T>& x, const std::vector<T>& dy,
                               const std::vector<T>& relu_output, const NormShape& s,
                               const NormGrouping& grouping, const std::vector<T>& mean,
                               const std::vector<T>& var, const std::vector<T>& gamma, T eps,
                               bool statistics_from_x) {
  NormGradients<T> r{std::vector<T>(x.size()), std::vector<T>(s.C, T(0)), std::vector<T>(s.C, T(0))};
  std::vector<T> sum_gg(grouping.count, T(0)), sum_gg_xhat(grouping.count, T(0));
  std::vector<int64_t> count(grouping.count, 0);
  auto visit = [&](auto&& f) {
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t i = 0; i < s.plane(); ++i) {
          const int64_t g = grouping.of(n, c), at = (n * s.C + c) * s.plane() + i;
          const T rstd = T(1) / std::sqrt(var[g] + eps);
          const T x_hat = (x[at] - mean[g]) * rstd;
          const T grad = relu_output.empty() || relu_output[at] > T(0) ? dy[at] : T(0);
          f(g, c, at, rstd, x_hat, grad, gamma.empty() ? T(1) : gamma[c]);
        }
  };
  visit([&](int64_t g, int64_t c, int64_t, T, T x_hat, T grad, T gamma_c) {
    r.dgamma[c] += grad * x_hat;
    r.dbeta[c] += grad;
    sum_gg[g] += gamma_c * grad;
    sum_gg_xhat[g] += gamma_c * grad * x_hat;
    count[g] += 1;
  });
  visit([&](int64_t g, int64_t, int64_t at, T rstd, T x_hat, T grad, T gamma_c) {
    if (!statistics_from_x) {
      r.dx[at] = rstd * gamma_c * grad;
      return;
    }
    const T M = static_cast<T>(count[g]);
    r.dx[at] = rstd / M * (M * gamma_c * grad - sum_gg[g] - x_hat * sum_gg_xhat[g]);
  });
  return r;
}

/// PyTorch's running-statistics update: running = (1 - momentum) * running + momentum * batch,
/// with the unbiased batch variance var * count / (count - 1).
template <typename T>
void update_running_statistics(std::vector<T>& running_mean, std::vector<T>& running_var,
                               const NormStatistics<T>& batch, T momentum) {
  for (size_t c = 0; c < running_mean.size(); ++c) {
    const T count = static_cast<T>(batch.count[c]);
    running_mean[c] = (1 - momentum) * running_mean[c] + momentum * batch.mean[c];
    running_var[c] = (1 - momentum) * running_var[c] + momentum * batch.var[c] * count / (count - 1);
  }
}

}  // namespace normlab::oracle
