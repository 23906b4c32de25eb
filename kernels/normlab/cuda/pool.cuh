// Pooling CUDA kernels over NCHW planes, the CUDA twins of cpu/pool.hpp: max pooling (kernel k,
// stride s, no padding, int32 argmax saved for the backward) and global average pooling
// (adaptive average pooling to 1x1). Layout: `planes` = N*C contiguous planes of H*W elements.
// Grids are grid-stride (grid_stride.cuh); index arithmetic is 32-bit (the launchers check that
// planes*H*W < 2^31), so there is no 64-bit division per element.
//
//   max_pool2d_forward_kernel   one thread per output element: scans its k x k window in
//                               row-major order with the CPU's rule (max_pool_takes: ties go to
//                               the first maximal element, a NaN wins), writes y and the argmax
//                               as the in-plane offset h*W + w. The 2x2 window (the model's) is a
//                               compile-time loop. One pass: read x (windows that overlap re-read
//                               from cache), write y (and argmax).
//   max_pool2d_backward_kernel  one thread per input element gathers: it visits the windows that
//                               contain it (one for 2x2 stride 2, at most ceil(k/s)^2) in output
//                               order and adds dy of those whose argmax it is, so every dx element
//                               is written exactly once: no zero-fill pass, elements in no window
//                               get 0, overlapping windows need no atomics, and the sum has the
//                               CPU's order (deterministic). One pass: read argmax and dy (each
//                               window's pair re-read from cache by its k*k inputs), write dx.
//   global_avg_pool2d_*         one warp per plane. Forward: lanes take 16-byte packs of the plane
//                               in turn (scalar head and tail), sum in the accumulation type
//                               (float for float, double for double) per lane, then the warp tree;
//                               lane 0 writes sum / HW. Backward: the warp writes dy / HW (in T, as
//                               the CPU) over its plane in packs. One pass each: read x, or write
//                               dx (read it too when accumulating).
#pragma once

#include <cstdint>
#include <type_traits>

#include "normlab/common/gradient_out.hpp"
#include "normlab/common/pool_math.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/grid_stride.cuh"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

/// The sizes of a max pooling in 32-bit arithmetic (checked by the launchers).
struct MaxPoolGeometry {
  uint32_t planes, H, W, OH, OW, kernel, stride;
};

namespace pool_kernels {

namespace gs = grid_stride;

/// kKernel: the window's size at compile time, or 0 to take g.kernel.
template <typename T, int kKernel, bool kSaveArgmax>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    max_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                              int32_t* __restrict__ argmax, MaxPoolGeometry g) {
  const uint32_t kernel = kKernel > 0 ? uint32_t(kKernel) : g.kernel;
  const int64_t outputs = int64_t(g.planes) * g.OH * g.OW;
  for (int64_t o = gs::thread_index(); o < outputs; o += gs::thread_count()) {
    const uint32_t o32 = static_cast<uint32_t>(o);
    const uint32_t row = o32 / g.OW, ow = o32 - row * g.OW;
    const uint32_t p = row / g.OH, oh = row - p * g.OH;
    const T* plane = x + int64_t(p) * g.H * g.W;
    const uint32_t first = oh * g.stride * g.W + ow * g.stride;
    uint32_t at = first;
    T best = plane[first];
    for (uint32_t kh = 0; kh < kernel; ++kh) {
      for (uint32_t kw = 0; kw < kernel; ++kw) {
        const uint32_t i = first + kh * g.W + kw;
        const T v = plane[i];
        if (max_pool_takes(v, best)) {
          best = v;
          at = i;
        }
      }
    }
    y[o] = best;
    if constexpr (kSaveArgmax) argmax[o] = static_cast<int32_t>(at);
  }
}

/// The output rows (or columns) whose windows contain input row (column) h: [lo, hi], empty when
/// lo > hi.
struct WindowRange {
  uint32_t lo, hi;
};
__device__ __forceinline__ WindowRange windows_containing(uint32_t h, uint32_t kernel,
                                                          uint32_t stride, uint32_t outputs) {
  const uint32_t lo = h < kernel ? 0 : (h - kernel) / stride + 1;
  const uint32_t last = h / stride;
  return {lo, last < outputs - 1 ? last : outputs - 1};
}

template <typename T, int kKernel, bool kAccumulate>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    max_pool2d_backward_kernel(const int32_t* __restrict__ argmax, const T* __restrict__ dy,
                               T* __restrict__ dx, MaxPoolGeometry g) {
  const uint32_t kernel = kKernel > 0 ? uint32_t(kKernel) : g.kernel;
  const int64_t inputs = int64_t(g.planes) * g.H * g.W;
  for (int64_t i = gs::thread_index(); i < inputs; i += gs::thread_count()) {
    const uint32_t i32 = static_cast<uint32_t>(i);
    const uint32_t row = i32 / g.W, w = i32 - row * g.W;
    const uint32_t p = row / g.H, h = row - p * g.H;
    const int32_t local = static_cast<int32_t>(h * g.W + w);
    const WindowRange rows = windows_containing(h, kernel, g.stride, g.OH);
    const WindowRange cols = windows_containing(w, kernel, g.stride, g.OW);
    T sum = kAccumulate ? dx[i] : T(0);
    for (uint32_t oh = rows.lo; oh <= rows.hi; ++oh) {
      for (uint32_t ow = cols.lo; ow <= cols.hi; ++ow) {
        const uint32_t o = (p * g.OH + oh) * g.OW + ow;
        if (argmax[o] == local) sum += dy[o];
      }
    }
    dx[i] = sum;
  }
}

template <typename T>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    global_avg_pool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                     int64_t HW) {
  using Acc = AccumulateType<T>;
  for (int64_t p = gs::warp_index(); p < planes; p += gs::warp_count()) {  // whole warps
    const T* xs = x + p * HW;
    Acc sum = 0;
    for_each_packed<T>(packed_split(HW, xs), HW, gs::lane(), kWarpSize, [&](int64_t i, auto width) {
      constexpr int K = decltype(width)::value;
      const Vec<T, K> v = load_vec<K>(xs + i);
      for (int k = 0; k < K; ++k) sum += static_cast<Acc>(v.v[k]);
    });
    sum = warp_reduce(sum, Add{});
    if (gs::lane() == 0) y[p] = static_cast<T>(sum / static_cast<Acc>(HW));
  }
}

template <typename T, bool kAccumulate>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    global_avg_pool2d_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t planes,
                                      int64_t HW) {
  for (int64_t p = gs::warp_index(); p < planes; p += gs::warp_count()) {
    T* dxs = dx + p * HW;
    const T g = dy[p] / static_cast<T>(HW);
    for_each_packed<T>(packed_split(HW, dxs), HW, gs::lane(), kWarpSize,
                       [&](int64_t i, auto width) {
                         constexpr int K = decltype(width)::value;
                         Vec<T, K> r;
                         if constexpr (kAccumulate) r = load_vec<K>(dxs + i);
                         for (int k = 0; k < K; ++k) gs::store_or_add<kAccumulate>(r.v[k], g);
                         store_vec<K>(dxs + i, r);
                       });
  }
}

}  // namespace pool_kernels

namespace pool_detail {

/// Ensures: the geometry of a max pooling, or a normlab::Error naming the op and the sizes.
inline MaxPoolGeometry max_pool_geometry(const char* op, int64_t planes, int64_t H, int64_t W,
                                         int64_t kernel, int64_t stride) {
  NORMLAB_CHECK(planes >= 0 && H >= 1 && W >= 1, op, ": sizes planes = ", planes, ", H = ", H,
                ", W = ", W, " must be non-negative (planes) and positive (H, W)");
  NORMLAB_CHECK(kernel >= 1 && stride >= 1, op, ": kernel and stride must be positive, got kernel ",
                kernel, ", stride ", stride, " for planes of ", H, "x", W);
  NORMLAB_CHECK(kernel <= H && kernel <= W, op, ": kernel ", kernel,
                " is larger than the planes of ", H, "x", W);
  NORMLAB_CHECK(planes * H * W < (int64_t(1) << 31), op, ": ", planes, " planes of ", H, "x", W,
                " have 2^31 or more elements (32-bit indices)");
  const int64_t OH = pooled_extent(H, kernel, stride), OW = pooled_extent(W, kernel, stride);
  return {static_cast<uint32_t>(planes), static_cast<uint32_t>(H),  static_cast<uint32_t>(W),
          static_cast<uint32_t>(OH),     static_cast<uint32_t>(OW), static_cast<uint32_t>(kernel),
          static_cast<uint32_t>(stride)};
}

inline void check_avg_pool(const char* op, int64_t planes, int64_t HW) {
  NORMLAB_CHECK(planes >= 0 && HW >= 1, op, ": sizes planes = ", planes, ", HW = ", HW,
                " must be non-negative (planes) and positive (HW)");
}

/// Calls f(std::integral_constant<int, 2>) for a 2x2 window, else f(integral_constant<int, 0>)
/// (the window's size taken at run time).
template <typename F>
void with_window(uint32_t kernel, F f) {
  if (kernel == 2) {
    f(std::integral_constant<int, 2>{});
  } else {
    f(std::integral_constant<int, 0>{});
  }
}

}  // namespace pool_detail

// ---- launchers: all pointers are device memory; kernels are queued on `stream`.

/// Requires: x holds `planes` planes of H x W; 1 <= kernel <= min(H, W), stride >= 1,
/// planes * H * W < 2^31. Ensures: y[p, oh, ow] (planes x OH x OW, OH = (H - kernel) / stride + 1,
/// likewise OW) = the maximum of x over the window at (oh * stride, ow * stride), NaN if the
/// window holds one; argmax (if not null) receives its in-plane offset h * W + w, the first
/// maximal element in row-major window order (the CPU's and PyTorch's rule).
template <typename T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H, int64_t W,
                        int64_t kernel, int64_t stride, cudaStream_t stream = nullptr) {
  const char* op = "cuda::max_pool2d_forward";
  const MaxPoolGeometry g = pool_detail::max_pool_geometry(op, planes, H, W, kernel, stride);
  grid_stride::check_pointer(op, x, "x");
  grid_stride::check_pointer(op, y, "y");
  if (planes == 0) return;
  namespace k = pool_kernels;
  const unsigned grid = grid_stride::grid_for(int64_t(g.planes) * g.OH * g.OW);
  pool_detail::with_window(g.kernel, [&](auto window) {
    constexpr int kKernel = decltype(window)::value;
    if (argmax != nullptr) {
      NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                          k::max_pool2d_forward_kernel<T, kKernel, true>)
      (x, y, argmax, g);
    } else {
      NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                          k::max_pool2d_forward_kernel<T, kKernel, false>)
      (x, y, argmax, g);
    }
  });
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Requires: argmax written by max_pool2d_forward with the same sizes. Ensures: dx (+)= dy routed
/// to each window's argmax, summed over the windows that chose an element (in output order);
/// elements no window chose get 0 (nothing if dx.data is null).
template <typename T>
void max_pool2d_backward(const int32_t* argmax, const T* dy, normlab::GradientOut<T> dx,
                         int64_t planes, int64_t H, int64_t W, int64_t kernel, int64_t stride,
                         cudaStream_t stream = nullptr) {
  const char* op = "cuda::max_pool2d_backward";
  const MaxPoolGeometry g = pool_detail::max_pool_geometry(op, planes, H, W, kernel, stride);
  if (dx.data == nullptr || planes == 0) return;
  grid_stride::check_pointer(op, argmax, "argmax");
  grid_stride::check_pointer(op, dy, "dy");
  namespace k = pool_kernels;
  const unsigned grid = grid_stride::grid_for(int64_t(g.planes) * g.H * g.W);
  pool_detail::with_window(g.kernel, [&](auto window) {
    constexpr int kKernel = decltype(window)::value;
    if (dx.accumulate) {
      NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                          k::max_pool2d_backward_kernel<T, kKernel, true>)
      (argmax, dy, dx.data, g);
    } else {
      NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                          k::max_pool2d_backward_kernel<T, kKernel, false>)
      (argmax, dy, dx.data, g);
    }
  });
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Requires: x holds `planes` planes of HW >= 1 elements. Ensures: y[p] = the mean of plane p,
/// summed in the accumulation type (float for float).
template <typename T>
void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t HW,
                               cudaStream_t stream = nullptr) {
  const char* op = "cuda::global_avg_pool2d_forward";
  pool_detail::check_avg_pool(op, planes, HW);
  grid_stride::check_pointer(op, x, "x");
  grid_stride::check_pointer(op, y, "y");
  if (planes == 0) return;
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(planes, grid_stride::kWarpsPerBlock),
                      grid_stride::kBlock, 0, stream,
                      pool_kernels::global_avg_pool2d_forward_kernel<T>)
  (x, y, planes, HW);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Ensures: dx[p, i] (+)= dy[p] / HW (nothing if dx.data is null).
template <typename T>
void global_avg_pool2d_backward(const T* dy, normlab::GradientOut<T> dx, int64_t planes, int64_t HW,
                                cudaStream_t stream = nullptr) {
  const char* op = "cuda::global_avg_pool2d_backward";
  pool_detail::check_avg_pool(op, planes, HW);
  if (dx.data == nullptr || planes == 0) return;
  grid_stride::check_pointer(op, dy, "dy");
  const unsigned grid = grid_stride::grid_for(planes, grid_stride::kWarpsPerBlock);
  if (dx.accumulate) {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        pool_kernels::global_avg_pool2d_backward_kernel<T, true>)
    (dy, dx.data, planes, HW);
  } else {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        pool_kernels::global_avg_pool2d_backward_kernel<T, false>)
    (dy, dx.data, planes, HW);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace normlab::cuda
