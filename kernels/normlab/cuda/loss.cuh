// The fused classification loss on the GPU, the CUDA twin of cpu/loss.hpp's cross_entropy_*:
// log_softmax + NLL with mean reduction and optional label smoothing eps (the per-row and
// per-element maths is normlab/common/loss_math.hpp, shared with the CPU). Layout: N rows of K
// class scores, row-major ([N, K] or [N, K, 1, 1]); targets are N int32 class indices.
//
// Forward, 2 launches:
//   cross_entropy_rows_kernel  one warp per row (grid-stride over rows): the row's max (lanes take
//                              columns lane, lane + 32, ...; warp all-reduce), the sum of
//                              exp(x - max) in double (lane, then warp tree), log_sum in T, the
//                              sum of the log-probabilities in double; lane 0 saves row_max and
//                              row_log_sum for the backward and writes the row's loss (NaN for a
//                              target outside [0, K), whose logit it does not read). Three passes
//                              over the row (the second and third from cache).
//   cross_entropy_mean_kernel  one block: each thread sums its rows' losses (rows t, t + 256, ...)
//                              in double and finds its first row with a bad target; the block
//                              reduction (warp trees, then the warps in order) gives the mean and
//                              the first bad row, written to loss and target_error.
// Backward, 1 launch:
//   cross_entropy_backward_kernel  one thread per logit (grid-stride, 32-bit index arithmetic):
//                              dlogit (+)= (softmax - q) * dloss / N, the softmax recomputed from
//                              the saved row max and log-sum. One pass: read logits, write dlogits
//                              (read them too when accumulating).
// Deterministic: every sum has a fixed order given N and K (no atomics). Bad targets cannot be
// checked on the host without copying them from the device, so the forward reports the first one
// in target_error and check_cross_entropy_targets turns it into a normlab::Error.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>

#include "normlab/common/gradient_out.hpp"
#include "normlab/common/loss_math.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/grid_stride.cuh"
#include "normlab/cuda/reduce.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

/// A block's running loss sum and its first row with a target outside [0, K) (kNoBadRow if none).
struct LossTotal {
  static constexpr int32_t kNoBadRow = 0x7FFFFFFF;
  double sum = 0;
  int32_t first_bad_row = kNoBadRow;
};

__device__ __forceinline__ LossTotal shuffle_down(const LossTotal& t, int offset) {
  LossTotal r;
  r.sum = shuffle_down(t.sum, offset);
  r.first_bad_row = __shfl_down_sync(kFullWarpMask, t.first_bad_row, offset);
  return r;
}

struct LossTotalMerge {
  __device__ __forceinline__ LossTotal operator()(const LossTotal& a, const LossTotal& b) const {
    LossTotal r;
    r.sum = a.sum + b.sum;
    r.first_bad_row = b.first_bad_row < a.first_bad_row ? b.first_bad_row : a.first_bad_row;
    return r;
  }
};

namespace loss_kernels {

namespace gs = grid_stride;

struct Max {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return b > a ? b : a;
  }
};

template <typename T>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    cross_entropy_rows_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                              double label_smoothing, T* __restrict__ row_max,
                              T* __restrict__ row_log_sum, T* __restrict__ row_loss, int64_t N,
                              int64_t K) {
  const int lane = gs::lane();
  for (int64_t n = gs::warp_index(); n < N; n += gs::warp_count()) {  // whole warps
    const T* row = logits + n * K;
    T max = row[0];
    for (int64_t k = lane; k < K; k += kWarpSize) max = row[k] > max ? row[k] : max;
    max = warp_all_reduce(max, Max{});
    double sum = 0;
    for (int64_t k = lane; k < K; k += kWarpSize) sum += exp(static_cast<double>(row[k] - max));
    sum = warp_all_reduce(sum, Add{});
    const T log_sum = static_cast<T>(log(sum));
    double sum_log_probs = 0;
    for (int64_t k = lane; k < K; k += kWarpSize)
      sum_log_probs += static_cast<double>((row[k] - max) - log_sum);
    sum_log_probs = warp_reduce(sum_log_probs, Add{});
    if (lane == 0) {
      row_max[n] = max;
      row_log_sum[n] = log_sum;
      const int32_t t = targets[n];
      row_loss[n] =
          t >= 0 && t < K
              ? static_cast<T>(cross_entropy_row_loss(static_cast<double>((row[t] - max) - log_sum),
                                                      sum_log_probs, label_smoothing, K))
              : static_cast<T>(NAN);
    }
  }
}

/// Launched as one block of kBlock threads.
template <typename T>
__global__ void __launch_bounds__(gs::kBlock, 1)
    cross_entropy_mean_kernel(const T* __restrict__ row_loss, const int32_t* __restrict__ targets,
                              T* __restrict__ loss, int32_t* __restrict__ target_error, int64_t N,
                              int64_t K) {
  LossTotal total;
  for (int64_t n = threadIdx.x; n < N; n += gs::kBlock) {
    total.sum += static_cast<double>(row_loss[n]);
    const int32_t t = targets[n];
    if ((t < 0 || t >= K) && total.first_bad_row == LossTotal::kNoBadRow)
      total.first_bad_row = static_cast<int32_t>(n);
  }
  total = block_all_reduce<gs::kBlock>(total, LossTotalMerge{});
  if (threadIdx.x != 0) return;
  loss[0] = static_cast<T>(total.sum / static_cast<double>(N));
  if (target_error == nullptr) return;
  const bool bad = total.first_bad_row != LossTotal::kNoBadRow;
  target_error[0] = bad ? total.first_bad_row : -1;
  target_error[1] = bad ? targets[total.first_bad_row] : 0;
}

template <typename T, bool kAccumulate>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    cross_entropy_backward_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                                  double label_smoothing, const T* __restrict__ row_max,
                                  const T* __restrict__ row_log_sum, const T* __restrict__ dloss,
                                  T* __restrict__ dlogits, int64_t N, int64_t K) {
  const SmoothedTargets<T> q = smoothed_targets<T>(label_smoothing, K);
  const T scale = dloss[0] / static_cast<T>(N);
  const uint32_t classes = static_cast<uint32_t>(K);
  for (int64_t i = gs::thread_index(); i < N * K; i += gs::thread_count()) {
    const uint32_t n = static_cast<uint32_t>(i) / classes;
    const int32_t k = static_cast<int32_t>(static_cast<uint32_t>(i) - n * classes);
    const T log_p = (logits[i] - row_max[n]) - row_log_sum[n];
    gs::store_or_add<kAccumulate>(dlogits[i],
                                  cross_entropy_logit_grad(log_p, k == targets[n], q, scale));
  }
}

}  // namespace loss_kernels

namespace loss_detail {

inline void check_sizes(const char* op, int64_t N, int64_t K, double label_smoothing) {
  NORMLAB_CHECK(N >= 1 && K >= 1, op, ": logits [", N, ", ", K,
                "] need at least one row and one class");
  NORMLAB_CHECK(N * K < (int64_t(1) << 31), op, ": logits [", N, ", ", K,
                "] have 2^31 or more elements (32-bit indices)");
  NORMLAB_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0, op,
                ": label_smoothing must be in [0, 1), got ", label_smoothing);
}

}  // namespace loss_detail

// ---- launchers: all pointers are device memory; kernels are queued on `stream`.

/// Requires: logits [N, K], targets [N]; row_max, row_log_sum, row_loss hold N values each, loss
/// one; target_error two int32 or null; 0 <= label_smoothing < 1; N * K < 2^31.
/// Ensures: *loss = mean_n sum_k -q_k log_softmax(logits[n])_k with q_k = (1 - label_smoothing)
/// [k == targets[n]] + label_smoothing / K (nll_loss(log_softmax) when label_smoothing is 0);
/// row_max and row_log_sum hold each row's max and log(sum(exp(x - max))) for the backward,
/// row_loss each row's loss. A target outside [0, K) makes its row's loss and the loss NaN and,
/// if target_error is not null, target_error = {first such row, its target}, else {-1, 0}.
template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* targets, double label_smoothing,
                           T* row_max, T* row_log_sum, T* row_loss, T* loss, int32_t* target_error,
                           int64_t N, int64_t K, cudaStream_t stream = nullptr) {
  const char* op = "cuda::cross_entropy_forward";
  loss_detail::check_sizes(op, N, K, label_smoothing);
  for (const auto& [p, name] : {std::pair<const void*, const char*>{logits, "logits"},
                                {targets, "targets"},
                                {row_max, "row_max"},
                                {row_log_sum, "row_log_sum"},
                                {row_loss, "row_loss"},
                                {loss, "loss"}})
    grid_stride::check_pointer(op, p, name);
  namespace k = loss_kernels;
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(N, grid_stride::kWarpsPerBlock), grid_stride::kBlock, 0,
                      stream, k::cross_entropy_rows_kernel<T>)
  (logits, targets, label_smoothing, row_max, row_log_sum, row_loss, N, K);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  NORMLAB_CUDA_LAUNCH(1, grid_stride::kBlock, 0, stream, k::cross_entropy_mean_kernel<T>)
  (row_loss, targets, loss, target_error, N, K);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Requires: target_error written by cross_entropy_forward for logits [N, K], queued on `stream`.
/// Waits for the stream. Ensures: returns if every target was in [0, K); else throws
/// normlab::Error naming the first row with a bad target, the target and the shape.
inline void check_cross_entropy_targets(const int32_t* target_error, int64_t N, int64_t K,
                                        cudaStream_t stream = nullptr) {
  int32_t error[2];
  NORMLAB_CUDA_CHECK(
      cudaMemcpyAsync(error, target_error, sizeof error, cudaMemcpyDeviceToHost, stream));
  NORMLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  NORMLAB_CHECK(error[0] < 0, "cuda::cross_entropy_forward: target at index ", error[0], " is ",
                error[1], ", outside [0, ", K, ") for logits of shape [", N, ", ", K, "]");
}

/// Requires: the forward's logits, targets, label_smoothing, row_max, row_log_sum and sizes;
/// dloss: the loss's gradient (one value, device memory). Ensures: dlogits[n, k] (+)= (softmax
/// (logits[n])_k - q_k) * dloss / N (nothing if dlogits.data is null). A row whose target is
/// outside [0, K) gets no target term (no memory outside the arrays is read).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* targets, double label_smoothing,
                            const T* row_max, const T* row_log_sum, const T* dloss,
                            normlab::GradientOut<T> dlogits, int64_t N, int64_t K,
                            cudaStream_t stream = nullptr) {
  const char* op = "cuda::cross_entropy_backward";
  loss_detail::check_sizes(op, N, K, label_smoothing);
  if (dlogits.data == nullptr) return;
  for (const auto& [p, name] : {std::pair<const void*, const char*>{logits, "logits"},
                                {targets, "targets"},
                                {row_max, "row_max"},
                                {row_log_sum, "row_log_sum"},
                                {dloss, "dloss"}})
    grid_stride::check_pointer(op, p, name);
  const unsigned grid = grid_stride::grid_for(N * K);
  if (dlogits.accumulate) {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        loss_kernels::cross_entropy_backward_kernel<T, true>)
    (logits, targets, label_smoothing, row_max, row_log_sum, dloss, dlogits.data, N, K);
  } else {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        loss_kernels::cross_entropy_backward_kernel<T, false>)
    (logits, targets, label_smoothing, row_max, row_log_sum, dloss, dlogits.data, N, K);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace normlab::cuda
