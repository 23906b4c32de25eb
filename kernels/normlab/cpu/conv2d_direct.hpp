// Direct stride-1 convolution for float with AVX-512: the forward pass, the data gradient as the
// forward convolution of dy with the transposed, flipped weights, and the weight gradient (its
// own tile, described before direct_wgrad_images). Used by conv2d.hpp for
// kernels larger than 1x1, where the GEMM path pays for packing and a poorly shaped GEMM (16 or
// 32 output channels against a few hundred pixels per image).
//
// Layout. Each image is copied into a zero-padded buffer of Cin planes of Hp x Wp (conv2d.hpp's
// padded grid): output pixel (oh, ow) is grid column q = oh * Wp + ow, and its input for tap
// (ci, kh, kw) is padded[ci * Hp * Wp + kh * Wp + kw + q]. So 16 consecutive grid columns of one
// tap are one unaligned vector load straight from the padded image: no packing of the input.
// The weights are packed once per call as [Cout / 4][Cin][KH][KW][4] (zero rows past Cout), so a
// tile's four weights of one tap are four consecutive broadcasts.
//
// Register tile: 4 output channels x NV (<= 6) vectors of 16 grid columns = up to 24 zmm
// accumulators; per tap NV vector loads and 4 broadcasts feed 4 * NV FMAs (FMA-bound on one
// 512-bit FMA per cycle). The grid's L = (OH - 1) * Wp + OW columns are cut into chunks of
// <= 6 vectors; for each chunk every block of 4 output channels runs the whole Cin * KH * KW
// reduction in registers (the chunk's input, a few KB per channel row band, stays in L1), then
// writes its outputs once: the padding columns (ow >= OW) are squeezed out of each vector with a
// register compress and the rest stored with a mask, so the output is dense NCHW, written once
// (read too when accumulating). Wasted work is the grid's padding columns and the last vector's
// tail: 20% at 8x8, 11% at 16x16, 6% at 32x32 for 3x3 pad 1.
//
// Threads: one image per OpenMP thread (static schedule), the weights packed once by the team
// (wgrad: a contiguous range of images per thread, as the GEMM path). Passes over memory per
// image: the input read once (into the padded copy), the output written once. Each output is one
// fp32 sum over (ci, kh, kw) in that order: deterministic, independent of the thread count.
//
// Compiler note: GCC folds a vector load used by several FMAs into each of them (one memory
// operand per FMA). Here that would be 4 unaligned loads per input vector, enough to make the
// tile load-bound (40-50% of peak instead of 75-85%), so each loaded vector passes through an
// empty asm statement that pins it in a register.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "normlab/common/conv2d_geometry.hpp"

namespace normlab::cpu::detail {

/// Whether the direct kernels exist for T in this build.
template <typename T>
inline constexpr bool kHasDirectKernels =
#if defined(__AVX512F__)
    std::is_same_v<T, float>;
#else
    false;
#endif

/// Which convolutions the direct kernels take: stride 1 with a kernel larger than 1x1 (forward);
/// the data gradient also needs a square kernel and padding <= kernel - 1, so that it is itself
/// a forward convolution (padding kernel - 1 - padding).
inline bool direct_forward_applies(const Conv2dGeometry& g) {
  return g.stride == 1 && g.kernel_h * g.kernel_w > 1;
}
inline bool direct_backward_data_applies(const Conv2dGeometry& g) {
  return direct_forward_applies(g) && g.kernel_h == g.kernel_w && g.padding <= g.kernel_h - 1;
}

/// The data gradient of stride-1 convolution g as a forward convolution: dy (Cout planes of OH x
/// OW) padded by kernel - 1 - padding, convolved with w'[ci, co, kh, kw] = w[co, ci, K-1-kh,
/// K-1-kw], gives dx (Cin planes of H x W).
inline Conv2dGeometry direct_backward_data_geometry(const Conv2dGeometry& g) {
  return {g.batch,       g.out_channels, g.out_height(), g.out_width(), g.in_channels,
          g.kernel_h,    g.kernel_w,     1,              g.kernel_h - 1 - g.padding};
}

}  // namespace normlab::cpu::detail

#if defined(__AVX512F__)

#include <immintrin.h>

namespace normlab::cpu::detail {

inline constexpr int64_t kDirectChannels = 4;  // output channels per register tile
inline constexpr int64_t kDirectVectors = 6;   // grid vectors (of 16 columns) per register tile

/// Vectors of 16 columns covering the grid's L = (OH - 1) * Wp + OW columns.
inline int64_t grid_vectors(const Conv2dGeometry& f) { return (f.grid_pixels() + 15) / 16; }

/// Floats of the packed weights for forward geometry f (output channels rounded up to 4).
inline int64_t direct_packed_weights_size(const Conv2dGeometry& f) {
  return (f.out_channels + kDirectChannels - 1) / kDirectChannels * kDirectChannels * f.patch_size();
}

/// Floats of one thread's padded input for forward geometry f, with the slack the last vector of
/// the grid reads past the end (its columns are never stored).
inline int64_t direct_padded_input_size(const Conv2dGeometry& f) {
  return f.in_channels * f.padded_pixels() + 16;
}

/// Copies image [Cin, H, W] into the interior of `padded` [Cin, Hp, Wp]; the zero border, written
/// once by the caller, is left as it is.
inline void copy_into_padded(const float* image, const Conv2dGeometry& f, float* padded) {
  const int64_t p = f.padding, W = f.width, Wp = f.padded_width();
  for (int64_t c = 0; c < f.in_channels; ++c)
    for (int64_t h = 0; h < f.height; ++h) {
      const float* from = image + (c * f.height + h) * W;
      float* to = padded + (c * f.padded_height() + p + h) * Wp + p;
      for (int64_t w = 0; w < W; ++w) to[w] = from[w];
    }
}

/// Packs the weights of forward geometry f, channel block b (output channels 4b..4b+3):
/// dst[((b * Cin + ci) * KH * KW + tap) * 4 + i] = weight(4b + i, ci, tap), 0 past Cout, where
/// weight(o, c, tap) reads the caller's layout.
template <typename WeightAt>
void pack_direct_weights_block(const Conv2dGeometry& f, int64_t b, WeightAt weight, float* dst) {
  const int64_t taps = f.kernel_h * f.kernel_w;
  float* block = dst + b * kDirectChannels * f.patch_size();
  for (int64_t c = 0; c < f.in_channels; ++c)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t i = 0; i < kDirectChannels; ++i) {
        const int64_t o = b * kDirectChannels + i;
        block[(c * taps + t) * kDirectChannels + i] = o < f.out_channels ? weight(o, c, t) : 0.0f;
      }
}

/// Where the output columns of grid vectors [first_vector, first_vector + count) go: for vector v,
/// the lanes that are real outputs (ow < OW, q < L), their number and the dense output index of
/// the first of them.
struct GridVectorOutputs {
  __mmask16 lanes[kDirectVectors];
  int32_t count[kDirectVectors];
  int64_t first[kDirectVectors];

  GridVectorOutputs(const Conv2dGeometry& f, int64_t first_vector, int64_t vectors) {
    const int64_t Wp = f.padded_width(), OW = f.out_width(), L = f.grid_pixels();
    int64_t q = 16 * first_vector, oh = q / Wp, ow = q % Wp;
    for (int64_t v = 0; v < vectors; ++v) {
      first[v] = oh * OW + std::min(ow, OW);
      unsigned mask = 0;
      for (int lane = 0; lane < 16; ++lane, ++q) {
        if (q < L && ow < OW) mask |= 1u << lane;
        if (++ow == Wp) ow = 0, ++oh;
      }
      lanes[v] = static_cast<__mmask16>(mask);
      count[v] = __builtin_popcount(mask);
    }
  }
};

/// One chunk of NV grid vectors starting at grid column q0, for every block of 4 output channels:
/// out[o, dense(q)] (+)= bias[o] + sum_{c, kh, kw} w(o, c, kh, kw) * padded[c, kh * Wp + kw + q].
template <int NV>
void direct_chunk(const Conv2dGeometry& f, const float* padded, const float* packed, const float* bias,
                  float* out, bool accumulate, int64_t first_vector) {
  const int64_t plane = f.padded_pixels(), Wp = f.padded_width(), P = f.out_pixels();
  const int64_t KH = f.kernel_h, KW = f.kernel_w;
  const GridVectorOutputs outputs(f, first_vector, NV);
  const float* input = padded + 16 * first_vector;
  for (int64_t o0 = 0; o0 < f.out_channels; o0 += kDirectChannels) {
    const float* w = packed + o0 * f.patch_size();
    __m512 acc[kDirectChannels][NV];
#pragma GCC unroll 4
    for (int i = 0; i < kDirectChannels; ++i)
#pragma GCC unroll 6
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    for (int64_t c = 0; c < f.in_channels; ++c) {
      for (int64_t kh = 0; kh < KH; ++kh) {
        const float* row = input + c * plane + kh * Wp;
        for (int64_t kw = 0; kw < KW; ++kw, w += kDirectChannels) {
          __m512 b[NV];
#pragma GCC unroll 6
          for (int v = 0; v < NV; ++v) {
            __m512 loaded = _mm512_loadu_ps(row + kw + 16 * v);
            // One load, kept in a register (see the compiler note at the top of the file).
            asm("" : "+v"(loaded));
            b[v] = loaded;
          }
#pragma GCC unroll 4
          for (int i = 0; i < kDirectChannels; ++i) {
            const __m512 a = _mm512_set1_ps(w[i]);
#pragma GCC unroll 6
            for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
          }
        }
      }
    }
    const int64_t rows = std::min(kDirectChannels, f.out_channels - o0);
#pragma GCC unroll 4
    for (int i = 0; i < kDirectChannels; ++i) {  // constant bounds keep acc in registers
      if (i >= rows) break;
      float* channel = out + (o0 + i) * P;
      const __m512 shift = _mm512_set1_ps(bias ? bias[o0 + i] : 0.0f);
#pragma GCC unroll 6
      for (int v = 0; v < NV; ++v) {
        if (outputs.count[v] == 0) continue;
        const __mmask16 store = static_cast<__mmask16>((1u << outputs.count[v]) - 1);
        __m512 r = _mm512_maskz_compress_ps(outputs.lanes[v], _mm512_add_ps(acc[i][v], shift));
        float* to = channel + outputs.first[v];
        if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(store, to));
        _mm512_mask_storeu_ps(to, store, r);
      }
    }
  }
}

/// One image: out [Cout, OH, OW] (+)= bias + the convolution of `padded` (Cin padded planes, with
/// direct_padded_input_size(f) readable floats) with the packed weights.
inline void direct_conv_image(const Conv2dGeometry& f, const float* padded, const float* packed,
                              const float* bias, float* out, bool accumulate) {
  const int64_t vectors = grid_vectors(f);
  const int64_t chunks = (vectors + kDirectVectors - 1) / kDirectVectors;
  for (int64_t k = 0, first = 0; k < chunks; ++k) {
    const int64_t nv = vectors * (k + 1) / chunks - vectors * k / chunks;  // balanced, 1..6
    switch (nv) {
      case 1: direct_chunk<1>(f, padded, packed, bias, out, accumulate, first); break;
      case 2: direct_chunk<2>(f, padded, packed, bias, out, accumulate, first); break;
      case 3: direct_chunk<3>(f, padded, packed, bias, out, accumulate, first); break;
      case 4: direct_chunk<4>(f, padded, packed, bias, out, accumulate, first); break;
      case 5: direct_chunk<5>(f, padded, packed, bias, out, accumulate, first); break;
      default: direct_chunk<6>(f, padded, packed, bias, out, accumulate, first); break;
    }
    first += nv;
  }
}

// Weight gradient, dW[o, c, kh, kw] = sum_{n, q} dy'[n, o, q] * padded_n[c, kh * Wp + kw + q],
// where dy' is dy on the grid (rows of Z vectors, zero in the padding columns and past L). The
// reduction runs over grid columns, so it is kept in lanes: a register tile of 4 output channels
// x 4 consecutive patch rows k = (c, kh, kw) holds 16 vector accumulators; per grid vector 4
// aligned dy' loads and 4 unaligned input loads feed 16 FMAs. A tile sums over a group of images
// (as many as fit in about 640 KB of L2: x padded and dy' on the grid for each), and only then
// are its lanes summed (16 horizontal sums per tile and group, a few percent of the FMAs).

/// Floats of one image's part of a wgrad group: the padded input (+16 slack floats the last
/// vector reads) and dy on the grid.
inline int64_t direct_wgrad_padded_size(const Conv2dGeometry& g) {
  return (direct_padded_input_size(g) + 15) / 16 * 16;  // keeps the dy' rows on 64-byte lines
}
inline int64_t direct_wgrad_image_size(const Conv2dGeometry& g) {
  return direct_wgrad_padded_size(g) + g.out_channels * 16 * grid_vectors(g);
}

/// Images per group when the batch is split over `threads` threads: at most about 640 KB of
/// buffers, and no more than a thread's share of the batch.
inline int64_t direct_wgrad_group(const Conv2dGeometry& g, int threads) {
  constexpr int64_t kBudget = 160 * 1024;
  const int64_t images = (g.batch + threads - 1) / threads;
  return std::max<int64_t>(1, std::min(images, kBudget / direct_wgrad_image_size(g)));
}

/// Floats of one thread's wgrad buffers for a group of `group` images, plus a zero dy' row (the
/// rows past Cout of the last channel block).
inline int64_t direct_wgrad_buffers_size(const Conv2dGeometry& g, int64_t group) {
  return group * direct_wgrad_image_size(g) + 16 * grid_vectors(g);
}

// GCC 12's _mm512_reduce_add_ps trips a false -Wmaybe-uninitialized once inlined (GCC bug
// 105593, as in gemm.hpp's transposes).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// One thread's images [first, last) added into partial_weight [Cout, Cin * KH * KW]: `buffers`
/// (64-byte aligned) holds direct_wgrad_buffers_size(g, group) floats and is all zero on entry
/// (the padding stays zero; interiors are overwritten).
inline void direct_wgrad_images(const Conv2dGeometry& g, const float* x, const float* dy, int64_t first,
                                int64_t last, int64_t group, float* buffers, float* partial_weight) {
  const int64_t Wp = g.padded_width(), OH = g.out_height(), OW = g.out_width();
  const int64_t row = 16 * grid_vectors(g);
  const int64_t K = g.patch_size(), taps = g.kernel_h * g.kernel_w;
  const int64_t image_floats = direct_wgrad_image_size(g), padded_floats = direct_wgrad_padded_size(g);
  const float* zero_row = buffers + group * image_floats;
  for (int64_t n0 = first; n0 < last; n0 += group) {
    const int64_t images = std::min(group, last - n0);
    for (int64_t n = 0; n < images; ++n) {
      float* padded = buffers + n * image_floats;
      float* grid = padded + padded_floats;
      copy_into_padded(x + (n0 + n) * g.in_channels * g.in_pixels(), g, padded);
      const float* grad = dy + (n0 + n) * g.out_channels * OH * OW;
      for (int64_t o = 0; o < g.out_channels; ++o)
        for (int64_t oh = 0; oh < OH; ++oh) {
          const float* from = grad + (o * OH + oh) * OW;
          float* to = grid + o * row + oh * Wp;
          for (int64_t ow = 0; ow < OW; ++ow) to[ow] = from[ow];
        }
    }
    for (int64_t k0 = 0; k0 < K; k0 += 4) {
      int64_t offset[4];
      for (int64_t j = 0; j < 4; ++j) {
        const int64_t k = std::min(k0 + j, K - 1), c = k / taps, t = k % taps;
        offset[j] = c * g.padded_pixels() + t / g.kernel_w * Wp + t % g.kernel_w;
      }
      for (int64_t o0 = 0; o0 < g.out_channels; o0 += 4) {
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
        for (int64_t n = 0; n < images; ++n) {
          const float* padded = buffers + n * image_floats;
          const float* grid = padded + padded_floats;
          const float* d_rows[4];
          for (int64_t i = 0; i < 4; ++i) d_rows[i] = o0 + i < g.out_channels ? grid + (o0 + i) * row : zero_row;
          for (int64_t z = 0; z < row; z += 16) {
            __m512 d[4], in[4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; ++i) {
              __m512 loaded = _mm512_loadu_ps(d_rows[i] + z);  // aligned when the workspace is
              asm("" : "+v"(loaded));  // kept in a register (the compiler note at the top)
              d[i] = loaded;
            }
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
              __m512 loaded = _mm512_loadu_ps(padded + offset[j] + z);
              asm("" : "+v"(loaded));
              in[j] = loaded;
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
              for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(d[i], in[j], acc[i][j]);
          }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j)
            if (o0 + i < g.out_channels && k0 + j < K)
              partial_weight[(o0 + i) * K + k0 + j] += _mm512_reduce_add_ps(acc[i][j]);
      }
    }
  }
}
#pragma GCC diagnostic pop

}  // namespace normlab::cpu::detail

#endif  // __AVX512F__
