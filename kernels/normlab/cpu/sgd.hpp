// SGD parameter-update kernel (torch.optim.SGD's arithmetic) for one flat parameter tensor:
//
//   d = grad + weight_decay * param                      (when weight_decay != 0)
//   buf = buffer_momentum * buf + buffer_keep * d        (with momentum)
//   d = nesterov ? d + momentum * buf : buf
//   param -= lr * d
//
// PyTorch's first step sets buf = d; the caller gets it from a zeroed buffer with
// buffer_momentum = 0, buffer_keep = 1 (0 * 0 + 1 * d == d exactly), and afterwards passes
// buffer_momentum = momentum, buffer_keep = 1 - dampening. Elementwise, so any split is exact:
// one vectorised pass (read grad, param, buf; write param, buf), OpenMP-parallel for tensors
// large enough to pay for the fork, in the parameter's precision.
#pragma once

#include <cstdint>

namespace normlab::cpu {

template <typename T>
struct SgdCoefficients {
  T lr;
  T weight_decay;
  T momentum;         // the Nesterov look-ahead factor
  T buffer_momentum;  // decay of the old buffer this step (0 on the buffer's first step)
  T buffer_keep;      // weight of d in the new buffer (1 on the buffer's first step)
  bool nesterov;
};

namespace detail {

/// Below this many elements the update runs on the calling thread.
constexpr int64_t kSgdParallelThreshold = int64_t(1) << 14;

template <bool kMomentum, typename T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, SgdCoefficients<T> c) {
  const bool decay = c.weight_decay != T(0);
#pragma omp parallel for simd schedule(static) if (n >= kSgdParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    T d = decay ? grad[i] + c.weight_decay * param[i] : grad[i];
    if constexpr (kMomentum) {
      const T buf = c.buffer_momentum * momentum_buffer[i] + c.buffer_keep * d;
      momentum_buffer[i] = buf;
      d = c.nesterov ? d + c.momentum * buf : buf;
    }
    param[i] -= c.lr * d;
  }
}

}  // namespace detail

/// Ensures: param (and momentum_buffer, unless null: SGD without momentum) hold one SGD step
/// with coefficients `c` applied to grad. Requires: arrays of n elements; momentum_buffer is
/// initialised (zeroed before its first step).
template <typename T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n,
                const SgdCoefficients<T>& c) {
  if (momentum_buffer != nullptr) {
    detail::sgd_update<true>(param, grad, momentum_buffer, n, c);
  } else {
    detail::sgd_update<false>(param, grad, momentum_buffer, n, c);
  }
}

}  // namespace normlab::cpu
