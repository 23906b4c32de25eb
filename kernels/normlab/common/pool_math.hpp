// Pooling rules shared by the CPU kernels (kernels/normlab/cpu/pool.hpp) and the CUDA kernels
// (kernels/normlab/cuda/pool.cuh): the output extent of a sweep and max pooling's tie/NaN rule.
#pragma once

#include <cstdint>

#include "normlab/common/host_device.hpp"

namespace normlab {

/// Output extent of a pooling sweep without padding. Requires: 1 <= kernel <= in, stride >= 1.
NORMLAB_HOST_DEVICE int64_t pooled_extent(int64_t in, int64_t kernel, int64_t stride) {
  return (in - kernel) / stride + 1;
}

/// PyTorch's max-pool rule: a candidate replaces the running maximum when it is larger or NaN.
/// Scanning a window in row-major order, ties go to the first maximal element and the last NaN
/// wins.
template <typename T>
NORMLAB_HOST_DEVICE bool max_pool_takes(T candidate, T best) {
  return candidate > best || candidate != candidate;
}

}  // namespace normlab
