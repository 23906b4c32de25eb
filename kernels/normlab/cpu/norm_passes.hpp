// The memory passes that the BatchNorm and GroupNorm CPU kernels (batch_norm.hpp, group_norm.hpp)
// are built from. Each pass walks one contiguous range of elements (a plane of H*W, or a whole
// GroupNorm group of C/G planes) on the calling thread; the kernels choose which thread owns
// which ranges. Each is one read of its inputs:
//
//   range_moments      x                -> WelfordState<double> (count, mean, M2)
//   normalize_range    x                -> y = (x - center) * scale + shift (+ ReLU (+ dropout))
//   range_grad_sums    x, dy (, y)      -> sum(g), sum(g * x_hat) in double, g = dy masked by y > 0
//   input_grad_range   x, dy (, y, dx)  -> dx (+)= dy_scale * g + x_scale * (x - center) + shift
//
// The fused epilogue: y = relu(norm(x)), or y = dropout(relu(norm(x))) with the dropout's factor
// (1/keep or 0) applied in the same pass. Its backward needs no dropout mask: y > 0 exactly where
// the ReLU passed and the dropout kept, so g = dy * grad_scale where y > 0 (grad_scale = 1/keep,
// or 1 without dropout) and 0 elsewhere (FusedOutput).
//
// Reductions (moments, gradient sums) run over chunks of at most kChunk elements. Inside a chunk,
// kLanes independent accumulators of T (two AVX-512 vectors of float) take the terms in the order
// i mod kLanes, so the inner loop vectorises and the add latency is hidden; the lanes are then
// added in double in lane order, and the chunks combined in double (Chan's merge for moments).
// A float lane thus sums at most kChunk / kLanes = 32 terms, which bounds its rounding error
// whatever the range's length. The moments of a chunk are sums of x - shift, with shift the first
// element of the range (later chunks: the running mean so far), so offset data (100 + 0.01*randn)
// is summed as small differences that the subtraction computes exactly; constant data gives
// exactly zero M2. Everything is deterministic: no result depends on thread count or schedule.
#pragma once

#include <algorithm>
#include <cstdint>

#include "normlab/common/gradient_out.hpp"
#include "normlab/common/norm_math.hpp"
#include "normlab/cpu/elementwise.hpp"

namespace normlab::cpu {

/// A norm's fused epilogue as its backward sees it: no ReLU (output == nullptr: g = dy), or the
/// forward's saved output y with g = dy * grad_scale where y > 0 and 0 elsewhere.
template <typename T>
struct FusedOutput {
  const T* output = nullptr;
  T grad_scale = T(1);
};

/// The two reductions of a norm backward over some elements: sum(g) and sum(g * x_hat).
struct GradSums {
  double g = 0;
  double g_xhat = 0;
};

namespace norm_detail {

constexpr int64_t kLanes = 32;
constexpr int64_t kChunk = 1024;
/// Below this many elements a norm kernel runs on the calling thread (a fork costs more).
constexpr int64_t kParallelThreshold = int64_t(1) << 14;

template <typename T>
struct TermPair {
  T first;
  T second;
};

struct SumPair {
  double first = 0;
  double second = 0;
};

/// Ensures: the sums of terms(i).first and terms(i).second over 0 <= i < n, where n <= kChunk,
/// accumulated in kLanes lanes of T and folded in double in lane order.
/// Always inlined: where GCC 12 did not inline it (the fused-ReLU gradient sums) the lane
/// accumulators went through the stack and the final fold read them back right after 64-byte
/// vector stores, a store-forwarding stall per lane that made that backward 2.5x slower on 8x8
/// planes (measured, 1 thread, 64x32x8x8: 376 us -> 153 us; results unchanged).
template <typename T, typename Terms>
[[gnu::always_inline]] inline SumPair chunk_sums(int64_t n, Terms terms) {
  T first[kLanes] = {}, second[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const TermPair<T> t = terms(i + l);
      first[l] += t.first;
      second[l] += t.second;
    }
  }
  for (int64_t l = 0; i + l < n; ++l) {
    const TermPair<T> t = terms(i + l);
    first[l] += t.first;
    second[l] += t.second;
  }
  SumPair sums;
  for (int64_t l = 0; l < std::min(n, kLanes); ++l) {
    sums.first += static_cast<double>(first[l]);
    sums.second += static_cast<double>(second[l]);
  }
  return sums;
}

}  // namespace norm_detail

/// Requires: n >= 1. Ensures: count, mean and M2 of x[0, n), in double.
template <typename T>
WelfordState<double> range_moments(const T* x, int64_t n) {
  using norm_detail::kChunk;
  WelfordState<double> state;
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const T* chunk = x + begin;
    const int64_t length = std::min(kChunk, n - begin);
    const T shift = begin == 0 ? chunk[0] : static_cast<T>(state.mean);
    const norm_detail::SumPair sums = norm_detail::chunk_sums<T>(length, [=](int64_t i) {
      const T d = chunk[i] - shift;
      return norm_detail::TermPair<T>{d, d * d};
    });
    state = welford_merge(state, welford_from_shifted_sums<double>(static_cast<double>(length),
                                                                   static_cast<double>(shift),
                                                                   sums.first, sums.second));
  }
  return state;
}

namespace norm_detail {

template <bool kRelu, typename T>
void normalize_range(const T* x, T* y, int64_t n, const ChannelAffine<T>& a) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = normalize_affine<kRelu>(x[i], a);
}

/// The output gradient of element i, masked (and scaled) by the fused epilogue's saved output.
template <bool kRelu, typename T>
inline T masked_grad(const T* y, const T* dy, T grad_scale, int64_t i) {
  if constexpr (kRelu) return y[i] > T(0) ? dy[i] * grad_scale : T(0);
  return dy[i];
}

template <bool kRelu, typename T>
GradSums range_grad_sums(const T* x, const T* y, T grad_scale, const T* dy, int64_t n,
                         const ChannelAffine<T>& xhat) {
  GradSums total;
  for (int64_t begin = 0; begin < n; begin += kChunk) {
    const T *xc = x + begin, *yc = y + (kRelu ? begin : 0), *dyc = dy + begin;
    const SumPair sums = chunk_sums<T>(std::min(kChunk, n - begin), [=](int64_t i) {
      const T g = masked_grad<kRelu>(yc, dyc, grad_scale, i);
      return TermPair<T>{g, g * normalize_affine<false>(xc[i], xhat)};
    });
    total.g += sums.first;
    total.g_xhat += sums.second;
  }
  return total;
}

template <bool kRelu, bool kAccumulate, typename T>
void input_grad_range(const T* x, const T* y, T grad_scale, const T* dy, T* dx, int64_t n,
                      const InputGradAffine<T>& k) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = norm_backward_input(masked_grad<kRelu>(y, dy, grad_scale, i), x[i], k);
    if constexpr (kAccumulate) {
      dx[i] += v;
    } else {
      dx[i] = v;
    }
  }
}

}  // namespace norm_detail

/// y[i] = (x[i] - a.center) * a.scale + a.shift, then max(., 0) if relu, then times the dropout
/// factor of tensor element first_index + i if `dropout` is active. One pass.
/// Requires: relu if dropout.active() (the backward reads the dropout mask from y > 0).
template <typename T>
void normalize_range(const T* x, T* y, int64_t n, const ChannelAffine<T>& a, bool relu,
                     const DropoutDraw& dropout, int64_t first_index) {
  if (dropout.active()) {
    cpu::detail::for_each_dropout_factor<T>(dropout, first_index, n, [=](int64_t i, T factor) {
      y[i] = normalize_affine<true>(x[i], a) * factor;
    });
  } else if (relu) {
    norm_detail::normalize_range<true>(x, y, n, a);
  } else {
    norm_detail::normalize_range<false>(x, y, n, a);
  }
}

/// Gradient sums of one range: sum(g) and sum(g * x_hat) with
/// x_hat = (x - xhat.center) * xhat.scale + xhat.shift and g as FusedOutput says (its output
/// pointer already offset to this range). One pass over x, dy (and the saved output).
template <typename T>
GradSums range_grad_sums(const T* x, const FusedOutput<T>& fused, const T* dy, int64_t n,
                         const ChannelAffine<T>& xhat) {
  return fused.output != nullptr
             ? norm_detail::range_grad_sums<true>(x, fused.output, fused.grad_scale, dy, n, xhat)
             : norm_detail::range_grad_sums<false>(x, fused.output, fused.grad_scale, dy, n, xhat);
}

/// dx (+)= k.dy_scale * g + k.x_scale * (x - k.center) + k.shift, g as in range_grad_sums.
/// One pass over x, dy (, the saved output, dx).
template <typename T>
void input_grad_range(const T* x, const FusedOutput<T>& fused, const T* dy, T* dx, int64_t n,
                      const InputGradAffine<T>& k, bool accumulate) {
  using norm_detail::input_grad_range;
  const T* y = fused.output;
  const T s = fused.grad_scale;
  if (y != nullptr) {
    if (accumulate) {
      input_grad_range<true, true>(x, y, s, dy, dx, n, k);
    } else {
      input_grad_range<true, false>(x, y, s, dy, dx, n, k);
    }
  } else {
    if (accumulate) {
      input_grad_range<false, true>(x, y, s, dy, dx, n, k);
    } else {
      input_grad_range<false, false>(x, y, s, dy, dx, n, k);
    }
  }
}

}  // namespace normlab::cpu
