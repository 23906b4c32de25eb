// GroupNorm on the GPU (and so InstanceNorm, G = C, and the comparison's LayerNorm, G = 1, in
// layer_norm.cuh): the launchers of normlab::cuda, the CUDA twins of cpu/group_norm.hpp's kernels,
// built from the plane kernels of norm_passes.cuh with one statistics group per (sample, group of
// C/G consecutive channels): C/G contiguous planes.
//
// Forward: norm_plane_moments (one warp per (plane, chunk)), norm_finalize_statistics (one block
// per (n, g) merges the group's partial states in double, saves mean/rstd and folds gamma/beta
// into each plane's (center, scale, shift): a per-(n, c) scale and shift, so that normalising is
// one subtract and one FMA per element), norm_normalize (+ ReLU). Backward: per-(plane, chunk)
// sums of g and g * x_hat (norm_plane_grad_sums), per-group coefficients from sum_c gamma_c *
// those sums (norm_finalize_input_grad), one elementwise pass for dx (norm_input_grad), and
// dgamma/dbeta per channel from the same per-plane sums in a fixed order (norm_param_grads): x and
// dy are not read again. Layout, passes, precision and determinism: norm_passes.cuh.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normlab/cuda/norm_passes.cuh"

namespace normlab::cuda {

/// Ensures: the bytes of device workspace group_norm_forward needs for these sizes.
template <typename T>
size_t group_norm_forward_workspace_bytes(int64_t N, int64_t C, int64_t HW, int64_t G,
                                          const NormLaunchConfig& config = {}) {
  return norm_detail::ForwardWorkspace<T>::bytes(norm_detail::make_layout(N, C, HW, G, config),
                                                 true);
}

/// Ensures: the bytes of device workspace group_norm_backward needs for these sizes.
template <typename T>
size_t group_norm_backward_workspace_bytes(int64_t N, int64_t C, int64_t HW, int64_t G,
                                           const NormLaunchConfig& config = {}) {
  return norm_detail::BackwardWorkspace<T>::bytes(norm_detail::make_layout(N, C, HW, G, config));
}

namespace norm_detail {

inline void check_groups(const char* op, int64_t N, int64_t C, int64_t HW, int64_t G,
                         const NormLaunchConfig& config) {
  check_planes(op, N, C, HW, config);
  NORMLAB_CHECK(G >= 1 && C % G == 0, op, ": the ", C, " channels do not split into ", G,
                " groups");
}

/// group_norm_forward with errors naming `op` (also cuda::layer_norm_forward).
template <typename T>
void group_norm_forward(const char* op, const T* x, const T* gamma, const T* beta, T* y,
                        double* mean, double* rstd, int64_t N, int64_t C, int64_t HW, int64_t G,
                        double eps, bool fuse_relu, void* workspace, cudaStream_t stream,
                        const NormLaunchConfig& config) {
  check_groups(op, N, C, HW, G, config);
  check_eps(op, eps);
  for (const auto& [p, name] : {std::pair<const void*, const char*>{x, "x"},
                                {y, "y"},
                                {mean, "mean"},
                                {rstd, "rstd"},
                                {workspace, "workspace"}})
    check_pointer(op, p, name);
  norm_forward<T>(make_layout(N, C, HW, G, config), x, gamma, beta, nullptr, nullptr, y, mean, rstd,
                  true, 0.0, eps, fuse_relu, workspace, stream);
}

/// group_norm_backward with errors naming `op` (also cuda::layer_norm_backward).
template <typename T>
void group_norm_backward(const char* op, const T* x, const T* relu_output, const T* dy,
                         const T* gamma, const double* mean, const double* rstd, GradientOut<T> dx,
                         GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                         int64_t HW, int64_t G, void* workspace, cudaStream_t stream,
                         const NormLaunchConfig& config) {
  check_groups(op, N, C, HW, G, config);
  for (const auto& [p, name] : {std::pair<const void*, const char*>{x, "x"},
                                {dy, "dy"},
                                {mean, "mean"},
                                {rstd, "rstd"},
                                {workspace, "workspace"}})
    check_pointer(op, p, name);
  norm_backward(make_layout(N, C, HW, G, config), x, relu_output, dy, gamma, mean, rstd, true, dx,
                dgamma, dbeta, workspace, stream);
}

}  // namespace norm_detail

/// All pointers are device memory. Normalises each group (n, g) of C/G channels of x ([N, C, HW])
/// and writes y = gamma_c * (x - mean) * rstd + beta_c, then max(y, 0) if fuse_relu; gamma/beta
/// may be null (1/0). Requires: N, C, HW >= 1; G >= 1 divides C; eps > 0; `workspace` holds
/// group_norm_forward_workspace_bytes<T>(N, C, HW, G, config) bytes, 256-byte aligned.
/// Ensures: mean[n*G + g] and rstd[n*G + g] = 1 / sqrt(biased var + eps), in double.
template <typename T>
void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean, double* rstd,
                        int64_t N, int64_t C, int64_t HW, int64_t G, double eps, bool fuse_relu,
                        void* workspace, cudaStream_t stream = nullptr,
                        const NormLaunchConfig& config = {}) {
  norm_detail::group_norm_forward("cuda::group_norm_forward", x, gamma, beta, y, mean, rstd, N, C,
                                  HW, G, eps, fuse_relu, workspace, stream, config);
}

/// Backward of group_norm_forward with the same x, gamma, sizes, saved mean/rstd and config; all
/// pointers are device memory. g = dy, or dy where relu_output (the forward's y, when a ReLU was
/// fused) > 0 and 0 elsewhere. Ensures, for each non-null output: dx (+)= the input gradient,
/// dgamma[c] (+)= sum over (n, HW) of g * x_hat, dbeta[c] (+)= sum of g.
/// Requires: `workspace` holds group_norm_backward_workspace_bytes<T>(N, C, HW, G, config) bytes.
template <typename T>
void group_norm_backward(const T* x, const T* relu_output, const T* dy, const T* gamma,
                         const double* mean, const double* rstd, GradientOut<T> dx,
                         GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                         int64_t HW, int64_t G, void* workspace, cudaStream_t stream = nullptr,
                         const NormLaunchConfig& config = {}) {
  norm_detail::group_norm_backward("cuda::group_norm_backward", x, relu_output, dy, gamma, mean,
                                   rstd, dx, dgamma, dbeta, N, C, HW, G, workspace, stream, config);
}

}  // namespace normlab::cuda
