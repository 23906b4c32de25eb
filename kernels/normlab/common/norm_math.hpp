// Per-element and per-group maths of BatchNorm, GroupNorm and LayerNorm, shared by the CPU and
// CUDA kernels. The derivation is in docs/kernels.md ("Norm maths"); in short, for one
// normalisation group of M elements with mean mu and rstd = 1/sqrt(var + eps), and g the output
// gradient (masked by y > 0 when a ReLU is fused):
//
//   forward   x_hat = (x - mu) * rstd,   y = gamma_c * x_hat + beta_c
//   backward  dx = rstd * gamma_c * g + B * (x - mu) + C,
//             B = -rstd^2 * sum(gamma_c * g * x_hat) / M,   C = -rstd * sum(gamma_c * g) / M
//             dgamma_c += sum(g * x_hat),                   dbeta_c += sum(g)
//
// Statistics are combined with Welford/Chan (exact for any offset, zero variance on constant
// input) and kept in the accumulation type Acc (double on the CPU). The per-element forms
// (ChannelAffine, InputGradAffine) work in the element type T and keep x - mu as a difference
// against the mean rounded to T, with the rounding remainder folded into a per-channel shift; so
// an input like 100 + 0.01*randn keeps its significant digits.
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

/// One channel's normalisation folded into three numbers of the element type T:
///   gamma * (x - mean) * rstd + beta  ==  (x - center) * scale + shift,
/// where center is the mean rounded to T, scale = gamma * rstd, and shift = beta - (mean - center)
/// * scale absorbs the rounding remainder of the mean. x - center stays a difference (exact when x
/// lies within a factor 2 of center, as on offset data), so one subtract and one FMA per element
/// in T keep every significant digit, where scale * x + (beta - mean * scale) would cancel.
template <typename T>
struct ChannelAffine {
  T center;
  T scale;
  T shift;
};

/// Requires: rstd > 0 (from inverse_std). Ensures: the folded form above. With gamma = 1 and
/// beta = 0 it maps x to x_hat.
template <typename T, typename Acc>
NORMLAB_HOST_DEVICE ChannelAffine<T> channel_affine(Acc mean, Acc rstd, Acc gamma, Acc beta) {
  const T center = static_cast<T>(mean);
  const Acc scale = gamma * rstd;
  return {center, static_cast<T>(scale),
          static_cast<T>(beta - (mean - static_cast<Acc>(center)) * scale)};
}

/// Forward of one element: (x - center) * scale + shift, optionally followed by ReLU, which
/// keeps a NaN (as PyTorch's does): max(y, 0) written !(y <= 0) ? y : 0.
template <bool kRelu, typename T>
NORMLAB_HOST_DEVICE T normalize_affine(T x, const ChannelAffine<T>& a) {
  const T y = (x - a.center) * a.scale + a.shift;
  if constexpr (kRelu) return !(y <= T(0)) ? y : T(0);
  return y;
}

/// One channel's input gradient folded like ChannelAffine:
///   rstd * gamma * g + b * (x - mean) + c  ==  dy_scale * g + x_scale * (x - center) + shift,
/// with g the (ReLU-masked) output gradient, center the mean rounded to T and shift = c - b *
/// (mean - center).
template <typename T>
struct InputGradAffine {
  T center;
  T dy_scale;
  T x_scale;
  T shift;
};

/// Ensures: the folded form above for a channel with affine weight `gamma` in a group with
/// statistics (mean, rstd) and backward coefficients k.
template <typename T, typename Acc>
NORMLAB_HOST_DEVICE InputGradAffine<T> input_grad_affine(Acc mean, Acc rstd, Acc gamma,
                                                         const NormBackwardCoefficients<Acc>& k) {
  const T center = static_cast<T>(mean);
  return {center, static_cast<T>(rstd * gamma), static_cast<T>(k.b),
          static_cast<T>(k.c - k.b * (mean - static_cast<Acc>(center)))};
}

/// Input gradient of one element (g: the output gradient, already ReLU-masked).
template <typename T>
NORMLAB_HOST_DEVICE T norm_backward_input(T g, T x, const InputGradAffine<T>& k) {
  return k.dy_scale * g + k.x_scale * (x - k.center) + k.shift;
}

}  // namespace normlab
