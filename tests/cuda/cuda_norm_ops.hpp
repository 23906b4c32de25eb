// The CUDA norm launchers seen as differentiable ops on CPU tensors, so that the oracle checks of
// support/norm_check.hpp (tolerances, constant and offset data, written and accumulated
// gradients) apply to them unchanged: copy the inputs to the device, run the CUDA forward, copy y
// back, and record a tape node whose backward copies dy and the existing gradients to the device,
// runs the CUDA backward (writing or accumulating, as the tape asks) and copies the gradients
// back. Only the copies are test code; every number is computed by the kernels.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "normlab/autograd/tape.hpp"
#include "normlab/cuda/allocator.hpp"
#include "normlab/cuda/batch_norm.cuh"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/layer_norm.cuh"

namespace normlab::testing {

/// The device copy of `t`, or an undefined tensor.
template <typename T>
Tensor<T> on_device(const Tensor<T>& t) {
  return t.defined() ? t.to(Device::cuda()) : Tensor<T>();
}

template <typename T>
T* data_or_null(const Tensor<T>& t) {
  return t.defined() ? t.data() : nullptr;
}

/// At least `bytes` bytes of device memory (256-byte aligned: a fresh cudaMalloc block or a
/// recycled one).
inline Tensor<double> device_workspace(size_t bytes) {
  return Tensor<double>::empty({static_cast<int64_t>(bytes / sizeof(double) + 1)}, Device::cuda());
}

/// The device side of one input's gradient for a CUDA backward: a device buffer that holds the
/// gradient accumulated so far when the tape asks to accumulate, copied back by finish().
class DeviceGradient {
 public:
  explicit DeviceGradient(const Tensor<float>& input) {
    if (!input.requires_grad()) return;
    const autograd::GradientSink<float> sink = autograd::gradient_sink(input);
    host_ = input.grad();
    device_ = sink.accumulate ? host_.to(Device::cuda())
                              : Tensor<float>::empty(host_.shape(), Device::cuda());
    out_ = {device_.data(), sink.accumulate};
  }
  cuda::GradientOut<float> out() const { return out_; }
  void finish() const {
    if (out_.data != nullptr) host_.copy_(device_);
  }

 private:
  Tensor<float> host_, device_;
  cuda::GradientOut<float> out_;
};

/// A norm's CUDA launchers on device tensors: forward(x, gamma, beta, y, mean, rstd) and
/// backward(x, relu_output, dy, gamma, mean, rstd, dx, dgamma, dbeta).
struct CudaNormKernels {
  int64_t statistics_count;  // saved mean/rstd values
  std::function<void(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&,
                     const Tensor<float>&, const Tensor<double>&, const Tensor<double>&)>
      forward;
  std::function<void(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&,
                     const Tensor<float>&, const Tensor<double>&, const Tensor<double>&,
                     cuda::GradientOut<float>, cuda::GradientOut<float>, cuda::GradientOut<float>)>
      backward;
};

/// The device results of a forward: y and the saved statistics.
struct DeviceForward {
  Tensor<float> x, gamma, beta, y;
  Tensor<double> mean, rstd;
};

inline DeviceForward run_device_forward(const CudaNormKernels& kernels, const Tensor<float>& x,
                                        const Tensor<float>& gamma, const Tensor<float>& beta) {
  DeviceForward f{x.to(Device::cuda()),
                  on_device(gamma),
                  on_device(beta),
                  Tensor<float>::empty(x.shape(), Device::cuda()),
                  Tensor<double>::empty({kernels.statistics_count}, Device::cuda()),
                  Tensor<double>::empty({kernels.statistics_count}, Device::cuda())};
  kernels.forward(f.x, f.gamma, f.beta, f.y, f.mean, f.rstd);
  return f;
}

/// The saved statistics of a forward, on the host (NormUnderTest::saved_statistics).
inline void device_saved_statistics(const CudaNormKernels& kernels, const Tensor<float>& x,
                                    const Tensor<float>& gamma, const Tensor<float>& beta,
                                    std::vector<double>& mean, std::vector<double>& rstd) {
  const DeviceForward f = run_device_forward(kernels, x, gamma, beta);
  mean = f.mean.to(Device::cpu()).to_vector();
  rstd = f.rstd.to(Device::cpu()).to_vector();
}

/// The norm as an op on CPU tensors (NormUnderTest::op): y on the host, and a tape node whose
/// backward is the CUDA backward. relu: whether the forward fused a ReLU (the backward then
/// gets the device y).
inline Tensor<float> device_norm_op(const char* name, const CudaNormKernels& kernels, bool relu,
                                    const Tensor<float>& x, const Tensor<float>& gamma,
                                    const Tensor<float>& beta) {
  const DeviceForward f = run_device_forward(kernels, x, gamma, beta);
  Tensor<float> y = f.y.to(Device::cpu());
  if (autograd::needs_grad(x, gamma, beta)) {
    autograd::record(name, y, [kernels, f, relu, x, gamma, beta](const Tensor<float>& dy) {
      const DeviceGradient dx(x), dgamma(gamma), dbeta(beta);
      kernels.backward(f.x, relu ? f.y : Tensor<float>(), dy.to(Device::cuda()), f.gamma, f.mean,
                       f.rstd, dx.out(), dgamma.out(), dbeta.out());
      for (const DeviceGradient* g : {&dx, &dgamma, &dbeta}) g->finish();
    });
  }
  return y;
}

}  // namespace normlab::testing
