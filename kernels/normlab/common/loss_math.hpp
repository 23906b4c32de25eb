// The per-row and per-element maths of the fused cross-entropy (log_softmax + NLL, mean, with
// label smoothing eps), shared by the CPU kernels (kernels/normlab/cpu/loss.hpp) and the CUDA
// kernels (kernels/normlab/cuda/loss.cuh). With q_k = (1 - eps) [k == t] + eps / K the smoothed
// target distribution of a row with target t and log-probabilities log p_k:
//
//   row loss   -sum_k q_k log p_k = -(1 - eps) log p_t - (eps / K) sum_k log p_k
//   dlogit_k   (p_k - q_k) * dloss / N
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/common/host_device.hpp"

namespace normlab {

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
