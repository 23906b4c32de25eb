// The CUDA backend of the ops: every kernel an op or the optimizer calls on a CUDA tensor
// (ops/backend.hpp), on the launchers of kernels/normlab/cuda/. Including this header registers
// it, together with the device allocator (cuda/allocator.hpp), in the program: after that the
// ops, the tape, the nn modules and Sgd work unchanged on tensors of Device::cuda(0).
//
// Include it in exactly one translation unit, compiled with nvcc for a GPU, or with the host
// compiler and the CUDA-on-CPU emulator (the kernels then run on the CPU: tests/cuda). The rest
// of the program is ordinary host code that never includes a CUDA header.
//
// Kernels are queued on the default stream, in issue order, so no op needs a synchronisation;
// Tensor::item() / to_vector() / copies to the host wait for the work before them (cudaMemcpy).
// Workspaces come from the caching allocator, so steady-state training allocates nothing.
//
// The norms' fused dropout: the CUDA norm kernels fuse the ReLU but not the dropout, so a
// fused-dropout forward writes the norm + ReLU to a temporary and applies the dropout kernel
// (the same Philox mask as the CPU's) into y; its backward first applies the mask and 1/keep to
// dy, then runs the norm backward with the saved y (> 0 exactly where kept and positive) as the
// ReLU mask. Same numbers as the CPU's single pass, one more pass over memory each way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "normlab/core/storage.hpp"
#include "normlab/cuda/allocator.hpp"
#include "normlab/cuda/batch_norm.cuh"
#include "normlab/cuda/conv2d.cuh"
#include "normlab/cuda/device.hpp"
#include "normlab/cuda/elementwise.cuh"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/loss.cuh"
#include "normlab/cuda/pool.cuh"
#include "normlab/cuda/sgd.cuh"
#include "normlab/ops/backend.hpp"

namespace normlab::cuda {

template <typename T>
class CudaBackend final : public ops::Backend<T> {
 public:
  std::string unavailable_reason() const override {
    const DeviceAvailability devices = device_availability();
    return devices.count > 0 ? "" : devices.reason;
  }

  void relu_forward(const T* x, T* y, int64_t n) override { cuda::relu_forward(x, y, n); }
  void relu_backward(const T* y, const T* dy, GradientOut<T> dx, int64_t n) override {
    if (dx.data != nullptr) cuda::relu_backward(y, dy, dx, n);
  }
  void add_forward(const T* a, const T* b, T* y, int64_t n) override { cuda::add_forward(a, b, y, n); }
  void scaled_gradient(const T* dy, GradientOut<T> dx, int64_t n, T scale) override {
    if (dx.data != nullptr) cuda::scaled_gradient(dy, dx, n, scale);
  }
  void dropout_forward(const T* x, T* y, int64_t n, const DropoutDraw& draw) override {
    cuda::dropout_forward(x, y, n, draw);
  }
  void dropout_backward(const T* dy, GradientOut<T> dx, int64_t n, const DropoutDraw& draw) override {
    if (dx.data != nullptr) cuda::dropout_backward(dy, dx, n, draw);
  }

  void batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean, T* running_var,
                          T* y, double* mean, double* rstd, int64_t N, int64_t C, int64_t HW,
                          bool batch_statistics, double momentum, double eps, bool fuse_relu,
                          const DropoutDraw& dropout) override {
    Workspace workspace(batch_norm_forward_workspace_bytes<T>(N, C, HW, batch_statistics));
    WithDropout out(y, N * C * HW, dropout);
    cuda::batch_norm_forward(x, gamma, beta, running_mean, running_var, out.norm_output(), mean, rstd,
                             N, C, HW, batch_statistics, momentum, eps, fuse_relu, workspace.data());
    out.finish();
  }
  void batch_norm_backward(const T* x, const T* saved_y, const DropoutDraw& dropout, const T* dy,
                           const T* gamma, const double* mean, const double* rstd, GradientOut<T> dx,
                           GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                           int64_t HW, bool batch_statistics) override {
    Workspace workspace(batch_norm_backward_workspace_bytes<T>(N, C, HW));
    const MaskedGradient g(dy, N * C * HW, dropout);
    cuda::batch_norm_backward(x, saved_y, g.data(), gamma, mean, rstd, dx, dgamma, dbeta, N, C, HW,
                              batch_statistics, workspace.data());
  }
  void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean,
                          double* rstd, int64_t N, int64_t C, int64_t HW, int64_t G, double eps,
                          bool fuse_relu, const DropoutDraw& dropout) override {
    Workspace workspace(group_norm_forward_workspace_bytes<T>(N, C, HW, G));
    WithDropout out(y, N * C * HW, dropout);
    cuda::group_norm_forward(x, gamma, beta, out.norm_output(), mean, rstd, N, C, HW, G, eps,
                             fuse_relu, workspace.data());
    out.finish();
  }
  void group_norm_backward(const T* x, const T* saved_y, const DropoutDraw& dropout, const T* dy,
                           const T* gamma, const double* mean, const double* rstd, GradientOut<T> dx,
                           GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                           int64_t HW, int64_t G) override {
    Workspace workspace(group_norm_backward_workspace_bytes<T>(N, C, HW, G));
    const MaskedGradient g(dy, N * C * HW, dropout);
    cuda::group_norm_backward(x, saved_y, g.data(), gamma, mean, rstd, dx, dgamma, dbeta, N, C, HW,
                              G, workspace.data());
  }

  void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dGeometry& g) override {
    cuda::conv2d_forward(x, weight, bias, y, g);
  }
  void conv2d_backward_data(const T* dy, const T* weight, GradientOut<T> dx, const Conv2dGeometry& g) override {
    cuda::conv2d_backward_data(dy, weight, dx, g);
  }
  void conv2d_backward_weights(const T* x, const T* dy, GradientOut<T> dweight, GradientOut<T> dbias,
                               const Conv2dGeometry& g) override {
    if (dweight.data == nullptr && dbias.data == nullptr) return;
    Workspace workspace(conv2d_wgrad_workspace_bytes<T>(g));
    cuda::conv2d_backward_weights(x, dy, dweight, dbias, g, workspace.data());
  }

  void max_pool2d_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H, int64_t W,
                          int64_t kernel, int64_t stride) override {
    cuda::max_pool2d_forward(x, y, argmax, planes, H, W, kernel, stride);
  }
  void max_pool2d_backward(const int32_t* argmax, const T* dy, GradientOut<T> dx, int64_t planes,
                           int64_t H, int64_t W, int64_t kernel, int64_t stride) override {
    if (dx.data != nullptr) cuda::max_pool2d_backward(argmax, dy, dx, planes, H, W, kernel, stride);
  }
  void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t HW) override {
    cuda::global_avg_pool2d_forward(x, y, planes, HW);
  }
  void global_avg_pool2d_backward(const T* dy, GradientOut<T> dx, int64_t planes, int64_t HW) override {
    if (dx.data != nullptr) cuda::global_avg_pool2d_backward(dy, dx, planes, HW);
  }

  void log_softmax_forward(const T* x, T* y, int64_t N, int64_t K) override {
    cuda::log_softmax_forward(x, y, N, K);
  }
  void log_softmax_backward(const T* y, const T* dy, GradientOut<T> dx, int64_t N, int64_t K) override {
    if (dx.data != nullptr) cuda::log_softmax_backward(y, dy, dx, N, K);
  }
  // The ops check the targets on the host, so the kernels' own target report is not needed.
  void nll_loss_forward(const T* log_probs, const int32_t* targets, T* row_loss, T* loss, int64_t N,
                        int64_t K) override {
    cuda::nll_loss_forward(log_probs, targets, row_loss, loss, nullptr, N, K);
  }
  void nll_loss_backward(const int32_t* targets, const T* dloss, GradientOut<T> dlog_probs, int64_t N,
                         int64_t K) override {
    if (dlog_probs.data != nullptr) cuda::nll_loss_backward(targets, dloss, dlog_probs, N, K);
  }
  void cross_entropy_forward(const T* logits, const int32_t* targets, double label_smoothing, T* row_max,
                             T* row_log_sum, T* row_loss, T* loss, int64_t N, int64_t K) override {
    cuda::cross_entropy_forward(logits, targets, label_smoothing, row_max, row_log_sum, row_loss, loss,
                                nullptr, N, K);
  }
  void cross_entropy_backward(const T* logits, const int32_t* targets, double label_smoothing,
                              const T* row_max, const T* row_log_sum, const T* dloss,
                              GradientOut<T> dlogits, int64_t N, int64_t K) override {
    if (dlogits.data != nullptr)
      cuda::cross_entropy_backward(logits, targets, label_smoothing, row_max, row_log_sum, dloss,
                                   dlogits, N, K);
  }

  void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n,
                  const SgdCoefficients<T>& c) override {
    cuda::sgd_update(param, grad, momentum_buffer, n, c);
  }

 private:
  /// Device workspace of at least `bytes` bytes from the caching allocator (256-byte aligned:
  /// cached blocks are whole cudaMalloc blocks), for the duration of one launcher call.
  class Workspace {
   public:
    explicit Workspace(size_t bytes) : storage_((bytes + sizeof(double) - 1) / sizeof(double), Device::cuda()) {}
    void* data() { return storage_.data(); }

   private:
    Storage<double> storage_;
  };

  /// A norm forward's output with the fused dropout: the norm writes norm_output() (y itself
  /// without dropout, else a temporary) and finish() applies the dropout into y.
  class WithDropout {
   public:
    WithDropout(T* y, int64_t n, const DropoutDraw& draw)
        : y_(y), n_(n), draw_(draw), temporary_(draw.active() ? static_cast<size_t>(n) : 0, Device::cuda()) {}
    T* norm_output() { return draw_.active() ? temporary_.data() : y_; }
    void finish() {
      if (draw_.active()) cuda::dropout_forward(temporary_.data(), y_, n_, draw_);
    }

   private:
    T* y_;
    int64_t n_;
    DropoutDraw draw_;
    Storage<T> temporary_;
  };

  /// The gradient a norm backward reads: dy, or with the fused dropout dy * mask / keep.
  class MaskedGradient {
   public:
    MaskedGradient(const T* dy, int64_t n, const DropoutDraw& draw)
        : dy_(dy), masked_(draw.active() ? static_cast<size_t>(n) : 0, Device::cuda()) {
      if (draw.active()) cuda::dropout_backward(dy, GradientOut<T>{masked_.data(), false}, n, draw);
    }
    const T* data() const { return masked_.size() > 0 ? masked_.data() : dy_; }

   private:
    const T* dy_;
    Storage<T> masked_;
  };
};

/// The process's CUDA backend for T; never destroyed (like the allocator).
template <typename T>
CudaBackend<T>& backend() {
  static CudaBackend<T>* instance = new CudaBackend<T>;
  return *instance;
}

namespace detail {
// Registers the backend before main() in every program that includes this header.
inline const bool backend_registered =
    (ops::register_backend<float>(DeviceType::CUDA, backend<float>()),
     ops::register_backend<double>(DeviceType::CUDA, backend<double>()), true);
}  // namespace detail

}  // namespace normlab::cuda
