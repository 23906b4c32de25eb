// Kernels that exercise the CUDA emulator, with their launchers. The same source is compiled by
// g++ through the emulator (the tests beside this file run it) and by nvcc (nvcc_check.cu), so
// nothing here may depend on the build. Part 1 holds correct kernels, part 2 kernels with one
// injected bug each, which the emulator must expose.
//
// Everything is in an unnamed namespace: a non-template __global__ function defined in a header
// is defined again in every translation unit that includes it (nvcc emits a host stub for it,
// the emulator a plain function), so it needs internal linkage unless it is a template.
#pragma once

#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::emu_test {
namespace {

constexpr unsigned full_mask = 0xFFFFFFFFu;

// ============================== Part 1: correct kernels ======================================

// Block-wise sum, tree reduction in static shared memory. One block of BlockSize threads per
// BlockSize consecutive elements; each thread loads one element (0 past the end), then log2
// halving steps separated by __syncthreads(). sums[blockIdx.x] = the block's sum, in float.
template <int BlockSize>
__global__ void block_sum_shared(const float* x, float* sums, int n) {
  __shared__ float partial[BlockSize];
  const int i = static_cast<int>(blockIdx.x) * BlockSize + static_cast<int>(threadIdx.x);
  partial[threadIdx.x] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int stride = BlockSize / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride)
      partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = partial[0];
}

template <int BlockSize>
void launch_block_sum_shared(const float* x, float* sums, int n) {
  const int blocks = (n + BlockSize - 1) / BlockSize;
  NORMLAB_CUDA_LAUNCH(blocks, BlockSize, 0, nullptr, block_sum_shared<BlockSize>)(x, sums, n);
}

// Sum of the 32 values of a full warp, with __shfl_down_sync; lane 0 holds the total.
template <typename T>
__device__ __forceinline__ T warp_sum_down(T value) {
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_down_sync(full_mask, value, offset);
  return value;
}

// One warp per 32 consecutive elements (blockDim.x a multiple of 32, n = gridDim.x * blockDim.x):
// warp_sums[w] = sum of warp w's elements, reduced with __shfl_down_sync, in T.
template <typename T>
__global__ void warp_sums_down(const T* x, T* warp_sums) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  const T total = warp_sum_down(x[i]);
  if (threadIdx.x % 32 == 0) warp_sums[i / 32] = total;
}

// Requires: x holds 64 * blocks values (two warps per block).
template <typename T>
void launch_warp_sums_down(const T* x, T* warp_sums, int blocks) {
  NORMLAB_CUDA_LAUNCH(blocks, 64, 0, nullptr, warp_sums_down<T>)(x, warp_sums);
}

// Butterfly all-reduce inside segments of `width` lanes with __shfl_xor_sync(..., width): every
// lane ends with the sum of its segment. One block of 64 threads; sums[i] for x[i], i < 64.
__global__ void segment_sums_xor(const float* x, float* sums, int width) {
  float value = x[threadIdx.x];
  for (int lane_mask = width / 2; lane_mask > 0; lane_mask /= 2) {
    value += __shfl_xor_sync(full_mask, value, lane_mask, width);
  }
  sums[threadIdx.x] = value;
}

inline void launch_segment_sums_xor(const float* x, float* sums, int width) {
  NORMLAB_CUDA_LAUNCH(1, 64, 0, nullptr, segment_sums_xor)(x, sums, width);
}

// Block-wise sum in two stages: each warp reduces with shuffles, lane 0 of each warp stores its
// partial sum in shared memory, then warp 0 reduces the partial sums. blockDim.x is a multiple
// of 32 (up to 1024); each thread loads a grid-stride share of x. sums[blockIdx.x], in float.
__global__ void block_sum_two_stage(const float* x, float* sums, int n) {
  __shared__ float warp_partials[32];
  float value = 0.0f;
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n;
       i += static_cast<int>(gridDim.x * blockDim.x)) {
    value += x[i];
  }
  value = warp_sum_down(value);
  const unsigned warp = threadIdx.x / 32;
  const unsigned lane = threadIdx.x % 32;
  if (lane == 0) warp_partials[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < blockDim.x / 32 ? warp_partials[lane] : 0.0f;
    value = warp_sum_down(value);
    if (lane == 0) sums[blockIdx.x] = value;
  }
}

inline void launch_block_sum_two_stage(const float* x, float* sums, int n, int blocks,
                                       int threads) {
  NORMLAB_CUDA_LAUNCH(blocks, threads, 0, nullptr, block_sum_two_stage)(x, sums, n);
}

// Votes: for each warp of a 1-D grid, the ballot of x > 0, and whether any / all lanes agree.
// The last warp may be partial (blockDim.x not a multiple of 32): its missing lanes, named in
// the full mask, do not take part.
__global__ void warp_votes(const float* x, unsigned* ballots, int* any_positive,
                           int* all_positive) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  const int positive = x[i] > 0.0f;
  const unsigned ballot = __ballot_sync(full_mask, positive);
  const int any = __any_sync(full_mask, positive);
  const int all = __all_sync(full_mask, positive);
  if (threadIdx.x % 32 == 0) {
    const unsigned warp = i / 32;
    ballots[warp] = ballot;
    any_positive[warp] = any;
    all_positive[warp] = all;
  }
}

inline void launch_warp_votes(const float* x, unsigned* ballots, int* any_positive,
                              int* all_positive, int threads) {
  NORMLAB_CUDA_LAUNCH(1, threads, 0, nullptr, warp_votes)(x, ballots, any_positive, all_positive);
}

// Reverses each block-sized tile of x through dynamic shared memory (blockDim.x floats):
// y[tile start + j] = x[tile start + (tile size - 1 - j)]; the last tile may be short.
__global__ void reverse_tiles(const float* x, float* y, int n) {
  NORMLAB_DYNAMIC_SHARED(float, tile);
  const int start = static_cast<int>(blockIdx.x * blockDim.x);
  const int size = min(static_cast<int>(blockDim.x), n - start);
  const int j = static_cast<int>(threadIdx.x);
  if (j < size) tile[j] = x[start + j];
  __syncthreads();
  if (j < size) y[start + j] = tile[size - 1 - j];
}

inline void launch_reverse_tiles(const float* x, float* y, int n, int threads) {
  const int blocks = (n + threads - 1) / threads;
  NORMLAB_CUDA_LAUNCH(blocks, threads, threads * sizeof(float), nullptr, reverse_tiles)(x, y, n);
}

// y[i] = a * x[i] + b with a grid-stride loop: any grid covers any n.
__global__ void affine_grid_stride(const float* x, float* y, float a, float b, int n) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n;
       i += static_cast<int>(gridDim.x * blockDim.x)) {
    y[i] = a * x[i] + b;
  }
}

inline void launch_affine_grid_stride(const float* x, float* y, float a, float b, int n, int blocks,
                                      int threads) {
  NORMLAB_CUDA_LAUNCH(blocks, threads, 0, nullptr, affine_grid_stride)(x, y, a, b, n);
}

// 3-D grid of 3-D blocks: every thread writes its global (x, y, z) coordinates, encoded as
// x + 100 * y + 10000 * z, at its row-major position in the global extent, and counts itself.
__global__ void global_coordinates(int* codes, int* visits) {
  const unsigned gx = blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned gy = blockIdx.y * blockDim.y + threadIdx.y;
  const unsigned gz = blockIdx.z * blockDim.z + threadIdx.z;
  const unsigned width = gridDim.x * blockDim.x;
  const unsigned height = gridDim.y * blockDim.y;
  const unsigned position = (gz * height + gy) * width + gx;
  codes[position] = static_cast<int>(gx + 100 * gy + 10000 * gz);
  atomicAdd(&visits[position], 1);
}

inline void launch_global_coordinates(int* codes, int* visits, dim3 grid, dim3 block) {
  NORMLAB_CUDA_LAUNCH(grid, block, 0, nullptr, global_coordinates)(codes, visits);
}

// Atomics on every overload the emulator provides, from every thread of the grid.
// Thread t (global index) contributes t to the sums, t to the extremes, and competes for the
// CAS slot (the first thread to find it -1 claims it) and for the exchange slot.
struct AtomicTotals {
  int histogram[4];
  unsigned unsigned_sum;
  unsigned long long wide_sum;
  float float_sum;
  double double_sum;
  int int_max, int_min;
  unsigned unsigned_max, unsigned_min;
  unsigned long long wide_max, wide_min;
  int cas_claimed_by;
  unsigned cas_unsigned;
  unsigned long long cas_wide;
  int exchanged;
  unsigned exchanged_unsigned;
  unsigned long long exchanged_wide;
  float exchanged_float;
};

__global__ void atomic_totals(AtomicTotals* totals) {
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const unsigned u = static_cast<unsigned>(t);
  atomicAdd(&totals->histogram[t % 4], 1);
  atomicAdd(&totals->unsigned_sum, u);
  atomicAdd(&totals->wide_sum, static_cast<unsigned long long>(t) << 32);
  atomicAdd(&totals->float_sum, 1.0f);
  atomicAdd(&totals->double_sum, 0.5);
  atomicMax(&totals->int_max, t - 100);
  atomicMin(&totals->int_min, t - 100);
  atomicMax(&totals->unsigned_max, u);
  atomicMin(&totals->unsigned_min, u + 7);
  atomicMax(&totals->wide_max, static_cast<unsigned long long>(u) << 33);
  atomicMin(&totals->wide_min, (static_cast<unsigned long long>(u) << 33) + 1);
  atomicCAS(&totals->cas_claimed_by, -1, t);
  atomicCAS(&totals->cas_unsigned, 0u, u + 1);
  atomicCAS(&totals->cas_wide, 0ull, static_cast<unsigned long long>(u) + 1);
  atomicExch(&totals->exchanged, t);
  atomicExch(&totals->exchanged_unsigned, u);
  atomicExch(&totals->exchanged_wide, static_cast<unsigned long long>(u));
  atomicExch(&totals->exchanged_float, static_cast<float>(t));
}

inline void launch_atomic_totals(AtomicTotals* totals, int blocks, int threads) {
  NORMLAB_CUDA_LAUNCH(blocks, threads, 0, nullptr, atomic_totals)(totals);
}

// Each lane of one warp shuffles its own lane number with the chosen intrinsic (0 idx, 1 up,
// 2 down, 3 xor), so sources[lane] tells which lane it read.
__global__ void shuffle_sources(int* sources, int op, int operand, int width) {
  const int lane = static_cast<int>(threadIdx.x);
  int source = -1;
  if (op == 0) source = __shfl_sync(full_mask, lane, operand, width);
  if (op == 1) source = __shfl_up_sync(full_mask, lane, static_cast<unsigned>(operand), width);
  if (op == 2) source = __shfl_down_sync(full_mask, lane, static_cast<unsigned>(operand), width);
  if (op == 3) source = __shfl_xor_sync(full_mask, lane, operand, width);
  sources[lane] = source;
}

inline void launch_shuffle_sources(int* sources, int op, int operand, int width) {
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, shuffle_sources)(sources, op, operand, width);
}

// Lanes 16..31 exit at once; lanes 0..15 then swap values pairwise with a full-mask
// __shfl_xor_sync, which the exited lanes do not take part in.
__global__ void swap_pairs_after_exit(int* values) {
  const int lane = static_cast<int>(threadIdx.x);
  if (lane >= 16) return;
  values[lane] = __shfl_xor_sync(full_mask, values[lane], 1);
}

inline void launch_swap_pairs_after_exit(int* values) {
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, swap_pairs_after_exit)(values);
}

// The two halves of the warp reach different __shfl_sync calls with the same mask: on sm_70
// and later they meet (PTX requires the same intrinsic and mask, not the same instruction).
// Every lane receives lane 0's value, 100.
__global__ void broadcast_from_two_branches(int* values) {
  const int lane = static_cast<int>(threadIdx.x);
  if (lane < 16) {
    values[lane] = __shfl_sync(full_mask, lane + 100, 0);
  } else {
    values[lane] = __shfl_sync(full_mask, lane + 200, 0);
  }
}

inline void launch_broadcast_from_two_branches(int* values) {
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, broadcast_from_two_branches)(values);
}

// Every thread takes a ticket on arrival; with no barrier a thread runs to its end once
// started, so tickets[global thread] records the emulator's block and thread order.
__global__ void take_tickets(int* next_ticket, int* tickets) {
  tickets[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(next_ticket, 1);
}

inline void launch_take_tickets(int* next_ticket, int* tickets, int blocks, int threads) {
  NORMLAB_CUDA_LAUNCH(blocks, threads, 0, nullptr, take_tickets)(next_ticket, tickets);
}

// Writes `count` floats of dynamic shared memory and sums them back (thread 0): a kernel for
// the dynamic shared memory limit and its opt-in.
__global__ void fill_dynamic_shared(float* sum, int count) {
  NORMLAB_DYNAMIC_SHARED(float, buffer);
  for (int j = static_cast<int>(threadIdx.x); j < count; j += static_cast<int>(blockDim.x)) {
    buffer[j] = 1.0f;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int j = 0; j < count; ++j) total += buffer[j];
    *sum = total;
  }
}

inline void launch_fill_dynamic_shared(float* sum, int count) {
  NORMLAB_CUDA_LAUNCH(1, 128, count * sizeof(float), nullptr, fill_dynamic_shared)(sum, count);
}

// The maths with CUDA-only spellings, for x[i] > 0 in one block: values[8 i .. 8 i + 7] =
// rsqrtf, __fdividef by 3, __expf, __logf, __powf to 1.5, __frcp_rn, fmaxf with 1, fminf with
// 1 of x[i] (read with __ldg); integers[2 i], [2 i + 1] = min and max of i and 3.
__global__ void cuda_maths(const float* x, float* values, int* integers) {
  const int i = static_cast<int>(threadIdx.x);
  const float v = __ldg(&x[i]);
  float* out = values + 8 * i;
  out[0] = rsqrtf(v);
  out[1] = __fdividef(v, 3.0f);
  out[2] = __expf(v);
  out[3] = __logf(v);
  out[4] = __powf(v, 1.5f);
  out[5] = __frcp_rn(v);
  out[6] = fmaxf(v, 1.0f);
  out[7] = fminf(v, 1.0f);
  __threadfence();
  integers[2 * i] = min(i, 3);
  integers[2 * i + 1] = max(i, 3);
}

inline void launch_cuda_maths(const float* x, float* values, int* integers, int n) {
  NORMLAB_CUDA_LAUNCH(1, n, 0, nullptr, cuda_maths)(x, values, integers);
}

// ============================== Part 2: one injected bug each ================================

// BUG: block_sum_shared without the __syncthreads() inside the halving loop: a thread adds a
// partner's partial sum that the partner may not have updated yet.
template <int BlockSize>
__global__ void block_sum_missing_loop_sync(const float* x, float* sums, int n) {
  __shared__ float partial[BlockSize];
  const int i = static_cast<int>(blockIdx.x) * BlockSize + static_cast<int>(threadIdx.x);
  partial[threadIdx.x] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int stride = BlockSize / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride)
      partial[threadIdx.x] += partial[threadIdx.x + stride];
  }
  if (threadIdx.x == 0) sums[blockIdx.x] = partial[0];
}

template <int BlockSize>
void launch_block_sum_missing_loop_sync(const float* x, float* sums, int n) {
  const int blocks = (n + BlockSize - 1) / BlockSize;
  NORMLAB_CUDA_LAUNCH(blocks, BlockSize, 0, nullptr, block_sum_missing_loop_sync<BlockSize>)
  (x, sums, n);
}

// BUG: rotates each 64-element tile by one through shared memory, y[i] = x[i + 1 (in the
// tile)], but reads the neighbour's shared slot without a __syncthreads() after the write.
__global__ void rotate_tiles_missing_sync(const float* x, float* y) {
  __shared__ float tile[64];
  const unsigned i = blockIdx.x * 64 + threadIdx.x;
  tile[threadIdx.x] = x[i];
  y[i] = tile[(threadIdx.x + 1) % 64];
}

inline void launch_rotate_tiles_missing_sync(const float* x, float* y, int tiles) {
  NORMLAB_CUDA_LAUNCH(tiles, 64, 0, nullptr, rotate_tiles_missing_sync)(x, y);
}

// BUG: only the first half of the block reaches the __syncthreads(); the others exit.
__global__ void barrier_in_divergent_branch(float* out) {
  if (threadIdx.x < blockDim.x / 2) {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

inline void launch_barrier_in_divergent_branch(float* out) {
  NORMLAB_CUDA_LAUNCH(1, 64, 0, nullptr, barrier_in_divergent_branch)(out);
}

// BUG: the two halves of the block wait at two different __syncthreads().
__global__ void barriers_in_both_branches(float* out) {
  if (threadIdx.x < blockDim.x / 2) {
    out[threadIdx.x] = 1.0f;
    __syncthreads();
  } else {
    out[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

inline void launch_barriers_in_both_branches(float* out) {
  NORMLAB_CUDA_LAUNCH(1, 64, 0, nullptr, barriers_in_both_branches)(out);
}

// BUG: the mask names only the upper half-warp, but every lane shuffles with it.
__global__ void shuffle_mask_misses_caller(float* out) {
  out[threadIdx.x] = __shfl_down_sync(0xFFFF0000u, out[threadIdx.x], 1);
}

inline void launch_shuffle_mask_misses_caller(float* out) {
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, shuffle_mask_misses_caller)(out);
}

// BUG: lanes named in one full mask call different collectives: a shuffle in the lower half,
// a ballot in the upper half.
__global__ void halves_call_different_collectives(float* out) {
  const float value = out[threadIdx.x];
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_xor_sync(full_mask, value, 1);
  } else {
    out[threadIdx.x] = static_cast<float>(__ballot_sync(full_mask, value > 0.0f));
  }
}

inline void launch_halves_call_different_collectives(float* out) {
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, halves_call_different_collectives)(out);
}

// BUG: sums 64 shared slots, but a block of 48 threads writes only 48 of them.
__global__ void sum_unwritten_static_shared(float* sum) {
  __shared__ float slots[64];
  slots[threadIdx.x] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int j = 0; j < 64; ++j) total += slots[j];
    *sum = total;
  }
}

inline void launch_sum_unwritten_static_shared(float* sum) {
  NORMLAB_CUDA_LAUNCH(1, 48, 0, nullptr, sum_unwritten_static_shared)(sum);
}

// BUG: as above with dynamic shared memory (64 floats), in a template kernel.
template <typename T>
__global__ void sum_unwritten_dynamic_shared(T* sum) {
  NORMLAB_DYNAMIC_SHARED(T, slots);
  slots[threadIdx.x] = T(1);
  __syncthreads();
  if (threadIdx.x == 0) {
    T total = 0;
    for (int j = 0; j < 64; ++j) total += slots[j];
    *sum = total;
  }
}

template <typename T>
void launch_sum_unwritten_dynamic_shared(T* sum) {
  NORMLAB_CUDA_LAUNCH(1, 48, 64 * sizeof(T), nullptr, sum_unwritten_dynamic_shared<T>)(sum);
}

// BUG: thread 0 waits at a full-warp __syncwarp() that lanes 1..31 never reach: they wait at
// the __syncthreads() that thread 0 cannot reach. A deadlock.
__global__ void syncwarp_against_barrier(float* out) {
  if (threadIdx.x == 0) __syncwarp();
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

inline void launch_syncwarp_against_barrier(float* out) {
  NORMLAB_CUDA_LAUNCH(1, 64, 0, nullptr, syncwarp_against_barrier)(out);
}

}  // namespace
}  // namespace normlab::emu_test
