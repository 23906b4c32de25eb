// The device seam of the ops: Backend<T> is every kernel the differentiable ops (and the
// optimizer) call, behind raw pointers into the storage of one device type. An op checks its
// arguments, allocates its outputs on its input's device, and calls
// ops::detail::backend_for<T>(op, device) (ops/cpu_backend.hpp) for the kernels of that device.
//
// The CPU backend (ops/cpu_backend.hpp) is built in. Other device types register theirs: the CUDA
// one registers itself in every program that includes normlab/cuda/backend.hpp, the one
// translation unit compiled with nvcc (or, under the CUDA emulator, with the host compiler).
// This header includes no kernels, so that translation unit compiles only CUDA kernels.
//
// Every pointer is memory of the backend's device type, except where a comment says host.
// Gradients go to a GradientOut: written, or added to when its accumulate flag is set, or
// nowhere when its data is null.
#pragma once

#include <cstdint>
#include <string>

#include "normlab/common/conv2d_geometry.hpp"
#include "normlab/common/dropout.hpp"
#include "normlab/common/gradient_out.hpp"
#include "normlab/common/sgd.hpp"
#include "normlab/core/device.hpp"
#include "normlab/core/error.hpp"

namespace normlab::ops {

template <typename T>
class Backend {
 public:
  virtual ~Backend() = default;

  /// Ensures: "" when tensors of this backend's device type can be used now, else why not
  /// (e.g. the CUDA runtime's "no CUDA-capable device is detected").
  virtual std::string unavailable_reason() const = 0;

  // ---- elementwise: n elements each ----------------------------------------------------------
  /// y = max(x, 0); dx (+)= dy where y > 0, else 0.
  virtual void relu_forward(const T* x, T* y, int64_t n) = 0;
  virtual void relu_backward(const T* y, const T* dy, GradientOut<T> dx, int64_t n) = 0;
  /// y = a + b; dx (+)= scale * dy.
  virtual void add_forward(const T* a, const T* b, T* y, int64_t n) = 0;
  virtual void scaled_gradient(const T* dy, GradientOut<T> dx, int64_t n, T scale) = 0;
  /// Inverted dropout with the mask of `draw` (the same mask on every backend).
  virtual void dropout_forward(const T* x, T* y, int64_t n, const DropoutDraw& draw) = 0;
  virtual void dropout_backward(const T* dy, GradientOut<T> dx, int64_t n, const DropoutDraw& draw) = 0;

  // ---- norms on [N, C, HW]: see ops/norm.hpp for the maths ---------------------------------------
  /// mean, rstd: C (batch norm) or N * G (group norm) doubles. gamma, beta, running_* may be
  /// null. fuse_relu applies max(y, 0); an active `dropout` (requires fuse_relu) then drops.
  virtual void batch_norm_forward(const T* x, const T* gamma, const T* beta, T* running_mean,
                                  T* running_var, T* y, double* mean, double* rstd, int64_t N,
                                  int64_t C, int64_t HW, bool batch_statistics, double momentum,
                                  double eps, bool fuse_relu, const DropoutDraw& dropout) = 0;
  /// saved_y: the forward's y when a ReLU was fused (null otherwise); dropout: the forward's.
  virtual void batch_norm_backward(const T* x, const T* saved_y, const DropoutDraw& dropout,
                                   const T* dy, const T* gamma, const double* mean,
                                   const double* rstd, GradientOut<T> dx, GradientOut<T> dgamma,
                                   GradientOut<T> dbeta, int64_t N, int64_t C, int64_t HW,
                                   bool batch_statistics) = 0;
  virtual void group_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean,
                                  double* rstd, int64_t N, int64_t C, int64_t HW, int64_t G,
                                  double eps, bool fuse_relu, const DropoutDraw& dropout) = 0;
  virtual void group_norm_backward(const T* x, const T* saved_y, const DropoutDraw& dropout,
                                   const T* dy, const T* gamma, const double* mean,
                                   const double* rstd, GradientOut<T> dx, GradientOut<T> dgamma,
                                   GradientOut<T> dbeta, int64_t N, int64_t C, int64_t HW,
                                   int64_t G) = 0;

  // ---- convolution (PyTorch layouts; bias may be null) ----------------------------------------
  virtual void conv2d_forward(const T* x, const T* weight, const T* bias, T* y,
                              const Conv2dGeometry& g) = 0;
  virtual void conv2d_backward_data(const T* dy, const T* weight, GradientOut<T> dx,
                                    const Conv2dGeometry& g) = 0;
  virtual void conv2d_backward_weights(const T* x, const T* dy, GradientOut<T> dweight,
                                       GradientOut<T> dbias, const Conv2dGeometry& g) = 0;

  // ---- pooling over `planes` planes of H x W ----------------------------------------------------
  /// argmax (may be null): each output's in-plane offset, for the backward.
  virtual void max_pool2d_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H,
                                  int64_t W, int64_t kernel, int64_t stride) = 0;
  virtual void max_pool2d_backward(const int32_t* argmax, const T* dy, GradientOut<T> dx,
                                   int64_t planes, int64_t H, int64_t W, int64_t kernel,
                                   int64_t stride) = 0;
  virtual void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t HW) = 0;
  virtual void global_avg_pool2d_backward(const T* dy, GradientOut<T> dx, int64_t planes,
                                          int64_t HW) = 0;

  // ---- losses on [N, K]; targets: N valid class indices; dloss: the loss's gradient (1 value) ----
  virtual void log_softmax_forward(const T* x, T* y, int64_t N, int64_t K) = 0;
  virtual void log_softmax_backward(const T* y, const T* dy, GradientOut<T> dx, int64_t N,
                                    int64_t K) = 0;
  /// row_loss: N values of workspace.
  virtual void nll_loss_forward(const T* log_probs, const int32_t* targets, T* row_loss, T* loss,
                                int64_t N, int64_t K) = 0;
  virtual void nll_loss_backward(const int32_t* targets, const T* dloss, GradientOut<T> dlog_probs,
                                 int64_t N, int64_t K) = 0;
  /// row_max, row_log_sum (kept for the backward), row_loss: N values each.
  virtual void cross_entropy_forward(const T* logits, const int32_t* targets,
                                     double label_smoothing, T* row_max, T* row_log_sum,
                                     T* row_loss, T* loss, int64_t N, int64_t K) = 0;
  virtual void cross_entropy_backward(const T* logits, const int32_t* targets,
                                      double label_smoothing, const T* row_max,
                                      const T* row_log_sum, const T* dloss,
                                      GradientOut<T> dlogits, int64_t N, int64_t K) = 0;

  // ---- optimizer ------------------------------------------------------------------------------
  /// One SGD step over n elements (momentum_buffer null: no momentum); see optim/sgd.hpp.
  virtual void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n,
                          const SgdCoefficients<T>& c) = 0;
};

namespace detail {
template <typename T>
Backend<T>*& registered_backend(DeviceType type) {
  static Backend<T>* cuda = nullptr;  // the only other device type
  NORMLAB_CHECK(type == DeviceType::CUDA, "ops: the CPU backend is built in, not registered");
  return cuda;
}
}  // namespace detail

/// Requires: type is not DeviceType::CPU. Ensures: the ops run tensors of `type` on `backend`
/// (which must outlive every op call).
template <typename T>
void register_backend(DeviceType type, Backend<T>& backend) {
  detail::registered_backend<T>(type) = &backend;
}

/// Ensures: "" when ops can run on tensors of `type` in this program now, else why not: no
/// backend was registered (the program was built without CUDA), or the backend's reason.
inline std::string device_unavailable_reason(DeviceType type) {
  if (type == DeviceType::CPU) return "";
  const Backend<float>* backend = detail::registered_backend<float>(type);
  if (backend == nullptr)
    return "this program was built without the CUDA backend (normlab/cuda/backend.hpp, compiled with nvcc)";
  return backend->unavailable_reason();
}

}  // namespace normlab::ops
