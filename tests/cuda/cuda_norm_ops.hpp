// The CUDA norm launchers seen as differentiable ops on CPU tensors, so that the oracle checks of
// support/norm_check.hpp (tolerances, constant and offset data, written and accumulated
// gradients) apply to them unchanged: copy the inputs to the device, run the CUDA forward, copy y
// back, and record a tape node whose backward copies dy and the existing gradients to the device,
// runs the CUDA backward (writing or accumulating, as the tape asks) and copies the gradients
// back. Only the copies are test code; every number is computed by the kernels. Also the pieces
// the CUDA norm tests share: the cases of a shape, and buffers for the argument-error tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "normlab/autograd/tape.hpp"
#include "normlab/cuda/allocator.hpp"
#include "normlab/cuda/batch_norm.cuh"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/layer_norm.cuh"
#include "support/norm_check.hpp"

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
  GradientOut<float> out() const { return out_; }
  void finish() const {
    if (out_.data != nullptr) host_.copy_(device_);
  }

 private:
  Tensor<float> host_, device_;
  GradientOut<float> out_;
};

/// The device tensors of a forward: the inputs x, gamma, beta (undefined without affine), the
/// output y and the saved statistics mean, rstd.
struct DeviceForward {
  Tensor<float> x, gamma, beta, y;
  Tensor<double> mean, rstd;
};

/// What a backward adds to its forward's tensors: the forward's y if it fused a ReLU (else
/// undefined), dy, and where dx, dgamma, dbeta go.
struct DeviceBackward {
  Tensor<float> relu_output, dy;
  GradientOut<float> dx, dgamma, dbeta;
};

/// A norm's CUDA launchers on device tensors: forward(f) writes f.y, f.mean and f.rstd;
/// backward(f, b) writes or accumulates b's gradients.
struct CudaNormKernels {
  int64_t statistics_count;  // saved mean/rstd values
  std::function<void(const DeviceForward&)> forward;
  std::function<void(const DeviceForward&, const DeviceBackward&)> backward;
};

inline DeviceForward run_device_forward(const CudaNormKernels& kernels, const Tensor<float>& x,
                                        const Tensor<float>& gamma, const Tensor<float>& beta) {
  DeviceForward f{x.to(Device::cuda()),
                  on_device(gamma),
                  on_device(beta),
                  Tensor<float>::empty(x.shape(), Device::cuda()),
                  Tensor<double>::empty({kernels.statistics_count}, Device::cuda()),
                  Tensor<double>::empty({kernels.statistics_count}, Device::cuda())};
  kernels.forward(f);
  return f;
}

/// The norm as an op on CPU tensors: y on the host, and a tape node whose backward is the CUDA
/// backward. relu: whether the forward fused a ReLU (the backward then gets the device y).
inline Tensor<float> device_norm_op(const char* name, const CudaNormKernels& kernels, bool relu,
                                    const Tensor<float>& x, const Tensor<float>& gamma,
                                    const Tensor<float>& beta) {
  const DeviceForward f = run_device_forward(kernels, x, gamma, beta);
  Tensor<float> y = f.y.to(Device::cpu());
  if (autograd::needs_grad(x, gamma, beta)) {
    autograd::record(name, y, [kernels, f, relu, x, gamma, beta](const Tensor<float>& dy) {
      const DeviceGradient dx(x), dgamma(gamma), dbeta(beta);
      kernels.backward(f, {relu ? f.y : Tensor<float>(), dy.to(Device::cuda()), dx.out(),
                           dgamma.out(), dbeta.out()});
      for (const DeviceGradient* g : {&dx, &dgamma, &dbeta}) g->finish();
    });
  }
  return y;
}

/// The CUDA norm as check_norm_against_oracle sees it: `kernels` as the op called `name` (with a
/// fused ReLU if relu) and as the source of the saved statistics, grouped as `grouping`.
inline NormUnderTest device_norm_under_test(const char* name, const CudaNormKernels& kernels,
                                            bool relu, const oracle::NormGrouping& grouping) {
  NormUnderTest t;
  t.grouping = grouping;
  t.op = [=](const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta) {
    return device_norm_op(name, kernels, relu, x, gamma, beta);
  };
  t.saved_statistics = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                           const Tensor<float>& beta, std::vector<double>& mean,
                           std::vector<double>& rstd) {
    const DeviceForward f = run_device_forward(kernels, x, gamma, beta);
    mean = f.mean.to(Device::cpu()).to_vector();
    rstd = f.rstd.to(Device::cpu()).to_vector();
  };
  return t;
}

/// Which affine, fused-ReLU and data settings cases_of_shape combines.
struct CaseSettings {
  std::vector<bool> affine = {true, false};
  std::vector<bool> fuse_relu = {false, true};
  std::vector<NormData> data = {NormData::Normal, NormData::Offset, NormData::Constant};
};

/// Ensures: the cases of shape s with every combination of `settings`.
inline std::vector<NormCase> cases_of_shape(const oracle::NormShape& s,
                                            const CaseSettings& settings = {}) {
  std::vector<NormCase> cases;
  for (bool affine : settings.affine)
    for (bool relu : settings.fuse_relu)
      for (NormData data : settings.data) cases.push_back({s, affine, relu, data});
  return cases;
}

/// Device buffers whose addresses the argument-error tests pass to launchers (which throw before
/// launching): p, `floats` floats; d, `doubles` doubles; workspace, 4 KiB.
struct ErrorTestBuffers {
  Tensor<float> float_buffer;
  Tensor<double> double_buffer, workspace_buffer;
  float* p;
  double* d;
  void* workspace;

  ErrorTestBuffers(int64_t floats, int64_t doubles)
      : float_buffer(Tensor<float>::zeros({floats}).to(Device::cuda())),
        double_buffer(Tensor<double>::empty({doubles}, Device::cuda())),
        workspace_buffer(device_workspace(4096)),
        p(float_buffer.data()),
        d(double_buffer.data()),
        workspace(workspace_buffer.data()) {}
};

}  // namespace normlab::testing
