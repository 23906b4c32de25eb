// GroupNorm CPU kernels (and so LayerNorm = GroupNorm with G = 1, and InstanceNorm = G = C):
// fused forward (statistics, normalise + per-channel affine (+ ReLU (+ dropout))) and fused backward
// (per-(n, c) gradient sums, per-group coefficients, dx, then dgamma/dbeta from the same sums),
// built from the passes of norm_passes.hpp. Maths: kernels/normlab/common/norm_math.hpp and
// docs/kernels.md.
//
// Layout: x, y, dy, dx are NCHW, viewed as [N, G, C/G * HW]: group (n, g) is one contiguous run of
// C/G planes. gamma, beta are [C]; the saved statistics (mean, rstd, in double) are [N, G].
//
// Threads: one group per OpenMP thread at a time (static schedule over N*G). A thread computes
// the group's statistics over its contiguous run, then normalises it while the run is in its
// cache (a CIFAR group is at most 32 x 32 x 32 floats = 128 KiB, within L2). The backward's
// per-(n, c) sums go to a workspace and are folded into dgamma/dbeta per channel in sample order
// after all groups are done. Each group is handled start to finish by one thread, so every result
// is bit-identical for any thread count and schedule.
//
// Passes over memory, per group: forward reads x twice (statistics; normalise, from cache) and
// writes y once. Backward reads x, dy (and the saved y for a fused ReLU) twice (sums; dx, from
// cache) and writes dx once; dgamma/dbeta read only the workspace. Statistics and gradient sums
// accumulate in T lanes over chunks of <= 1024 elements, then in double.
#pragma once

#include <cstdint>

#include "normlab/common/norm_math.hpp"
#include "normlab/cpu/norm_passes.hpp"

namespace normlab::cpu {

/// Normalises each group (n, g) of C/G channels and writes y = gamma_c * (x - mean) * rstd +
/// beta_c (then ReLU if fuse_relu, then the dropout factor of `dropout` if active); gamma/beta may be null (1/0). Requires: G >= 1 divides C;
/// N, C, HW >= 1. Ensures: mean[n*G + g] and rstd[n*G + g] = 1 / sqrt(biased var + eps).
template <typename T>
void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean,
                        double* rstd, int64_t N, int64_t C, int64_t HW, int64_t G, double eps,
                        bool fuse_relu, const DropoutDraw& dropout = {}) {
  const int64_t channels_per_group = C / G, group_size = channels_per_group * HW;
#pragma omp parallel for schedule(static) if (N * C * HW >= norm_detail::kParallelThreshold)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const WelfordState<double> stats = range_moments(x + ng * group_size, group_size);
    mean[ng] = stats.mean;
    rstd[ng] = inverse_std(welford_variance(stats), eps);
    for (int64_t j = 0; j < channels_per_group; ++j) {
      const int64_t c = (ng % G) * channels_per_group + j, offset = ng * group_size + j * HW;
      const ChannelAffine<T> affine = channel_affine<T>(
          mean[ng], rstd[ng], gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0,
          beta != nullptr ? static_cast<double>(beta[c]) : 0.0);
      normalize_range(x + offset, y + offset, HW, affine, fuse_relu, dropout, offset);
    }
  }
}

/// Elements of double workspace group_norm_backward needs.
inline int64_t group_norm_backward_workspace_size(int64_t N, int64_t C) { return 2 * N * C; }

/// Backward of group_norm_forward with the same x, gamma, sizes and saved mean/rstd. g = dy, or
/// with a fused epilogue dy * fused.grad_scale where fused.output (the forward's saved y) > 0.
/// Requires: workspace of group_norm_backward_workspace_size(N, C) doubles. Ensures, for
/// each non-null output: dx (+)= the input gradient, dgamma[c] (+)= sum over (n, HW) of
/// g * x_hat, dbeta[c] (+)= sum of g.
template <typename T>
void group_norm_backward(const T* x, const FusedOutput<T>& fused, const T* dy, const T* gamma,
                         const double* mean, const double* rstd, GradientOut<T> dx,
                         GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                         int64_t HW, int64_t G, double* workspace) {
  const int64_t channels_per_group = C / G, group_size = channels_per_group * HW;
  double* plane_sum_g = workspace;               // [N, C]: sum(g) of plane (n, c)
  double* plane_sum_g_xhat = workspace + N * C;  // [N, C]: sum(g * x_hat) of plane (n, c)
  const auto fused_at = [&](int64_t offset) {  // the fused epilogue's view of one range
    return FusedOutput<T>{fused.output == nullptr ? nullptr : fused.output + offset, fused.grad_scale};
  };
#pragma omp parallel if (N * C * HW >= norm_detail::kParallelThreshold)
  {
#pragma omp for schedule(static)
    for (int64_t ng = 0; ng < N * G; ++ng) {
      const ChannelAffine<T> xhat = channel_affine<T>(mean[ng], rstd[ng], 1.0, 0.0);
      const int64_t first_channel = (ng % G) * channels_per_group;
      const int64_t first_plane = (ng / G) * C + first_channel;  // plane index n*C + c
      GradSums group;  // sum(gamma_c * g), sum(gamma_c * g * x_hat) over the group
      for (int64_t j = 0; j < channels_per_group; ++j) {
        const int64_t offset = ng * group_size + j * HW;
        const GradSums s = range_grad_sums(x + offset, fused_at(offset), dy + offset, HW, xhat);
        plane_sum_g[first_plane + j] = s.g;
        plane_sum_g_xhat[first_plane + j] = s.g_xhat;
        const double gamma_c = gamma != nullptr ? static_cast<double>(gamma[first_channel + j]) : 1.0;
        group.g += gamma_c * s.g;
        group.g_xhat += gamma_c * s.g_xhat;
      }
      if (dx.data == nullptr) continue;
      const NormBackwardCoefficients<double> k = norm_backward_coefficients(
          group.g, group.g_xhat, rstd[ng], static_cast<double>(group_size));
      for (int64_t j = 0; j < channels_per_group; ++j) {
        const int64_t offset = ng * group_size + j * HW;
        const double gamma_c = gamma != nullptr ? static_cast<double>(gamma[first_channel + j]) : 1.0;
        input_grad_range(x + offset, fused_at(offset), dy + offset, dx.data + offset, HW,
                         input_grad_affine<T>(mean[ng], rstd[ng], gamma_c, k), dx.accumulate);
      }
    }
    if (dgamma.data != nullptr || dbeta.data != nullptr) {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < C; ++c) {
        double sum_g = 0, sum_g_xhat = 0;
        for (int64_t n = 0; n < N; ++n) {
          sum_g += plane_sum_g[n * C + c];
          sum_g_xhat += plane_sum_g_xhat[n * C + c];
        }
        dgamma.store(c, sum_g_xhat);
        dbeta.store(c, sum_g);
      }
    }
  }
}

}  // namespace normlab::cpu
