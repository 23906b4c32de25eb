// Elementwise CUDA kernels: ReLU, residual add (and the scaled pass-through that add's backward
// is), inverted dropout. The CUDA twins of cpu/elementwise.hpp, with the same arithmetic in the
// same precision (T, no reductions), so that results equal the CPU's bit for bit.
//
// Layout: flat arrays of n elements (any tensor, any layout). Grids are grid-stride
// (grid_stride.cuh): any grid gives the same result.
//
//   map_kernel      out[i] (+)= op(a[i]) or op(a[i], b[i]): relu, relu's backward, add, the
//                   scaled gradient. Each thread takes 16-byte packs (float4, double2) in turn,
//                   with a scalar head and tail (for_each_packed of reduce.cuh) when every array
//                   of the call is equally aligned, single elements otherwise. One pass: read the
//                   inputs (and out when accumulating), write out.
//   dropout_kernel  out[i] (+)= in[i] * factor_i, factor_i = 1/keep where element i is kept and 0
//                   where it is dropped (so NaN and Inf inputs stay visible). Each thread takes
//                   one Philox block at a time: block b = philox4x32(seed, counter_base + b, 0)
//                   decides elements 4b .. 4b + 3 (word w for element 4b + w), loaded and stored
//                   as one 4-element vector when aligned. The mask is a function of the element's
//                   index only, the same as the CPU's (DropoutDraw, normlab/common/dropout.hpp)
//                   for any launch shape; the backward recomputes it (no stored mask). One pass:
//                   read in (and out when accumulating), write out; ~10 integer multiply rounds
//                   per 4 elements.
#pragma once

#include <cstdint>

#include "normlab/common/dropout.hpp"
#include "normlab/common/gradient_out.hpp"
#include "normlab/common/philox.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/grid_stride.cuh"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

namespace elementwise_kernels {

namespace gs = grid_stride;

/// The per-element operations of map_kernel; kInputs says whether b is read.
struct Relu {
  static constexpr int kInputs = 1;
  template <typename T>
  __device__ __forceinline__ T operator()(T x) const {
    return !(x <= T(0)) ? x : T(0);  // NaN kept, as PyTorch's
  }
};
struct ReluGrad {  // (y, dy): dy where the saved output y > 0
  static constexpr int kInputs = 2;
  template <typename T>
  __device__ __forceinline__ T operator()(T y, T dy) const {
    return y > T(0) ? dy : T(0);
  }
};
struct Sum {
  static constexpr int kInputs = 2;
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};
template <typename T>
struct Scale {
  static constexpr int kInputs = 1;
  T scale;
  __device__ __forceinline__ T operator()(T dy) const { return scale * dy; }
};

/// b: read only if Op::kInputs == 2 (may be null otherwise).
template <typename T, bool kAccumulate, typename Op>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    map_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, int64_t n,
               Op op) {
  const int worker = static_cast<int>(gs::thread_index());
  const int workers = static_cast<int>(gs::thread_count());
  for_each_packed<T>(packed_split(n, out, a, b), n, worker, workers, [&](int64_t i, auto width) {
    constexpr int K = decltype(width)::value;
    Vec<T, K> r;
    if constexpr (kAccumulate) r = load_vec<K>(out + i);
    const Vec<T, K> va = load_vec<K>(a + i);
    if constexpr (Op::kInputs == 2) {
      const Vec<T, K> vb = load_vec<K>(b + i);
      for (int k = 0; k < K; ++k) gs::store_or_add<kAccumulate>(r.v[k], op(va.v[k], vb.v[k]));
    } else {
      for (int k = 0; k < K; ++k) gs::store_or_add<kAccumulate>(r.v[k], op(va.v[k]));
    }
    store_vec<K>(out + i, r);
  });
}

/// Elements per Philox block: its four 32-bit words decide four consecutive elements.
constexpr int kPhiloxWords = 4;

template <typename T, bool kAccumulate>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    dropout_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t n, DropoutDraw draw) {
  constexpr int W = kPhiloxWords;
  const T scale = T(1) / static_cast<T>(draw.keep);
  const bool vector_access = reinterpret_cast<uintptr_t>(in) % sizeof(Vec<T, W>) == 0 &&
                             reinterpret_cast<uintptr_t>(out) % sizeof(Vec<T, W>) == 0;
  const int64_t blocks = (n + W - 1) / W;
  for (int64_t block = gs::thread_index(); block < blocks; block += gs::thread_count()) {
    const Philox4 bits = philox4x32(draw.seed, draw.counter_base + static_cast<uint64_t>(block), 0);
    T factor[W];
    for (int w = 0; w < W; ++w) factor[w] = uniform_from_bits(bits.v[w]) < draw.keep ? scale : T(0);
    const int64_t first = block * W;
    if (vector_access && first + W <= n) {
      const Vec<T, W> v = load_vec<W>(in + first);
      Vec<T, W> r;
      if constexpr (kAccumulate) r = load_vec<W>(out + first);
      for (int w = 0; w < W; ++w) gs::store_or_add<kAccumulate>(r.v[w], v.v[w] * factor[w]);
      store_vec<W>(out + first, r);
    } else {
      for (int w = 0; w < W; ++w)
        if (first + w < n) gs::store_or_add<kAccumulate>(out[first + w], in[first + w] * factor[w]);
    }
  }
}

}  // namespace elementwise_kernels

namespace elementwise_detail {

/// Launches map_kernel for out (+)= op(a[, b]) over n elements.
template <typename T, bool kAccumulate, typename Op>
void launch_map(const T* a, const T* b, T* out, int64_t n, Op op, cudaStream_t stream) {
  namespace k = elementwise_kernels;
  if (n == 0) return;
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(n, grid_stride::kBlock * kPackSize<T>),
                      grid_stride::kBlock, 0, stream, k::map_kernel<T, kAccumulate, Op>)
  (a, b, out, n, op);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// launch_map with the accumulate flag of a gradient output as a template argument.
template <typename T, typename Op>
void launch_gradient_map(const T* a, const T* b, const normlab::GradientOut<T>& out, int64_t n,
                         Op op, cudaStream_t stream) {
  if (out.accumulate) {
    launch_map<T, true>(a, b, out.data, n, op, stream);
  } else {
    launch_map<T, false>(a, b, out.data, n, op, stream);
  }
}

template <typename T, bool kAccumulate>
void launch_dropout(const T* in, T* out, int64_t n, const DropoutDraw& draw, cudaStream_t stream) {
  namespace k = elementwise_kernels;
  if (n == 0) return;
  const int64_t blocks = (n + k::kPhiloxWords - 1) / k::kPhiloxWords;
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(blocks), grid_stride::kBlock, 0, stream,
                      k::dropout_kernel<T, kAccumulate>)
  (in, out, n, draw);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

inline void check_dropout(const char* op, int64_t n, const DropoutDraw& draw) {
  grid_stride::check_count(op, "n", n);
  NORMLAB_CHECK(draw.keep > 0.0f && draw.keep <= 1.0f, op,
                ": keep probability must be in (0, 1], got ", draw.keep, " for ", n, " elements");
}

}  // namespace elementwise_detail

// ---- launchers: all pointers are device memory, arrays of n elements that do not overlap;
// ---- kernels are queued on `stream`.

/// Ensures: y = max(x, 0) elementwise, NaN kept (!(x <= 0) ? x : 0, as PyTorch's).
template <typename T>
void relu_forward(const T* x, T* y, int64_t n, cudaStream_t stream = nullptr) {
  const char* op = "cuda::relu_forward";
  grid_stride::check_count(op, "n", n);
  grid_stride::check_pointer(op, x, "x");
  grid_stride::check_pointer(op, y, "y");
  elementwise_detail::launch_map<T, false>(x, static_cast<const T*>(nullptr), y, n,
                                           elementwise_kernels::Relu{}, stream);
}

/// Requires: y is relu_forward's output. Ensures: dx (+)= dy where y > 0, 0 elsewhere (nothing
/// if dx.data is null).
template <typename T>
void relu_backward(const T* y, const T* dy, normlab::GradientOut<T> dx, int64_t n,
                   cudaStream_t stream = nullptr) {
  const char* op = "cuda::relu_backward";
  grid_stride::check_count(op, "n", n);
  if (dx.data == nullptr) return;
  grid_stride::check_pointer(op, y, "y");
  grid_stride::check_pointer(op, dy, "dy");
  elementwise_detail::launch_gradient_map(y, dy, dx, n, elementwise_kernels::ReluGrad{}, stream);
}

/// Ensures: y = a + b elementwise.
template <typename T>
void add_forward(const T* a, const T* b, T* y, int64_t n, cudaStream_t stream = nullptr) {
  const char* op = "cuda::add_forward";
  grid_stride::check_count(op, "n", n);
  grid_stride::check_pointer(op, a, "a");
  grid_stride::check_pointer(op, b, "b");
  grid_stride::check_pointer(op, y, "y");
  elementwise_detail::launch_map<T, false>(a, b, y, n, elementwise_kernels::Sum{}, stream);
}

/// Ensures: dx (+)= scale * dy (nothing if dx.data is null). The backward of add (scale 1, once
/// per input), and of anything that passes its gradient through scaled.
template <typename T>
void scaled_gradient(const T* dy, normlab::GradientOut<T> dx, int64_t n, T scale,
                     cudaStream_t stream = nullptr) {
  const char* op = "cuda::scaled_gradient";
  grid_stride::check_count(op, "n", n);
  if (dx.data == nullptr) return;
  grid_stride::check_pointer(op, dy, "dy");
  elementwise_detail::launch_gradient_map(dy, static_cast<const T*>(nullptr), dx, n,
                                          elementwise_kernels::Scale<T>{scale}, stream);
}

/// Requires: draw.keep in (0, 1]. Ensures: inverted dropout, y = x * (1/keep) where element i
/// is kept under `draw` and x * 0 where it is dropped: the same mask and the same values as
/// cpu::dropout_forward for the same draw.
template <typename T>
void dropout_forward(const T* x, T* y, int64_t n, const DropoutDraw& draw,
                     cudaStream_t stream = nullptr) {
  const char* op = "cuda::dropout_forward";
  elementwise_detail::check_dropout(op, n, draw);
  grid_stride::check_pointer(op, x, "x");
  grid_stride::check_pointer(op, y, "y");
  elementwise_detail::launch_dropout<T, false>(x, y, n, draw, stream);
}

/// Requires: the forward's draw. Ensures: dx (+)= dy * (1/keep) where kept, dy * 0 where dropped
/// (nothing if dx.data is null).
template <typename T>
void dropout_backward(const T* dy, normlab::GradientOut<T> dx, int64_t n, const DropoutDraw& draw,
                      cudaStream_t stream = nullptr) {
  const char* op = "cuda::dropout_backward";
  elementwise_detail::check_dropout(op, n, draw);
  if (dx.data == nullptr) return;
  grid_stride::check_pointer(op, dy, "dy");
  if (dx.accumulate) {
    elementwise_detail::launch_dropout<T, true>(dy, dx.data, n, draw, stream);
  } else {
    elementwise_detail::launch_dropout<T, false>(dy, dx.data, n, draw, stream);
  }
}

}  // namespace normlab::cuda
