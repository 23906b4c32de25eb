// Naive reference implementations (oracles) of the elementwise ops, templated, run in double.
#pragma once

#include <cstdint>
#include <vector>

#include "normlab/common/philox.hpp"

namespace normlab::oracle {

template <typename T>
std::vector<T> relu(const std::vector<T>& x) {
  std::vector<T> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0 ? x[i] : 0;
  return y;
}

/// The dropout mask of element i drawn from Philox block (counter_base + i / 4), lane i % 4.
inline std::vector<bool> dropout_mask(int64_t n, double keep, uint64_t seed, uint64_t counter_base) {
  std::vector<bool> mask(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const Philox4 bits = philox4x32(seed, counter_base + static_cast<uint64_t>(i / 4), 0);
    mask[static_cast<size_t>(i)] = (bits.v[i % 4] >> 8) * (1.0 / 16777216.0) < keep;
  }
  return mask;
}

}  // namespace normlab::oracle
