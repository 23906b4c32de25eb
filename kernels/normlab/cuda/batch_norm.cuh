// BatchNorm2d on the GPU: the launchers of normlab::cuda, the CUDA twins of
// cpu/batch_norm.hpp's kernels, built from the plane kernels of norm_passes.cuh with one
// statistics group per channel (its N planes of HW elements, C*HW apart).
//
// Training forward: norm_plane_moments (one warp per (plane, chunk): N*C*ceil(HW/chunk) warps, so
// 16 channels of a CIFAR batch still fill the GPU), norm_finalize_statistics (one block per
// channel merges its N*ceil(HW/chunk) partial states in double, saves mean/rstd, updates the
// running statistics with the unbiased variance and momentum, folds gamma/beta), norm_normalize
// (+ ReLU). Evaluation forward: the same without the first launch; the running statistics
// normalise. Backward: norm_plane_grad_sums, norm_finalize_input_grad, norm_input_grad,
// norm_param_grads; dgamma and dbeta come from the same per-(plane, chunk) sums as dx.
// Layout, passes over memory, precision and determinism: norm_passes.cuh.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normlab/core/error.hpp"
#include "normlab/cuda/norm_passes.cuh"

namespace normlab::cuda {

/// Ensures: the bytes of device workspace batch_norm_forward needs for these sizes.
template <typename T>
size_t batch_norm_forward_workspace_bytes(int64_t N, int64_t C, int64_t HW, bool batch_statistics,
                                          const NormLaunchConfig& config = {}) {
  return norm_detail::ForwardWorkspace<T>::bytes(norm_detail::make_layout(N, C, HW, 0, config),
                                                 batch_statistics);
}

/// Ensures: the bytes of device workspace batch_norm_backward needs for these sizes.
template <typename T>
size_t batch_norm_backward_workspace_bytes(int64_t N, int64_t C, int64_t HW,
                                           const NormLaunchConfig& config = {}) {
  return norm_detail::BackwardWorkspace<T>::bytes(norm_detail::make_layout(N, C, HW, 0, config));
}

/// All pointers are device memory. Normalises x ([N, C, HW]) per channel and writes y = gamma_c *
/// (x - mean_c) * rstd_c + beta_c, then max(y, 0) if fuse_relu; gamma/beta may be null (1/0).
/// With batch_statistics, mean and the biased variance are those of x over (N, HW), and
/// running_mean/running_var, if not null, become (1 - momentum) * running + momentum * batch
/// with the unbiased variance; without it, they are the statistics (then required), unchanged.
/// Requires: N, C, HW >= 1; N * HW >= 2 if batch_statistics and running statistics are updated;
/// eps > 0; 0 <= momentum <= 1; `workspace` holds batch_norm_forward_workspace_bytes<T>(N, C,
/// HW, batch_statistics, config) bytes, 256-byte aligned. Ensures: mean[c] and rstd[c] = 1 /
/// sqrt(var + eps) saved in double for the backward. Kernels are queued on `stream`.
template <typename T>
void batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                        T* y, double* mean, double* rstd, int64_t N, int64_t C, int64_t HW,
                        bool batch_statistics, double momentum, double eps, bool fuse_relu,
                        void* workspace, cudaStream_t stream = nullptr,
                        const NormLaunchConfig& config = {}) {
  const char* op = "cuda::batch_norm_forward";
  norm_detail::check_planes(op, N, C, HW, config);
  norm_detail::check_eps(op, eps);
  NORMLAB_CHECK(momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ", momentum);
  NORMLAB_CHECK((running_mean == nullptr) == (running_var == nullptr), op,
                ": running_mean and running_var must both be given or both be null");
  NORMLAB_CHECK(batch_statistics || running_mean != nullptr, op,
                ": evaluation (no batch statistics) needs running_mean and running_var");
  NORMLAB_CHECK(!batch_statistics || N * HW > 1, op,
                ": batch statistics need more than 1 value per channel, got N = ", N,
                ", HW = ", HW);
  for (const auto& [p, name] : {std::pair<const void*, const char*>{x, "x"},
                                {y, "y"},
                                {mean, "mean"},
                                {rstd, "rstd"},
                                {workspace, "workspace"}})
    norm_detail::check_pointer(op, p, name);
  norm_detail::norm_forward(norm_detail::make_layout(N, C, HW, 0, config), x, gamma, beta,
                            running_mean, running_var, y, mean, rstd, batch_statistics, momentum,
                            eps, fuse_relu, workspace, stream);
}

/// Backward of batch_norm_forward with the same x, gamma, sizes, saved mean/rstd and config;
/// all pointers are device memory. g = dy, or where a ReLU was fused, dy where relu_output (the
/// forward's y) > 0 and 0 elsewhere (relu_output null: no ReLU). Ensures, for each non-null
/// output: dgamma[c] (+)= sum(g * x_hat), dbeta[c] (+)= sum(g) over the channel; dx (+)= the input
/// gradient: with batch_statistics the full one, without it rstd * gamma * g.
/// Requires: `workspace` holds batch_norm_backward_workspace_bytes<T>(N, C, HW, config) bytes.
template <typename T>
void batch_norm_backward(const T* x, const T* relu_output, const T* dy, const T* gamma,
                         const double* mean, const double* rstd, GradientOut<T> dx,
                         GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                         int64_t HW, bool batch_statistics, void* workspace,
                         cudaStream_t stream = nullptr, const NormLaunchConfig& config = {}) {
  const char* op = "cuda::batch_norm_backward";
  norm_detail::check_planes(op, N, C, HW, config);
  for (const auto& [p, name] : {std::pair<const void*, const char*>{x, "x"},
                                {dy, "dy"},
                                {mean, "mean"},
                                {rstd, "rstd"},
                                {workspace, "workspace"}})
    norm_detail::check_pointer(op, p, name);
  norm_detail::norm_backward(norm_detail::make_layout(N, C, HW, 0, config), x, relu_output, dy,
                             gamma, mean, rstd, batch_statistics, dx, dgamma, dbeta, workspace,
                             stream);
}

}  // namespace normlab::cuda
