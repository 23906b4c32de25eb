// Thread settings for the CPU kernels (OpenMP). The number of threads is a process-wide setting,
// like torch.set_num_threads; results of every kernel are bit-identical for a given thread count.
#pragma once

#include <omp.h>

#include "normlab/core/error.hpp"

namespace normlab {

/// Requires: n >= 1. Ensures: CPU kernels use n threads from now on.
inline void set_num_threads(int n) {
  NORMLAB_CHECK(n >= 1, "set_num_threads: need at least 1 thread, got ", n);
  omp_set_num_threads(n);
}

inline int num_threads() { return omp_get_max_threads(); }

}  // namespace normlab
