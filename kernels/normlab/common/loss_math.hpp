// The per-row and per-element maths of the classification losses, shared by the CPU kernels
// (kernels/normlab/cpu/loss.hpp) and the CUDA kernels (kernels/normlab/cuda/loss.cuh).
//
// log_softmax of a row x with max m and log-sum L = log(sum_j exp(x_j - m)):
//   log p_k    (x_k - m) - L   (shifted first: large logits keep their differences)
//   dx_k       dy_k - exp(y_k) * sum_j dy_j   (from the forward's output y = log p)
// nll_loss (mean over N rows with targets t_n):
//   d log p_k  -dloss / N at k = t_n, 0 elsewhere
// The fused cross-entropy (log_softmax + NLL, mean, with label smoothing eps): with
// q_k = (1 - eps) [k == t] + eps / K the smoothed target distribution of a row with target t,
//   row loss   -sum_k q_k log p_k = -(1 - eps) log p_t - (eps / K) sum_k log p_k
//   dlogit_k   (p_k - q_k) * dloss / N
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/common/host_device.hpp"

namespace normlab {

/// A row's maximum and log(sum_k exp(x_k - max)) (the sum accumulated in double by the
/// kernels, its log rounded to T).
template <typename T>
struct RowLogSumExp {
  T max;
  T log_sum;

  /// Ensures: log_softmax(row)_k for the row's element x = x_k.
  NORMLAB_HOST_DEVICE T log_prob(T x) const { return (x - max) - log_sum; }
};

/// Ensures: log_softmax's input gradient dy - exp(y) * dy_sum for an element with output y and
/// output gradient dy, dy_sum the sum of dy over its row.
template <typename T>
NORMLAB_HOST_DEVICE T log_softmax_input_grad(T dy, T y, T dy_sum) {
  using std::exp;
  return dy - exp(y) * dy_sum;
}

/// Ensures: nll_loss's gradient at a row's target log-probability, -dloss / N (0 elsewhere).
template <typename T>
NORMLAB_HOST_DEVICE T nll_target_grad(T dloss, int64_t N) {
  return -dloss / static_cast<T>(N);
}

/// The smoothed target distribution's constants in the gradient's precision: q_k off the target
/// is every_class, and 1 - q_t = one_minus_q_target.
template <typename T>
struct SmoothedTargets {
  T every_class;
  T one_minus_q_target;
};

template <typename T>
NORMLAB_HOST_DEVICE SmoothedTargets<T> smoothed_targets(double label_smoothing, int64_t K) {
  const double every_class = label_smoothing / static_cast<double>(K);
  return {static_cast<T>(every_class), static_cast<T>(label_smoothing - every_class)};
}

/// Ensures: a row's loss from its target's log-probability and the sum of its log-probabilities.
NORMLAB_HOST_DEVICE double cross_entropy_row_loss(double target_log_prob, double sum_log_probs,
                                                  double label_smoothing, int64_t K) {
  return -(1.0 - label_smoothing) * target_log_prob -
         label_smoothing / static_cast<double>(K) * sum_log_probs;
}

/// Ensures: (p_k - q_k) * scale for log_p = log p_k. At the target p - q = expm1(log p) + (1 - q):
/// no cancellation when p is close to 1.
template <typename T>
NORMLAB_HOST_DEVICE T cross_entropy_logit_grad(T log_p, bool is_target, const SmoothedTargets<T>& q,
                                               T scale) {
  using std::exp;
  using std::expm1;
  return (is_target ? expm1(log_p) + q.one_minus_q_target : exp(log_p) - q.every_class) * scale;
}

}  // namespace normlab
