// LayerNorm on the GPU, two kinds:
//
// 1. The comparison's LayerNorm (normalisation over (C, H, W) per sample with a per-channel
//    affine): exactly GroupNorm with one group, so layer_norm_forward/backward launch the
//    GroupNorm plane kernels of norm_passes.cuh with G = 1 (see group_norm.cuh).
//
// 2. The classic last-dimension LayerNorm of transformers: x is [rows, D] row-major, gamma and
//    beta are [D], mean and rstd (saved in double) are [rows]; y = gamma_j * (x_j - mean) * rstd +
//    beta_j per row. Three kernels, chosen by the row's size (LastDimLayerNormConfig):
//      warp per row    D <= 1024: each lane keeps its share of the row in registers (kCols <= 32
//                      elements: packs of 4 when D % 4 == 0 and the pointers are 16-byte aligned,
//                      else single elements, lane l holding packs l, l + 32, ...); statistics by
//                      an exact two-pass over the registers (sum of x - x_0, then of squared
//                      deviations), each a warp all-reduce; x is read from memory once
//      block per row   larger rows whose cache fits in shared memory (forward D, backward 2*D
//      (cached)        elements, 48 KiB by default): the block loads the row into dynamic shared
//                      memory with 16-byte loads, then works from there; x (and dy) read once
//      block per row   rows too long to cache: statistics over global memory, then a second
//      (uncached)      pass reading x (and dy) again
//    The block kernels' forward has a block per row; the other kernels deal the rows out
//    grid-stride to a bounded number of workers (warps or blocks), so that each backward worker's
//    gamma/beta gradient partials cover many rows.
//    Backward per row: sum(gamma_j g_j) and sum(gamma_j g_j x_hat_j) (a warp or block
//    all-reduce) give the coefficients b, c of dx_j = rstd * gamma_j * g_j + b * (x_j - mean) + c
//    (norm_backward_coefficients); dgamma_j += g_j x_hat_j and dbeta_j += g_j go to the worker's
//    own row of partials (registers for a warp worker, a workspace row for a block worker, whose
//    thread t owns columns t, t + blockDim, ...), and a last kernel (one thread per column) adds
//    the workers' partials in worker order, in double: deterministic, no atomics.
//    Accumulation: the warp kernels sum x - x_0 (x_0 the row's first element, so offset data keeps
//    its digits) and then the squared deviations in float per lane and in the warp tree; the
//    block kernels sum x - x_0 and its square in double per thread and in the block tree (no
//    division but the final one), then form mean and M2 (welford_from_shifted_sums). Gradient sums:
//    float per thread and tree. The statistics' final form and the backward coefficients: double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "normlab/cuda_emu/cuda_emu.hpp"
#include "normlab/common/norm_math.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/norm_passes.cuh"
#include "normlab/cuda/reduce.cuh"

namespace normlab::cuda {

// ---- 1. the comparison's LayerNorm: GroupNorm with one group --------------------------------

/// Ensures: the bytes of device workspace layer_norm_forward needs for these sizes.
template <typename T>
size_t layer_norm_forward_workspace_bytes(int64_t N, int64_t C, int64_t HW,
                                          const NormLaunchConfig& config = {}) {
  return norm_detail::ForwardWorkspace<T>::bytes(norm_detail::make_layout(N, C, HW, 1, config),
                                                 true);
}

/// Ensures: the bytes of device workspace layer_norm_backward needs for these sizes.
template <typename T>
size_t layer_norm_backward_workspace_bytes(int64_t N, int64_t C, int64_t HW,
                                           const NormLaunchConfig& config = {}) {
  return norm_detail::BackwardWorkspace<T>::bytes(norm_detail::make_layout(N, C, HW, 1, config));
}

/// group_norm_forward with G = 1: normalisation of each sample over (C, HW) with a per-channel
/// affine. Requires/Ensures: as group_norm_forward with G = 1 (mean, rstd: [N]).
template <typename T>
void layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean, double* rstd,
                        int64_t N, int64_t C, int64_t HW, double eps, bool fuse_relu,
                        void* workspace, cudaStream_t stream = nullptr,
                        const NormLaunchConfig& config = {}) {
  norm_detail::group_norm_forward("cuda::layer_norm_forward", x, gamma, beta, y, mean, rstd, N, C,
                                  HW, 1, eps, fuse_relu, workspace, stream, config);
}

/// group_norm_backward with G = 1. Requires/Ensures: as group_norm_backward with G = 1.
template <typename T>
void layer_norm_backward(const T* x, const T* relu_output, const T* dy, const T* gamma,
                         const double* mean, const double* rstd, GradientOut<T> dx,
                         GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t N, int64_t C,
                         int64_t HW, void* workspace, cudaStream_t stream = nullptr,
                         const NormLaunchConfig& config = {}) {
  norm_detail::group_norm_backward("cuda::layer_norm_backward", x, relu_output, dy, gamma, mean,
                                   rstd, dx, dgamma, dbeta, N, C, HW, 1, workspace, stream, config);
}

// ---- 2. the last-dimension LayerNorm --------------------------------------------------------

/// Which kernel runs a row, and how many workers share the rows. Results depend on it only
/// through the order of float sums; tests shrink the limits to run every kernel on small rows.
struct LastDimLayerNormConfig {
  int64_t max_warp_row = 1024;          // rows up to this length: warp per row (at most 1024)
  size_t max_cached_bytes = 48 * 1024;  // block per row with the row(s) in shared memory
  int64_t max_workers = 256;            // warps or blocks sharing the rows
};

namespace last_dim_kernels {

// Warp kernels: 8 rows at a time; block kernels: one row. __launch_bounds__(kRowBlock, 1) lets
// the warp kernels keep a row of up to 1024 elements in registers (up to 211 per thread).
constexpr int kRowBlock = 256;
constexpr int kWarpsPerRowBlock = kRowBlock / kWarpSize;

/// Gamma or beta at column j, or `otherwise` when absent.
template <typename T>
__device__ __forceinline__ T param_at(const T* p, int64_t j, T otherwise) {
  return p != nullptr ? p[j] : otherwise;
}

/// The K parameters at columns [j, j + K) (16-byte pack when K > 1), or K times `otherwise`.
template <int K, typename T>
__device__ __forceinline__ Vec<T, K> params_at(const T* p, int64_t j, T otherwise) {
  if (p != nullptr) return load_vec<K>(p + j);
  Vec<T, K> v;
  for (int k = 0; k < K; ++k) v.v[k] = otherwise;
  return v;
}

/// A thread's count, sum(d) and sum(d^2) of the differences d = x - x_0 from a row's first element.
struct ShiftedSums {
  double count, sum, sum_sq;
};

__device__ __forceinline__ ShiftedSums shuffle_down(const ShiftedSums& s, int offset) {
  using normlab::cuda::shuffle_down;  // the double overload, hidden by this one
  return {shuffle_down(s.count, offset), shuffle_down(s.sum, offset),
          shuffle_down(s.sum_sq, offset)};
}

struct ShiftedSumsAdd {
  __device__ __forceinline__ ShiftedSums operator()(const ShiftedSums& a,
                                                    const ShiftedSums& b) const {
    return {a.count + b.count, a.sum + b.sum, a.sum_sq + b.sum_sq};
  }
};

/// This lane's part of a row in the warp kernels: packs l, l + 32, ... of kPack elements.
template <int kPack, int kPacks>
struct LaneColumns {
  /// First column of this lane's i-th pack.
  __device__ __forceinline__ static int64_t first(int i, int lane) {
    return (int64_t(i) * kWarpSize + lane) * kPack;
  }
};

template <typename T, int kPack, int kPacks>
__global__ void __launch_bounds__(kRowBlock, 1)
    forward_warp_per_row(const T* __restrict__ x, const T* __restrict__ gamma,
                         const T* __restrict__ beta, T* __restrict__ y, double* __restrict__ mean,
                         double* __restrict__ rstd, int64_t rows, int64_t D, double eps) {
  using Acc = AccumulateType<T>;
  using Columns = LaneColumns<kPack, kPacks>;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t workers = int64_t(gridDim.x) * kWarpsPerRowBlock;
  for (int64_t r = (int64_t(blockIdx.x) * kRowBlock + threadIdx.x) / kWarpSize; r < rows;
       r += workers) {
    const T* xr = x + r * D;
    Vec<T, kPack> v[kPacks] = {};
    for (int i = 0; i < kPacks; ++i)
      if (Columns::first(i, lane) < D) v[i] = load_vec<kPack>(xr + Columns::first(i, lane));
    const Acc shift = static_cast<Acc>(xr[0]);
    Acc sum = 0;
    for (int i = 0; i < kPacks; ++i)
      for (int k = 0; k < kPack; ++k)
        if (Columns::first(i, lane) + k < D) sum += static_cast<Acc>(v[i].v[k]) - shift;
    const Acc shifted_mean = warp_all_reduce(sum, Add{}) / static_cast<Acc>(D);
    Acc m2 = 0;
    for (int i = 0; i < kPacks; ++i)
      for (int k = 0; k < kPack; ++k)
        if (Columns::first(i, lane) + k < D) {
          const Acc d = static_cast<Acc>(v[i].v[k]) - shift - shifted_mean;
          m2 += d * d;
        }
    m2 = warp_all_reduce(m2, Add{});
    const double row_mean = static_cast<double>(shift) + static_cast<double>(shifted_mean);
    const double row_rstd = inverse_std(static_cast<double>(m2) / static_cast<double>(D), eps);
    if (lane == 0) {
      mean[r] = row_mean;
      rstd[r] = row_rstd;
    }
    const ChannelAffine<T> xhat = channel_affine<T>(row_mean, row_rstd, 1.0, 0.0);
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j >= D) continue;
      const Vec<T, kPack> g = params_at<kPack>(gamma, j, T(1)), b = params_at<kPack>(beta, j, T(0));
      Vec<T, kPack> out;
      for (int k = 0; k < kPack; ++k)
        out.v[k] = g.v[k] * normalize_affine<false>(v[i].v[k], xhat) + b.v[k];
      store_vec<kPack>(y + r * D + j, out);
    }
  }
}

/// partials: [workers][2][D] (dgamma, dbeta) for this launch's workers, or null.
template <typename T, int kPack, int kPacks>
__global__ void __launch_bounds__(kRowBlock, 1)
    backward_warp_per_row(const T* __restrict__ x, const T* __restrict__ dy,
                          const T* __restrict__ gamma, const double* __restrict__ mean,
                          const double* __restrict__ rstd, GradientOut<T> dx,
                          AccumulateType<T>* __restrict__ partials, int64_t rows, int64_t D) {
  using Acc = AccumulateType<T>;
  using Columns = LaneColumns<kPack, kPacks>;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t worker = (int64_t(blockIdx.x) * kRowBlock + threadIdx.x) / kWarpSize;
  const int64_t workers = int64_t(gridDim.x) * kWarpsPerRowBlock;
  Acc dgamma[kPacks][kPack] = {}, dbeta[kPacks][kPack] = {};
  for (int64_t r = worker; r < rows; r += workers) {
    Vec<T, kPack> v[kPacks] = {}, g[kPacks] = {};
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j >= D) continue;
      v[i] = load_vec<kPack>(x + r * D + j);
      g[i] = load_vec<kPack>(dy + r * D + j);
    }
    const ChannelAffine<T> xhat = channel_affine<T>(mean[r], rstd[r], 1.0, 0.0);
    GradSums<Acc> sums;  // sum(gamma_j g_j), sum(gamma_j g_j x_hat_j)
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j >= D) continue;
      const Vec<T, kPack> w = params_at<kPack>(gamma, j, T(1));
      for (int k = 0; k < kPack; ++k) {
        const T xh = normalize_affine<false>(v[i].v[k], xhat);
        sums.g += static_cast<Acc>(w.v[k] * g[i].v[k]);
        sums.g_xhat += static_cast<Acc>(w.v[k] * g[i].v[k] * xh);
        dgamma[i][k] += static_cast<Acc>(g[i].v[k] * xh);
        dbeta[i][k] += static_cast<Acc>(g[i].v[k]);
      }
    }
    if (dx.data == nullptr) continue;
    sums = warp_all_reduce(sums, GradSumsAdd{});
    const InputGradAffine<T> base = input_grad_affine<T>(
        mean[r], rstd[r], 1.0,
        norm_backward_coefficients(static_cast<double>(sums.g), static_cast<double>(sums.g_xhat),
                                   rstd[r], static_cast<double>(D)));
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j >= D) continue;
      const Vec<T, kPack> w = params_at<kPack>(gamma, j, T(1));
      Vec<T, kPack> out;
      if (dx.accumulate) out = load_vec<kPack>(dx.data + r * D + j);
      for (int k = 0; k < kPack; ++k) {
        InputGradAffine<T> column = base;
        column.dy_scale = base.dy_scale * w.v[k];
        const T d = norm_backward_input(g[i].v[k], v[i].v[k], column);
        out.v[k] = dx.accumulate ? out.v[k] + d : d;
      }
      store_vec<kPack>(dx.data + r * D + j, out);
    }
  }
  if (partials == nullptr) return;
  for (int i = 0; i < kPacks; ++i)
    for (int k = 0; k < kPack; ++k) {
      const int64_t j = Columns::first(i, lane) + k;
      if (j >= D) continue;
      partials[(2 * worker) * D + j] = dgamma[i][k];
      partials[(2 * worker + 1) * D + j] = dbeta[i][k];
    }
}

/// The block copies the D elements at `row` (global memory) to `cache` (shared memory), with
/// 16-byte loads where the row's alignment allows.
template <typename T>
__device__ __forceinline__ void cache_row(const T* row, int64_t D, T* cache) {
  for_each_packed<T>(packed_split(D, row), D, static_cast<int>(threadIdx.x), kRowBlock,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       const Vec<T, K> v = load_vec<K>(row + i);
                       for (int k = 0; k < K; ++k) cache[i + k] = v.v[k];
                     });
}

/// Block r normalises row r (the grid has one block per row).
template <typename T, bool kCached>
__global__ void __launch_bounds__(kRowBlock, 1)
    forward_block_per_row(const T* __restrict__ x, const T* __restrict__ gamma,
                          const T* __restrict__ beta, T* __restrict__ y, double* __restrict__ mean,
                          double* __restrict__ rstd, int64_t D, double eps) {
  using Acc = AccumulateType<T>;
  NORMLAB_DYNAMIC_SHARED(T, cache);  // kCached: the row
  const int t = static_cast<int>(threadIdx.x);
  const int64_t r = blockIdx.x;
  const T* xr = x + r * D;
  if constexpr (kCached) {
    cache_row(xr, D, cache);
    __syncthreads();
  }
  const T* row = kCached ? cache : xr;
  // Per thread, sums of d = x - x_0 (exact in Acc on offset data) and d^2 in double: no
  // division per element, and the conversion to mean and M2 loses nothing that matters.
  const Acc shift = static_cast<Acc>(row[0]);
  double count = 0, sum = 0, sum_sq = 0;
  for_each_packed<T>(packed_split(D, row), D, t, kRowBlock, [&](int64_t i, auto width) {
    constexpr int K = decltype(width)::value;
    const Vec<T, K> v = load_vec<K>(row + i);
    for (int k = 0; k < K; ++k) {
      const double d = static_cast<double>(static_cast<Acc>(v.v[k]) - shift);
      sum += d;
      sum_sq += d * d;
    }
    count += K;
  });
  const ShiftedSums totals =
      block_all_reduce<kRowBlock>(ShiftedSums{count, sum, sum_sq}, ShiftedSumsAdd{});
  const WelfordState<double> state =
      welford_from_shifted_sums(totals.count, 0.0, totals.sum, totals.sum_sq);
  const double row_mean = static_cast<double>(shift) + state.mean;
  const double row_rstd = inverse_std(welford_variance(state), eps);
  if (t == 0) {
    mean[r] = row_mean;
    rstd[r] = row_rstd;
  }
  const ChannelAffine<T> xhat = channel_affine<T>(row_mean, row_rstd, 1.0, 0.0);
  T* yr = y + r * D;
  // Packs for y, gamma, beta (and x when read from global memory); cached x by element.
  for_each_packed<T>(packed_split(D, yr, gamma, beta, kCached ? nullptr : xr), D, t, kRowBlock,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       Vec<T, K> v;
                       if constexpr (kCached) {
                         for (int k = 0; k < K; ++k) v.v[k] = row[i + k];
                       } else {
                         v = load_vec<K>(xr + i);
                       }
                       const Vec<T, K> g = params_at<K>(gamma, i, T(1)),
                                       b = params_at<K>(beta, i, T(0));
                       Vec<T, K> out;
                       for (int k = 0; k < K; ++k)
                         out.v[k] = g.v[k] * normalize_affine<false>(v.v[k], xhat) + b.v[k];
                       store_vec<K>(yr + i, out);
                     });
}

/// partials: [gridDim.x][2][D] (dgamma, dbeta), one row pair per block, or null. Thread t
/// owns columns t, t + blockDim.x, ... of its block's partials (and writes dx there).
template <typename T, bool kCached>
__global__ void __launch_bounds__(kRowBlock, 1)
    backward_block_per_row(const T* __restrict__ x, const T* __restrict__ dy,
                           const T* __restrict__ gamma, const double* __restrict__ mean,
                           const double* __restrict__ rstd, GradientOut<T> dx,
                           AccumulateType<T>* __restrict__ partials, int64_t rows, int64_t D) {
  using Acc = AccumulateType<T>;
  NORMLAB_DYNAMIC_SHARED(T, cache);  // kCached: the row of x, then the row of dy
  const int t = static_cast<int>(threadIdx.x);
  Acc* dgamma = partials != nullptr ? partials + 2 * int64_t(blockIdx.x) * D : nullptr;
  Acc* dbeta = partials != nullptr ? dgamma + D : nullptr;
  if (partials != nullptr)
    for (int64_t j = t; j < D; j += kRowBlock) dgamma[j] = dbeta[j] = Acc(0);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D, *dyr = dy + r * D;
    if constexpr (kCached) {
      cache_row(xr, D, cache);
      cache_row(dyr, D, cache + D);
      __syncthreads();
    }
    const T* x_row = kCached ? cache : xr;
    const T* dy_row = kCached ? cache + D : dyr;
    const ChannelAffine<T> xhat = channel_affine<T>(mean[r], rstd[r], 1.0, 0.0);
    GradSums<Acc> sums;  // sum(gamma_j g_j), sum(gamma_j g_j x_hat_j)
    for_each_packed<T>(
        packed_split(D, x_row, dy_row, gamma), D, t, kRowBlock, [&](int64_t i, auto width) {
          constexpr int K = decltype(width)::value;
          const Vec<T, K> v = load_vec<K>(x_row + i), g = load_vec<K>(dy_row + i);
          const Vec<T, K> w = params_at<K>(gamma, i, T(1));
          for (int k = 0; k < K; ++k) {
            sums.g += static_cast<Acc>(w.v[k] * g.v[k]);
            sums.g_xhat +=
                static_cast<Acc>(w.v[k] * g.v[k] * normalize_affine<false>(v.v[k], xhat));
          }
        });
    sums = block_all_reduce<kRowBlock>(sums, GradSumsAdd{});
    const InputGradAffine<T> base = input_grad_affine<T>(
        mean[r], rstd[r], 1.0,
        norm_backward_coefficients(static_cast<double>(sums.g), static_cast<double>(sums.g_xhat),
                                   rstd[r], static_cast<double>(D)));
    for (int64_t j = t; j < D; j += kRowBlock) {
      const T g = dy_row[j], v = x_row[j];
      if (partials != nullptr) {
        dgamma[j] += static_cast<Acc>(g * normalize_affine<false>(v, xhat));
        dbeta[j] += static_cast<Acc>(g);
      }
      if (dx.data == nullptr) continue;
      InputGradAffine<T> column = base;
      column.dy_scale = base.dy_scale * param_at(gamma, j, T(1));
      const T d = norm_backward_input(g, v, column);
      dx.data[r * D + j] = dx.accumulate ? dx.data[r * D + j] + d : d;
    }
    if constexpr (kCached) __syncthreads();  // the next row overwrites the cache
  }
}

/// One thread per column j: dgamma[j] (+)= sum over workers of partials[w][0][j], dbeta[j] (+)=
/// of partials[w][1][j], in worker order, in double.
template <typename T>
__global__ void __launch_bounds__(kRowBlock, 1)
    param_grads_from_partials(const AccumulateType<T>* __restrict__ partials, int64_t workers,
                              int64_t D, GradientOut<T> dgamma, GradientOut<T> dbeta) {
  const int64_t j = int64_t(blockIdx.x) * kRowBlock + threadIdx.x;
  if (j >= D) return;
  double sum_g_xhat = 0, sum_g = 0;
  for (int64_t w = 0; w < workers; ++w) {
    sum_g_xhat += static_cast<double>(partials[(2 * w) * D + j]);
    sum_g += static_cast<double>(partials[(2 * w + 1) * D + j]);
  }
  if (dgamma.data != nullptr)
    dgamma.data[j] = static_cast<T>((dgamma.accumulate ? dgamma.data[j] : T(0)) + sum_g_xhat);
  if (dbeta.data != nullptr)
    dbeta.data[j] = static_cast<T>((dbeta.accumulate ? dbeta.data[j] : T(0)) + sum_g);
}

}  // namespace last_dim_kernels

namespace last_dim_detail {

enum class RowKernel { Warp, Cached, Uncached };

/// The launch plan of one call: the kernel, its workers and grid, the warp kernel's pack width
/// and columns per lane, the dynamic shared memory of the cached kernel.
struct Plan {
  RowKernel kernel;
  int64_t workers;
  unsigned grid;
  int pack;
  int columns_per_lane;
  size_t shared_bytes;
};

inline bool aligned16(const void* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

/// rows_cached: rows of D elements the cached kernel keeps (1 forward, 2 backward); aligned:
/// all pointers the warp kernel reads or writes are 16-byte aligned.
template <typename T>
Plan plan(int64_t rows, int64_t D, int rows_cached, bool aligned,
          const LastDimLayerNormConfig& config) {
  using namespace last_dim_kernels;
  Plan p{};
  const int64_t wanted = rows < config.max_workers ? rows : config.max_workers;
  if (D <= config.max_warp_row && D <= 1024) {
    p.kernel = RowKernel::Warp;
    p.grid = static_cast<unsigned>((wanted + kWarpsPerRowBlock - 1) / kWarpsPerRowBlock);
    p.workers = int64_t(p.grid) * kWarpsPerRowBlock;
    const bool packed = D % kPackSize<T> == 0 && aligned;
    p.pack = packed ? kPackSize<T> : 1;
    const int64_t per_lane = (D + kWarpSize - 1) / kWarpSize;
    p.columns_per_lane = per_lane <= 4 ? 4 : per_lane <= 8 ? 8 : per_lane <= 16 ? 16 : 32;
    return p;
  }
  p.grid = static_cast<unsigned>(wanted);
  p.workers = wanted;
  p.shared_bytes = sizeof(T) * static_cast<size_t>(D) * rows_cached;
  p.kernel = p.shared_bytes <= config.max_cached_bytes ? RowKernel::Cached : RowKernel::Uncached;
  if (p.kernel == RowKernel::Uncached) p.shared_bytes = 0;
  return p;
}

/// Calls f(std::integral_constant<int, kPack>, std::integral_constant<int, kCols>) for the warp
/// kernel's pack width (1 or kPackSize<T>) and columns per lane (4, 8, 16 or 32).
template <typename T, typename F>
void with_warp_shape(const Plan& p, F f) {
  using std::integral_constant;
  const auto with_columns = [&](auto pack) {
    switch (p.columns_per_lane) {
      case 4:
        return f(pack, integral_constant<int, 4>{});
      case 8:
        return f(pack, integral_constant<int, 8>{});
      case 16:
        return f(pack, integral_constant<int, 16>{});
      default:
        return f(pack, integral_constant<int, 32>{});
    }
  };
  if (p.pack == 1) {
    with_columns(integral_constant<int, 1>{});
  } else {
    with_columns(integral_constant<int, kPackSize<T>>{});
  }
}

/// The dynamic shared memory of a cached launch above the default 48 KiB needs an opt-in.
template <typename Kernel>
void allow_shared_bytes(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    NORMLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(bytes)));
  }
}

inline void check_rows(const char* op, int64_t rows, int64_t D,
                       const LastDimLayerNormConfig& config) {
  NORMLAB_CHECK(rows >= 1 && D >= 1, op, ": sizes rows = ", rows, ", D = ", D, " must be positive");
  NORMLAB_CHECK(config.max_workers >= 1, op, ": max_workers must be positive, got ",
                config.max_workers);
}

}  // namespace last_dim_detail

/// Ensures: the bytes of device workspace last_dim_layer_norm_backward needs (the gradient
/// partials of gamma and beta, one row pair per worker).
template <typename T>
size_t last_dim_layer_norm_backward_workspace_bytes(int64_t rows, int64_t D,
                                                    const LastDimLayerNormConfig& config = {}) {
  const last_dim_detail::Plan p = last_dim_detail::plan<T>(rows, D, 2, true, config);
  return sizeof(AccumulateType<T>) * 2 * static_cast<size_t>(p.workers * D);
}

/// All pointers are device memory. For each row r of x ([rows, D], row-major): y[r, j] =
/// gamma[j] * (x[r, j] - mean_r) * rstd_r + beta[j], mean and biased variance over the row;
/// gamma/beta may be null (1/0). Requires: rows, D >= 1; eps > 0. Ensures: mean[r] and rstd[r] =
/// 1 / sqrt(var + eps) saved in double. Needs no workspace.
template <typename T>
void last_dim_layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean,
                                 double* rstd, int64_t rows, int64_t D, double eps,
                                 cudaStream_t stream = nullptr,
                                 const LastDimLayerNormConfig& config = {}) {
  namespace k = last_dim_kernels;
  using last_dim_detail::RowKernel;
  const char* op = "cuda::last_dim_layer_norm_forward";
  last_dim_detail::check_rows(op, rows, D, config);
  norm_detail::check_eps(op, eps);
  for (const auto& [p, name] :
       {std::pair<const void*, const char*>{x, "x"}, {y, "y"}, {mean, "mean"}, {rstd, "rstd"}})
    norm_detail::check_pointer(op, p, name);
  using last_dim_detail::aligned16;
  const last_dim_detail::Plan p = last_dim_detail::plan<T>(
      rows, D, 1, aligned16(x) && aligned16(y) && aligned16(gamma) && aligned16(beta), config);
  if (p.kernel == RowKernel::Warp) {
    last_dim_detail::with_warp_shape<T>(p, [&](auto pack, auto columns) {
      constexpr int kPack = decltype(pack)::value, kPacks = decltype(columns)::value / kPack;
      NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, 0, stream,
                          k::forward_warp_per_row<T, kPack, kPacks>)
      (x, gamma, beta, y, mean, rstd, rows, D, eps);
    });
  } else if (p.kernel == RowKernel::Cached) {
    last_dim_detail::allow_shared_bytes(k::forward_block_per_row<T, true>, p.shared_bytes);
    NORMLAB_CUDA_LAUNCH(static_cast<unsigned>(rows), k::kRowBlock, p.shared_bytes, stream,
                        k::forward_block_per_row<T, true>)
    (x, gamma, beta, y, mean, rstd, D, eps);
  } else {
    NORMLAB_CUDA_LAUNCH(static_cast<unsigned>(rows), k::kRowBlock, 0, stream,
                        k::forward_block_per_row<T, false>)
    (x, gamma, beta, y, mean, rstd, D, eps);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Backward of last_dim_layer_norm_forward with the same x, gamma, sizes, saved mean/rstd and
/// config; all pointers are device memory. Ensures, for each non-null output: dx (+)= the input
/// gradient, dgamma[j] (+)= sum over rows of dy * x_hat, dbeta[j] (+)= sum of dy.
/// Requires: `workspace` holds last_dim_layer_norm_backward_workspace_bytes<T>(rows, D, config)
/// bytes (may be null when dgamma and dbeta are).
template <typename T>
void last_dim_layer_norm_backward(const T* x, const T* dy, const T* gamma, const double* mean,
                                  const double* rstd, GradientOut<T> dx, GradientOut<T> dgamma,
                                  GradientOut<T> dbeta, int64_t rows, int64_t D, void* workspace,
                                  cudaStream_t stream = nullptr,
                                  const LastDimLayerNormConfig& config = {}) {
  namespace k = last_dim_kernels;
  using last_dim_detail::RowKernel;
  const char* op = "cuda::last_dim_layer_norm_backward";
  last_dim_detail::check_rows(op, rows, D, config);
  for (const auto& [p, name] :
       {std::pair<const void*, const char*>{x, "x"}, {dy, "dy"}, {mean, "mean"}, {rstd, "rstd"}})
    norm_detail::check_pointer(op, p, name);
  const bool param_grads = dgamma.data != nullptr || dbeta.data != nullptr;
  if (param_grads) norm_detail::check_pointer(op, workspace, "workspace");
  auto* partials = param_grads ? static_cast<AccumulateType<T>*>(workspace) : nullptr;
  using last_dim_detail::aligned16;
  const last_dim_detail::Plan p = last_dim_detail::plan<T>(
      rows, D, 2, aligned16(x) && aligned16(dy) && aligned16(gamma) && aligned16(dx.data), config);
  if (p.kernel == RowKernel::Warp) {
    last_dim_detail::with_warp_shape<T>(p, [&](auto pack, auto columns) {
      constexpr int kPack = decltype(pack)::value, kPacks = decltype(columns)::value / kPack;
      NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, 0, stream,
                          k::backward_warp_per_row<T, kPack, kPacks>)
      (x, dy, gamma, mean, rstd, dx, partials, rows, D);
    });
  } else if (p.kernel == RowKernel::Cached) {
    last_dim_detail::allow_shared_bytes(k::backward_block_per_row<T, true>, p.shared_bytes);
    NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, p.shared_bytes, stream,
                        k::backward_block_per_row<T, true>)
    (x, dy, gamma, mean, rstd, dx, partials, rows, D);
  } else {
    NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, 0, stream, k::backward_block_per_row<T, false>)
    (x, dy, gamma, mean, rstd, dx, partials, rows, D);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  if (param_grads) {
    NORMLAB_CUDA_LAUNCH(static_cast<unsigned>((D + k::kRowBlock - 1) / k::kRowBlock), k::kRowBlock,
                        0, stream, k::param_grads_from_partials<T>)
    (partials, p.workers, D, dgamma, dbeta);
    NORMLAB_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace normlab::cuda
