// The SGD parameter update on the GPU (torch.optim.SGD's arithmetic: weight decay, momentum with
// dampening, Nesterov), the CUDA twin of cpu/sgd.hpp; the per-element arithmetic is
// normlab/common/sgd.hpp, shared with the CPU, in the parameter's precision.
//
// Layout: one flat parameter of n elements, its gradient and its momentum buffer.
//   sgd_update_kernel  grid-stride (grid_stride.cuh); each thread takes 16-byte packs (float4,
//                      double2) of param, grad and buf in turn, with a scalar head and tail when
//                      the three are equally aligned, single elements otherwise. One fused pass:
//                      read param, grad (and buf), write param (and buf). Elementwise, so any
//                      launch shape gives the same result.
#pragma once

#include <cstdint>

#include "normlab/common/sgd.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/grid_stride.cuh"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

namespace sgd_kernels {

namespace gs = grid_stride;

/// buffer: read and written only with kMomentum (may be null otherwise).
template <typename T, bool kMomentum>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    sgd_update_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buffer,
                      int64_t n, SgdCoefficients<T> c) {
  const int worker = static_cast<int>(gs::thread_index());
  const int workers = static_cast<int>(gs::thread_count());
  for_each_packed<T>(packed_split(n, param, grad, buffer), n, worker, workers,
                     [&](int64_t i, auto width) {
                       constexpr int K = decltype(width)::value;
                       Vec<T, K> p = load_vec<K>(param + i);
                       const Vec<T, K> g = load_vec<K>(grad + i);
                       [[maybe_unused]] Vec<T, K> b;
                       if constexpr (kMomentum) b = load_vec<K>(buffer + i);
                       for (int k = 0; k < K; ++k) {
                         T d = sgd_direction(p.v[k], g.v[k], c);
                         if constexpr (kMomentum) d = sgd_momentum_direction(d, b.v[k], c);
                         p.v[k] -= c.lr * d;
                       }
                       store_vec<K>(param + i, p);
                       if constexpr (kMomentum) store_vec<K>(buffer + i, b);
                     });
}

}  // namespace sgd_kernels

/// All pointers are device memory, arrays of n elements that do not overlap. Requires:
/// momentum_buffer initialised (zeroed before its first step; then c.buffer_momentum = 0,
/// c.buffer_keep = 1 give PyTorch's first step buf = d), or null for SGD without momentum.
/// Ensures: param (and momentum_buffer) hold one SGD step with coefficients c applied to grad,
/// as cpu::sgd_update. Kernels are queued on `stream`.
template <typename T>
void sgd_update(T* param, const T* grad, T* momentum_buffer, int64_t n, const SgdCoefficients<T>& c,
                cudaStream_t stream = nullptr) {
  const char* op = "cuda::sgd_update";
  grid_stride::check_count(op, "n", n);
  grid_stride::check_pointer(op, param, "param");
  grid_stride::check_pointer(op, grad, "grad");
  if (n == 0) return;
  namespace k = sgd_kernels;
  const unsigned grid = grid_stride::grid_for(n, grid_stride::kBlock * kPackSize<T>);
  if (momentum_buffer != nullptr) {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream, k::sgd_update_kernel<T, true>)
    (param, grad, momentum_buffer, n, c);
  } else {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream, k::sgd_update_kernel<T, false>)
    (param, grad, momentum_buffer, n, c);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace normlab::cuda
