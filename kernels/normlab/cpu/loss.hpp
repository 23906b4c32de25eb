// Classification-loss CPU kernels: log_softmax, nll_loss (mean) and the fused cross-entropy
// (log_softmax + nll_loss, mean, optional label smoothing). Layout: N rows of K class scores,
// row-major ([N, K], or [N, K, 1, 1], which is the same memory). Rows are independent: OpenMP
// splits them into static blocks when N*K is large enough to pay for the fork (a CIFAR batch,
// 64 x 10, runs on the calling thread). Exponential sums and the batch mean accumulate in double;
// every row is shifted by its maximum, so logits of any magnitude neither overflow nor lose
// their differences. Results are independent of the thread count (the mean is summed serially).
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/common/loss_math.hpp"

namespace normlab::cpu {

namespace detail {

/// Below this many scores a loss kernel runs on the calling thread.
constexpr int64_t kLossParallelThreshold = int64_t(1) << 15;

/// Ensures: the row's max and log-sum (common/loss_math.hpp). Two passes over the row (max, then
/// the shifted exponential sum in double).
template <typename T>
RowLogSumExp<T> row_log_sum_exp(const T* row, int64_t K) {
  T max = row[0];
  for (int64_t k = 1; k < K; ++k) max = row[k] > max ? row[k] : max;
  double sum = 0;
  for (int64_t k = 0; k < K; ++k) sum += std::exp(static_cast<double>(row[k] - max));
  return {max, static_cast<T>(std::log(sum))};
}

}  // namespace detail

/// y[n, k] = log_softmax(x[n, :])_k. Three passes over each row (max, sum, write), the row
/// staying in cache.
template <typename T>
void log_softmax_forward(const T* x, T* y, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static) if (N * K >= detail::kLossParallelThreshold)
  for (int64_t n = 0; n < N; ++n) {
    const RowLogSumExp<T> s = detail::row_log_sum_exp(x + n * K, K);
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) y[n * K + k] = s.log_prob(x[n * K + k]);
  }
}

/// dx[n, k] (+)= dy[n, k] - softmax_k * sum_j dy[n, j], with softmax_k = exp(y[n, k]) from the
/// saved output y. Two passes over each row (sum of dy in double, write).
template <typename T>
void log_softmax_backward(const T* y, const T* dy, T* dx, int64_t N, int64_t K, bool accumulate) {
#pragma omp parallel for schedule(static) if (N * K >= detail::kLossParallelThreshold)
  for (int64_t n = 0; n < N; ++n) {
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += static_cast<double>(dy[n * K + k]);
    const T dy_sum = static_cast<T>(sum);
    for (int64_t k = 0; k < K; ++k) {
      const T g = log_softmax_input_grad(dy[n * K + k], y[n * K + k], dy_sum);
      dx[n * K + k] = accumulate ? dx[n * K + k] + g : g;
    }
  }
}

/// *loss = -mean_n log_probs[n, targets[n]]. Requires: 0 <= targets[n] < K. Reads N values.
template <typename T>
void nll_loss_forward(const T* log_probs, const int32_t* targets, T* loss, int64_t N, int64_t K) {
  double sum = 0;
  for (int64_t n = 0; n < N; ++n) sum += static_cast<double>(log_probs[n * K + targets[n]]);
  *loss = static_cast<T>(-sum / static_cast<double>(N));
}

/// dlog_probs[n, k] (+)= -dloss / N where k == targets[n], else 0. One pass (write, or
/// read-modify-write when accumulating).
template <typename T>
void nll_loss_backward(const int32_t* targets, T dloss, T* dlog_probs, int64_t N, int64_t K,
                       bool accumulate) {
  const T g = nll_target_grad(dloss, N);
#pragma omp parallel for schedule(static) if (N * K >= detail::kLossParallelThreshold)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const T v = k == targets[n] ? g : T(0);
      dlog_probs[n * K + k] = accumulate ? dlog_probs[n * K + k] + v : v;
    }
  }
}

/// Fused log_softmax + nll_loss with label smoothing eps in [0, 1):
///   loss = mean_n sum_k -q_k log_softmax(x_n)_k,  q_k = (1 - eps) [k == t_n] + eps / K.
/// Writes each row's max and log-sum (saved for the backward) and row loss to row_max,
/// row_log_sum, row_loss (N each), then *loss. Two passes over each row plus one over row_loss.
template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* targets, double label_smoothing,
                           T* row_max, T* row_log_sum, T* row_loss, T* loss, int64_t N, int64_t K) {
#pragma omp parallel for schedule(static) if (N * K >= detail::kLossParallelThreshold)
  for (int64_t n = 0; n < N; ++n) {
    const T* row = logits + n * K;
    const RowLogSumExp<T> s = detail::row_log_sum_exp(row, K);
    row_max[n] = s.max;
    row_log_sum[n] = s.log_sum;
    double sum_log_probs = 0;
    for (int64_t k = 0; k < K; ++k) sum_log_probs += static_cast<double>(s.log_prob(row[k]));
    const double target_log_prob = static_cast<double>(s.log_prob(row[targets[n]]));
    row_loss[n] =
        static_cast<T>(cross_entropy_row_loss(target_log_prob, sum_log_probs, label_smoothing, K));
  }
  double sum = 0;
  for (int64_t n = 0; n < N; ++n) sum += static_cast<double>(row_loss[n]);
  *loss = static_cast<T>(sum / static_cast<double>(N));
}

/// dlogits[n, k] (+)= (softmax(x_n)_k - q_k) * dloss / N, the softmax recomputed from the saved
/// row max and log-sum. One pass: read logits, (dlogits); write dlogits.
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* targets, double label_smoothing,
                            const T* row_max, const T* row_log_sum, T dloss, T* dlogits, int64_t N,
                            int64_t K, bool accumulate) {
  const SmoothedTargets<T> q = smoothed_targets<T>(label_smoothing, K);
  const T scale = dloss / static_cast<T>(N);
#pragma omp parallel for schedule(static) if (N * K >= detail::kLossParallelThreshold)
  for (int64_t n = 0; n < N; ++n) {
    const RowLogSumExp<T> s{row_max[n], row_log_sum[n]};
    for (int64_t k = 0; k < K; ++k) {
      const T log_p = s.log_prob(logits[n * K + k]);
      const T g = cross_entropy_logit_grad(log_p, k == targets[n], q, scale);
      dlogits[n * K + k] = accumulate ? dlogits[n * K + k] + g : g;
    }
  }
}

}  // namespace normlab::cpu
