// The built-in CPU backend of the ops (the kernels of kernels/normlab/cpu/, OpenMP + SIMD), and
// backend_for(), how every op finds the kernels of its tensors' device (ops/backend.hpp).
#pragma once

#include <cstdint>
#include <memory>

#include "normlab/core/parallel.hpp"
#include "normlab/core/storage.hpp"
#include "normlab/cpu/batch_norm.hpp"
#include "normlab/cpu/conv2d.hpp"
#include "normlab/cpu/elementwise.hpp"
#include "normlab/cpu/group_norm.hpp"
#include "normlab/cpu/loss.hpp"
#include "normlab/cpu/pool.hpp"
#include "normlab/cpu/sgd.hpp"
#include "normlab/ops/backend.hpp"

namespace normlab::ops {

template <typename T>
class CpuBackend final : public Backend<T> {
 public:
  std::string unavailable_reason() const override { return ""; }

  void relu_forward(const T* x, T* y, int64_t n) override { cpu::relu_forward(x, y, n); }
  void relu_backward(const T* y, const T* dy, GradientOut<T> dx, int64_t n) override {
    if (dx.data != nullptr) cpu::relu_backward(y, dy, dx.data, n, dx.accumulate);
  }
  void add_forward(const T* a, const T* b, T* y, int64_t n) override { cpu::add_forward(a, b, y, n); }
  void scaled_gradient(const T* dy, GradientOut<T> dx, int64_t n, T scale) override {
    if (dx.data != nullptr) cpu::scaled_gradient(dy, dx.data, n, scale, dx.accumulate);
  }
  void dropout_forward(const T* x, T* y, int64_t n, const DropoutDraw& draw) override {
    cpu::dropout_forward(x, y, n, draw);
  }
  void dropout_backward(const T* dy, GradientOut<T> dx, int64_t n, const DropoutDraw& draw) override {
    if (dx.data != nullptr) cpu::dropout_backward(dy, dx.data, n, draw, dx.accumulate);
  }

  void batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                          T* y, double* mean, double* rstd, int64_t N, int64_t C, int64_t HW,
                          bool batch_statistics, double momentum, double eps, bool fuse_relu,
                          const DropoutDraw& dropout) override {
    cpu::batch_norm_forward(x, gamma, beta, running_mean, running_var, y, mean, rstd, N, C, HW,
                            batch_statistics, momentum, eps, fuse_relu, dropout);
  }
  void batch_norm_backward(const T* x, const T* saved_y, const DropoutDraw& dropout, const T* dy,
                           const T* gamma, const double* mean, const double* rstd, GradientOut<T> dx,
                           GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                           int64_t HW, bool batch_statistics) override {
    cpu::batch_norm_backward(x, fused_output(saved_y, dropout), dy, gamma, mean, rstd, dx, dgamma,
                             dbeta, N, C, HW, batch_statistics);
  }
  void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean,
                          double* rstd, int64_t N, int64_t C, int64_t HW, int64_t G, double eps,
                          bool fuse_relu, const DropoutDraw& dropout) override {
    cpu::group_norm_forward(x, gamma, beta, y, mean, rstd, N, C, HW, G, eps, fuse_relu, dropout);
  }
  void group_norm_backward(const T* x, const T* saved_y, const DropoutDraw& dropout, const T* dy,
                           const T* gamma, const double* mean, const double* rstd, GradientOut<T> dx,
                           GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                           int64_t HW, int64_t G) override {
    Storage<double> workspace(static_cast<size_t>(cpu::group_norm_backward_workspace_size(N, C)), Device::cpu());
    cpu::group_norm_backward(x, fused_output(saved_y, dropout), dy, gamma, mean, rstd, dx, dgamma,
                             dbeta, N, C, HW, G, workspace.data());
  }

  void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dGeometry& g) override {
    const int threads = num_threads();
    Storage<T> workspace(static_cast<size_t>(cpu::conv2d_workspace_size<T>(g, threads)), Device::cpu());
    cpu::conv2d_forward(x, weight, bias, y, g, workspace.data(), threads);
  }
  void conv2d_backward_data(const T* dy, const T* weight, GradientOut<T> dx, const Conv2dGeometry& g) override {
    if (dx.data == nullptr) return;
    const int threads = num_threads();
    Storage<T> workspace(static_cast<size_t>(cpu::conv2d_workspace_size<T>(g, threads)), Device::cpu());
    cpu::conv2d_backward_data(dy, weight, dx.data, g, dx.accumulate, workspace.data(), threads);
  }
  void conv2d_backward_weights(const T* x, const T* dy, GradientOut<T> dweight, GradientOut<T> dbias,
                               const Conv2dGeometry& g) override {
    if (dweight.data == nullptr && dbias.data == nullptr) return;
    const int threads = num_threads();
    Storage<T> workspace(static_cast<size_t>(cpu::conv2d_workspace_size<T>(g, threads)), Device::cpu());
    cpu::conv2d_backward_weights(x, dy, dweight.data, dbias.data, g, dweight.accumulate,
                                 dbias.accumulate, workspace.data(), threads);
  }

  void max_pool2d_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H, int64_t W,
                          int64_t kernel, int64_t stride) override {
    cpu::max_pool2d_forward(x, y, argmax, planes, H, W, kernel, stride);
  }
  void max_pool2d_backward(const int32_t* argmax, const T* dy, GradientOut<T> dx, int64_t planes,
                           int64_t H, int64_t W, int64_t kernel, int64_t stride) override {
    if (dx.data != nullptr)
      cpu::max_pool2d_backward(argmax, dy, dx.data, planes, H, W, kernel, stride, dx.accumulate);
  }
  void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t HW) override {
    cpu::global_avg_pool2d_forward(x, y, planes, HW);
  }
  void global_avg_pool2d_backward(const T* dy, GradientOut<T> dx, int64_t planes, int64_t HW) override {
    if (dx.data != nullptr) cpu::global_avg_pool2d_backward(dy, dx.data, planes, HW, dx.accumulate);
  }

  void log_softmax_forward(const T* x, T* y, int64_t N, int64_t K) override {
    cpu::log_softmax_forward(x, y, N, K);
  }
  void log_softmax_backward(const T* y, const T* dy, GradientOut<T> dx, int64_t N, int64_t K) override {
    if (dx.data != nullptr) cpu::log_softmax_backward(y, dy, dx.data, N, K, dx.accumulate);
  }
  void nll_loss_forward(const T* log_probs, const int32_t* targets, T*, T* loss, int64_t N,
                        int64_t K) override {
    cpu::nll_loss_forward(log_probs, targets, loss, N, K);
  }
  void nll_loss_backward(const int32_t* targets, const T* dloss, GradientOut<T> dlog_probs, int64_t N,
                         int64_t K) override {
    if (dlog_probs.data != nullptr)
      cpu::nll_loss_backward(targets, *dloss, dlog_probs.data, N, K, dlog_probs.accumulate);
  }
  void cross_entropy_forward(const T* logits, const int32_t* targets, double label_smoothing, T* row_max,
                             T* row_log_sum, T* row_loss, T* loss, int64_t N, int64_t K) override {
    cpu::cross_entropy_forward(logits, targets, label_smoothing, row_max, row_log_sum, row_loss, loss, N, K);
  }
  void cross_entropy_backward(const T* logits, const int32_t* targets, double label_smoothing,
                              const T* row_max, const T* row_log_sum, const T* dloss,
                              GradientOut<T> dlogits, int64_t N, int64_t K) override {
    if (dlogits.data != nullptr)
      cpu::cross_entropy_backward(logits, targets, label_smoothing, row_max, row_log_sum, *dloss,
                                  dlogits.data, N, K, dlogits.accumulate);
  }

  void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n,
                  const SgdCoefficients<T>& c) override {
    cpu::sgd_update(param, grad, momentum_buffer, n, c);
  }

 private:
  /// The CPU norm backwards' view of a fused epilogue: g = dy / keep where saved_y > 0.
  static cpu::FusedOutput<T> fused_output(const T* saved_y, const DropoutDraw& dropout) {
    return {saved_y, T(1) / static_cast<T>(dropout.keep)};
  }
};

namespace detail {
/// Ensures: the kernels for tensors on `device`, or a normlab::Error naming `op` when this
/// program has none for its device type.
template <typename T>
Backend<T>& backend_for(const char* op, Device device) {
  static CpuBackend<T> cpu_backend;
  if (device.is_cpu()) return cpu_backend;
  Backend<T>* registered = registered_backend<T>(device.type);
  NORMLAB_CHECK(registered != nullptr, op, ": no kernels for tensors on ", device.str(),
                " in this program: include normlab/cuda/backend.hpp in one translation unit "
                "(compiled with nvcc) to register the CUDA backend (docs/cuda.md)");
  NORMLAB_CHECK(device.index == 0, op, ": tensors on ", device.str(),
                ": the CUDA backend runs on device 0 only");
  return *registered;
}
}  // namespace detail

}  // namespace normlab::ops
