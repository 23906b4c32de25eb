// The CUDA kernels that BatchNorm2d and GroupNorm (and so the comparison's LayerNorm, G = 1) are
// built from, and the launch sequences batch_norm.cuh and group_norm.cuh call: the CUDA twin of
// cpu/norm_passes.hpp. The maths is in normlab/common/norm_math.hpp and docs/cuda.md.
//
// Layout: x, y, dy, dx are NCHW, seen as N*C planes of HW contiguous elements; plane p = n*C + c.
// A statistics group is a set of planes (NormLayout): BatchNorm's group c is the N planes of
// channel c (C*HW apart), GroupNorm's group (n, g) the C/G consecutive planes of sample n from
// channel g*C/G. Each plane splits into chunks of at most `chunk` elements; a (plane, chunk) pair
// is a work item. Per-group results (saved mean and rstd, in double) are indexed by group,
// per-plane ones (folded affine and input-gradient coefficients) by plane.
//
// Forward, 3 launches:
//   norm_plane_moments        one warp per work item: Welford over the chunk of x - shift (shift
//                             = the group's first element, so that offset data such as 100 +
//                             0.01*randn is summed as small exact differences), lanes take
//                             16-byte packs in turn, warp tree; one WelfordState<float> per item
//   norm_finalize_statistics  one block per group: merges the group's item states in double
//                             (Chan), saves mean = shift + mean' and rstd = 1/sqrt(var + eps),
//                             updates BatchNorm's running statistics (unbiased variance, momentum)
//                             or, in evaluation, takes them as the statistics; then folds gamma
//                             and beta into each plane's (center, scale, shift) (ChannelAffine)
//   norm_normalize            one warp per work item: y = (x - center) * scale + shift (+ ReLU)
// Backward, up to 4 launches (each only when an output needs it):
//   norm_plane_grad_sums      one warp per work item: sum(g), sum(g * x_hat) in float, with g =
//                             dy masked by the saved y > 0 when a ReLU was fused
//   norm_finalize_input_grad  one block per group: sum over the group's items of gamma_c * sums,
//                             in double -> coefficients b, c of dx = rstd*gamma*g + b*(x-mean) + c
//                             (zero without batch statistics) folded per plane (InputGradAffine)
//   norm_input_grad           one warp per work item: dx (+)= dy_scale * g + x_scale * (x -
//                             center) + shift
//   norm_param_grads          one warp per channel: dgamma_c (+)= sum over its planes' items of
//                             sum(g * x_hat), dbeta_c (+)= sum(g), in double, lane order then tree
// Passes over global memory: forward reads x twice and writes y once; backward reads x, dy (and y
// with a fused ReLU) twice and writes dx once; dgamma/dbeta read only the per-item sums.
//
// Determinism: no atomics. Every sum has a fixed order given the sizes and the chunk length, so
// results are bit-identical from run to run. Splitting planes into chunks (and BatchNorm's
// channels into N planes) gives a CIFAR BatchNorm with 16 channels thousands of warps to run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "normlab/common/gradient_out.hpp"
#include "normlab/common/norm_math.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

/// Tuning of the plane kernels. The results depend on it only through the order of the float
/// sums; tests make chunks tiny to run many work items per plane on small shapes.
struct NormLaunchConfig {
  int64_t chunk = 1024;  // elements per work item (32 per lane: 8 packs of 4 floats)
};

/// NCHW data as planes, grouped for statistics (see the file comment).
struct NormLayout {
  int64_t N, C, HW;
  int64_t groups;  // GroupNorm: groups per sample, dividing C; 0: BatchNorm (a group per channel)
  int64_t chunk;   // elements per work item, >= 1

  NORMLAB_HOST_DEVICE int64_t planes() const { return N * C; }
  NORMLAB_HOST_DEVICE int64_t chunks_per_plane() const { return (HW + chunk - 1) / chunk; }
  NORMLAB_HOST_DEVICE int64_t work_items() const { return planes() * chunks_per_plane(); }
  NORMLAB_HOST_DEVICE int64_t group_count() const { return groups == 0 ? C : N * groups; }
  /// In 32-bit arithmetic (planes() < 2^31, checked by the launchers): no 64-bit division.
  NORMLAB_HOST_DEVICE int64_t group_of_plane(int64_t p) const {
    const uint32_t plane = static_cast<uint32_t>(p), channels = static_cast<uint32_t>(C);
    const uint32_t n = plane / channels, c = plane - n * channels;
    return groups == 0 ? c : int64_t(n) * groups + c / (channels / static_cast<uint32_t>(groups));
  }

  /// The planes of one group: the i-th (0 <= i < count) is plane first + i * step, of channel
  /// first_channel + i * channel_step.
  struct GroupPlanes {
    int64_t count, first, step, first_channel, channel_step;
    NORMLAB_HOST_DEVICE int64_t plane(int64_t i) const { return first + i * step; }
    NORMLAB_HOST_DEVICE int64_t channel(int64_t i) const {
      return first_channel + i * channel_step;
    }
  };
  NORMLAB_HOST_DEVICE GroupPlanes planes_of_group(int64_t k) const {
    if (groups == 0) return {N, k, C, k, 0};
    const int64_t per_group = C / groups, first_channel = k % groups * per_group;
    return {per_group, k / groups * C + first_channel, 1, first_channel, 1};
  }
};

/// The gradient sums of some elements: sum(g) and sum(g * x_hat).
template <typename Acc>
struct GradSums {
  Acc g = 0;
  Acc g_xhat = 0;
};

template <typename Acc>
__device__ __forceinline__ GradSums<Acc> shuffle_down(const GradSums<Acc>& s, int offset) {
  GradSums<Acc> r;
  r.g = shuffle_down(s.g, offset);
  r.g_xhat = shuffle_down(s.g_xhat, offset);
  return r;
}

template <typename Acc>
__device__ __forceinline__ GradSums<Acc> shuffle(const GradSums<Acc>& s, int source_lane) {
  GradSums<Acc> r;
  r.g = shuffle(s.g, source_lane);
  r.g_xhat = shuffle(s.g_xhat, source_lane);
  return r;
}

struct GradSumsAdd {
  template <typename Acc>
  __device__ __forceinline__ GradSums<Acc> operator()(const GradSums<Acc>& a,
                                                      const GradSums<Acc>& b) const {
    return {a.g + b.g, a.g_xhat + b.g_xhat};
  }
};

namespace norm_kernels {

// Block sizes, and the minimum resident blocks per SM given to __launch_bounds__: stated
// explicitly, because without it ptxas for sm_90 aims at a higher occupancy and spills registers
// (the CTest checks cuda:nvcc_no_spills:<family> fail on any spill or stack frame).
constexpr int kPlaneBlock = 256;    // 8 warps, one work item each
constexpr int kPlaneMinBlocks = 2;  // so at most 128 registers per thread
constexpr int kWarpsPerPlaneBlock = kPlaneBlock / kWarpSize;
constexpr int kGroupBlock = 128;  // one group per block

/// The work item of this warp: plane, first element within the plane, length. The grid is
/// (planes / 8 blocks of 8 warps, chunks per plane): no division.
struct WorkItem {
  int64_t index;
  int64_t plane;
  int64_t begin;
  int64_t length;
};

__device__ __forceinline__ WorkItem warp_work_item(const NormLayout& layout) {
  WorkItem item;
  item.plane = (int64_t(blockIdx.x) * kPlaneBlock + threadIdx.x) / kWarpSize;
  item.index = item.plane * gridDim.y + blockIdx.y;
  item.begin = int64_t(blockIdx.y) * layout.chunk;
  item.length = layout.HW - item.begin < layout.chunk ? layout.HW - item.begin : layout.chunk;
  return item;
}

__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x) % kWarpSize; }

/// The output gradient g of K elements at dy + i: dy, zeroed where the fused ReLU's saved output
/// y is not positive.
template <bool kRelu, int K, typename T>
__device__ __forceinline__ Vec<T, K> masked_grad(const T* dy, const T* y, int64_t i) {
  Vec<T, K> g = load_vec<K>(dy + i);
  if constexpr (kRelu) {
    const Vec<T, K> out = load_vec<K>(y + i);
    for (int k = 0; k < K; ++k)
      if (!(out.v[k] > T(0))) g.v[k] = T(0);
  }
  return g;
}

template <typename T>
__global__ void __launch_bounds__(kPlaneBlock, kPlaneMinBlocks)
    norm_plane_moments(const T* __restrict__ x, NormLayout layout,
                       WelfordState<AccumulateType<T>>* __restrict__ partials) {
  using Acc = AccumulateType<T>;
  const WorkItem item = warp_work_item(layout);
  if (item.plane >= layout.planes()) return;  // whole warps leave together
  const T* xs = x + item.plane * layout.HW + item.begin;
  const int64_t first_plane = layout.planes_of_group(layout.group_of_plane(item.plane)).first;
  const Acc shift = static_cast<Acc>(x[first_plane * layout.HW]);
  WelfordState<Acc> state;
  for_each_packed<T>(packed_split(item.length, xs), item.length, lane_id(), kWarpSize,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       const Vec<T, K> v = load_vec<K>(xs + i);
                       for (int k = 0; k < K; ++k)
                         welford_push(state, static_cast<Acc>(v.v[k]) - shift);
                     });
  state = warp_reduce(state, WelfordMerge{});
  if (lane_id() == 0) partials[item.index] = state;
}

/// partials == nullptr: the statistics are running_mean/running_var (BatchNorm in evaluation).
template <typename T>
__global__ void __launch_bounds__(kGroupBlock, 1)
    norm_finalize_statistics(const T* __restrict__ x, NormLayout layout,
                             const WelfordState<AccumulateType<T>>* __restrict__ partials,
                             const T* __restrict__ gamma, const T* __restrict__ beta,
                             T* __restrict__ running_mean, T* __restrict__ running_var,
                             double momentum, double eps, double* __restrict__ mean,
                             double* __restrict__ rstd, ChannelAffine<T>* __restrict__ affine) {
  const int64_t k = blockIdx.x;
  const NormLayout::GroupPlanes group = layout.planes_of_group(k);
  __shared__ double statistics[2];  // mean, rstd
  if (partials != nullptr) {
    const int64_t chunks = layout.chunks_per_plane();
    WelfordState<double> state;
    for (int64_t i = threadIdx.x; i < group.count * chunks; i += kGroupBlock) {
      const int64_t q = i / chunks;
      const auto& p = partials[group.plane(q) * chunks + (i - q * chunks)];
      WelfordState<double> item;
      item.count = p.count;
      item.mean = p.mean;
      item.m2 = p.m2;
      state = welford_merge(state, item);
    }
    state = block_all_reduce<kGroupBlock>(state, WelfordMerge{});
    if (threadIdx.x == 0) {
      const double shift = static_cast<double>(x[group.first * layout.HW]);
      statistics[0] = shift + state.mean;
      statistics[1] = inverse_std(welford_variance(state), eps);
      if (running_mean != nullptr) {
        const double unbiased_var = state.m2 / (state.count - 1);
        running_mean[k] =
            static_cast<T>((1 - momentum) * running_mean[k] + momentum * statistics[0]);
        running_var[k] = static_cast<T>((1 - momentum) * running_var[k] + momentum * unbiased_var);
      }
    }
  } else if (threadIdx.x == 0) {
    statistics[0] = static_cast<double>(running_mean[k]);
    statistics[1] = inverse_std(static_cast<double>(running_var[k]), eps);
  }
  __syncthreads();
  const double group_mean = statistics[0], group_rstd = statistics[1];
  if (threadIdx.x == 0) {
    mean[k] = group_mean;
    rstd[k] = group_rstd;
  }
  for (int64_t i = threadIdx.x; i < group.count; i += kGroupBlock) {
    const int64_t c = group.channel(i);
    affine[group.plane(i)] = channel_affine<T>(
        group_mean, group_rstd, gamma != nullptr ? static_cast<double>(gamma[c]) : 1.0,
        beta != nullptr ? static_cast<double>(beta[c]) : 0.0);
  }
}

template <typename T, bool kRelu>
__global__ void __launch_bounds__(kPlaneBlock, kPlaneMinBlocks)
    norm_normalize(const T* __restrict__ x, NormLayout layout,
                   const ChannelAffine<T>* __restrict__ affine, T* __restrict__ y) {
  const WorkItem item = warp_work_item(layout);
  if (item.plane >= layout.planes()) return;
  const int64_t offset = item.plane * layout.HW + item.begin;
  const T* xs = x + offset;
  T* ys = y + offset;
  const ChannelAffine<T> a = affine[item.plane];
  for_each_packed<T>(packed_split(item.length, xs, ys), item.length, lane_id(), kWarpSize,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       const Vec<T, K> v = load_vec<K>(xs + i);
                       Vec<T, K> out;
                       for (int k = 0; k < K; ++k) out.v[k] = normalize_affine<kRelu>(v.v[k], a);
                       store_vec<K>(ys + i, out);
                     });
}

/// y: the forward's output when a ReLU was fused (kRelu), else unused.
template <typename T, bool kRelu>
__global__ void __launch_bounds__(kPlaneBlock, kPlaneMinBlocks)
    norm_plane_grad_sums(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                         NormLayout layout, const double* __restrict__ mean,
                         const double* __restrict__ rstd,
                         GradSums<AccumulateType<T>>* __restrict__ partials) {
  using Acc = AccumulateType<T>;
  const WorkItem item = warp_work_item(layout);
  if (item.plane >= layout.planes()) return;
  const int64_t offset = item.plane * layout.HW + item.begin;
  const T *xs = x + offset, *dys = dy + offset, *ys = kRelu ? y + offset : nullptr;
  const int64_t k = layout.group_of_plane(item.plane);
  const ChannelAffine<T> xhat = channel_affine<T>(mean[k], rstd[k], 1.0, 0.0);
  GradSums<Acc> sums;
  for_each_packed<T>(packed_split(item.length, xs, dys, ys), item.length, lane_id(), kWarpSize,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       const Vec<T, K> v = load_vec<K>(xs + i);
                       const Vec<T, K> g = masked_grad<kRelu, K>(dys, ys, i);
                       for (int j = 0; j < K; ++j) {
                         sums.g += static_cast<Acc>(g.v[j]);
                         sums.g_xhat +=
                             static_cast<Acc>(g.v[j] * normalize_affine<false>(v.v[j], xhat));
                       }
                     });
  sums = warp_reduce(sums, GradSumsAdd{});
  if (lane_id() == 0) partials[item.index] = sums;
}

/// partials == nullptr: the statistics were constants (BatchNorm in evaluation), b = c = 0.
template <typename T>
__global__ void __launch_bounds__(kGroupBlock, 1)
    norm_finalize_input_grad(NormLayout layout,
                             const GradSums<AccumulateType<T>>* __restrict__ partials,
                             const T* __restrict__ gamma, const double* __restrict__ mean,
                             const double* __restrict__ rstd,
                             InputGradAffine<T>* __restrict__ coefficients) {
  const int64_t k = blockIdx.x;
  const NormLayout::GroupPlanes group = layout.planes_of_group(k);
  __shared__ double bc[2];  // the group's coefficients b, c
  if (partials != nullptr) {
    const int64_t chunks = layout.chunks_per_plane();
    GradSums<double> sums;  // sum(gamma_c * g), sum(gamma_c * g * x_hat)
    for (int64_t i = threadIdx.x; i < group.count * chunks; i += kGroupBlock) {
      const int64_t q = i / chunks;
      const double gamma_c = gamma != nullptr ? static_cast<double>(gamma[group.channel(q)]) : 1.0;
      const auto& p = partials[group.plane(q) * chunks + (i - q * chunks)];
      sums.g += gamma_c * static_cast<double>(p.g);
      sums.g_xhat += gamma_c * static_cast<double>(p.g_xhat);
    }
    sums = block_all_reduce<kGroupBlock>(sums, GradSumsAdd{});
    if (threadIdx.x == 0) {
      const double count = static_cast<double>(group.count * layout.HW);
      const NormBackwardCoefficients<double> b_c =
          norm_backward_coefficients(sums.g, sums.g_xhat, rstd[k], count);
      bc[0] = b_c.b;
      bc[1] = b_c.c;
    }
  } else if (threadIdx.x == 0) {
    bc[0] = 0;
    bc[1] = 0;
  }
  __syncthreads();
  NormBackwardCoefficients<double> b_c;
  b_c.b = bc[0];
  b_c.c = bc[1];
  for (int64_t i = threadIdx.x; i < group.count; i += kGroupBlock) {
    const double gamma_c = gamma != nullptr ? static_cast<double>(gamma[group.channel(i)]) : 1.0;
    coefficients[group.plane(i)] = input_grad_affine<T>(mean[k], rstd[k], gamma_c, b_c);
  }
}

template <typename T, bool kRelu, bool kAccumulate>
__global__ void __launch_bounds__(kPlaneBlock, kPlaneMinBlocks)
    norm_input_grad(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                    NormLayout layout, const InputGradAffine<T>* __restrict__ coefficients,
                    T* __restrict__ dx) {
  const WorkItem item = warp_work_item(layout);
  if (item.plane >= layout.planes()) return;
  const int64_t offset = item.plane * layout.HW + item.begin;
  const T *xs = x + offset, *dys = dy + offset, *ys = kRelu ? y + offset : nullptr;
  T* dxs = dx + offset;
  const InputGradAffine<T> coefficient = coefficients[item.plane];
  for_each_packed<T>(packed_split(item.length, xs, dys, ys, dxs), item.length, lane_id(), kWarpSize,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       const Vec<T, K> v = load_vec<K>(xs + i);
                       const Vec<T, K> g = masked_grad<kRelu, K>(dys, ys, i);
                       Vec<T, K> out;
                       if constexpr (kAccumulate) out = load_vec<K>(dxs + i);
                       for (int j = 0; j < K; ++j) {
                         const T d = norm_backward_input(g.v[j], v.v[j], coefficient);
                         out.v[j] = kAccumulate ? out.v[j] + d : d;
                       }
                       store_vec<K>(dxs + i, out);
                     });
}

template <typename T>
__global__ void __launch_bounds__(kPlaneBlock, kPlaneMinBlocks)
    norm_param_grads(NormLayout layout, const GradSums<AccumulateType<T>>* __restrict__ partials,
                     GradientOut<T> dgamma, GradientOut<T> dbeta) {
  const int64_t c = (int64_t(blockIdx.x) * kPlaneBlock + threadIdx.x) / kWarpSize;
  if (c >= layout.C) return;
  const int64_t chunks = layout.chunks_per_plane();
  GradSums<double> sums;
  for (int64_t i = lane_id(); i < layout.N * chunks; i += kWarpSize) {
    const auto& p = partials[(i / chunks * layout.C + c) * chunks + i % chunks];
    sums.g += static_cast<double>(p.g);
    sums.g_xhat += static_cast<double>(p.g_xhat);
  }
  sums = warp_reduce(sums, GradSumsAdd{});
  if (lane_id() != 0) return;
  dgamma.store(c, sums.g_xhat);
  dbeta.store(c, sums.g);
}

}  // namespace norm_kernels

// ---- workspace and launch sequences ---------------------------------------------------------

namespace norm_detail {

constexpr size_t kWorkspaceAlignment = 256;

inline size_t align_workspace(size_t bytes) {
  return (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

inline unsigned grid_for_warps(int64_t warps) {
  return static_cast<unsigned>((warps + norm_kernels::kWarpsPerPlaneBlock - 1) /
                               norm_kernels::kWarpsPerPlaneBlock);
}

/// The grid of the warp-per-work-item kernels (see warp_work_item).
inline dim3 work_item_grid(const NormLayout& layout) {
  return dim3(grid_for_warps(layout.planes()), static_cast<unsigned>(layout.chunks_per_plane()));
}

/// Calls f(std::true_type{}) or f(std::false_type{}): a runtime flag as a template argument.
template <typename F>
void with_flag(bool flag, F f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

/// Launcher argument checks: a normlab::Error naming the op and the values.
inline void check_planes(const char* op, int64_t N, int64_t C, int64_t HW,
                         const NormLaunchConfig& config) {
  NORMLAB_CHECK(N >= 1 && C >= 1 && HW >= 1, op, ": sizes N = ", N, ", C = ", C, ", HW = ", HW,
                " must all be positive");
  NORMLAB_CHECK(config.chunk >= 1, op, ": chunk length must be positive, got ", config.chunk);
  NORMLAB_CHECK(N * C < (int64_t(1) << 31), op, ": N * C = ", N * C, " planes, at most 2^31 - 1");
  NORMLAB_CHECK((HW + config.chunk - 1) / config.chunk <= 65535, op, ": HW = ", HW,
                " needs more than 65535 chunks of ", config.chunk, " elements");
}
inline void check_eps(const char* op, double eps) {
  NORMLAB_CHECK(eps > 0, op, ": eps must be positive, got ", eps);
}
inline void check_pointer(const char* op, const void* p, const char* name) {
  NORMLAB_CHECK(p != nullptr, op, ": '", name, "' must not be null");
}

/// Requires: N, C, HW >= 1, groups 0 or a divisor of C, config.chunk >= 1 (checked by the
/// launchers of batch_norm.cuh and group_norm.cuh with the op's name).
inline NormLayout make_layout(int64_t N, int64_t C, int64_t HW, int64_t groups,
                              const NormLaunchConfig& config) {
  return NormLayout{N, C, HW, groups, config.chunk};
}

/// The forward's workspace: per-item moments (batch statistics only), then per-plane affines.
template <typename T>
struct ForwardWorkspace {
  WelfordState<AccumulateType<T>>* moments;
  ChannelAffine<T>* affine;

  static size_t moments_bytes(const NormLayout& l, bool batch_statistics) {
    return batch_statistics
               ? align_workspace(sizeof(WelfordState<AccumulateType<T>>) * l.work_items())
               : 0;
  }
  static size_t bytes(const NormLayout& l, bool batch_statistics) {
    return moments_bytes(l, batch_statistics) + sizeof(ChannelAffine<T>) * l.planes();
  }
  static ForwardWorkspace carve(void* workspace, const NormLayout& l, bool batch_statistics) {
    auto* base = static_cast<unsigned char*>(workspace);
    return {batch_statistics ? reinterpret_cast<WelfordState<AccumulateType<T>>*>(base) : nullptr,
            reinterpret_cast<ChannelAffine<T>*>(base + moments_bytes(l, batch_statistics))};
  }
};

/// The backward's workspace: per-item gradient sums, then per-plane input-gradient coefficients.
template <typename T>
struct BackwardWorkspace {
  GradSums<AccumulateType<T>>* sums;
  InputGradAffine<T>* coefficients;

  static size_t sums_bytes(const NormLayout& l) {
    return align_workspace(sizeof(GradSums<AccumulateType<T>>) * l.work_items());
  }
  static size_t bytes(const NormLayout& l) {
    return sums_bytes(l) + sizeof(InputGradAffine<T>) * l.planes();
  }
  static BackwardWorkspace carve(void* workspace, const NormLayout& l) {
    auto* base = static_cast<unsigned char*>(workspace);
    return {reinterpret_cast<GradSums<AccumulateType<T>>*>(base),
            reinterpret_cast<InputGradAffine<T>*>(base + sums_bytes(l))};
  }
};

/// The forward launch sequence (see the file comment). running_mean/running_var: BatchNorm's,
/// or null. Arguments are checked by the op launchers.
template <typename T>
void norm_forward(const NormLayout& layout, const T* x, const T* gamma, const T* beta,
                  T* running_mean, T* running_var, T* y, double* mean, double* rstd,
                  bool batch_statistics, double momentum, double eps, bool fuse_relu,
                  void* workspace, cudaStream_t stream) {
  namespace k = norm_kernels;
  const ForwardWorkspace<T> w = ForwardWorkspace<T>::carve(workspace, layout, batch_statistics);
  const dim3 item_grid = work_item_grid(layout);
  if (batch_statistics) {
    NORMLAB_CUDA_LAUNCH(item_grid, k::kPlaneBlock, 0, stream, k::norm_plane_moments<T>)
    (x, layout, w.moments);
    NORMLAB_CUDA_CHECK(cudaGetLastError());
  }
  NORMLAB_CUDA_LAUNCH(static_cast<unsigned>(layout.group_count()), k::kGroupBlock, 0, stream,
                      k::norm_finalize_statistics<T>)
  (x, layout, w.moments, gamma, beta, running_mean, running_var, momentum, eps, mean, rstd,
   w.affine);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  with_flag(fuse_relu, [&](auto relu) {
    NORMLAB_CUDA_LAUNCH(item_grid, k::kPlaneBlock, 0, stream,
                        k::norm_normalize<T, decltype(relu)::value>)
    (x, layout, w.affine, y);
  });
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// The backward launch sequence (see the file comment). relu_output: the forward's y if a ReLU
/// was fused, else null.
template <typename T>
void norm_backward(const NormLayout& layout, const T* x, const T* relu_output, const T* dy,
                   const T* gamma, const double* mean, const double* rstd, bool batch_statistics,
                   GradientOut<T> dx, GradientOut<T> dgamma, GradientOut<T> dbeta, void* workspace,
                   cudaStream_t stream) {
  namespace k = norm_kernels;
  const BackwardWorkspace<T> w = BackwardWorkspace<T>::carve(workspace, layout);
  const dim3 item_grid = work_item_grid(layout);
  const bool relu = relu_output != nullptr;
  const bool need_sums =
      dgamma.data != nullptr || dbeta.data != nullptr || (dx.data != nullptr && batch_statistics);
  if (need_sums) {
    with_flag(relu, [&](auto relu_fused) {
      NORMLAB_CUDA_LAUNCH(item_grid, k::kPlaneBlock, 0, stream,
                          k::norm_plane_grad_sums<T, decltype(relu_fused)::value>)
      (x, relu_output, dy, layout, mean, rstd, w.sums);
    });
    NORMLAB_CUDA_CHECK(cudaGetLastError());
  }
  if (dx.data != nullptr) {
    NORMLAB_CUDA_LAUNCH(static_cast<unsigned>(layout.group_count()), k::kGroupBlock, 0, stream,
                        k::norm_finalize_input_grad<T>)
    (layout, batch_statistics ? w.sums : nullptr, gamma, mean, rstd, w.coefficients);
    NORMLAB_CUDA_CHECK(cudaGetLastError());
    with_flag(relu, [&](auto relu_fused) {
      with_flag(dx.accumulate, [&](auto accumulate) {
        NORMLAB_CUDA_LAUNCH(
            item_grid, k::kPlaneBlock, 0, stream,
            k::norm_input_grad<T, decltype(relu_fused)::value, decltype(accumulate)::value>)
        (x, relu_output, dy, layout, w.coefficients, dx.data);
      });
    });
    NORMLAB_CUDA_CHECK(cudaGetLastError());
  }
  if (dgamma.data != nullptr || dbeta.data != nullptr) {
    NORMLAB_CUDA_LAUNCH(grid_for_warps(layout.C), k::kPlaneBlock, 0, stream, k::norm_param_grads<T>)
    (layout, w.sums, dgamma, dbeta);
    NORMLAB_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace norm_detail
}  // namespace normlab::cuda
