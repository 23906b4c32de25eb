// Per-element and per-group maths of BatchNorm, GroupNorm and LayerNorm, shared by the CPU and
// CUDA kernels. The derivation is in docs/kernels.md ("Norm maths"); in short, for one
// normalisation group of M elements with mean mu and rstd = 1/sqrt(var + eps):
//
//   forward   x_hat = (x - mu) * rstd,   y = gamma_c * x_hat + beta_c
//   backward  g = gamma_c * dy,
//             dx = rstd * gamma_c * dy + B * (x - mu) + C,
//             B = -rstd^2 * sum(g * x_hat) / M,   C = -rstd * sum(g) / M
//             dgamma_c += sum(dy * x_hat),        dbeta_c += sum(dy)
//
// Statistics are combined with Welford/Chan (exact for any offset, zero variance on constant
// input). Kernels keep x - mu as a difference (never gamma*rstd*x + shift), so an input like
// 100 + 0.01*randn keeps its significant digits.
#pragma once

#include <cmath>

#include "normlab/common/host_device.hpp"

namespace normlab {

/// Running statistics of a set of values: count, mean and M2 = sum((x - mean)^2).
template <typename Acc>
struct WelfordState {
  Acc count = 0;
  Acc mean = 0;
  Acc m2 = 0;
};

/// Ensures: `state` now also describes `x`.
template <typename Acc>
NORMLAB_HOST_DEVICE void welford_push(WelfordState<Acc>& state, Acc x) {
  state.count += 1;
  const Acc delta = x - state.mean;
  state.mean += delta / state.count;
  state.m2 += delta * (x - state.mean);
}

/// Chan et al.'s parallel merge. Ensures: the result describes the union of both sets.
template <typename Acc>
NORMLAB_HOST_DEVICE WelfordState<Acc> welford_merge(const WelfordState<Acc>& a,
                                                    const WelfordState<Acc>& b) {
  const Acc count = a.count + b.count;
  if (count == 0) return a;
  const Acc delta = b.mean - a.mean;
  const Acc b_share = b.count / count;
  WelfordState<Acc> merged;
  merged.count = count;
  merged.mean = a.mean + delta * b_share;
  merged.m2 = a.m2 + b.m2 + delta * delta * a.count * b_share;
  return merged;
}

/// Requires: sum = sum(x - shift) and sum_sq = sum((x - shift)^2) over `count` > 0 values.
/// Ensures: their Welford state. With `shift` close to the values (e.g. the first of them), the
/// sums are small and the subtraction below loses nothing that matters.
template <typename Acc>
NORMLAB_HOST_DEVICE WelfordState<Acc> welford_from_shifted_sums(Acc count, Acc shift, Acc sum,
                                                                Acc sum_sq) {
  WelfordState<Acc> state;
  state.count = count;
  const Acc shifted_mean = sum / count;
  state.mean = shift + shifted_mean;
  const Acc m2 = sum_sq - sum * shifted_mean;
  state.m2 = m2 > Acc(0) ? m2 : Acc(0);
  return state;
}

/// Ensures: the population (biased) variance, never negative.
template <typename Acc>
NORMLAB_HOST_DEVICE Acc welford_variance(const WelfordState<Acc>& state) {
  const Acc var = state.count > Acc(0) ? state.m2 / state.count : Acc(0);
  return var > Acc(0) ? var : Acc(0);
}

/// Ensures: 1 / sqrt(var + eps), computed in the accumulation precision.
template <typename Acc>
NORMLAB_HOST_DEVICE Acc inverse_std(Acc var, Acc eps) {
  return Acc(1) / std::sqrt(var + eps);
}

/// Forward of one element: gamma * (x - mean) * rstd + beta.
template <typename T, typename Acc>
NORMLAB_HOST_DEVICE T normalize_affine(T x, Acc mean, Acc scale, Acc beta) {
  return static_cast<T>((static_cast<Acc>(x) - mean) * scale + beta);
}

/// Per-group coefficients of the input gradient: dx = rstd * gamma_c * dy + b * (x - mean) + c.
template <typename Acc>
struct NormBackwardCoefficients {
  Acc b;
  Acc c;
};

/// Requires: sum_g = sum(gamma_c * dy) and sum_g_xhat = sum(gamma_c * dy * x_hat) over the
/// group's `count` elements. Ensures: the coefficients b and c above.
template <typename Acc>
NORMLAB_HOST_DEVICE NormBackwardCoefficients<Acc> norm_backward_coefficients(Acc sum_g,
                                                                             Acc sum_g_xhat,
                                                                             Acc rstd, Acc count) {
  NormBackwardCoefficients<Acc> k;
  k.b = -rstd * rstd * sum_g_xhat / count;
  k.c = -rstd * sum_g / count;
  return k;
}

/// Input gradient of one element from the per-group coefficients.
template <typename T, typename Acc>
NORMLAB_HOST_DEVICE T norm_backward_input(T dy, T x, Acc dy_scale, Acc mean,
                                          const NormBackwardCoefficients<Acc>& k) {
  return static_cast<T>(dy_scale * static_cast<Acc>(dy) + k.b * (static_cast<Acc>(x) - mean) +
                        k.c);
}

}  // namespace normlab
