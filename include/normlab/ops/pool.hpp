// Differentiable pooling ops on NCHW tensors: max_pool2d and global_avg_pool2d (adaptive average
// pooling to 1x1). Kernels: the backend of the input's device (ops/backend.hpp):
// kernels/normlab/cpu/pool.hpp or cuda/pool.cuh.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>

#include "normlab/autograd/tape.hpp"
#include "normlab/core/storage.hpp"
#include "normlab/cpu/pool.hpp"
#include "normlab/ops/checks.hpp"
#include "normlab/ops/cpu_backend.hpp"

namespace normlab::ops {

/// Requires: x is [N, C, H, W]; 1 <= kernel <= min(H, W); stride >= 1.
/// Ensures: y is [N, C, (H - kernel) / stride + 1, (W - kernel) / stride + 1] (no padding, floor),
/// y = the maximum of each kernel x kernel window (NaN if the window holds one). Backward routes
/// each output's gradient to the first maximal element of its window (PyTorch's tie rule), using
/// the argmax saved as int32 offsets by the forward.
template <typename T>
Tensor<T> max_pool2d(const Tensor<T>& x, int64_t kernel, int64_t stride) {
  detail::require_rank("max_pool2d", "x", x, 4);
  Backend<T>& kernels = detail::backend_for<T>("max_pool2d", x.device());
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  NORMLAB_CHECK(kernel >= 1 && stride >= 1,
                "max_pool2d: kernel and stride must be positive, got kernel ", kernel, ", stride ",
                stride, " for input ", x.shape().str());
  NORMLAB_CHECK(kernel <= H && kernel <= W, "max_pool2d: kernel ", kernel,
                " is larger than the input's spatial size in ", x.shape().str());
  NORMLAB_CHECK(H * W <= std::numeric_limits<int32_t>::max(), "max_pool2d: planes of ", H, "x", W,
                " are too large for int32 argmax offsets (input ", x.shape().str(), ")");
  const int64_t OH = cpu::pooled_extent(H, kernel, stride),
                OW = cpu::pooled_extent(W, kernel, stride);
  Tensor<T> y = Tensor<T>::empty({N, C, OH, OW}, x.device());
  if (!autograd::needs_grad(x)) {
    kernels.max_pool2d_forward(x.data(), y.data(), nullptr, N * C, H, W, kernel, stride);
    return y;
  }
  auto argmax = std::make_shared<Storage<int32_t>>(static_cast<size_t>(y.numel()), x.device());
  kernels.max_pool2d_forward(x.data(), y.data(), argmax->data(), N * C, H, W, kernel, stride);
  autograd::record("max_pool2d", y, [&kernels, x, argmax, kernel, stride](const Tensor<T>& dy) {
    kernels.max_pool2d_backward(argmax->data(), dy.data(), autograd::gradient_out(x),
                                x.size(0) * x.size(1), x.size(2), x.size(3), kernel, stride);
  });
  return y;
}

/// Requires: x is [N, C, H, W] with H, W >= 1. Ensures: y is [N, C, 1, 1], the mean of each
/// (n, c) plane (adaptive average pooling to 1x1); backward spreads dy / (H*W) over the plane.
template <typename T>
Tensor<T> global_avg_pool2d(const Tensor<T>& x) {
  detail::require_rank("global_avg_pool2d", "x", x, 4);
  Backend<T>& kernels = detail::backend_for<T>("global_avg_pool2d", x.device());
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  NORMLAB_CHECK(HW >= 1, "global_avg_pool2d: empty spatial extent in input ", x.shape().str());
  Tensor<T> y = Tensor<T>::empty({N, C, 1, 1}, x.device());
  kernels.global_avg_pool2d_forward(x.data(), y.data(), N * C, HW);
  if (autograd::needs_grad(x)) {
    autograd::record("global_avg_pool2d", y, [&kernels, x](const Tensor<T>& dy) {
      kernels.global_avg_pool2d_backward(dy.data(), autograd::gradient_out(x), x.size(0) * x.size(1),
                                         x.size(2) * x.size(3));
    });
  }
  return y;
}

}  // namespace normlab::ops
