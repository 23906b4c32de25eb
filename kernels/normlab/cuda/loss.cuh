// The classification losses on the GPU, the CUDA twins of cpu/loss.hpp: log_softmax, nll_loss
// (mean) and the fused cross-entropy (log_softmax + NLL, mean, optional label smoothing eps). The
// per-row and per-element maths is normlab/common/loss_math.hpp, shared with the CPU. Layout: N
// rows of K class scores, row-major ([N, K] or [N, K, 1, 1]); targets are N int32 class indices.
// Precision as the CPU's: exponential sums, sums of gradients and the batch mean in double,
// log-probabilities and gradients in T.
//
// log_softmax, 1 launch each way:
//   log_softmax_forward_kernel   one warp per row (grid-stride over rows): the row's max (lanes
//                                take columns lane, lane + 32, ...; warp all-reduce) and the sum
//                                of exp(x - max) in double (lane, then warp tree), log_sum in T
//                                (warp_row_log_sum_exp); then y = (x - max) - log_sum. Reads the
//                                row three times (the second and third from cache), writes y once.
//   log_softmax_backward_kernel  one warp per row: sum of dy in double (lane, then warp tree),
//                                rounded to T; then dx (+)= dy - exp(y) * sum. Reads dy twice (the
//                                second from cache) and y once, writes dx once (reads it too when
//                                accumulating).
// nll_loss, 1 launch each way:
//   mean_row_loss_kernel         (NllRowLoss) one block: thread t takes rows t, t + 256, ...,
//                                gathers -log_probs[n, target] into row_loss (NaN for a target
//                                outside [0, K), whose log-probability it does not read) and the
//                                mean as for cross_entropy below. Reads N targets and N
//                                log-probabilities, writes N row losses.
//   nll_loss_backward_kernel     one thread per log-probability (grid-stride, 32-bit index
//                                arithmetic): -dloss / N at the row's target, 0 elsewhere. One
//                                pass: write dlog_probs (read it too when accumulating).
// cross_entropy forward, 2 launches:
//   cross_entropy_rows_kernel    one warp per row: max and log-sum as log_softmax's
//                                (warp_row_log_sum_exp), the sum of the log-probabilities in
//                                double; lane 0 saves row_max and row_log_sum for the backward and
//                                writes the row's loss (NaN for a target outside [0, K), whose
//                                logit it does not read). Three passes over the row (the second
//                                and third from cache).
//   mean_row_loss_kernel         (SavedRowLoss) one block: each thread sums its rows' losses
//                                (rows t, t + 256, ...) in double and finds its first row with a
//                                bad target; the block reduction (warp trees, then the warps in
//                                order) gives the mean and the first bad row, written to loss and
//                                target_error.
// cross_entropy backward, 1 launch:
//   cross_entropy_backward_kernel  one thread per logit (grid-stride, 32-bit index arithmetic):
//                                dlogit (+)= (softmax - q) * dloss / N, the softmax recomputed from
//                                the saved row max and log-sum. One pass: read logits, write
//                                dlogits (read them too when accumulating).
// Deterministic: every sum has a fixed order given N and K (no atomics). Bad targets cannot be
// checked on the host without copying them from the device, so the forwards of nll_loss and
// cross_entropy report the first one in target_error, and check_nll_loss_targets /
// check_cross_entropy_targets turn it into a normlab::Error.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
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

/// Requires: the 32 lanes of a warp call it for the same row of K >= 1 scores. Ensures: every
/// lane returns the row's max and log(sum_k exp(x_k - max)): lanes take columns lane, lane + 32,
/// ...; the max by a warp all-reduce, the exponential sum in double (lane, then warp tree), its
/// log rounded to T (as the CPU's row_log_sum_exp). Two passes over the row.
template <typename T>
__device__ __forceinline__ RowLogSumExp<T> warp_row_log_sum_exp(const T* __restrict__ row,
                                                                int64_t K, int lane) {
  T max = row[0];
  for (int64_t k = lane; k < K; k += kWarpSize) max = row[k] > max ? row[k] : max;
  max = warp_all_reduce(max, Max{});
  double sum = 0;
  for (int64_t k = lane; k < K; k += kWarpSize) sum += exp(static_cast<double>(row[k] - max));
  sum = warp_all_reduce(sum, Add{});
  return {max, static_cast<T>(log(sum))};
}

template <typename T>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    log_softmax_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t N, int64_t K) {
  const int lane = gs::lane();
  for (int64_t n = gs::warp_index(); n < N; n += gs::warp_count()) {  // whole warps
    const T* row = x + n * K;
    const RowLogSumExp<T> s = warp_row_log_sum_exp(row, K, lane);
    for (int64_t k = lane; k < K; k += kWarpSize) y[n * K + k] = s.log_prob(row[k]);
  }
}

template <typename T, bool kAccumulate>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    log_softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy,
                                T* __restrict__ dx, int64_t N, int64_t K) {
  const int lane = gs::lane();
  for (int64_t n = gs::warp_index(); n < N; n += gs::warp_count()) {  // whole warps
    const int64_t row_start = n * K;
    double sum = 0;
    for (int64_t k = lane; k < K; k += kWarpSize) sum += static_cast<double>(dy[row_start + k]);
    const T dy_sum = static_cast<T>(warp_all_reduce(sum, Add{}));
    for (int64_t k = lane; k < K; k += kWarpSize)
      gs::store_or_add<kAccumulate>(
          dx[row_start + k], log_softmax_input_grad(dy[row_start + k], y[row_start + k], dy_sum));
  }
}

template <typename T>
__global__ void __launch_bounds__(gs::kBlock, gs::kMinBlocks)
    cross_entropy_rows_kernel(const T* __restrict__ logits, const int32_t* __restrict__ targets,
                              double label_smoothing, T* __restrict__ row_max,
                              T* __restrict__ row_log_sum, T* __restrict__ row_loss, int64_t N,
                              int64_t K) {
  const int lane = gs::lane();
  for (int64_t n = gs::warp_index(); n < N; n += gs::warp_count()) {  // whole warps
    const T* row = logits + n * K;
    const RowLogSumExp<T> s = warp_row_log_sum_exp(row, K, lane);
    double sum_log_probs = 0;
    for (int64_t k = lane; k < K; k += kWarpSize)
      sum_log_probs += static_cast<double>(s.log_prob(row[k]));
    sum_log_probs = warp_reduce(sum_log_probs, Add{});
    if (lane == 0) {
      row_max[n] = s.max;
      row_log_sum[n] = s.log_sum;
      const int32_t t = targets[n];
      row_loss[n] =
          t >= 0 && t < K
              ? static_cast<T>(cross_entropy_row_loss(static_cast<double>(s.log_prob(row[t])),
                                                      sum_log_probs, label_smoothing, K))
              : static_cast<T>(NAN);
    }
  }
}

/// mean_row_loss_kernel's rows for cross_entropy: the losses cross_entropy_rows_kernel wrote.
template <typename T>
struct SavedRowLoss {
  const T* row_loss;
  __device__ __forceinline__ T operator()(int64_t n, int32_t, bool) const { return row_loss[n]; }
};

/// mean_row_loss_kernel's rows for nll_loss: -log_probs[n, target], also written to row_loss;
/// NaN for a target outside [0, K), whose log-probability is not read.
template <typename T>
struct NllRowLoss {
  const T* log_probs;
  T* row_loss;
  int64_t K;
  __device__ __forceinline__ T operator()(int64_t n, int32_t target, bool valid) const {
    const T loss = valid ? -log_probs[n * K + target] : static_cast<T>(NAN);
    row_loss[n] = loss;
    return loss;
  }
};

/// Launched as one block of kBlock threads. RowLoss: SavedRowLoss or NllRowLoss, called as
/// row_loss(n, targets[n], targets[n] in [0, K)) once for each row.
template <typename T, typename RowLoss>
__global__ void __launch_bounds__(gs::kBlock, 1)
    mean_row_loss_kernel(RowLoss row_loss, const int32_t* __restrict__ targets,
                         T* __restrict__ loss, int32_t* __restrict__ target_error, int64_t N,
                         int64_t K) {
  LossTotal total;
  for (int64_t n = threadIdx.x; n < N; n += gs::kBlock) {
    const int32_t t = targets[n];
    const bool valid = t >= 0 && t < K;
    total.sum += static_cast<double>(row_loss(n, t, valid));
    if (!valid && total.first_bad_row == LossTotal::kNoBadRow)
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
    nll_loss_backward_kernel(const int32_t* __restrict__ targets, const T* __restrict__ dloss,
                             T* __restrict__ dlog_probs, int64_t N, int64_t K) {
  const T g = nll_target_grad(dloss[0], N);
  const uint32_t classes = static_cast<uint32_t>(K);
  for (int64_t i = gs::thread_index(); i < N * K; i += gs::thread_count()) {
    const uint32_t n = static_cast<uint32_t>(i) / classes;
    const int32_t k = static_cast<int32_t>(static_cast<uint32_t>(i) - n * classes);
    gs::store_or_add<kAccumulate>(dlog_probs[i], k == targets[n] ? g : T(0));
  }
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
    const T log_p = RowLogSumExp<T>{row_max[n], row_log_sum[n]}.log_prob(logits[i]);
    gs::store_or_add<kAccumulate>(dlogits[i],
                                  cross_entropy_logit_grad(log_p, k == targets[n], q, scale));
  }
}

}  // namespace loss_kernels

namespace loss_detail {

/// Checks [N, K] scores (named `scores` in the message): at least one row and one class, fewer
/// than 2^31 elements (the kernels' 32-bit index arithmetic, int32 targets).
inline void check_sizes(const char* op, const char* scores, int64_t N, int64_t K) {
  NORMLAB_CHECK(N >= 1 && K >= 1, op, ": ", scores, " [", N, ", ", K,
                "] need at least one row and one class");
  NORMLAB_CHECK(K <= ((int64_t(1) << 31) - 1) / N, op, ": ", scores, " [", N, ", ", K,
                "] have 2^31 or more elements (32-bit indices)");
}

inline void check_label_smoothing(const char* op, double label_smoothing) {
  NORMLAB_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0, op,
                ": label_smoothing must be in [0, 1), got ", label_smoothing);
}

inline void check_pointers(const char* op,
                           std::initializer_list<std::pair<const void*, const char*>> pointers) {
  for (const auto& [p, name] : pointers) grid_stride::check_pointer(op, p, name);
}

/// Queues the one-block mean of the row losses given by `row_loss` (SavedRowLoss, NllRowLoss).
template <typename T, typename RowLoss>
void launch_mean_row_loss(const RowLoss& row_loss, const int32_t* targets, T* loss,
                          int32_t* target_error, int64_t N, int64_t K, cudaStream_t stream) {
  NORMLAB_CUDA_LAUNCH(1, grid_stride::kBlock, 0, stream,
                      loss_kernels::mean_row_loss_kernel<T, RowLoss>)
  (row_loss, targets, loss, target_error, N, K);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Copies target_error (written by the forward `op` on stream), waits for the stream, and throws
/// normlab::Error naming op, the first bad row, its target and the shape of `scores`.
inline void check_targets(const char* op, const char* scores, const int32_t* target_error,
                          int64_t N, int64_t K, cudaStream_t stream) {
  int32_t error[2];
  NORMLAB_CUDA_CHECK(
      cudaMemcpyAsync(error, target_error, sizeof error, cudaMemcpyDeviceToHost, stream));
  NORMLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  NORMLAB_CHECK(error[0] < 0, op, ": target at index ", error[0], " is ", error[1],
                ", outside [0, ", K, ") for ", scores, " of shape [", N, ", ", K, "]");
}

}  // namespace loss_detail

// ---- launchers: all pointers are device memory; kernels are queued on `stream`.

/// Requires: x and y [N, K], not overlapping; N * K < 2^31.
/// Ensures: y[n, k] = log_softmax(x[n])_k = (x[n, k] - max_n) - log(sum_j exp(x[n, j] - max_n)),
/// the exponential sum in double, the rest in T (as cpu::log_softmax_forward).
template <typename T>
void log_softmax_forward(const T* x, T* y, int64_t N, int64_t K, cudaStream_t stream = nullptr) {
  const char* op = "cuda::log_softmax_forward";
  loss_detail::check_sizes(op, "x", N, K);
  loss_detail::check_pointers(op, {{x, "x"}, {y, "y"}});
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(N, grid_stride::kWarpsPerBlock), grid_stride::kBlock, 0,
                      stream, loss_kernels::log_softmax_forward_kernel<T>)
  (x, y, N, K);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Requires: y [N, K] the forward's output, dy [N, K] its gradient; dx.data [N, K] or null, not
/// overlapping y or dy; N * K < 2^31. Ensures: dx[n, k] (+)= dy[n, k] - exp(y[n, k]) *
/// sum_j dy[n, j] (the sum in double, rounded to T; as cpu::log_softmax_backward); nothing if
/// dx.data is null.
template <typename T>
void log_softmax_backward(const T* y, const T* dy, normlab::GradientOut<T> dx, int64_t N, int64_t K,
                          cudaStream_t stream = nullptr) {
  const char* op = "cuda::log_softmax_backward";
  loss_detail::check_sizes(op, "y", N, K);
  if (dx.data == nullptr) return;
  loss_detail::check_pointers(op, {{y, "y"}, {dy, "dy"}});
  const unsigned grid = grid_stride::grid_for(N, grid_stride::kWarpsPerBlock);
  if (dx.accumulate) {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        loss_kernels::log_softmax_backward_kernel<T, true>)
    (y, dy, dx.data, N, K);
  } else {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        loss_kernels::log_softmax_backward_kernel<T, false>)
    (y, dy, dx.data, N, K);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Requires: log_probs [N, K], targets [N]; row_loss holds N values, loss one; target_error two
/// int32 or null; N * K < 2^31. Ensures: *loss = -mean_n log_probs[n, targets[n]] (summed in
/// double), row_loss[n] = -log_probs[n, targets[n]]. A target outside [0, K) is never read
/// through: its row's loss and the loss are NaN and, if target_error is not null, target_error =
/// {first such row, its target}, else {-1, 0} (check_nll_loss_targets turns it into an error).
template <typename T>
void nll_loss_forward(const T* log_probs, const int32_t* targets, T* row_loss, T* loss,
                      int32_t* target_error, int64_t N, int64_t K, cudaStream_t stream = nullptr) {
  const char* op = "cuda::nll_loss_forward";
  loss_detail::check_sizes(op, "log_probs", N, K);
  loss_detail::check_pointers(
      op, {{log_probs, "log_probs"}, {targets, "targets"}, {row_loss, "row_loss"}, {loss, "loss"}});
  loss_detail::launch_mean_row_loss(loss_kernels::NllRowLoss<T>{log_probs, row_loss, K}, targets,
                                    loss, target_error, N, K, stream);
}

/// Requires: target_error written by nll_loss_forward for log_probs [N, K], queued on `stream`.
/// Waits for the stream. Ensures: returns if every target was in [0, K); else throws
/// normlab::Error naming the first row with a bad target, the target and the shape.
inline void check_nll_loss_targets(const int32_t* target_error, int64_t N, int64_t K,
                                   cudaStream_t stream = nullptr) {
  loss_detail::check_targets("cuda::nll_loss_forward", "log_probs", target_error, N, K, stream);
}

/// Requires: targets [N]; dloss: the loss's gradient (one value, device memory); dlog_probs.data
/// [N, K] or null; N * K < 2^31. Ensures: dlog_probs[n, k] (+)= -dloss / N where k ==
/// targets[n], else 0 (a row whose target is outside [0, K) gets 0); nothing if dlog_probs.data
/// is null.
template <typename T>
void nll_loss_backward(const int32_t* targets, const T* dloss, normlab::GradientOut<T> dlog_probs,
                       int64_t N, int64_t K, cudaStream_t stream = nullptr) {
  const char* op = "cuda::nll_loss_backward";
  loss_detail::check_sizes(op, "log_probs", N, K);
  if (dlog_probs.data == nullptr) return;
  loss_detail::check_pointers(op, {{targets, "targets"}, {dloss, "dloss"}});
  const unsigned grid = grid_stride::grid_for(N * K);
  if (dlog_probs.accumulate) {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        loss_kernels::nll_loss_backward_kernel<T, true>)
    (targets, dloss, dlog_probs.data, N, K);
  } else {
    NORMLAB_CUDA_LAUNCH(grid, grid_stride::kBlock, 0, stream,
                        loss_kernels::nll_loss_backward_kernel<T, false>)
    (targets, dloss, dlog_probs.data, N, K);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

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
  loss_detail::check_sizes(op, "logits", N, K);
  loss_detail::check_label_smoothing(op, label_smoothing);
  loss_detail::check_pointers(op, {{logits, "logits"},
                                   {targets, "targets"},
                                   {row_max, "row_max"},
                                   {row_log_sum, "row_log_sum"},
                                   {row_loss, "row_loss"},
                                   {loss, "loss"}});
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(N, grid_stride::kWarpsPerBlock), grid_stride::kBlock, 0,
                      stream, loss_kernels::cross_entropy_rows_kernel<T>)
  (logits, targets, label_smoothing, row_max, row_log_sum, row_loss, N, K);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  loss_detail::launch_mean_row_loss(loss_kernels::SavedRowLoss<T>{row_loss}, targets, loss,
                                    target_error, N, K, stream);
}

/// Requires: target_error written by cross_entropy_forward for logits [N, K], queued on `stream`.
/// Waits for the stream. Ensures: returns if every target was in [0, K); else throws
/// normlab::Error naming the first row with a bad target, the target and the shape.
inline void check_cross_entropy_targets(const int32_t* target_error, int64_t N, int64_t K,
                                        cudaStream_t stream = nullptr) {
  loss_detail::check_targets("cuda::cross_entropy_forward", "logits", target_error, N, K, stream);
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
  loss_detail::check_sizes(op, "logits", N, K);
  loss_detail::check_label_smoothing(op, label_smoothing);
  if (dlogits.data == nullptr) return;
  loss_detail::check_pointers(op, {{logits, "logits"},
                                   {targets, "targets"},
                                   {row_max, "row_max"},
                                   {row_log_sum, "row_log_sum"},
                                   {dloss, "dloss"}});
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
