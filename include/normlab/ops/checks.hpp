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

/// Requires: every defined tensor among the arguments is on first's device (undefined ones, such
/// as an absent bias, are skipped). Ensures: that device.
template <typename T, typename... Rest>
Device require_same_device(const char* op, const Tensor<T>& first, const Rest&... rest) {
  const Device device = first.device();
  for (const Tensor<T>* t : {&rest...}) {
    NORMLAB_CHECK(!t->defined() || t->device() == device, op, ": tensors on different devices (",
                  device.str(), " and ", t->device().str(), ", shapes ", first.shape().str(), " and ",
                  t->shape().str(), ")");
  }
  return device;
}
}  // namespace normlab::ops::detail
