// Elementwise CPU kernels: ReLU, residual add, inverted dropout. Layout-agnostic (flat arrays of
// n elements); one OpenMP-parallel, vectorised pass over memory each. Input-gradient outputs take
// `accumulate`: false writes the gradient, true adds it to what the buffer holds.
#pragma once

#include <algorithm>
#include <cstdint>

#include "normlab/common/dropout.hpp"
#include "normlab/common/philox.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace normlab::cpu {

/// y = max(x, 0), NaN kept (as PyTorch). One pass: read x, write y.
template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = !(x[i] <= T(0)) ? x[i] : T(0);
}

/// dx (+)= dy where y > 0. One pass: read y, dy, (dx), write dx.
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n, bool accumulate) {
  if (accumulate) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] += y[i] > T(0) ? dy[i] : T(0);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
  }
}

/// y = a + b. One pass.
template <typename T>
void add_forward(const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

/// dx (+)= scale * dy. One pass. (The backward of add, and of anything that passes its gradient
/// through scaled.)
template <typename T>
void scaled_gradient(const T* dy, T* dx, int64_t n, T scale, bool accumulate) {
  if (accumulate) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] += scale * dy[i];
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] = scale * dy[i];
  }
}

/// The mask of an inverted dropout (normlab/common/dropout.hpp), shared with the CUDA kernels.
using normlab::DropoutDraw;

namespace detail {

/// Philox blocks drawn together: 16 blocks = 64 elements, so the 32-bit lanes of the generator
/// fill an AVX-512 vector and the per-element pass below is a whole number of vectors.
constexpr int64_t kDropoutBlocks = 16;
constexpr int64_t kDropoutSpan = 4 * kDropoutBlocks;

/// Ensures: words[4 * b + w] == philox4x32(seed, first_block + b, 0).v[w] for b < 16. With
/// AVX-512 the 16 blocks run in the 16 lanes of four vectors (one per Philox word); the 32 x 32 ->
/// 64-bit products come from two vpmuludq (even and odd lanes) and a blend. Elsewhere it is the
/// scalar generator of philox.hpp, which the tests compare this with bit for bit.
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics initialise their pass-through operand with _mm512_undefined_epi32(),
// which -W(maybe-)uninitialized reports once inlined (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
inline void philox_span(uint64_t seed, uint64_t first_block, uint32_t* words) {
#if defined(__AVX512F__)
  alignas(64) uint32_t counter_lo[kDropoutBlocks], counter_hi[kDropoutBlocks];
  for (int64_t b = 0; b < kDropoutBlocks; ++b) {
    const uint64_t counter = first_block + static_cast<uint64_t>(b);
    counter_lo[b] = static_cast<uint32_t>(counter);
    counter_hi[b] = static_cast<uint32_t>(counter >> 32);
  }
  const auto mulhilo = [](__m512i a, __m512i b, __m512i& hi, __m512i& lo) {
    const __m512i even = _mm512_mul_epu32(a, b);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
    lo = _mm512_mullo_epi32(a, b);
  };
  __m512i c0 = _mm512_load_si512(counter_lo), c1 = _mm512_load_si512(counter_hi);
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  __m512i k0 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(seed)));
  __m512i k1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(seed >> 32)));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  const __m512i w0 = _mm512_set1_epi32(static_cast<int>(0x9E3779B9u));
  const __m512i w1 = _mm512_set1_epi32(static_cast<int>(0xBB67AE85u));
  for (int round = 0; round < 10; ++round) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo(m0, c0, hi0, lo0);
    mulhilo(m1, c2, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), k0);
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), k1);
    c1 = lo1;
    c3 = lo0;
    k0 = _mm512_add_epi32(k0, w0);
    k1 = _mm512_add_epi32(k1, w1);
  }
  alignas(64) uint32_t word[4][kDropoutBlocks];
  _mm512_store_si512(word[0], c0);
  _mm512_store_si512(word[1], c1);
  _mm512_store_si512(word[2], c2);
  _mm512_store_si512(word[3], c3);
  for (int64_t b = 0; b < kDropoutBlocks; ++b)
    for (int w = 0; w < 4; ++w) words[4 * b + w] = word[w][b];
#else
  for (int64_t b = 0; b < kDropoutBlocks; ++b) {
    const Philox4 bits = philox4x32(seed, first_block + static_cast<uint64_t>(b), 0);
    for (int w = 0; w < 4; ++w) words[4 * b + w] = bits.v[w];
  }
#endif
}
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// Applies `apply(j, factor)` for j in [0, n) on the calling thread, where factor is 1/keep if
/// element first + j of the tensor is kept under `draw` and 0 if it is dropped. Works in the
/// tensor's aligned spans of 64 elements: a span's 16 Philox blocks come from philox_span, its
/// factors from one SIMD loop, and `apply` over the part of the span inside [first, first + n)
/// from another. A decision depends only on the element's index, not on how ranges are split.
template <typename T, typename Apply>
void for_each_dropout_factor(const DropoutDraw& draw, int64_t first, int64_t n, Apply apply) {
  const T scale = T(1) / static_cast<T>(draw.keep);
  const int64_t end = first + n;
  for (int64_t span_begin = first / kDropoutSpan * kDropoutSpan; span_begin < end;
       span_begin += kDropoutSpan) {
    alignas(64) uint32_t words[kDropoutSpan];
    alignas(64) T factor[kDropoutSpan];
    philox_span(draw.seed, draw.counter_base + static_cast<uint64_t>(span_begin / 4), words);
#pragma omp simd
    for (int64_t j = 0; j < kDropoutSpan; ++j)
      factor[j] = uniform_from_bits(words[j]) < draw.keep ? scale : T(0);
    const int64_t j_lo = std::max(first - span_begin, int64_t(0));
    const int64_t j_hi = std::min(end - span_begin, kDropoutSpan);
    const int64_t offset = span_begin - first;  // apply's index of the span's element j
#pragma omp simd
    for (int64_t j = j_lo; j < j_hi; ++j) apply(offset + j, factor[j]);
  }
}

/// for_each_dropout_factor over a whole tensor of n elements, spans split over OpenMP threads.
template <typename T, typename Apply>
void for_each_dropout_factor_parallel(const DropoutDraw& draw, int64_t n, Apply apply) {
  const int64_t spans = (n + kDropoutSpan - 1) / kDropoutSpan;
#pragma omp parallel for schedule(static)
  for (int64_t span = 0; span < spans; ++span) {
    const int64_t first = span * kDropoutSpan;
    for_each_dropout_factor<T>(draw, first, std::min(kDropoutSpan, n - first),
                               [&](int64_t j, T factor) { apply(first + j, factor); });
  }
}

}  // namespace detail

/// Inverted dropout: y = x * (1/keep) where kept, else x * 0 (so NaN and Inf inputs stay visible);
/// the mask is recomputed (not stored) by the backward. One pass: read x, write y, plus about 3
/// integer vector instructions per element for the generator. Requires: draw.keep in (0, 1].
template <typename T>
void dropout_forward(const T* x, T* y, int64_t n, const DropoutDraw& draw) {
  detail::for_each_dropout_factor_parallel<T>(draw, n, [=](int64_t i, T factor) { y[i] = x[i] * factor; });
}

/// dx (+)= dy * (1/keep) where kept (dy * 0 where dropped), with the forward's draw.
template <typename T>
void dropout_backward(const T* dy, T* dx, int64_t n, const DropoutDraw& draw, bool accumulate) {
  if (accumulate) {
    detail::for_each_dropout_factor_parallel<T>(draw, n, [=](int64_t i, T factor) { dx[i] += dy[i] * factor; });
  } else {
    detail::for_each_dropout_factor_parallel<T>(draw, n, [=](int64_t i, T factor) { dx[i] = dy[i] * factor; });
  }
}

}  // namespace normlab::cpu
