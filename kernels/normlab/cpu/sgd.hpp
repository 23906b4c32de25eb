// SGD parameter-update kernel (torch.optim.SGD's arithmetic, per element in
// normlab/common/sgd.hpp, shared with the CUDA kernel) for one flat parameter tensor.
// Elementwise, so any split is exact: one vectorised pass (read grad, param, buf; write param,
// buf), OpenMP-parallel for tensors large enough to pay for the fork, in the parameter's precision.
#pragma once

#include <cstdint>

#include "normlab/common/sgd.hpp"

namespace normlab::cpu {

/// The coefficients of one step (normlab/common/sgd.hpp), shared with the CUDA kernel.
using normlab::SgdCoefficients;

namespace detail {

/// Below this many elements the update runs on the calling thread.
constexpr int64_t kSgdParallelThreshold = int64_t(1) << 14;

template <bool kMomentum, typename T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, SgdCoefficients<T> c) {
#pragma omp parallel for simd schedule(static) if (n >= kSgdParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    T d = sgd_direction(param[i], grad[i], c);
    if constexpr (kMomentum) d = sgd_momentum_direction(d, momentum_buffer[i], c);
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
