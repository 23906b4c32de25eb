// LayerNorm on the GPU, two kinds:
//
// 1. The comparison's LayerNorm (normalisation over (C, H, W) per sample with a per-channel
//    affine): exactly GroupNorm with one group, so layer_norm_forward/backward launch the
//    GroupNorm plane kernels of norm_passes.cuh with G = 1 (see group_norm.cuh).
//
// 2. The classic last-dimension LayerNorm of transformers: x is [rows, D] row-major, gamma and
//    beta are [D], mean and rstd (saved in double) are [rows]; y = gamma_j * (x_j - mean) * rstd +
//    beta_j per row, then max(y, 0) when a ReLU is fused (every kernel has a kRelu variant; the
//    backward then takes g = dy where the saved y > 0 and 0 elsewhere, as norm_passes.cuh does).
//    Three kernels, chosen by the row's size (LastDimLayerNormConfig):
//      warp per row    D <= 1024: each lane keeps its share of the row in registers (4, 8, 16 or 32
//                      elements: packs of 4 when D % 4 == 0 and the pointers are 16-byte aligned,
//                      else single elements, lane l holding packs l, l + 32, ...); statistics by
//                      an exact two-pass over the registers (sum of x - x_0, then of squared
//                      deviations), each a warp all-reduce; x is read from memory once
//      block per row   larger rows whose cache fits in shared memory (forward D, backward 2*D
//      (cached)        elements, 48 KiB by default): the block loads the row into dynamic shared
//                      memory with 16-byte loads (the backward: x and g, dy already masked), then
//                      works from there; x (and dy, y) read once
//      block per row   rows too long to cache: statistics over global memory, then a second
//      (uncached)      pass reading x (and dy, y) again
//    The block kernels' forward has a block per row; the other kernels deal the rows out
//    grid-stride to a bounded number of workers (warps or blocks), so that each backward worker's
//    gamma/beta gradient partials cover many rows.
//    The per-element tails (the affine and ReLU of y, the gradient sums, dx, the gamma/beta
//    partials) are __device__ helpers that all kernels share, on one element or a 16-byte pack.
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

#include "normlab/common/norm_math.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/norm_passes.cuh"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

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

/// The K parameters at columns [j, j + K) (16-byte pack when K > 1), or K times `otherwise`
/// when p is null (no affine).
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
template <int kPack>
struct LaneColumns {
  /// First column of this lane's i-th pack.
  __device__ __forceinline__ static int64_t first(int i, int lane) {
    return (int64_t(i) * kWarpSize + lane) * kPack;
  }
};

// ---- the per-element tails every kernel shares ----

/// The first thread of a row's worker (`saves`) saves the row's statistics. Ensures: x_hat's
/// folded form, (x - center) * scale + shift.
template <typename T>
__device__ __forceinline__ ChannelAffine<T> save_row_statistics(bool saves, int64_t r,
                                                                double row_mean, double row_rstd,
                                                                double* mean, double* rstd) {
  if (saves) {
    mean[r] = row_mean;
    rstd[r] = row_rstd;
  }
  return channel_affine<T>(row_mean, row_rstd, 1.0, 0.0);
}

/// Forward of the K elements v at columns [j, j + K) of a row: y = gamma_j * x_hat + beta_j,
/// then max(y, 0) if kRelu (normalize_affine with x_hat's form scaled by gamma_j and shifted by
/// beta_j), stored at y_row + j.
template <bool kRelu, int K, typename T>
__device__ __forceinline__ void store_normalized(const Vec<T, K>& v, const ChannelAffine<T>& xhat,
                                                 const T* gamma, const T* beta, int64_t j,
                                                 T* y_row) {
  const Vec<T, K> g = params_at<K>(gamma, j, T(1)), b = params_at<K>(beta, j, T(0));
  Vec<T, K> out;
  for (int k = 0; k < K; ++k) {
    const ChannelAffine<T> column{xhat.center, xhat.scale * g.v[k], xhat.shift * g.v[k] + b.v[k]};
    out.v[k] = normalize_affine<kRelu>(v.v[k], column);
  }
  store_vec<K>(y_row + j, out);
}

/// Adds the terms of K elements (x v, output gradient g) at columns [j, j + K) of a row to its
/// gradient sums: sum(gamma_j g_j) and sum(gamma_j g_j x_hat_j).
template <int K, typename T, typename Acc>
__device__ __forceinline__ void add_grad_sums(GradSums<Acc>& sums, const Vec<T, K>& v,
                                              const Vec<T, K>& g, const T* gamma, int64_t j,
                                              const ChannelAffine<T>& xhat) {
  const Vec<T, K> w = params_at<K>(gamma, j, T(1));
  for (int k = 0; k < K; ++k) {
    const T wg = w.v[k] * g.v[k];
    sums.g += static_cast<Acc>(wg);
    sums.g_xhat += static_cast<Acc>(wg * normalize_affine<false>(v.v[k], xhat));
  }
}

/// Adds K columns' terms to a worker's gamma/beta gradient partials: dgamma[k] += g_k x_hat_k,
/// dbeta[k] += g_k.
template <int K, typename T, typename Acc>
__device__ __forceinline__ void add_param_grads(const Vec<T, K>& v, const Vec<T, K>& g,
                                                const ChannelAffine<T>& xhat, Acc* dgamma,
                                                Acc* dbeta) {
  for (int k = 0; k < K; ++k) {
    dgamma[k] += static_cast<Acc>(g.v[k] * normalize_affine<false>(v.v[k], xhat));
    dbeta[k] += static_cast<Acc>(g.v[k]);
  }
}

/// The input-gradient form of a row from its all-reduced gradient sums, before the column's
/// gamma (dy_scale = rstd; norm_backward_coefficients over the D elements).
template <typename T, typename Acc>
__device__ __forceinline__ InputGradAffine<T> row_input_grad(const GradSums<Acc>& sums,
                                                             double row_mean, double row_rstd,
                                                             int64_t D) {
  return input_grad_affine<T>(
      row_mean, row_rstd, 1.0,
      norm_backward_coefficients(static_cast<double>(sums.g), static_cast<double>(sums.g_xhat),
                                 row_rstd, static_cast<double>(D)));
}

/// dx[0, K), the K columns [j, j + K) of a row, = (or += if accumulate) the input gradient of
/// (v, g) with the row's form and gamma_j. (The load for accumulating comes after the new
/// values: with it first, ptxas for sm_90 gives the warp kernel 243 registers instead of 211.)
template <int K, typename T>
__device__ __forceinline__ void store_input_grad(const Vec<T, K>& v, const Vec<T, K>& g,
                                                 const T* gamma, int64_t j,
                                                 const InputGradAffine<T>& row, T* dx,
                                                 bool accumulate) {
  const Vec<T, K> w = params_at<K>(gamma, j, T(1));
  Vec<T, K> out;
  for (int k = 0; k < K; ++k) {
    InputGradAffine<T> column = row;
    column.dy_scale = row.dy_scale * w.v[k];
    out.v[k] = norm_backward_input(g.v[k], v.v[k], column);
  }
  if (accumulate) {
    const Vec<T, K> before = load_vec<K>(dx);
    for (int k = 0; k < K; ++k) out.v[k] = before.v[k] + out.v[k];
  }
  store_vec<K>(dx, out);
}

// ---- the kernels ----

/// Warp w normalises rows w, w + workers, ... (then the ReLU if kRelu).
template <typename T, int kPack, int kPacks, bool kRelu>
__global__ void __launch_bounds__(kRowBlock, 1)
    forward_warp_per_row(const T* __restrict__ x, const T* __restrict__ gamma,
                         const T* __restrict__ beta, T* __restrict__ y, double* __restrict__ mean,
                         double* __restrict__ rstd, int64_t rows, int64_t D, double eps) {
  using Acc = AccumulateType<T>;
  using Columns = LaneColumns<kPack>;
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
    const ChannelAffine<T> xhat = save_row_statistics<T>(
        lane == 0, r, static_cast<double>(shift) + static_cast<double>(shifted_mean),
        inverse_std(static_cast<double>(m2) / static_cast<double>(D), eps), mean, rstd);
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j < D) store_normalized<kRelu>(v[i], xhat, gamma, beta, j, y + r * D);
    }
  }
}

/// Warp w takes rows w, w + workers, ... . y: the forward's output if kRelu (dy is masked by
/// y > 0), else unused. partials: [workers][2][D] (dgamma, dbeta) for this launch's workers, or
/// null.
template <typename T, int kPack, int kPacks, bool kRelu>
__global__ void __launch_bounds__(kRowBlock, 1)
    backward_warp_per_row(const T* __restrict__ x, const T* __restrict__ y,
                          const T* __restrict__ dy, const T* __restrict__ gamma,
                          const double* __restrict__ mean, const double* __restrict__ rstd,
                          GradientOut<T> dx, AccumulateType<T>* __restrict__ partials, int64_t rows,
                          int64_t D) {
  using Acc = AccumulateType<T>;
  using Columns = LaneColumns<kPack>;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t worker = (int64_t(blockIdx.x) * kRowBlock + threadIdx.x) / kWarpSize;
  const int64_t workers = int64_t(gridDim.x) * kWarpsPerRowBlock;
  Acc dgamma[kPacks][kPack] = {}, dbeta[kPacks][kPack] = {};
  for (int64_t r = worker; r < rows; r += workers) {
    const T *xr = x + r * D, *dyr = dy + r * D, *yr = kRelu ? y + r * D : nullptr;
    Vec<T, kPack> v[kPacks] = {}, g[kPacks] = {};
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j >= D) continue;
      v[i] = load_vec<kPack>(xr + j);
      g[i] = norm_kernels::masked_grad<kRelu, kPack>(dyr, yr, j);
    }
    const ChannelAffine<T> xhat = channel_affine<T>(mean[r], rstd[r], 1.0, 0.0);
    GradSums<Acc> sums;  // sum(gamma_j g_j), sum(gamma_j g_j x_hat_j)
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j >= D) continue;
      add_grad_sums(sums, v[i], g[i], gamma, j, xhat);
      add_param_grads(v[i], g[i], xhat, dgamma[i], dbeta[i]);
    }
    if (dx.data == nullptr) continue;
    sums = warp_all_reduce(sums, GradSumsAdd{});
    const InputGradAffine<T> row = row_input_grad<T>(sums, mean[r], rstd[r], D);
    for (int i = 0; i < kPacks; ++i) {
      const int64_t j = Columns::first(i, lane);
      if (j < D) store_input_grad(v[i], g[i], gamma, j, row, dx.data + r * D + j, dx.accumulate);
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

/// The block copies the D elements at `row` (global memory) to `cache` (shared memory), zeroed
/// where the fused ReLU's output `mask_row` is not positive if kMask, with 16-byte loads where
/// the rows' alignment allows.
template <bool kMask, typename T>
__device__ __forceinline__ void cache_row(const T* row, const T* mask_row, int64_t D, T* cache) {
  for_each_packed<T>(packed_split(D, row, mask_row), D, static_cast<int>(threadIdx.x), kRowBlock,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       const Vec<T, K> v = norm_kernels::masked_grad<kMask, K>(row, mask_row, i);
                       for (int k = 0; k < K; ++k) cache[i + k] = v.v[k];
                     });
}

/// Block r normalises row r (the grid has one block per row); kCached: from a copy of the row in
/// dynamic shared memory.
template <typename T, bool kCached, bool kRelu>
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
    cache_row<false>(xr, static_cast<const T*>(nullptr), D, cache);
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
  const ChannelAffine<T> xhat =
      save_row_statistics<T>(t == 0, r, static_cast<double>(shift) + state.mean,
                             inverse_std(welford_variance(state), eps), mean, rstd);
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
                       store_normalized<kRelu>(v, xhat, gamma, beta, i, yr);
                     });
}

/// Block b takes rows b, b + gridDim.x, ... . y: the forward's output if kRelu (dy is masked by
/// y > 0), else unused. partials: [gridDim.x][2][D] (dgamma, dbeta), one row pair per block, or
/// null. Thread t owns columns t, t + blockDim.x, ... of its block's partials (and writes dx
/// there). kCached: x and the masked dy of the row are first copied to dynamic shared memory.
template <typename T, bool kCached, bool kRelu>
__global__ void __launch_bounds__(kRowBlock, 1)
    backward_block_per_row(const T* __restrict__ x, const T* __restrict__ y,
                           const T* __restrict__ dy, const T* __restrict__ gamma,
                           const double* __restrict__ mean, const double* __restrict__ rstd,
                           GradientOut<T> dx, AccumulateType<T>* __restrict__ partials,
                           int64_t rows, int64_t D) {
  using Acc = AccumulateType<T>;
  // Where dy is read from global memory it is masked on every read; the cache holds it masked.
  constexpr bool kMaskOnRead = kRelu && !kCached;
  NORMLAB_DYNAMIC_SHARED(T, cache);  // kCached: the row of x, then the row of g
  const int t = static_cast<int>(threadIdx.x);
  Acc* dgamma = partials != nullptr ? partials + 2 * int64_t(blockIdx.x) * D : nullptr;
  Acc* dbeta = partials != nullptr ? dgamma + D : nullptr;
  if (partials != nullptr)
    for (int64_t j = t; j < D; j += kRowBlock) dgamma[j] = dbeta[j] = Acc(0);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T *xr = x + r * D, *dyr = dy + r * D, *yr = kRelu ? y + r * D : nullptr;
    if constexpr (kCached) {
      cache_row<false>(xr, static_cast<const T*>(nullptr), D, cache);
      cache_row<kRelu>(dyr, yr, D, cache + D);
      __syncthreads();
    }
    const T* x_row = kCached ? cache : xr;
    const T* dy_row = kCached ? cache + D : dyr;
    const T* mask_row = kMaskOnRead ? yr : nullptr;
    const ChannelAffine<T> xhat = channel_affine<T>(mean[r], rstd[r], 1.0, 0.0);
    GradSums<Acc> sums;  // sum(gamma_j g_j), sum(gamma_j g_j x_hat_j)
    for_each_packed<T>(packed_split(D, x_row, dy_row, gamma, mask_row), D, t, kRowBlock,
                       [&](int64_t i, auto width) {
                         constexpr int K = decltype(width)::value;
                         add_grad_sums(
                             sums, load_vec<K>(x_row + i),
                             norm_kernels::masked_grad<kMaskOnRead, K>(dy_row, mask_row, i), gamma,
                             i, xhat);
                       });
    const InputGradAffine<T> row =
        row_input_grad<T>(block_all_reduce<kRowBlock>(sums, GradSumsAdd{}), mean[r], rstd[r], D);
    for (int64_t j = t; j < D; j += kRowBlock) {
      const Vec<T, 1> v = load_vec<1>(x_row + j);
      const Vec<T, 1> g = norm_kernels::masked_grad<kMaskOnRead, 1>(dy_row, mask_row, j);
      if (partials != nullptr) add_param_grads(v, g, xhat, dgamma + j, dbeta + j);
      if (dx.data != nullptr)
        store_input_grad(v, g, gamma, j, row, dx.data + r * D + j, dx.accumulate);
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
  dgamma.store(j, sum_g_xhat);
  dbeta.store(j, sum_g);
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

/// Calls the launcher for the plan's kernel with the template arguments it needs, all as
/// std::integral_constant: warp(relu, pack, packs) for the warp kernel (pack width 1 or
/// kPackSize<T>, packs per lane such that pack * packs is 4, 8, 16 or 32 columns per lane),
/// block(relu, cached) for the block kernels.
template <typename T, typename Warp, typename Block>
void with_kernel(const Plan& p, bool relu, Warp warp, Block block) {
  using std::integral_constant;
  norm_detail::with_flag(relu, [&](auto relu_flag) {
    if (p.kernel != RowKernel::Warp) {
      norm_detail::with_flag(p.kernel == RowKernel::Cached,
                             [&](auto cached) { block(relu_flag, cached); });
      return;
    }
    const auto with_columns = [&](auto pack) {
      constexpr int kPack = decltype(pack)::value;
      switch (p.columns_per_lane) {
        case 4:
          return warp(relu_flag, pack, integral_constant<int, 4 / kPack>{});
        case 8:
          return warp(relu_flag, pack, integral_constant<int, 8 / kPack>{});
        case 16:
          return warp(relu_flag, pack, integral_constant<int, 16 / kPack>{});
        default:
          return warp(relu_flag, pack, integral_constant<int, 32 / kPack>{});
      }
    };
    if (p.pack == 1) {
      with_columns(integral_constant<int, 1>{});
    } else {
      with_columns(integral_constant<int, kPackSize<T>>{});
    }
  });
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
  NORMLAB_CHECK(rows < (int64_t(1) << 31), op, ": rows = ", rows, ", at most 2^31 - 1");
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
/// gamma[j] * (x[r, j] - mean_r) * rstd_r + beta[j], then max(y, 0) if fuse_relu (a NaN stays
/// NaN); mean and biased variance over the row; gamma/beta may be null (1/0). Requires: rows, D
/// >= 1, rows < 2^31; eps > 0. Ensures: mean[r] and rstd[r] = 1 / sqrt(var + eps) saved in
/// double. Needs no workspace.
template <typename T>
void last_dim_layer_norm_forward(const T* x, const T* gamma, const T* beta, T* y, double* mean,
                                 double* rstd, int64_t rows, int64_t D, double eps, bool fuse_relu,
                                 cudaStream_t stream = nullptr,
                                 const LastDimLayerNormConfig& config = {}) {
  namespace k = last_dim_kernels;
  const char* op = "cuda::last_dim_layer_norm_forward";
  last_dim_detail::check_rows(op, rows, D, config);
  norm_detail::check_eps(op, eps);
  for (const auto& [p, name] :
       {std::pair<const void*, const char*>{x, "x"}, {y, "y"}, {mean, "mean"}, {rstd, "rstd"}})
    norm_detail::check_pointer(op, p, name);
  using last_dim_detail::aligned16;
  const last_dim_detail::Plan p = last_dim_detail::plan<T>(
      rows, D, 1, aligned16(x) && aligned16(y) && aligned16(gamma) && aligned16(beta), config);
  last_dim_detail::with_kernel<T>(
      p, fuse_relu,
      [&](auto relu, auto pack, auto packs) {
        NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, 0, stream,
                            k::forward_warp_per_row<T, decltype(pack)::value,
                                                    decltype(packs)::value, decltype(relu)::value>)
        (x, gamma, beta, y, mean, rstd, rows, D, eps);
      },
      [&](auto relu, auto cached) {
        constexpr bool kRelu = decltype(relu)::value, kCached = decltype(cached)::value;
        last_dim_detail::allow_shared_bytes(k::forward_block_per_row<T, kCached, kRelu>,
                                            p.shared_bytes);
        NORMLAB_CUDA_LAUNCH(static_cast<unsigned>(rows), k::kRowBlock, p.shared_bytes, stream,
                            k::forward_block_per_row<T, kCached, kRelu>)
        (x, gamma, beta, y, mean, rstd, D, eps);
      });
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Backward of last_dim_layer_norm_forward with the same x, gamma, sizes, saved mean/rstd and
/// config; all pointers are device memory. relu_output: the forward's y if it fused the ReLU
/// (then g = dy where y > 0 and 0 elsewhere), else null (g = dy). Ensures, for each non-null
/// output: dx (+)= the input gradient, dgamma[j] (+)= sum over rows of g * x_hat, dbeta[j] (+)=
/// sum of g. Requires: `workspace` holds last_dim_layer_norm_backward_workspace_bytes<T>(rows, D,
/// config) bytes (may be null when dgamma and dbeta are).
template <typename T>
void last_dim_layer_norm_backward(const T* x, const T* relu_output, const T* dy, const T* gamma,
                                  const double* mean, const double* rstd, GradientOut<T> dx,
                                  GradientOut<T> dgamma, GradientOut<T> dbeta, int64_t rows,
                                  int64_t D, void* workspace, cudaStream_t stream = nullptr,
                                  const LastDimLayerNormConfig& config = {}) {
  namespace k = last_dim_kernels;
  const char* op = "cuda::last_dim_layer_norm_backward";
  last_dim_detail::check_rows(op, rows, D, config);
  for (const auto& [p, name] :
       {std::pair<const void*, const char*>{x, "x"}, {dy, "dy"}, {mean, "mean"}, {rstd, "rstd"}})
    norm_detail::check_pointer(op, p, name);
  const bool param_grads = dgamma.data != nullptr || dbeta.data != nullptr;
  if (param_grads) norm_detail::check_pointer(op, workspace, "workspace");
  auto* partials = param_grads ? static_cast<AccumulateType<T>*>(workspace) : nullptr;
  using last_dim_detail::aligned16;
  const last_dim_detail::Plan p =
      last_dim_detail::plan<T>(rows, D, 2,
                               aligned16(x) && aligned16(relu_output) && aligned16(dy) &&
                                   aligned16(gamma) && aligned16(dx.data),
                               config);
  last_dim_detail::with_kernel<T>(
      p, relu_output != nullptr,
      [&](auto relu, auto pack, auto packs) {
        NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, 0, stream,
                            k::backward_warp_per_row<T, decltype(pack)::value,
                                                     decltype(packs)::value, decltype(relu)::value>)
        (x, relu_output, dy, gamma, mean, rstd, dx, partials, rows, D);
      },
      [&](auto relu, auto cached) {
        constexpr bool kRelu = decltype(relu)::value, kCached = decltype(cached)::value;
        last_dim_detail::allow_shared_bytes(k::backward_block_per_row<T, kCached, kRelu>,
                                            p.shared_bytes);
        NORMLAB_CUDA_LAUNCH(p.grid, k::kRowBlock, p.shared_bytes, stream,
                            k::backward_block_per_row<T, kCached, kRelu>)
        (x, relu_output, dy, gamma, mean, rstd, dx, partials, rows, D);
      });
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  if (param_grads) {
    NORMLAB_CUDA_LAUNCH(static_cast<unsigned>((D + k::kRowBlock - 1) / k::kRowBlock), k::kRowBlock,
                        0, stream, k::param_grads_from_partials<T>)
    (partials, p.workers, D, dgamma, dbeta);
    NORMLAB_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace normlab::cuda
