// Launch geometry and argument checks shared by the kernels of elementwise.cuh, pool.cuh,
// loss.cuh and sgd.cuh. Their grids are grid-stride: a grid of kBlock-thread blocks, capped at
// kMaxBlocks, whose thread t of T takes work items t, t + T, t + 2T, ... (an item is an element,
// a 16-byte pack, a Philox block, or, for the warp kernels, a plane or a row per warp), so any
// grid covers any size and no result depends on the grid.
#pragma once

#include <cstdint>

#include "normlab/core/error.hpp"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda::grid_stride {

constexpr int kBlock = 256;
// Minimum resident blocks per SM for __launch_bounds__ (so at most 64 registers per thread),
// stated because without it ptxas may aim elsewhere and spill (cuda:nvcc_no_spills:ops).
constexpr int kMinBlocks = 4;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;
// 4096 blocks of 256 threads fill every current GPU several times over.
constexpr int64_t kMaxBlocks = 4096;

/// Requires: launched with kBlock threads per block.
__device__ __forceinline__ int64_t thread_index() {
  return int64_t(blockIdx.x) * kBlock + threadIdx.x;
}
__device__ __forceinline__ int64_t thread_count() { return int64_t(gridDim.x) * kBlock; }
__device__ __forceinline__ int64_t warp_index() { return thread_index() / kWarpSize; }
__device__ __forceinline__ int64_t warp_count() { return int64_t(gridDim.x) * kWarpsPerBlock; }
__device__ __forceinline__ int lane() { return static_cast<int>(threadIdx.x) % kWarpSize; }

/// r = v, or r + v when accumulating (a gradient written or added).
template <bool kAccumulate, typename T>
__device__ __forceinline__ void store_or_add(T& r, T v) {
  if constexpr (kAccumulate) {
    r = r + v;
  } else {
    r = v;
  }
}

/// Ensures: the blocks for `items` work items taken `per_block` at a time (at least 1 block,
/// at most kMaxBlocks; the kernels stride over the rest).
inline unsigned grid_for(int64_t items, int64_t per_block = kBlock) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > kMaxBlocks ? kMaxBlocks : blocks);
}

/// Launcher argument checks: a normlab::Error naming the op and the values.
inline void check_pointer(const char* op, const void* p, const char* name) {
  NORMLAB_CHECK(p != nullptr, op, ": '", name, "' must not be null");
}
inline void check_count(const char* op, const char* name, int64_t n) {
  NORMLAB_CHECK(n >= 0, op, ": ", name, " = ", n, " must not be negative");
}

}  // namespace normlab::cuda::grid_stride
