// The per-element arithmetic of the SGD update (torch.optim.SGD's), shared by the CPU kernel
// (kernels/normlab/cpu/sgd.hpp) and the CUDA kernel (kernels/normlab/cuda/sgd.cuh):
//
//   d = grad + weight_decay * param                      (when weight_decay != 0)
//   buf = buffer_momentum * buf + buffer_keep * d        (with momentum)
//   d = nesterov ? d + momentum * buf : buf
//   param -= lr * d
//
// PyTorch's first step sets buf = d; the caller gets it from a zeroed buffer with
// buffer_momentum = 0, buffer_keep = 1 (0 * 0 + 1 * d == d exactly), and afterwards passes
// buffer_momentum = momentum, buffer_keep = 1 - dampening. All in the parameter's precision.
#pragma once

#include "normlab/common/host_device.hpp"

namespace normlab {

template <typename T>
struct SgdCoefficients {
  T lr;
  T weight_decay;
  T momentum;         // the Nesterov look-ahead factor
  T buffer_momentum;  // decay of the old buffer this step (0 on the buffer's first step)
  T buffer_keep;      // weight of d in the new buffer (1 on the buffer's first step)
  bool nesterov;
};

/// Ensures: the step direction before momentum, grad + weight_decay * param (grad itself when
/// weight_decay is 0, so that an infinite parameter does not turn the step into NaN).
template <typename T>
NORMLAB_HOST_DEVICE T sgd_direction(T param, T grad, const SgdCoefficients<T>& c) {
  return c.weight_decay != T(0) ? grad + c.weight_decay * param : grad;
}

/// Ensures: buffer = buffer_momentum * buffer + buffer_keep * d; returns the direction with
/// momentum, d + momentum * buffer (Nesterov) or buffer.
template <typename T>
NORMLAB_HOST_DEVICE T sgd_momentum_direction(T d, T& buffer, const SgdCoefficients<T>& c) {
  const T buf = c.buffer_momentum * buffer + c.buffer_keep * d;
  buffer = buf;
  return c.nesterov ? d + c.momentum * buf : buf;
}

}  // namespace normlab
