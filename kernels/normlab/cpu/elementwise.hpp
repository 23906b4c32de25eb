// Elementwise CPU kernels: ReLU, residual add, inverted dropout. Layout-agnostic (flat arrays of
// n elements); one OpenMP-parallel, vectorised pass over memory each. Input-gradient outputs take
// `accumulate`: false writes the gradient, true adds it to what the buffer holds.
#pragma once

#include <cstdint>

#include "normlab/common/philox.hpp"

namespace normlab::cpu {

/// y = max(x, 0). One pass: read x, write y.
template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

/// dx (+)= dy where y > 0. One pass: read y, dy, (dx), write dx.
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n, bool accumulate) {
  if (accumulate) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] += y[i] > T(0) ? dy[i] : T(0);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
  }
}

/// y = a + b. One pass.
template <typename T>
void add_forward(const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

/// dx (+)= scale * dy. One pass. (The backward of add, and of anything that passes its gradient
/// through scaled.)
template <typename T>
void scaled_gradient(const T* dy, T* dx, int64_t n, T scale, bool accumulate) {
  if (accumulate) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] += scale * dy[i];
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] = scale * dy[i];
  }
}

/// Inverted dropout: y = x / keep where kept, else 0; the mask is recomputed (not stored) by
/// the backward. Each thread handles whole 4-element Philox blocks. One pass.
template <typename T>
void dropout_forward(const T* x, T* y, int64_t n, float keep, uint64_t seed, uint64_t counter_base) {
  const T scale = T(1) / static_cast<T>(keep);
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < (n + 3) / 4; ++block) {
    const Philox4 bits = philox4x32(seed, counter_base + static_cast<uint64_t>(block), 0);
    for (int64_t lane = 0; lane < 4 && block * 4 + lane < n; ++lane) {
      const int64_t i = block * 4 + lane;
      y[i] = uniform_from_bits(bits.v[lane]) < keep ? x[i] * scale : T(0);
    }
  }
}

/// dx (+)= dy / keep where kept. Same mask as the forward with the same (seed, counter_base).
template <typename T>
void dropout_backward(const T* dy, T* dx, int64_t n, float keep, uint64_t seed,
                      uint64_t counter_base, bool accumulate) {
  const T scale = T(1) / static_cast<T>(keep);
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < (n + 3) / 4; ++block) {
    const Philox4 bits = philox4x32(seed, counter_base + static_cast<uint64_t>(block), 0);
    for (int64_t lane = 0; lane < 4 && block * 4 + lane < n; ++lane) {
      const int64_t i = block * 4 + lane;
      const T g = uniform_from_bits(bits.v[lane]) < keep ? dy[i] * scale : T(0);
      dx[i] = accumulate ? dx[i] + g : g;
    }
  }
}

}  // namespace normlab::cpu
