// Naive reference implementations (oracles) of log_softmax, nll_loss and cross-entropy with label
// smoothing over rows of K class scores, templated, run in double. Straight from the definitions:
// log_softmax(x)_k = x_k - log(sum_j exp(x_j)) (shifted by the row max so it can take large
// logits), q_k = (1 - eps) [k == t] + eps / K for the smoothed target distribution.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace normlab::oracle {

template <typename T>
std::vector<T> log_softmax(const std::vector<T>& x, int64_t N, int64_t K) {
  std::vector<T> y(x.size());
  for (int64_t n = 0; n < N; ++n) {
    const T* row = x.data() + n * K;
    const T max = *std::max_element(row, row + K);
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(row[k] - max);
    for (int64_t k = 0; k < K; ++k) y[n * K + k] = row[k] - (max + std::log(sum));
  }
  return y;
}

/// dx = dy - softmax(x) * sum(dy), per row.
template <typename T>
std::vector<T> log_softmax_backward(const std::vector<T>& x, const std::vector<T>& dy, int64_t N,
                                    int64_t K) {
  const std::vector<T> y = log_softmax(x, N, K);
  std::vector<T> dx(x.size());
  for (int64_t n = 0; n < N; ++n) {
    T sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += dy[n * K + k];
    for (int64_t k = 0; k < K; ++k) dx[n * K + k] = dy[n * K + k] - std::exp(y[n * K + k]) * sum;
  }
  return dx;
}

template <typename T>
T smoothed_target(int64_t k, int32_t target, int64_t K, T eps) {
  return (k == target ? 1 - eps : T(0)) + eps / K;
}

/// mean_n sum_k -q_k log_probs[n, k]; with eps = 0 this is the NLL loss of log_probs.
template <typename T>
T smoothed_nll(const std::vector<T>& log_probs, const std::vector<int32_t>& targets, int64_t K,
               T eps = 0) {
  const int64_t N = static_cast<int64_t>(targets.size());
  T total = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      total -= smoothed_target(k, targets[n], K, eps) * log_probs[n * K + k];
  return total / N;
}

/// d/d log_probs of smoothed_nll, times dloss.
template <typename T>
std::vector<T> smoothed_nll_backward(const std::vector<int32_t>& targets, int64_t K, T dloss,
                                     T eps = 0) {
  const int64_t N = static_cast<int64_t>(targets.size());
  std::vector<T> d(N * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      d[n * K + k] = -smoothed_target(k, targets[n], K, eps) * dloss / N;
  return d;
}

template <typename T>
T cross_entropy(const std::vector<T>& logits, const std::vector<int32_t>& targets, int64_t K,
                T eps) {
  return smoothed_nll(log_softmax(logits, static_cast<int64_t>(targets.size()), K), targets, K,
                      eps);
}

/// (softmax - q) * dloss / N.
template <typename T>
std::vector<T> cross_entropy_backward(const std::vector<T>& logits,
                                      const std::vector<int32_t>& targets, int64_t K, T dloss,
                                      T eps) {
  const int64_t N = static_cast<int64_t>(targets.size());
  const std::vector<T> log_probs = log_softmax(logits, N, K);
  std::vector<T> d(N * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      d[n * K + k] =
          (std::exp(log_probs[n * K + k]) - smoothed_target(k, targets[n], K, eps)) * dloss / N;
  return d;
}

}  // namespace normlab::oracle
