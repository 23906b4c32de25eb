// GradientOut: where a norm backward puts one gradient. One definition for the CPU kernels
// (kernels/normlab/cpu/) and the CUDA launchers and kernels (kernels/normlab/cuda/, which take it
// by value as a kernel argument): a plain aggregate, the same on host and device.
#pragma once

#include <cstdint>

#include "normlab/common/host_device.hpp"

namespace normlab {

/// Where a backward kernel puts one gradient: nowhere (data == nullptr), written
/// (accumulate == false) or added to what the buffer holds (accumulate == true). For a CUDA
/// kernel, data is device memory.
template <typename T>
struct GradientOut {
  T* data = nullptr;
  bool accumulate = false;

  /// Ensures: data[i] = value, or data[i] + value when accumulating (added in Acc, then rounded
  /// to T once); nothing when data is null.
  template <typename Acc>
  NORMLAB_HOST_DEVICE void store(int64_t i, Acc value) const {
    if (data == nullptr) return;
    data[i] = static_cast<T>(accumulate ? static_cast<Acc>(data[i]) + value : value);
  }
};

}  // namespace normlab
