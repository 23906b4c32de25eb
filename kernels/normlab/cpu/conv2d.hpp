// 2-D convolution CPU kernels on NCHW tensors: forward, data gradient (dgrad) and weight/bias
// gradient (wgrad), as GEMMs on the blocked driver of kernels/normlab/cpu/gemm.hpp, or, for float
// with AVX-512 and stride-1 kernels larger than 1x1 (every 3x3 layer of the CIFAR model), as the
// direct register-tiled kernels of conv2d_direct.hpp on the same padded grid (no packing; dgrad
// as the forward convolution of dy with the flipped weights). The GEMM path below serves double,
// non-AVX-512 builds, strides > 1 and 1x1 layers (whose unpadded image already is the B matrix).
//
// Per image n, with Kp = Cin * KH * KW patch elements and col(x_n) the Kp x P im2col matrix
// (row (ci, kh, kw), column = output pixel):
//   forward:  y_n [Cout, P]  = W [Cout, Kp] * col(x_n)                  (+ bias, fused into the write)
//   dgrad:    dx_n           = col2im( W^T [Kp, Cout] * dy_n [Cout, P] )
//   wgrad:    dW [Cout, Kp] += dy_n * col(x_n)^T;   db [Cout] += row sums of dy_n
//
// The padded grid (implicit GEMM without bounds checks). Each image is first copied into a
// zero-padded buffer of Cin planes of Hp x Wp = (H + 2p) x (W + 2p) (skipped when p == 0). Output
// pixels are numbered on a grid of Wp columns per output row: grid pixel q = oh * Wp + ow, of
// which only ow < OW are real outputs, so P' = (OH - 1) * Wp + OW grid columns. On that grid
// the im2col matrix is a pure shift:
//   col'[(ci, kh, kw), q] = padded[ci * Hp * Wp + kh * Wp + kw + stride * q]
// so every im2col row is a contiguous (stride 1) or strided run of the padded buffer: packing is
// a plain copy (forward) or a 16x16 register transpose (wgrad), and col2im is a plain add into
// a padded dx buffer (dgrad), with no per-element bounds tests or index divisions. The price is
// computing the Wp - OW padding columns of each output row (6% for 3x3 pad 1 at 32x32, 12.5% at
// 16x16, 25% at 8x8; about 2x for stride 2) and copies of x, dy and dx of a few percent of the
// GEMM's time. A 1x1, stride-1, unpadded convolution is its own grid: no copy at all (the image
// is the B matrix, y and dy are the grid). An explicit im2col would instead write and re-read
// Kp x P values per image (576 KB for the 16->32 3x3 layer at 32x32, half of L2).
//
// Threads: one image per OpenMP thread at a time (static schedule over the batch), each with its
// own slice of the caller's workspace (conv2d_workspace_size). Forward and dgrad write disjoint
// images. Wgrad: each thread accumulates a private dW/db partial over its contiguous range of
// images, then the partials are summed in thread order, so results are bit-identical for a fixed
// thread count (no atomics).
//
// Passes over memory per image: forward reads x_n once (into the padded copy, L2-resident) and
// writes y_n once; dgrad reads dy_n once (into the grid copy) and writes dx_n once (from the
// padded gradient); wgrad reads x_n and dy_n once each, and dy_n once more for db (from cache).
// Accumulation in T (fp32 for float), as the GEMM.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <omp.h>

#include "normlab/common/conv2d_geometry.hpp"
#include "normlab/cpu/conv2d_direct.hpp"
#include "normlab/cpu/gemm.hpp"

namespace normlab::cpu {

// The sizes of a call (normlab/common/conv2d_geometry.hpp), shared with the CUDA launchers.
using normlab::Conv2dGeometry;

namespace detail {

constexpr int64_t round_up_to_line(int64_t elements, int64_t element_size) {
  return (elements * element_size + 63) / 64 * 64 / element_size;
}

/// One thread's slice of the workspace, each part starting on a 64-byte line: the GEMM
/// workspace, an NR x KC scratch (strided wgrad rows), the padded image (or padded dx), the dy
/// grid, the wgrad partial sums (dW, then db).
template <typename T>
struct ConvThreadWorkspace {
  static constexpr int64_t kScratch = gemm_workspace_size<T>();
  static constexpr int64_t kPadded =
      kScratch + round_up_to_line(GemmBlocking<T>::NR * GemmBlocking<T>::KC, sizeof(T));
  static int64_t grid(const Conv2dGeometry& g) {
    return kPadded + round_up_to_line(g.in_channels * g.padded_pixels(), sizeof(T));
  }
  static int64_t partials(const Conv2dGeometry& g) {
    return grid(g) + round_up_to_line(g.out_channels * g.grid_pixels(), sizeof(T));
  }
  static int64_t partials_size(const Conv2dGeometry& g) {
    return round_up_to_line(g.out_channels * g.patch_size() + g.out_channels, sizeof(T));
  }
  static int64_t size(const Conv2dGeometry& g) { return partials(g) + partials_size(g); }
};

/// Whether T and g take the direct kernels of conv2d_direct.hpp (float with AVX-512).
template <typename T>
bool direct_forward(const Conv2dGeometry& g) { return kHasDirectKernels<T> && direct_forward_applies(g); }
template <typename T>
bool direct_backward_data(const Conv2dGeometry& g) {
  return kHasDirectKernels<T> && direct_backward_data_applies(g);
}

/// The workspace: the direct kernels' packed weights (shared), then one slice per thread, big
/// enough for the GEMM path's ConvThreadWorkspace or for the direct kernels' padded input.
template <typename T>
struct ConvWorkspace {
  static int64_t shared(const Conv2dGeometry& g) {
    int64_t size = 0;
    (void)g;
#if defined(__AVX512F__)
    if (direct_forward<T>(g)) size = direct_packed_weights_size(g);
    if (direct_backward_data<T>(g))
      size = std::max(size, direct_packed_weights_size(direct_backward_data_geometry(g)));
#endif
    return round_up_to_line(size, sizeof(T));
  }
  static int64_t per_thread(const Conv2dGeometry& g, int threads) {
    int64_t size = ConvThreadWorkspace<T>::size(g);
    (void)threads;
#if defined(__AVX512F__)
    if (direct_forward<T>(g)) {
      const int64_t group = direct_wgrad_group(g, threads);
      size = std::max({size, direct_padded_input_size(g),
                       ConvThreadWorkspace<T>::partials_size(g) + direct_wgrad_buffers_size(g, group)});
    }
    if (direct_backward_data<T>(g))
      size = std::max(size, direct_padded_input_size(direct_backward_data_geometry(g)));
#endif
    return round_up_to_line(size, sizeof(T));
  }
};

}  // namespace detail

/// Elements of workspace that conv2d_forward / _backward_data / _backward_weights need when run
/// with `threads` threads.
template <typename T>
int64_t conv2d_workspace_size(const Conv2dGeometry& g, int threads) {
  using Layout = detail::ConvWorkspace<T>;
  return Layout::shared(g) + threads * Layout::per_thread(g, threads);
}

namespace detail {

/// An im2col row: input channel ci and kernel tap (kh, kw), numbered ci * KH * KW + kh * KW + kw.
/// next() steps to the following row without division.
struct PatchRow {
  int64_t ci, kh, kw;
  PatchRow(const Conv2dGeometry& g, int64_t row)
      : ci(row / (g.kernel_h * g.kernel_w)), kh(row / g.kernel_w % g.kernel_h), kw(row % g.kernel_w) {}
  void next(const Conv2dGeometry& g) {
    if (++kw < g.kernel_w) return;
    kw = 0;
    if (++kh < g.kernel_h) return;
    kh = 0;
    ++ci;
  }
  /// Where the row starts in the padded image: col'[row, q] = padded[offset + stride * q].
  int64_t offset(const Conv2dGeometry& g) const {
    return (ci * g.padded_height() + kh) * g.padded_width() + kw;
  }
};

/// Copies image x_n [Cin, H, W] into `padded` [Cin, Hp, Wp] with a zero border of `padding`.
template <typename T>
void pad_image(const T* image, const Conv2dGeometry& g, T* padded) {
  const int64_t p = g.padding, W = g.width, Wp = g.padded_width();
  for (int64_t ci = 0; ci < g.in_channels; ++ci) {
    T* plane = padded + ci * g.padded_pixels();
    std::fill(plane, plane + p * Wp, T(0));
    for (int64_t h = 0; h < g.height; ++h) {
      T* row = plane + (p + h) * Wp;
      const T* from = image + (ci * g.height + h) * W;
      std::fill(row, row + p, T(0));
      std::copy(from, from + W, row + p);
      std::fill(row + p + W, row + Wp, T(0));
    }
    std::fill(plane + (p + g.height) * Wp, plane + g.padded_pixels(), T(0));
  }
}

/// dx_n (+)= the interior of the padded gradient `padded` [Cin, Hp, Wp].
template <typename T>
void crop_padded(const T* padded, const Conv2dGeometry& g, T* image, bool accumulate) {
  const int64_t p = g.padding, W = g.width;
  for (int64_t ci = 0; ci < g.in_channels; ++ci) {
    for (int64_t h = 0; h < g.height; ++h) {
      const T* from = padded + (ci * g.padded_height() + p + h) * g.padded_width() + p;
      T* to = image + (ci * g.height + h) * W;
      if (accumulate) {
        for (int64_t w = 0; w < W; ++w) to[w] += from[w];
      } else {
        std::copy(from, from + W, to);
      }
    }
  }
}

/// Copies dy_n [Cout, OH, OW] onto the grid [Cout, P'], zero in the padding columns.
template <typename T>
void spread_to_grid(const T* dy, const Conv2dGeometry& g, T* grid) {
  const int64_t OH = g.out_height(), OW = g.out_width(), Wp = g.padded_width();
  for (int64_t co = 0; co < g.out_channels; ++co) {
    T* channel = grid + co * g.grid_pixels();
    for (int64_t oh = 0; oh < OH; ++oh) {
      const T* from = dy + (co * OH + oh) * OW;
      T* row = channel + oh * Wp;
      std::copy(from, from + OW, row);
      if (oh + 1 < OH) std::fill(row + OW, row + Wp, T(0));
    }
  }
}

/// B operand of the forward GEMM: col'(padded image), Kp x P', one k of an NR-wide panel per
/// im2col row segment (a copy of NR contiguous, or stride-spaced, elements).
template <typename T>
struct GridIm2colB {
  const T* padded;
  const Conv2dGeometry& g;
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    const int64_t s = g.stride;
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t nr = std::min(NR, nc - jp);
      T* panel = dst + jp * kc;
      PatchRow row(g, k0);
      for (int64_t k = 0; k < kc; ++k, row.next(g)) {
        const T* from = padded + row.offset(g) + s * (j0 + jp);
        T* to = panel + k * NR;
        if (s == 1 && nr == NR) {
          for (int64_t j = 0; j < NR; ++j) to[j] = from[j];
        } else {
          for (int64_t j = 0; j < nr; ++j) to[j] = from[j * s];
          for (int64_t j = nr; j < NR; ++j) to[j] = T(0);
        }
      }
    }
  }
};

/// B operand of the wgrad GEMM: col'(padded image)^T, P' x Kp: each panel is NR im2col rows
/// transposed (strided rows are first copied into `scratch`, NR x KC).
template <typename T>
struct GridIm2colTransposedB {
  const T* padded;
  const Conv2dGeometry& g;
  T* scratch;
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    const int64_t s = g.stride;
    PatchRow row(g, j0);
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t nr = std::min(NR, nc - jp);
      const T* rows[NR];
      for (int64_t j = 0; j < nr; ++j, row.next(g)) {
        const T* from = padded + row.offset(g) + s * k0;
        if (s == 1) {
          rows[j] = from;
        } else {
          T* copy = scratch + j * kc;
          for (int64_t k = 0; k < kc; ++k) copy[k] = from[k * s];
          rows[j] = copy;
        }
      }
      transpose_into_panel<NR>(rows, nr, kc, dst + jp * kc);
    }
  }
};

/// C writer of the forward GEMM when the output is not the grid: the tile (rows co, grid
/// columns q) goes to y_n[co, oh, ow] for the real columns ow < OW, plus bias on the first K
/// slice; later slices add.
template <typename T>
struct GridOutputC {
  T* y;
  const T* bias;
  const Conv2dGeometry& g;
  template <int64_t Cols>
  void update(int64_t i, int64_t j, int64_t m, int64_t n, bool first_k_slice, int64_t kc,
              const T* a_panel, const T* b_panel, T* tile) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    MicroKernel<T, Cols>::run(kc, a_panel, b_panel, tile, NR, T(1), T(0), nullptr);
    const int64_t Wp = g.padded_width(), OW = g.out_width(), P = g.out_pixels();
    int64_t oh = j / Wp, ow = j % Wp;
    for (int64_t c = 0; c < n; ++oh, ow = 0) {
      const int64_t length = std::min(n - c, Wp - ow);
      const int64_t real = std::max(int64_t(0), std::min(length, OW - ow));
      for (int64_t r = 0; r < m; ++r) {
        T* out = y + (i + r) * P + oh * OW + ow;
        const T* values = tile + r * NR + c;
        if (first_k_slice) {
          const T shift = bias ? bias[i + r] : T(0);
          for (int64_t t = 0; t < real; ++t) out[t] = values[t] + shift;
        } else {
          for (int64_t t = 0; t < real; ++t) out[t] += values[t];
        }
      }
      c += length;
    }
  }
};

/// C writer of the dgrad GEMM: the tile of W^T dy' (rows (ci, kh, kw), grid columns q) is added
/// into the padded gradient at padded[row offset + stride * q] (col2im on an L1-resident tile).
/// Grid padding columns carry exact zeros (dy' is zero there), so they are added unmasked.
template <typename T>
struct GridCol2imC {
  T* padded;
  const Conv2dGeometry& g;
  template <int64_t Cols>
  void update(int64_t i, int64_t j, int64_t m, int64_t n, bool, int64_t kc, const T* a_panel,
              const T* b_panel, T* tile) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    MicroKernel<T, Cols>::run(kc, a_panel, b_panel, tile, NR, T(1), T(0), nullptr);
    const int64_t s = g.stride;
    PatchRow row(g, i);
    for (int64_t r = 0; r < m; ++r, row.next(g)) {
      T* to = padded + row.offset(g) + s * j;
      const T* values = tile + r * NR;
      if (s == 1) {
        for (int64_t c = 0; c < n; ++c) to[c] += values[c];
      } else {
        for (int64_t c = 0; c < n; ++c) to[c * s] += values[c];
      }
    }
  }
};

#if defined(__AVX512F__)
/// The direct kernels over a batch: out_n (+)= bias + conv(in_n) for forward geometry f, where
/// weight(o, c, tap) reads the weights in the caller's layout. They are packed into `packed`
/// (direct_packed_weights_size(f) floats) by the team, then each thread pads its images into its
/// own slice of `slices` (per_thread floats each).
template <typename WeightAt>
void direct_conv_batch(const Conv2dGeometry& f, const float* in, WeightAt weight, const float* bias,
                       float* out, bool accumulate, float* packed, float* slices, int64_t per_thread,
                       int threads) {
  const int64_t blocks = (f.out_channels + kDirectChannels - 1) / kDirectChannels;
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) pack_direct_weights_block(f, b, weight, packed);
    // The zero border (and the slack) is written once; each image then overwrites the interior.
    float* padded = slices + omp_get_thread_num() * per_thread;
    std::fill(padded, padded + direct_padded_input_size(f), 0.0f);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < f.batch; ++n) {
      copy_into_padded(in + n * f.in_channels * f.in_pixels(), f, padded);
      direct_conv_image(f, padded, packed, bias, out + n * f.out_channels * f.out_pixels(), accumulate);
    }
  }
}
#endif

}  // namespace detail

/// Forward: y[n, co, oh, ow] = bias[co] + sum_{ci, kh, kw} w[co, ci, kh, kw] *
/// x[n, ci, oh * stride - padding + kh, ow * stride - padding + kw] (zero outside the image).
/// Requires: x [batch, Cin, H, W], weight [Cout, Cin, KH, KW], bias [Cout] or null, y [batch, Cout,
/// OH, OW] with OH, OW >= 1; workspace of conv2d_workspace_size<T>(g, threads) elements.
/// Ensures: y is written (never read).
template <typename T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dGeometry& g,
                    T* workspace, int threads) {
  using Layout = detail::ConvThreadWorkspace<T>;
  const int64_t M = g.out_channels, K = g.patch_size();
  const int64_t per_thread = detail::ConvWorkspace<T>::per_thread(g, threads);
  T* slices = workspace + detail::ConvWorkspace<T>::shared(g);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (detail::direct_forward_applies(g)) {
      const int64_t taps = g.kernel_h * g.kernel_w;
      const auto w_at = [&](int64_t o, int64_t c, int64_t t) { return weight[(o * g.in_channels + c) * taps + t]; };
      detail::direct_conv_batch(g, x, w_at, bias, y, false, workspace, slices, per_thread, threads);
      return;
    }
  }
#endif
  const StridedA<T> w{weight, K, 1};
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.batch; ++n) {
    T* ws = slices + omp_get_thread_num() * per_thread;
    const T* image = x + n * g.in_channels * g.in_pixels();
    if (g.padding > 0) {
      detail::pad_image(image, g, ws + Layout::kPadded);
      image = ws + Layout::kPadded;
    }
    const detail::GridIm2colB<T> columns{image, g};
    T* out = y + n * M * g.out_pixels();
    if (g.output_is_grid())
      gemm_blocked(M, g.grid_pixels(), K, w, columns, StridedC<T>{out, g.out_pixels(), T(1), T(0), bias}, ws);
    else
      gemm_blocked(M, g.grid_pixels(), K, w, columns, detail::GridOutputC<T>{out, bias, g}, ws);
  }
}

/// Data gradient: dx = d(sum dy * y) / dx for the forward above, i.e. the transposed convolution
/// of dy with the weights. Requires: dy [batch, Cout, OH, OW], weight, dx [batch, Cin, H, W];
/// workspace as for the forward. Ensures: dx is written (accumulate == false) or added to.
template <typename T>
void conv2d_backward_data(const T* dy, const T* weight, T* dx, const Conv2dGeometry& g,
                          bool accumulate, T* workspace, int threads) {
  using Layout = detail::ConvThreadWorkspace<T>;
  const int64_t M = g.patch_size(), N = g.grid_pixels(), K = g.out_channels;
  const int64_t image_size = g.in_channels * g.in_pixels();
  const int64_t per_thread = detail::ConvWorkspace<T>::per_thread(g, threads);
  T* slices = workspace + detail::ConvWorkspace<T>::shared(g);
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    if (detail::direct_backward_data_applies(g)) {
      // dx = dy convolved with w'[ci, co, tap] = w[co, ci, last tap - tap] (conv2d_direct.hpp).
      const int64_t taps = g.kernel_h * g.kernel_w;
      const auto w_at = [&](int64_t o, int64_t c, int64_t t) {
        return weight[(c * g.in_channels + o) * taps + taps - 1 - t];
      };
      detail::direct_conv_batch(detail::direct_backward_data_geometry(g), dy, w_at, nullptr, dx,
                                accumulate, workspace, slices, per_thread, threads);
      return;
    }
  }
#endif
  const StridedA<T> w_transposed{weight, 1, M};
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.batch; ++n) {
    T* ws = slices + omp_get_thread_num() * per_thread;
    const T* grad_out = dy + n * K * g.out_pixels();
    if (!g.output_is_grid()) {
      detail::spread_to_grid(grad_out, g, ws + Layout::grid(g));
      grad_out = ws + Layout::grid(g);
    }
    T* grad_in = dx + n * image_size;
    T* target = g.padding > 0 ? ws + Layout::kPadded : grad_in;
    if (g.padding > 0 || !accumulate)
      std::fill(target, target + g.in_channels * g.padded_pixels(), T(0));
    gemm_blocked(M, N, K, w_transposed, StridedB<T>{grad_out, N, 1}, detail::GridCol2imC<T>{target, g}, ws);
    if (g.padding > 0) detail::crop_padded(target, g, grad_in, accumulate);
  }
}

/// Weight and bias gradients: dweight[co, ci, kh, kw] = sum_{n, oh, ow} dy[n, co, oh, ow] *
/// x[n, ci, oh * stride - padding + kh, ow * stride - padding + kw], dbias[co] = sum_{n, oh, ow}
/// dy[n, co, oh, ow]. Either output may be null (not computed). Requires: x, dy as above;
/// workspace as for the forward. Ensures: each output is written, or added to when its
/// accumulate flag is set; bit-identical results for a fixed thread count.
template <typename T>
void conv2d_backward_weights(const T* x, const T* dy, T* dweight, T* dbias, const Conv2dGeometry& g,
                             bool accumulate_weight, bool accumulate_bias, T* workspace, int threads) {
  using Layout = detail::ConvThreadWorkspace<T>;
  const int64_t M = g.out_channels, N = g.patch_size(), K = g.grid_pixels(), P = g.out_pixels();
  const int64_t image_size = g.in_channels * g.in_pixels();
  const int64_t per_thread = detail::ConvWorkspace<T>::per_thread(g, threads);
  const bool direct = detail::direct_forward<T>(g);
  // The direct kernel keeps the partials at the start of a thread's slice, its buffers after.
  const int64_t partials = direct ? 0 : Layout::partials(g);
  T* slices = workspace + detail::ConvWorkspace<T>::shared(g);
#pragma omp parallel num_threads(threads)
  {
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t first = g.batch * t / team, last = g.batch * (t + 1) / team;
    T* ws = slices + t * per_thread;
    T* partial_weight = ws + partials;
    T* partial_bias = partial_weight + M * N;
    if (direct) {
#if defined(__AVX512F__)
      if constexpr (std::is_same_v<T, float>) {
        if (dweight && first < last) {
          T* buffers = ws + Layout::partials_size(g);
          const int64_t group = detail::direct_wgrad_group(g, threads);
          std::fill(partial_weight, partial_weight + M * N, T(0));
          std::fill(buffers, buffers + detail::direct_wgrad_buffers_size(g, group), T(0));
          detail::direct_wgrad_images(g, x, dy, first, last, group, buffers, partial_weight);
        }
      }
#endif
    } else if (dweight) {
      for (int64_t n = first; n < last; ++n) {
        const T* image = x + n * image_size;
        if (g.padding > 0) {
          detail::pad_image(image, g, ws + Layout::kPadded);
          image = ws + Layout::kPadded;
        }
        const T* grid = dy + n * M * P;
        if (!g.output_is_grid()) {
          detail::spread_to_grid(grid, g, ws + Layout::grid(g));
          grid = ws + Layout::grid(g);
        }
        gemm_blocked(M, N, K, StridedA<T>{grid, K, 1},
                     detail::GridIm2colTransposedB<T>{image, g, ws + Layout::kScratch},
                     StridedC<T>{partial_weight, N, T(1), n == first ? T(0) : T(1), nullptr}, ws);
      }
    }
    if (dbias) {
      for (int64_t n = first; n < last; ++n)
        for (int64_t co = 0; co < M; ++co) {
          const T* row = dy + (n * M + co) * P;
          T sum = T(0);
#pragma omp simd reduction(+ : sum)
          for (int64_t p = 0; p < P; ++p) sum += row[p];
          partial_bias[co] = n == first ? sum : partial_bias[co] + sum;
        }
    }
#pragma omp barrier
    // Sum the partials of the threads that had images, in thread order.
    auto reduce = [&](T* out, int64_t offset, int64_t count, bool accumulate) {
#pragma omp for schedule(static)
      for (int64_t e = 0; e < count; ++e) {
        T sum = T(0);
        for (int u = 0; u < team; ++u)
          if (g.batch * u / team < g.batch * (u + 1) / team)
            sum += slices[u * per_thread + partials + offset + e];
        out[e] = accumulate ? out[e] + sum : sum;
      }
    };
    if (dweight) reduce(dweight, 0, M * N, accumulate_weight);
    if (dbias) reduce(dbias, M * N, M, accumulate_bias);
  }
}

}  // namespace normlab::cpu
