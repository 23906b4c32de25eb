// 2-D convolution CPU kernels on NCHW tensors: forward, data gradient (dgrad) and weight/bias
// gradient (wgrad), all as GEMMs on the blocked driver of kernels/normlab/cpu/gemm.hpp.
//
// Per image n, with P = OH * OW output pixels and Kp = Cin * KH * KW patch elements, and
// col(x_n) the Kp x P im2col matrix (row (ci, kh, kw), column (oh, ow)):
//   forward:  y_n [Cout, P]  = W [Cout, Kp] * col(x_n) [Kp, P]  (+ bias[Cout], fused into the write)
//   dgrad:    dx_n           = col2im( W^T [Kp, Cout] * dy_n [Cout, P] )
//   wgrad:    dW [Cout, Kp] += dy_n [Cout, P] * col(x_n)^T [P, Kp];  db[Cout] += row sums of dy_n
//
// Implicit GEMM: col(x_n) is never materialised. The B packer of the forward and wgrad GEMMs reads
// the image through the im2col index map (zero for padding) straight into the packed panels, and
// the dgrad GEMM's output writer scatter-adds each finished register tile into dx_n (col2im on an
// L1-resident tile). An explicit im2col would write and re-read a Kp x P buffer (576 KB per image
// for the 16->32 3x3 layer at 32x32, half the L2) on top of the packing pass the GEMM makes anyway.
// Pointwise convolutions (1x1, stride 1, no padding) use the image itself as the B matrix (the
// forward and wgrad) and write dgrad straight into dx_n.
//
// Threads: one image per OpenMP thread at a time (static schedule over the batch), each with its
// own slice of the caller's workspace (conv2d_workspace_size). Forward and dgrad write disjoint
// images. Wgrad: each thread accumulates a private dW/db partial over its contiguous range of
// images, then the partials are summed in thread order, so results are bit-identical for a fixed
// thread count (no atomics).
//
// Passes over memory per image: forward reads x_n once into packed panels and writes y_n once;
// dgrad reads dy_n once and, unless pointwise, read-modify-writes dx_n once per kernel tap
// (from L2: the image stays cached); wgrad reads x_n and dy_n once each (dy_n once more for db,
// from cache). Accumulation in T (fp32 for float), as the GEMM.
#pragma once

#include <algorithm>
#include <cstdint>
#include <omp.h>

#include "normlab/cpu/gemm.hpp"

namespace normlab::cpu {

/// Sizes of one conv2d call: input [batch, in_channels, height, width], weight [out_channels,
/// in_channels, kernel_h, kernel_w], zero padding on every side, the same stride along H and W.
struct Conv2dGeometry {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t stride, padding;

  int64_t out_height() const { return (height + 2 * padding - kernel_h) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel_w) / stride + 1; }
  int64_t out_pixels() const { return out_height() * out_width(); }
  int64_t in_pixels() const { return height * width; }
  /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
  int64_t patch_size() const { return in_channels * kernel_h * kernel_w; }
  /// 1x1, stride 1, no padding: the image [Cin, H*W] is already the im2col matrix.
  bool pointwise() const { return kernel_h == 1 && kernel_w == 1 && stride == 1 && padding == 0; }
};

namespace detail {

/// One thread's slice of the workspace: a GEMM workspace, then the wgrad partial sums (dW, db),
/// rounded up to whole 64-byte lines so every slice stays aligned.
template <typename T>
int64_t conv2d_thread_workspace(const Conv2dGeometry& g) {
  const int64_t per_line = 64 / static_cast<int64_t>(sizeof(T));
  const int64_t partials = g.out_channels * g.patch_size() + g.out_channels;
  return gemm_workspace_size<T>() + (partials + per_line - 1) / per_line * per_line;
}

}  // namespace detail

/// Elements of workspace that conv2d_forward / _backward_data / _backward_weights need when run
/// with `threads` threads.
template <typename T>
int64_t conv2d_workspace_size(const Conv2dGeometry& g, int threads) {
  return threads * detail::conv2d_thread_workspace<T>(g);
}

namespace detail {

/// Walks row (kh, kw) of an image channel's im2col matrix over the output pixels
/// [p_begin, p_begin + count) in runs along output rows, calling
/// visit(offset, length, valid_begin, valid_end, input_index) once per run: the run covers
/// columns p_begin + offset + t for 0 <= t < length; column t reads input element
/// input_index + t * stride of the channel plane when valid_begin <= t < valid_end, and is
/// zero padding otherwise.
template <typename Visit>
void for_each_im2col_run(const Conv2dGeometry& g, int64_t kh, int64_t kw, int64_t p_begin,
                         int64_t count, Visit&& visit) {
  const int64_t OW = g.out_width(), s = g.stride;
  int64_t oh = p_begin / OW, ow = p_begin % OW;
  for (int64_t offset = 0; offset < count; ++oh, ow = 0) {
    const int64_t length = std::min(OW - ow, count - offset);
    const int64_t ih = oh * s - g.padding + kh;
    const int64_t iw = ow * s - g.padding + kw;
    int64_t begin = 0, end = 0;
    if (ih >= 0 && ih < g.height && iw < g.width) {
      begin = std::min(length, iw >= 0 ? int64_t(0) : (-iw + s - 1) / s);
      end = std::max(begin, std::min(length, (g.width - iw + s - 1) / s));
    }
    visit(offset, length, begin, end, ih * g.width + iw);
    offset += length;
  }
}

/// dst[t * dst_stride] = im2col row (ci, kh, kw) at columns p_begin + t, t < count.
template <typename T>
void gather_im2col_row(const Conv2dGeometry& g, const T* plane, int64_t kh, int64_t kw,
                       int64_t p_begin, int64_t count, T* dst, int64_t dst_stride) {
  const int64_t s = g.stride;
  for_each_im2col_run(g, kh, kw, p_begin, count,
                      [&](int64_t offset, int64_t length, int64_t begin, int64_t end, int64_t in) {
                        T* d = dst + offset * dst_stride;
                        for (int64_t t = 0; t < begin; ++t) d[t * dst_stride] = T(0);
                        for (int64_t t = begin; t < end; ++t) d[t * dst_stride] = plane[in + t * s];
                        for (int64_t t = end; t < length; ++t) d[t * dst_stride] = T(0);
                      });
}

/// B operand of the forward GEMM: col(image), Kp x P, packed straight from the image.
template <typename T>
struct Im2colB {
  const T* image;
  const Conv2dGeometry& g;
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    const int64_t taps = g.kernel_h * g.kernel_w;
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t nr = std::min(NR, nc - jp);
      T* panel = dst + jp * kc;
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t row = k0 + k, ci = row / taps, tap = row % taps;
        T* to = panel + k * NR;
        gather_im2col_row(g, image + ci * g.in_pixels(), tap / g.kernel_w, tap % g.kernel_w, j0 + jp,
                          nr, to, 1);
        for (int64_t j = nr; j < NR; ++j) to[j] = T(0);
      }
    }
  }
};

/// B operand of the wgrad GEMM: col(image)^T, P x Kp, packed straight from the image.
template <typename T>
struct Im2colTransposedB {
  const T* image;
  const Conv2dGeometry& g;
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    const int64_t taps = g.kernel_h * g.kernel_w;
    for (int64_t jp = 0; jp < nc; jp += NR) {
      T* panel = dst + jp * kc;
      for (int64_t j = 0; j < NR; ++j) {
        if (jp + j < nc) {
          const int64_t row = j0 + jp + j, ci = row / taps, tap = row % taps;
          gather_im2col_row(g, image + ci * g.in_pixels(), tap / g.kernel_w, tap % g.kernel_w, k0,
                            kc, panel + j, NR);
        } else {
          for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = T(0);
        }
      }
    }
  }
};

/// C writer of the dgrad GEMM: the tile of W^T dy_n at rows (ci, kh, kw), columns (oh, ow) is
/// scatter-added into dx_n (col2im), one im2col row at a time.
template <typename T>
struct Col2imC {
  T* image;
  const Conv2dGeometry& g;
  template <int64_t Cols>
  void update(int64_t i, int64_t j, int64_t m, int64_t n, bool, int64_t kc, const T* a_panel,
              const T* b_panel, T* tile) const {
    constexpr int64_t NR = GemmBlocking<T>::NR;
    MicroKernel<T, Cols>::run(kc, a_panel, b_panel, tile, NR, T(1), T(0), nullptr);
    const int64_t taps = g.kernel_h * g.kernel_w, s = g.stride;
    for (int64_t r = 0; r < m; ++r) {
      const int64_t row = i + r, ci = row / taps, tap = row % taps;
      T* plane = image + ci * g.in_pixels();
      const T* values = tile + r * NR;
      for_each_im2col_run(g, tap / g.kernel_w, tap % g.kernel_w, j, n,
                          [&](int64_t offset, int64_t, int64_t begin, int64_t end, int64_t in) {
                            for (int64_t t = begin; t < end; ++t) plane[in + t * s] += values[offset + t];
                          });
    }
  }
};

}  // namespace detail

/// Forward: y[n, co, oh, ow] = bias[co] + sum_{ci, kh, kw} w[co, ci, kh, kw] *
/// x[n, ci, oh * stride - padding + kh, ow * stride - padding + kw] (zero outside the image).
/// Requires: x [batch, Cin, H, W], weight [Cout, Cin, KH, KW], bias [Cout] or null, y [batch, Cout,
/// OH, OW] with OH, OW >= 1; workspace of conv2d_workspace_size<T>(g, threads) elements.
/// Ensures: y is written (never read).
template <typename T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dGeometry& g,
                    T* workspace, int threads) {
  const int64_t M = g.out_channels, N = g.out_pixels(), K = g.patch_size();
  const int64_t per_thread = detail::conv2d_thread_workspace<T>(g);
  const StridedA<T> w{weight, K, 1};
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.batch; ++n) {
    T* ws = workspace + omp_get_thread_num() * per_thread;
    const T* image = x + n * g.in_channels * g.in_pixels();
    const StridedC<T> out{y + n * M * N, N, T(1), T(0), bias};
    if (g.pointwise())
      gemm_blocked(M, N, K, w, StridedB<T>{image, N, 1}, out, ws);
    else
      gemm_blocked(M, N, K, w, detail::Im2colB<T>{image, g}, out, ws);
  }
}

/// Data gradient: dx = d(sum dy * y) / dx for the forward above, i.e. the transposed convolution
/// of dy with the weights. Requires: dy [batch, Cout, OH, OW], weight, dx [batch, Cin, H, W];
/// workspace as for the forward. Ensures: dx is written (accumulate == false) or added to.
template <typename T>
void conv2d_backward_data(const T* dy, const T* weight, T* dx, const Conv2dGeometry& g,
                          bool accumulate, T* workspace, int threads) {
  const int64_t M = g.patch_size(), N = g.out_pixels(), K = g.out_channels;
  const int64_t image_size = g.in_channels * g.in_pixels();
  const int64_t per_thread = detail::conv2d_thread_workspace<T>(g);
  const StridedA<T> w_transposed{weight, 1, M};
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.batch; ++n) {
    T* ws = workspace + omp_get_thread_num() * per_thread;
    const StridedB<T> grad_out{dy + n * K * N, N, 1};
    T* grad_in = dx + n * image_size;
    if (g.pointwise()) {
      gemm_blocked(M, N, K, w_transposed, grad_out,
                   StridedC<T>{grad_in, N, T(1), accumulate ? T(1) : T(0), nullptr}, ws);
    } else {
      if (!accumulate) std::fill(grad_in, grad_in + image_size, T(0));
      gemm_blocked(M, N, K, w_transposed, grad_out, detail::Col2imC<T>{grad_in, g}, ws);
    }
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
  const int64_t M = g.out_channels, N = g.patch_size(), K = g.out_pixels();
  const int64_t image_size = g.in_channels * g.in_pixels();
  const int64_t per_thread = detail::conv2d_thread_workspace<T>(g);
#pragma omp parallel num_threads(threads)
  {
    const int team = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t first = g.batch * t / team, last = g.batch * (t + 1) / team;
    T* ws = workspace + t * per_thread;
    T* partial_weight = ws + gemm_workspace_size<T>();
    T* partial_bias = partial_weight + M * N;
    for (int64_t n = first; n < last; ++n) {
      const T* grad_out = dy + n * M * K;
      const T* image = x + n * image_size;
      if (dweight) {
        const StridedA<T> a{grad_out, K, 1};
        const StridedC<T> out{partial_weight, N, T(1), n == first ? T(0) : T(1), nullptr};
        if (g.pointwise())
          gemm_blocked(M, N, K, a, StridedB<T>{image, 1, K}, out, ws);
        else
          gemm_blocked(M, N, K, a, detail::Im2colTransposedB<T>{image, g}, out, ws);
      }
      if (dbias) {
        for (int64_t co = 0; co < M; ++co) {
          const T* row = grad_out + co * K;
          T sum = T(0);
#pragma omp simd reduction(+ : sum)
          for (int64_t p = 0; p < K; ++p) sum += row[p];
          partial_bias[co] = n == first ? sum : partial_bias[co] + sum;
        }
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
            sum += workspace[u * per_thread + gemm_workspace_size<T>() + offset + e];
        out[e] = accumulate ? out[e] + sum : sum;
      }
    };
    if (dweight) reduce(dweight, 0, M * N, accumulate_weight);
    if (dbias) reduce(dbias, M * N, M, accumulate_bias);
  }
}

}  // namespace normlab::cpu
