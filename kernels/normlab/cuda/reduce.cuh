// Reduction and memory-access building blocks of normlab's CUDA kernels (device code only):
//
//   warp_reduce / warp_all_reduce   a value of each lane of a full warp merged with
//                                   __shfl_down_sync in a fixed tree (lane 0, or every lane via
//                                   a broadcast from lane 0); no shared memory
//   block_all_reduce<BlockSize>     each warp reduces, lane 0 of each writes one value to static
//                                   shared memory, thread 0 merges the warp results in warp
//                                   order, every thread reads the total (two __syncthreads)
//   for_each_packed                 the indices [0, n) of a run of elements dealt out to
//                                   `workers` (the lanes of a warp, the threads of a block): a
//                                   scalar head up to the first 16-byte boundary, 16-byte packs
//                                   (float4, double2), a scalar tail; all scalar if the runs that
//                                   are read or written together are not equally aligned
//
// The reductions work on any trivially copyable value with shuffle_down / shuffle overloads:
// float, double, WelfordState (count, mean, M2, merged with Chan's formula by welford_merge of
// normlab/common/norm_math.hpp) and the norm kernels' gradient sums. A reduction's order depends
// only on the launch configuration, never on timing, so results are deterministic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "normlab/common/norm_math.hpp"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarpMask = 0xFFFFFFFFu;

/// Accumulation type of an element type: float for float (and, later, half/bf16), double for
/// double.
template <typename T>
using AccumulateType = std::conditional_t<std::is_same_v<T, double>, double, float>;

// ---- shuffles of reduction values -----------------------------------------------------------

__device__ __forceinline__ float shuffle_down(float v, int offset) {
  return __shfl_down_sync(kFullWarpMask, v, offset);
}
__device__ __forceinline__ double shuffle_down(double v, int offset) {
  return __shfl_down_sync(kFullWarpMask, v, offset);
}
__device__ __forceinline__ float shuffle(float v, int source_lane) {
  return __shfl_sync(kFullWarpMask, v, source_lane);
}
__device__ __forceinline__ double shuffle(double v, int source_lane) {
  return __shfl_sync(kFullWarpMask, v, source_lane);
}
template <typename Acc>
__device__ __forceinline__ WelfordState<Acc> shuffle_down(const WelfordState<Acc>& s, int offset) {
  WelfordState<Acc> r;
  r.count = shuffle_down(s.count, offset);
  r.mean = shuffle_down(s.mean, offset);
  r.m2 = shuffle_down(s.m2, offset);
  return r;
}
template <typename Acc>
__device__ __forceinline__ WelfordState<Acc> shuffle(const WelfordState<Acc>& s, int source_lane) {
  WelfordState<Acc> r;
  r.count = shuffle(s.count, source_lane);
  r.mean = shuffle(s.mean, source_lane);
  r.m2 = shuffle(s.m2, source_lane);
  return r;
}

/// Adds (a functor, so that it can be passed to the reductions).
struct Add {
  template <typename V>
  __device__ __forceinline__ V operator()(const V& a, const V& b) const {
    return a + b;
  }
};

/// Merges with Chan's formula (a functor, so that it can be passed to the reductions).
struct WelfordMerge {
  template <typename Acc>
  __device__ __forceinline__ WelfordState<Acc> operator()(const WelfordState<Acc>& a,
                                                          const WelfordState<Acc>& b) const {
    return welford_merge(a, b);
  }
};

// ---- warp and block reductions --------------------------------------------------------------

/// Requires: all 32 lanes of the warp call it. Ensures: lane 0 returns the merge of every lane's
/// value, in the fixed tree order offset 16, 8, 4, 2, 1 (other lanes return partial results).
template <typename V, typename Merge>
__device__ __forceinline__ V warp_reduce(V value, Merge merge) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = merge(value, shuffle_down(value, offset));
  return value;
}

/// As warp_reduce, but every lane returns lane 0's result.
template <typename V, typename Merge>
__device__ __forceinline__ V warp_all_reduce(V value, Merge merge) {
  return shuffle(warp_reduce(value, merge), 0);
}

/// Requires: all BlockSize threads of the block call it (BlockSize = blockDim.x, a multiple of
/// 32). Ensures: every thread returns the merge of all threads' values: each warp's tree, then
/// the warp results in warp order. Its shared memory may be reused as soon as it returns.
template <int BlockSize, typename V, typename Merge>
__device__ V block_all_reduce(V value, Merge merge) {
  static_assert(BlockSize % kWarpSize == 0 && BlockSize <= 1024, "whole warps, at most 1024");
  constexpr int kWarps = BlockSize / kWarpSize;
  // Raw bytes: __shared__ variables cannot have constructors, and V may have member initialisers.
  __shared__ __align__(16) unsigned char warp_bytes[kWarps * sizeof(V)];
  V* warp_values = reinterpret_cast<V*>(warp_bytes);
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  value = warp_reduce(value, merge);
  if (threadIdx.x % kWarpSize == 0) warp_values[warp] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    V total = warp_values[0];
    for (int w = 1; w < kWarps; ++w) total = merge(total, warp_values[w]);
    warp_values[0] = total;
  }
  __syncthreads();
  const V total = warp_values[0];
  __syncthreads();
  return total;
}

// ---- 16-byte loads and stores with scalar head and tail -------------------------------------

/// K consecutive elements, loaded or stored by one instruction (K * sizeof(T) bytes, aligned).
template <typename T, int K>
struct alignas(sizeof(T) * K) Vec {
  T v[K];
};

/// Elements per 16-byte pack: 4 floats, 2 doubles.
template <typename T>
constexpr int kPackSize = static_cast<int>(16 / sizeof(T));

/// Requires: p aligned to K * sizeof(T) bytes.
template <int K, typename T>
__device__ __forceinline__ Vec<T, K> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, K>*>(p);
}
template <int K, typename T>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, K>& v) {
  *reinterpret_cast<Vec<T, K>*>(p) = v;
}

/// How a run of n elements splits for 16-byte access: `head` single elements up to the first
/// 16-byte boundary, then `packs` whole packs, then single elements to the end.
struct PackedSplit {
  int64_t head;
  int64_t packs;
};

template <typename T>
__device__ __forceinline__ uintptr_t misalignment(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % 16;
}

/// Ensures: the split of the n elements at `first` for 16-byte access, valid for every other
/// non-null pointer given (the runs accessed at the same indices). If one of those is aligned
/// differently from `first`, or `first` is not aligned to its element, all n are single.
template <typename T, typename... Others>
__device__ PackedSplit packed_split(int64_t n, const T* first, const Others*... others) {
  const uintptr_t offset = misalignment(first);
  const bool same = ((others == nullptr || misalignment(others) == offset) && ...);
  if (!same || offset % sizeof(T) != 0) return {n, 0};
  const int64_t to_boundary = static_cast<int64_t>((16 - offset) % 16 / sizeof(T));
  const int64_t head = to_boundary < n ? to_boundary : n;
  return {head, (n - head) / kPackSize<T>};
}

/// Calls visit(i, std::integral_constant<int, K>{}) for the elements [i, i + K) of [0, n) that
/// `worker` (0 <= worker < workers) owns: K = 1 for the head and tail elements of `split`, one
/// per worker in turn, and K = kPackSize<T> for the packs, one per worker in turn. Together the
/// workers visit every element exactly once.
template <typename T, typename Visit>
__device__ __forceinline__ void for_each_packed(const PackedSplit& split, int64_t n, int worker,
                                                int workers, Visit visit) {
  constexpr int K = kPackSize<T>;
  using Single = std::integral_constant<int, 1>;
  using Pack = std::integral_constant<int, K>;
  for (int64_t i = worker; i < split.head; i += workers) visit(i, Single{});
  const int64_t packed_end = split.head + split.packs * K;
  for (int64_t i = split.head + int64_t(worker) * K; i < packed_end; i += int64_t(workers) * K)
    visit(i, Pack{});
  for (int64_t i = packed_end + worker; i < n; i += workers) visit(i, Single{});
}

}  // namespace normlab::cuda
