// DropoutDraw: which elements an inverted dropout keeps. One definition for the CPU kernels
// (kernels/normlab/cpu/elementwise.hpp, the norms' fused dropout) and the CUDA kernels
// (kernels/normlab/cuda/elementwise.cuh, which take it by value as a kernel argument), so that
// both backends draw the same mask from the same (seed, counter).
#pragma once

#include <cstdint>

#include "normlab/common/host_device.hpp"

namespace normlab {

/// An inverted-dropout mask over a tensor's elements: element i (its index in the whole tensor)
/// is kept iff uniform_from_bits(word i % 4 of philox4x32(seed, counter_base + i / 4, 0)) < keep,
/// and kept elements are scaled by 1 / keep. keep == 1 means no dropout.
struct DropoutDraw {
  float keep = 1.0f;
  uint64_t seed = 0;
  uint64_t counter_base = 0;
  NORMLAB_HOST_DEVICE bool active() const { return keep < 1.0f; }
};

}  // namespace normlab
