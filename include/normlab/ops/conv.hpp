// Differentiable 2-D convolution on NCHW tensors. Kernels: the backend of the input's device
// (ops/backend.hpp): kernels/normlab/cpu/conv2d.hpp (implicit-GEMM forward, dgrad and wgrad on the
// blocked GEMM of kernels/normlab/cpu/gemm.hpp), or the CUDA implicit GEMM (cuda/conv2d.cuh).
#pragma once

#include <cstdint>

#include "normlab/autograd/tape.hpp"
#include "normlab/ops/checks.hpp"
#include "normlab/ops/cpu_backend.hpp"

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
  const Conv2dGeometry g{x.size(0),      x.size(1),      x.size(2), x.size(3), weight.size(0),
                              weight.size(2), weight.size(3), stride,    padding};
  NORMLAB_CHECK(g.out_channels >= 1 && g.patch_size() >= 1, "conv2d: empty weight of shape ",
                weight.shape().str());
  NORMLAB_CHECK(weight.size(1) == g.in_channels, "conv2d: input ", x.shape().str(), " has ",
                g.in_channels, " channels but weight ", weight.shape().str(), " expects ",
                weight.size(1));
  Backend<T>& kernels =
      detail::backend_for<T>("conv2d", detail::require_same_device("conv2d", x, weight, bias));
  if (bias.defined()) {
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

  Tensor<T> y = Tensor<T>::empty({g.batch, g.out_channels, g.out_height(), g.out_width()}, x.device());
  kernels.conv2d_forward(x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, y.data(), g);
  if (autograd::needs_grad(x, weight, bias)) {
    autograd::record("conv2d", y, [&kernels, x, weight, bias, g](const Tensor<T>& dy) {
      using autograd::gradient_out;
      kernels.conv2d_backward_data(dy.data(), weight.data(), gradient_out(x), g);
      kernels.conv2d_backward_weights(x.data(), dy.data(), gradient_out(weight), gradient_out(bias), g);
    });
  }
  return y;
}

}  // namespace normlab::ops
