// Differentiable 2-D convolution on NCHW tensors. Kernels: kernels/normlab/cpu/conv2d.hpp
// (implicit-GEMM forward, dgrad and wgrad on the blocked GEMM of kernels/normlab/cpu/gemm.hpp).
#pragma once

#include <cstdint>

#include "normlab/autograd/tape.hpp"
#include "normlab/core/parallel.hpp"
#include "normlab/cpu/conv2d.hpp"
#include "normlab/ops/checks.hpp"

namespace normlab::ops {

/// Requires: x [N, Cin, H, W], weight [Cout, Cin, KH, KW] (PyTorch layout), bias [Cout] or an
/// undefined Tensor (no bias); stride >= 1, padding >= 0; the kernel fits in the padded input.
/// Ensures: y [N, Cout, (H + 2p - KH) / s + 1, (W + 2p - KW) / s + 1] with
/// y[n, co, oh, ow] = bias[co] + sum_{ci, kh, kw} weight[co, ci, kh, kw] *
/// x[n, ci, oh * s - p + kh, ow * s - p + kw] (zero padding), as torch.nn.functional.conv2d.
/// Backward adds the gradients of x (dgrad), weight and bias (wgrad) to those that require one.
template <typename T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                 int64_t stride = 1, int64_t padding = 0) {
  detail::require_rank("conv2d", "x", x, 4);
  detail::require_rank("conv2d", "weight", weight, 4);
  detail::require_cpu("conv2d", x, weight);
  const cpu::Conv2dGeometry g{x.size(0),      x.size(1),      x.size(2), x.size(3), weight.size(0),
                              weight.size(2), weight.size(3), stride,    padding};
  NORMLAB_CHECK(g.out_channels >= 1 && g.patch_size() >= 1, "conv2d: empty weight of shape ",
                weight.shape().str());
  NORMLAB_CHECK(weight.size(1) == g.in_channels, "conv2d: input ", x.shape().str(), " has ",
                g.in_channels, " channels but weight ", weight.shape().str(), " expects ",
                weight.size(1));
  if (bias.defined()) {
    detail::require_cpu("conv2d", bias);
    NORMLAB_CHECK(bias.shape() == Shape({g.out_channels}), "conv2d: bias of shape ",
                  bias.shape().str(), " for weight ", weight.shape().str(), " (expected [",
                  g.out_channels, "])");
  }
  NORMLAB_CHECK(stride >= 1 && padding >= 0, "conv2d: stride must be >= 1 and padding >= 0, got stride ",
                stride, ", padding ", padding, " (input ", x.shape().str(), ", weight ",
                weight.shape().str(), ")");
  NORMLAB_CHECK(g.height + 2 * padding >= g.kernel_h && g.width + 2 * padding >= g.kernel_w,
                "conv2d: kernel ", g.kernel_h, "x", g.kernel_w, " of weight ", weight.shape().str(),
                " is larger than input ", x.shape().str(), " padded by ", padding,
                " (output size would be non-positive)");

  const int threads = num_threads();
  Tensor<T> y = Tensor<T>::empty({g.batch, g.out_channels, g.out_height(), g.out_width()}, x.device());
  Tensor<T> workspace = Tensor<T>::empty({cpu::conv2d_workspace_size<T>(g, threads)}, x.device());
  cpu::conv2d_forward(x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data(), g,
                      workspace.data(), threads);
  if (autograd::needs_grad(x, weight, bias)) {
    autograd::record("conv2d", y, [x, weight, bias, g](const Tensor<T>& dy) {
      const bool weight_grad = weight.requires_grad(), bias_grad = bias.requires_grad();
      if (!x.requires_grad() && !weight_grad && !bias_grad) return;
      const int threads = num_threads();
      Tensor<T> workspace = Tensor<T>::empty({cpu::conv2d_workspace_size<T>(g, threads)}, x.device());
      if (x.requires_grad()) {
        auto dx = autograd::gradient_sink(x);
        cpu::conv2d_backward_data(dy.data(), weight.data(), dx.data, g, dx.accumulate,
                                  workspace.data(), threads);
      }
      if (weight_grad || bias_grad) {
        const autograd::GradientSink<T> none{nullptr, false};
        const auto dw = weight_grad ? autograd::gradient_sink(weight) : none;
        const auto db = bias_grad ? autograd::gradient_sink(bias) : none;
        cpu::conv2d_backward_weights(x.data(), dy.data(), dw.data, db.data, g, dw.accumulate,
                                     db.accumulate, workspace.data(), threads);
      }
    });
  }
  return y;
}

}  // namespace normlab::ops
