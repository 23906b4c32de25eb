// Differentiable normalisation ops on NCHW tensors: batch_norm2d, group_norm and layer_norm (the
// comparison's LayerNorm: over (C, H, W) per sample with a per-channel affine, exactly
// group_norm with one group). Each can apply the following ReLU, and a dropout after it, in its
// output pass (fuse_relu, FusedDropout).
// Kernels: the backend of the input's device (ops/backend.hpp): kernels/normlab/cpu/batch_norm.hpp,
// group_norm.hpp, or their CUDA twins; maths and design: docs/kernels.md, docs/cuda.md.
//
// The statistics the backward needs (mean and rstd = 1/sqrt(var + eps) per channel or group) are
// saved in double for both T = float and T = double; they are a few hundred numbers, and double
// keeps the mean of offset data exact to well below one input ulp.
#pragma once

#include <cstdint>

#include "normlab/autograd/tape.hpp"
#include "normlab/ops/checks.hpp"
#include "normlab/ops/cpu_backend.hpp"
#include "normlab/ops/elementwise.hpp"

namespace normlab::ops {

/// A dropout applied after a norm's fused ReLU, in the same pass: active when p > 0. It draws its
/// mask from *rng exactly as ops::dropout(relu(norm(x)), p, true, *rng) would, so the fused and
/// unfused forms give the same numbers. Pass p = 0 in evaluation.
struct FusedDropout {
  double p = 0;
  Rng* rng = nullptr;  // default_rng() when null
};

namespace norm_detail {

template <typename T>
void require_image(const char* op, const Tensor<T>& x) {
  ops::detail::require_rank(op, "x", x, 4);
  NORMLAB_CHECK(x.numel() > 0, op, ": input ", x.shape().str(), " is empty");
}

/// Requires: t is undefined, or a [C] tensor on x's device for input x of shape [N, C, H, W].
template <typename T>
void require_per_channel(const char* op, const char* name, const Tensor<T>& t, const Tensor<T>& x) {
  if (!t.defined()) return;
  NORMLAB_CHECK(t.rank() == 1 && t.size(0) == x.size(1), op, ": '", name, "' must have shape [",
                x.size(1), "] (one value per channel of input ", x.shape().str(), "), got ",
                t.shape().str());
  ops::detail::require_same_device(op, x, t);
}

template <typename T>
T* data_or_null(const Tensor<T>& t) {
  return t.defined() ? t.data() : nullptr;
}

/// Checks `dropout` for `op` and draws its mask over n elements (inactive if p == 0).
inline DropoutDraw fused_dropout_draw(const char* op, const FusedDropout& dropout, bool fuse_relu,
                                           int64_t n) {
  if (dropout.p == 0) return {};
  NORMLAB_CHECK(dropout.p > 0 && dropout.p < 1, op, ": dropout probability must be in [0, 1), got ",
                dropout.p);
  NORMLAB_CHECK(fuse_relu, op, ": a fused dropout needs the fused ReLU (its backward reads the mask from y > 0)");
  return ops::detail::draw_dropout(dropout.p, dropout.rng != nullptr ? *dropout.rng : default_rng(), n);
}

/// group_norm and layer_norm, with error messages naming `op`.
template <typename T>
Tensor<T> group_norm(const char* op, const Tensor<T>& x, int64_t groups, const Tensor<T>& gamma,
                     const Tensor<T>& beta, double eps, bool fuse_relu, const FusedDropout& dropout) {
  require_image(op, x);
  require_per_channel(op, "gamma", gamma, x);
  require_per_channel(op, "beta", beta, x);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  NORMLAB_CHECK(groups >= 1 && C % groups == 0, op, ": the ", C, " channels of input ",
                x.shape().str(), " do not split into ", groups, " groups");
  NORMLAB_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  const DropoutDraw draw = fused_dropout_draw(op, dropout, fuse_relu, x.numel());
  Backend<T>& kernels = ops::detail::backend_for<T>(op, x.device());
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  Tensor<double> mean = Tensor<double>::empty({N, groups}, x.device()),
                 rstd = Tensor<double>::empty({N, groups}, x.device());
  kernels.group_norm_forward(x.data(), data_or_null(gamma), data_or_null(beta), y.data(), mean.data(),
                             rstd.data(), N, C, HW, groups, eps, fuse_relu, draw);
  if (autograd::needs_grad(x, gamma, beta)) {
    const Tensor<T> saved_y = fuse_relu ? y.detach() : Tensor<T>();
    autograd::record(op, y, [&kernels, x, gamma, beta, saved_y, draw, mean, rstd, groups](const Tensor<T>& dy) {
      using autograd::gradient_out;
      kernels.group_norm_backward(x.data(), data_or_null(saved_y), draw, dy.data(), data_or_null(gamma),
                                  mean.data(), rstd.data(), gradient_out(x), gradient_out(gamma),
                                  gradient_out(beta), x.size(0), x.size(1), x.size(2) * x.size(3),
                                  groups);
    });
  }
  return y;
}

}  // namespace norm_detail

/// Requires: x is [N, C, H, W], non-empty; gamma, beta, running_mean, running_var are each
/// undefined or [C] (the running pair both or neither); 0 <= momentum <= 1; eps > 0; with batch
/// statistics, N*H*W >= 2.
/// Ensures (as torch.nn.functional.batch_norm): batch statistics are used when training, or when
/// there are no running statistics (track_running_stats=False); then mean and biased variance
/// are over (N, H, W) per channel, and defined running statistics are updated in place in
/// training: running = (1 - momentum) * running + momentum * batch, with the unbiased variance
/// N*H*W/(N*H*W - 1) * var for running_var. Otherwise (eval) the running statistics normalise.
/// y = gamma_c * (x - mean_c) / sqrt(var_c + eps) + beta_c (gamma = 1, beta = 0 if undefined),
/// then max(y, 0) if fuse_relu, then dropout as FusedDropout says (requires fuse_relu). Backward
/// adds the gradients of x, gamma, beta (those that require one); with running statistics it is the affine map's backward (the statistics are constants).
template <typename T>
Tensor<T> batch_norm2d(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                       const Tensor<T>& running_mean, const Tensor<T>& running_var, bool training,
                       double momentum = 0.1, double eps = 1e-5, bool fuse_relu = false,
                       const FusedDropout& dropout = {}) {
  const char* op = "batch_norm2d";
  norm_detail::require_image(op, x);
  norm_detail::require_per_channel(op, "gamma", gamma, x);
  norm_detail::require_per_channel(op, "beta", beta, x);
  norm_detail::require_per_channel(op, "running_mean", running_mean, x);
  norm_detail::require_per_channel(op, "running_var", running_var, x);
  NORMLAB_CHECK(running_mean.defined() == running_var.defined(), op,
                ": running_mean and running_var must both be given or both be undefined");
  NORMLAB_CHECK(momentum >= 0 && momentum <= 1, op, ": momentum must be in [0, 1], got ", momentum);
  NORMLAB_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const bool batch_statistics = training || !running_mean.defined();
  NORMLAB_CHECK(!batch_statistics || N * HW > 1, op,
                ": batch statistics need more than 1 value per channel, got input ",
                x.shape().str());
  const DropoutDraw draw = norm_detail::fused_dropout_draw(op, dropout, fuse_relu, x.numel());
  Backend<T>& kernels = detail::backend_for<T>(op, x.device());
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  Tensor<double> mean = Tensor<double>::empty({C}, x.device()), rstd = Tensor<double>::empty({C}, x.device());
  kernels.batch_norm_forward(x.data(), norm_detail::data_or_null(gamma),
                             norm_detail::data_or_null(beta), norm_detail::data_or_null(running_mean),
                             norm_detail::data_or_null(running_var), y.data(), mean.data(),
                             rstd.data(), N, C, HW, batch_statistics, momentum, eps, fuse_relu, draw);
  if (autograd::needs_grad(x, gamma, beta)) {
    const Tensor<T> saved_y = fuse_relu ? y.detach() : Tensor<T>();
    autograd::record(op, y, [&kernels, x, gamma, beta, saved_y, draw, mean, rstd, batch_statistics](const Tensor<T>& dy) {
      using autograd::gradient_out;
      using norm_detail::data_or_null;
      kernels.batch_norm_backward(x.data(), data_or_null(saved_y), draw, dy.data(), data_or_null(gamma),
                                  mean.data(), rstd.data(), gradient_out(x), gradient_out(gamma),
                                  gradient_out(beta), x.size(0), x.size(1), x.size(2) * x.size(3),
                                  batch_statistics);
    });
  }
  return y;
}

/// Requires: x is [N, C, H, W], non-empty; groups >= 1 divides C; gamma, beta undefined or [C];
/// eps > 0. Ensures (as torch.nn.functional.group_norm): for each sample n and group g of C/groups
/// consecutive channels, mean and biased variance over (C/groups, H, W);
/// y = gamma_c * (x - mean) / sqrt(var + eps) + beta_c, then max(y, 0) if fuse_relu, then dropout
/// as FusedDropout says (requires fuse_relu). groups == C is InstanceNorm. Backward adds the
/// gradients of x, gamma, beta (those that require one).
template <typename T>
Tensor<T> group_norm(const Tensor<T>& x, int64_t groups, const Tensor<T>& gamma,
                     const Tensor<T>& beta, double eps = 1e-5, bool fuse_relu = false,
                     const FusedDropout& dropout = {}) {
  return norm_detail::group_norm("group_norm", x, groups, gamma, beta, eps, fuse_relu, dropout);
}

/// The comparison's LayerNorm: normalisation over (C, H, W) per sample with a per-channel affine,
/// i.e. exactly group_norm(x, 1, gamma, beta, eps, fuse_relu). (torch.nn.LayerNorm([C, H, W])
/// would have an affine of C*H*W values instead.) Requires/Ensures: as group_norm with 1 group.
template <typename T>
Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                     double eps = 1e-5, bool fuse_relu = false, const FusedDropout& dropout = {}) {
  return norm_detail::group_norm("layer_norm", x, 1, gamma, beta, eps, fuse_relu, dropout);
}

}  // namespace normlab::ops
