// BatchNorm2d CPU kernels: fused forward (statistics, running-statistics update, normalise +
// affine (+ ReLU (+ dropout))) and fused backward (gradient sums, dgamma/dbeta, dx), built from the passes
// of norm_passes.hpp. The maths is in kernels/normlab/common/norm_math.hpp and docs/kernels.md.
//
// Layout: x, y, dy, dx are NCHW, viewed as [N, C, HW]; gamma, beta, the running statistics and
// the saved statistics (mean, rstd, in double) are [C]. Channel c's statistics group is the N
// planes x[n, c, :], HW contiguous elements each, C*HW apart.
//
// Threads: one channel per OpenMP thread at a time (static schedule over C). A thread computes the
// channel's statistics, then normalises the channel while its planes are still in its L2 (a
// channel of the CIFAR model is at most 64 x 32 x 32 floats = 256 KiB), so the channels, not the
// batch, spread the work: 16-64 channels keep 2 threads equally busy. The channel's N per-plane
// moments (or gradient sums) are merged in plane order on that one thread, so every result is
// bit-identical for any thread count and schedule.
//
// Passes over memory, per channel: forward reads x twice (statistics; normalise, from L2) and
// writes y once. Backward reads x, dy (and the saved y for a fused ReLU) twice (sums; dx, from
// L2 when it fits) and writes dx once; dgamma and dbeta come from the sums. Statistics and
// gradient sums accumulate in T lanes over chunks of <= 1024 elements, then in double.
#pragma once

#include <cstdint>

#include "normlab/common/norm_math.hpp"
#include "normlab/cpu/norm_passes.hpp"

namespace normlab::cpu {

/// Normalises x per channel and writes y = gamma * (x - mean) * rstd + beta (then ReLU if
/// fuse_relu, then the dropout factor of `dropout` if active); gamma/beta may be null (1/0). With batch_statistics, mean and the biased variance
/// are those of x over (N, HW); if running_mean/running_var are not null they become
/// (1 - momentum) * running + momentum * batch, with the unbiased variance. Without
/// batch_statistics, mean/var are running_mean/running_var (then required), left unchanged.
/// Ensures: mean[c], rstd[c] = 1 / sqrt(var + eps) saved for the backward.
/// Requires: N, HW >= 1; N * HW >= 2 if batch_statistics and running statistics are updated.
template <typename T>
void batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                        T* y, double* mean, double* rstd, int64_t N, int64_t C, int64_t HW,
                        bool batch_statistics, double momentum, double eps, bool fuse_relu,
                        const DropoutDraw& dropout = {}) {
  const int64_t plane_stride = C * HW;
#pragma omp parallel for schedule(static) if (N * C * HW >= norm_detail::kParallelThreshold)
  for (int64_t c = 0; c < C; ++c) {
    const T* xc = x + c * HW;
    if (batch_statistics) {
      WelfordState<double> stats;
      for (int64_t n = 0; n < N; ++n) stats = welford_merge(stats, range_moments(xc + n * plane_stride, HW));
      mean[c] = stats.mean;
      rstd[c] = inverse_std(welford_variance(stats), eps);
      if (running_mean != nullptr) {
        const double unbiased_var = stats.m2 / (stats.count - 1);
        running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * stats.mean);
        running_var[c] = static_cast<T>((1 - momentum) * running_var[c] + momentum * unbiased_var);
      }
    } else {
      mean[c] = static_cast<double>(running_mean[c]);
      rstd[c] = inverse_std(static_cast<double>(running_var[c]), eps);
    }
    const ChannelAffine<T> affine =
        channel_affine<T>(mean[c], rstd[c], gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0,
                          beta != nullptr ? static_cast<double>(beta[c]) : 0.0);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t first = n * plane_stride + c * HW;
      normalize_range(x + first, y + first, HW, affine, fuse_relu, dropout, first);
    }
  }
}

/// Backward of batch_norm_forward with the same x, gamma, sizes and saved mean/rstd. g = dy, or
/// with a fused epilogue dy * fused.grad_scale where fused.output (the forward's saved y) > 0. Ensures, for each non-null output: dgamma[c] (+)= sum(g * x_hat), dbeta[c] (+)= sum(g)
/// over the channel; dx (+)= the input gradient: with batch_statistics the full one (mean and
/// rstd depend on x), without it (running statistics, constants) rstd * gamma * g.
template <typename T>
void batch_norm_backward(const T* x, const FusedOutput<T>& fused, const T* dy, const T* gamma,
                         const double* mean, const double* rstd, GradientOut<T> dx,
                         GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                         int64_t HW, bool batch_statistics) {
  const int64_t plane_stride = C * HW;
  const bool need_sums = dgamma.data != nullptr || dbeta.data != nullptr ||
                         (dx.data != nullptr && batch_statistics);
#pragma omp parallel for schedule(static) if (N * C * HW >= norm_detail::kParallelThreshold)
  for (int64_t c = 0; c < C; ++c) {
    const int64_t first = c * HW;
    const auto plane = [&](auto* base, int64_t n) {  // plane (n, c) of a tensor, or null
      return base == nullptr ? base : base + first + n * plane_stride;
    };
    const auto fused_plane = [&](int64_t n) { return FusedOutput<T>{plane(fused.output, n), fused.grad_scale}; };
    GradSums sums;
    if (need_sums) {
      const ChannelAffine<T> xhat = channel_affine<T>(mean[c], rstd[c], 1.0, 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const GradSums s = range_grad_sums(plane(x, n), fused_plane(n), plane(dy, n), HW, xhat);
        sums.g += s.g;
        sums.g_xhat += s.g_xhat;
      }
    }
    dgamma.store(c, sums.g_xhat);
    dbeta.store(c, sums.g);
    if (dx.data == nullptr) continue;
    const double gamma_c = gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0;
    const NormBackwardCoefficients<double> k =
        batch_statistics ? norm_backward_coefficients(gamma_c * sums.g, gamma_c * sums.g_xhat,
                                                      rstd[c], static_cast<double>(N * HW))
                         : NormBackwardCoefficients<double>{0.0, 0.0};
    const InputGradAffine<T> affine = input_grad_affine<T>(mean[c], rstd[c], gamma_c, k);
    for (int64_t n = 0; n < N; ++n) {
      input_grad_range(plane(x, n), fused_plane(n), plane(dy, n), plane(dx.data, n), HW,
                       affine, dx.accumulate);
    }
  }
}

}  // namespace normlab::cpu
