// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. The value at (key, counter) depends on nothing else, so the i-th
// random number of a tensor is the same whichever thread or CUDA block computes it, and a loop
// over elements vectorises and parallelises without any shared generator state.
#pragma once

#include <cstdint>

#include "normlab/common/host_device.hpp"

namespace normlab {

struct Philox4 {
  uint32_t v[4];
};

namespace detail {
NORMLAB_HOST_DEVICE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}
}  // namespace detail

/// Ensures: returns the 4 x 32 random bits of Philox4x32-10 at 128-bit counter
/// (counter_lo, counter_hi) under the 64-bit key `seed`.
NORMLAB_HOST_DEVICE Philox4 philox4x32(uint64_t seed, uint64_t counter_lo, uint64_t counter_hi) {
  uint32_t c0 = static_cast<uint32_t>(counter_lo), c1 = static_cast<uint32_t>(counter_lo >> 32);
  uint32_t c2 = static_cast<uint32_t>(counter_hi), c3 = static_cast<uint32_t>(counter_hi >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    detail::philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    detail::philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

/// Ensures: a float uniformly distributed in [0, 1) from the top 24 bits of `bits`.
NORMLAB_HOST_DEVICE float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

}  // namespace normlab
