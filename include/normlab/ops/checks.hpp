// Argument checks shared by the differentiable ops: every message names the op and the shapes.
#pragma once

#include "normlab/core/error.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab::ops::detail {

template <typename T>
void require_defined(const char* op, const char* name, const Tensor<T>& t) {
  NORMLAB_CHECK(t.defined(), op, ": argument '", name, "' is an undefined tensor");
}

template <typename T>
void require_rank(const char* op, const char* name, const Tensor<T>& t, int64_t rank) {
  require_defined(op, name, t);
  NORMLAB_CHECK(t.rank() == rank, op, ": '", name, "' must have rank ", rank, ", got shape ",
                t.shape().str());
}

template <typename T>
void require_same_shape(const char* op, const Tensor<T>& a, const Tensor<T>& b) {
  require_defined(op, "a", a);
  require_defined(op, "b", b);
  NORMLAB_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", a.shape().str(), " vs ",
                b.shape().str());
}

/// The CPU kernels are the only backend compiled into a host-only build; the CUDA dispatch
/// arrives with the CUDA backend.
template <typename T, typename... Rest>
void require_cpu(const char* op, const Tensor<T>& first, const Rest&... rest) {
  NORMLAB_CHECK(first.device().is_cpu() && (rest.device().is_cpu() && ...), op,
                ": tensors must be on the CPU in this build");
}

}  // namespace normlab::ops::detail
