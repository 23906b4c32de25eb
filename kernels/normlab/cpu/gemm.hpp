// SGEMM / DGEMM on the CPU: C = alpha * op(A) * op(B) + beta * C for row-major matrices, and the
// blocked driver that the convolution kernels (kernels/normlab/cpu/conv2d.hpp) reuse with their
// own operand packers and output writers.
//
// Structure (GotoBLAS / BLIS): for each NC-wide column block of C, for each KC-deep slice of the
// inner dimension, pack B[slice, block] into NR-wide micro-panels; then for each MC-tall row
// block pack A[block, slice] into MR-tall micro-panels and run the micro-kernel over every
// (A micro-panel, B micro-panel) pair. Packed layouts are k-major: a B micro-panel stores NR
// consecutive values per k, an A micro-panel MR values per k, zero-padded to full width, so the
// micro-kernel streams both with unit stride and never branches on ragged edges.
//
// Micro-kernels (MR x NR tile of C held in registers for the whole KC loop, written once):
//   - float with AVX-512: 8 x 32, i.e. 16 zmm accumulators; per k two vector loads of packed B
//     and eight broadcasts of packed A feed 16 FMAs (load-to-FMA ratio 10:16, 16 independent
//     chains hide the 4-cycle FMA latency).
//   - portable (double everywhere, float without AVX-512): the same loop in plain C++ with
//     `omp simd` over the tile's columns; MR x NR = 8 x (two vectors) with 32 vector registers
//     (AVX-512), 6 x (two vectors) with 16 (AVX2/SSE).
//   - half width (NR/2 columns) for a last column panel holding at most NR/2 columns, so a
//     ragged N wastes at most a quarter of a tile's FMAs.
// Accumulation is in T (fp32 for float, as in BLAS); over several KC slices the tile is added to
// C, so the result is a sum of KC-long dot products.
//
// Threads: the driver is single-threaded and deterministic. Callers parallelise over independent
// GEMMs (conv2d runs one image per thread), each thread with its own workspace.
//
// Extending: gemm_blocked() takes any A source with pack(i0, mc, k0, kc, dst), any B source with
// pack(k0, kc, j0, nc, dst) (writing the packed layouts above), and any C writer with
// update<Cols>(i, j, m, n, first_k_slice, kc, a_panel, b_panel, tile). Implicit im2col and
// col2im are such sources/writers, so convolution needs no column buffer.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace normlab::cpu {

#if defined(__AVX512F__)
inline constexpr int64_t kVectorBytes = 64;
inline constexpr int64_t kVectorRegisters = 32;
#elif defined(__AVX__)
inline constexpr int64_t kVectorBytes = 32;
inline constexpr int64_t kVectorRegisters = 16;
#else
inline constexpr int64_t kVectorBytes = 16;
inline constexpr int64_t kVectorRegisters = 16;
#endif

/// Register tile (MR x NR) and cache blocks (MC x KC of A, KC x NC of B) of the GEMM for T.
/// A packed B block (KC x NC) is sized for the 1 MB L2 of this machine's cores, an A block
/// (MC x KC) and a B micro-panel (KC x NR) for L2 and L1.
template <typename T>
struct GemmBlocking {
  static constexpr int64_t MR = kVectorRegisters >= 32 ? 8 : 6;
  static constexpr int64_t NR = 2 * kVectorBytes / static_cast<int64_t>(sizeof(T));
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = 144;
  static constexpr int64_t NC = 512;
  static_assert(MC % MR == 0 && NC % NR == 0 && NR % 2 == 0, "GemmBlocking: blocks must hold whole tiles");
};

/// Elements of workspace one gemm_blocked() call needs (packed A block, packed B block, one
/// tile), rounded up to whole 64-byte lines so per-thread workspaces stay aligned.
template <typename T>
constexpr int64_t gemm_workspace_size() {
  using B = GemmBlocking<T>;
  const int64_t elements = B::MC * B::KC + B::KC * B::NC + B::MR * B::NR;
  const int64_t per_line = 64 / static_cast<int64_t>(sizeof(T));
  return (elements + per_line - 1) / per_line * per_line;
}

namespace detail {

/// Micro-kernel: acc[i][j] = sum_{k < kc} a[k * MR + i] * b[k * NR + j] for i < MR, j < Cols, then
/// c[i * ldc + j] = alpha * acc[i][j] + beta * c[i * ldc + j] + bias[i], where a beta of 0 does not
/// read c and a null bias adds nothing. Portable version: the compiler vectorises over j.
template <typename T, int64_t Cols>
struct MicroKernel {
  static void run(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, T alpha, T beta,
                  const T* bias) {
    constexpr int64_t MR = GemmBlocking<T>::MR, NR = GemmBlocking<T>::NR;
    T acc[MR][Cols] = {};
    for (int64_t k = 0; k < kc; ++k) {
      const T* ak = a + k * MR;
      const T* bk = b + k * NR;
      for (int64_t i = 0; i < MR; ++i) {
#pragma omp simd
        for (int64_t j = 0; j < Cols; ++j) acc[i][j] += ak[i] * bk[j];
      }
    }
    for (int64_t i = 0; i < MR; ++i) {
      T* ci = c + i * ldc;
      const T shift = bias ? bias[i] : T(0);
      if (beta != T(0)) {
#pragma omp simd
        for (int64_t j = 0; j < Cols; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j] + shift;
      } else {
#pragma omp simd
        for (int64_t j = 0; j < Cols; ++j) ci[j] = alpha * acc[i][j] + shift;
      }
    }
  }
};

#if defined(__AVX512F__)
/// AVX-512 float micro-kernel: 8 rows x Cols (16 or 32) columns in 8 x Cols/16 zmm accumulators.
template <int64_t Cols>
struct MicroKernel<float, Cols> {
  static_assert(Cols == 16 || Cols == 32, "AVX-512 float micro-kernel: 16 or 32 columns");
  static constexpr int64_t MR = GemmBlocking<float>::MR, NR = GemmBlocking<float>::NR;
  static constexpr int64_t NV = Cols / 16;
  static_assert(MR == 8 && NR == 32, "AVX-512 float micro-kernel: an 8 x 32 tile");

  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                  float beta, const float* bias) {
    __m512 acc[MR][NV];
#pragma GCC unroll 8
    for (int64_t i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int64_t v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      __m512 bk[NV];
#pragma GCC unroll 2
      for (int64_t v = 0; v < NV; ++v) bk[v] = _mm512_loadu_ps(b + k * NR + 16 * v);
#pragma GCC unroll 8
      for (int64_t i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(a[k * MR + i]);
#pragma GCC unroll 2
        for (int64_t v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bk[v], acc[i][v]);
      }
    }
    const __m512 valpha = _mm512_set1_ps(alpha), vbeta = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int64_t i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
#pragma GCC unroll 2
      for (int64_t v = 0; v < NV; ++v) {
        __m512 r = _mm512_mul_ps(valpha, acc[i][v]);
        if (beta != 0.0f) r = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(ci + 16 * v), r);
        if (bias) r = _mm512_add_ps(r, _mm512_set1_ps(bias[i]));
        _mm512_storeu_ps(ci + 16 * v, r);
      }
    }
  }
};
#endif

/// Transposes `count` (<= Width) rows of kc contiguous elements into one Width-wide k-major
/// panel: dst[k * Width + p] = rows[p][k] for p < count, and 0 for count <= p < Width.
/// Portable version: k in chunks so the chunk's panel rows stay in L1.
template <int64_t Width, typename T>
void transpose_into_panel(const T* const* rows, int64_t count, int64_t kc, T* dst) {
  constexpr int64_t kChunk = 16;
  for (int64_t k0 = 0; k0 < kc; k0 += kChunk) {
    const int64_t k1 = std::min(kc, k0 + kChunk);
    for (int64_t p = 0; p < count; ++p)
      for (int64_t k = k0; k < k1; ++k) dst[k * Width + p] = rows[p][k];
    for (int64_t k = k0; k < k1; ++k)
      for (int64_t p = count; p < Width; ++p) dst[k * Width + p] = T(0);
  }
}

#if defined(__AVX512F__)
// GCC 12's unpack/shuffle intrinsics start from _mm512_undefined_ps(), which trips a false
// -Wmaybe-uninitialized once inlined (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
/// In-register transpose of a 16 x 16 float block (v[r] lane c -> v[c] lane r): 64 shuffles.
inline void transpose16x16(__m512 v[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 2; ++j) {
      const __m512d a = _mm512_castps_pd(t[4 * i + j]), b = _mm512_castps_pd(t[4 * i + j + 2]);
      v[4 * i + 2 * j] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      v[4 * i + 2 * j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(v[8 * i + j], v[8 * i + j + 4], 0x88);
      t[8 * i + j + 4] = _mm512_shuffle_f32x4(v[8 * i + j], v[8 * i + j + 4], 0xdd);
    }
  }
  for (int j = 0; j < 8; ++j) {
    v[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    v[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
  }
}
#pragma GCC diagnostic pop

/// AVX-512 float version: 16-row blocks of the panel, 16 k at a time, through transpose16x16
/// (masked loads and stores for the k tail and for 8-wide panels).
template <int64_t Width>
void transpose_into_panel(const float* const* rows, int64_t count, int64_t kc, float* dst) {
  static_assert(Width % 8 == 0, "transpose_into_panel: panels of whole 8-lane groups");
  for (int64_t r0 = 0; r0 < Width; r0 += 16) {
    const int64_t block_rows = std::min<int64_t>(16, Width - r0);
    const int64_t valid_rows = std::max<int64_t>(0, std::min(block_rows, count - r0));
    const __mmask16 lanes = static_cast<__mmask16>((1u << block_rows) - 1);
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int64_t kn = std::min<int64_t>(16, kc - k0);
      const __mmask16 k_mask = static_cast<__mmask16>((1u << kn) - 1);
      __m512 v[16];
      for (int64_t r = 0; r < 16; ++r)
        v[r] = r < valid_rows ? _mm512_maskz_loadu_ps(k_mask, rows[r0 + r] + k0) : _mm512_setzero_ps();
      transpose16x16(v);
      for (int64_t k = 0; k < kn; ++k) _mm512_mask_storeu_ps(dst + (k0 + k) * Width + r0, lanes, v[k]);
    }
  }
}
#endif

/// Packs an np x kc block of a dense matrix into Width-wide panels along p, k-major:
/// dst[(p / Width) * kc * Width + k * Width + p % Width] = src[p * p_stride + k * k_stride],
/// zero-filling the last panel to full width. Requires: p_stride == 1 (rows of the panel are
/// copied) or k_stride == 1 (the block is transposed).
template <int64_t Width, typename T>
void pack_strided_panels(const T* src, int64_t p_stride, int64_t k_stride, int64_t np, int64_t kc,
                         T* dst) {
  for (int64_t p0 = 0; p0 < np; p0 += Width) {
    const int64_t width = std::min(Width, np - p0);
    T* panel = dst + p0 * kc;
    const T* block = src + p0 * p_stride;
    if (p_stride == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        const T* from = block + k * k_stride;
        T* to = panel + k * Width;
        for (int64_t p = 0; p < width; ++p) to[p] = from[p];
        for (int64_t p = width; p < Width; ++p) to[p] = T(0);
      }
    } else {
      const T* rows[Width];
      for (int64_t p = 0; p < width; ++p) rows[p] = block + p * p_stride;
      transpose_into_panel<Width>(rows, width, kc, panel);
    }
  }
}

}  // namespace detail

/// A operand (M x K) stored densely: element (i, k) at data[i * row_stride + k * col_stride],
/// with one of the strides 1 (a row-major matrix, or the transpose of one).
template <typename T>
struct StridedA {
  const T* data;
  int64_t row_stride, col_stride;
  void pack(int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) const {
    detail::pack_strided_panels<GemmBlocking<T>::MR>(data + i0 * row_stride + k0 * col_stride,
                                                     row_stride, col_stride, mc, kc, dst);
  }
};

/// B operand (K x N) stored densely: element (k, j) at data[k * row_stride + j * col_stride],
/// with one of the strides 1.
template <typename T>
struct StridedB {
  const T* data;
  int64_t row_stride, col_stride;
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) const {
    detail::pack_strided_panels<GemmBlocking<T>::NR>(data + k0 * row_stride + j0 * col_stride,
                                                     col_stride, row_stride, nc, kc, dst);
  }
};

/// C output (M x N, row-major with leading dimension ldc):
/// C = alpha * A B + beta * C + row_bias[i] (row_bias may be null; beta == 0 never reads C).
template <typename T>
struct StridedC {
  T* data;
  int64_t ldc;
  T alpha, beta;
  const T* row_bias;

  /// Runs the micro-kernel for the m x n tile at (i, j) (m <= MR, n <= Cols). Slices after the
  /// first add to C without beta or bias. Full tiles are written straight from registers; edge
  /// tiles go through `tile` (MR x NR scratch) and only their valid part is written.
  template <int64_t Cols>
  void update(int64_t i, int64_t j, int64_t m, int64_t n, bool first_k_slice, int64_t kc,
              const T* a_panel, const T* b_panel, T* tile) const {
    constexpr int64_t MR = GemmBlocking<T>::MR, NR = GemmBlocking<T>::NR;
    const T beta_now = first_k_slice ? beta : T(1);
    const T* bias_now = first_k_slice && row_bias ? row_bias + i : nullptr;
    T* c = data + i * ldc + j;
    if (m == MR && n == Cols) {
      detail::MicroKernel<T, Cols>::run(kc, a_panel, b_panel, c, ldc, alpha, beta_now, bias_now);
      return;
    }
    detail::MicroKernel<T, Cols>::run(kc, a_panel, b_panel, tile, NR, alpha, T(0), nullptr);
    for (int64_t r = 0; r < m; ++r) {
      const T shift = bias_now ? bias_now[r] : T(0);
      T* cr = c + r * ldc;
      const T* tr = tile + r * NR;
      if (beta_now != T(0)) {
        for (int64_t s = 0; s < n; ++s) cr[s] = tr[s] + beta_now * cr[s] + shift;
      } else {
        for (int64_t s = 0; s < n; ++s) cr[s] = tr[s] + shift;
      }
    }
  }
};

/// The blocked GEMM driver: hands every MR x NR tile of the M x N result, for every KC slice of
/// K, to `c.update`. Requires: workspace of gemm_workspace_size<T>() elements, 64-byte aligned
/// for best speed. K == 0 makes one empty slice, so C still becomes beta * C (+ bias).
template <typename T, typename ASource, typename BSource, typename COutput>
void gemm_blocked(int64_t M, int64_t N, int64_t K, const ASource& a, const BSource& b,
                  const COutput& c, T* workspace) {
  using B = GemmBlocking<T>;
  if (M <= 0 || N <= 0) return;
  T* packed_a = workspace;
  T* packed_b = packed_a + B::MC * B::KC;
  T* tile = packed_b + B::KC * B::NC;
  for (int64_t jc = 0; jc < N; jc += B::NC) {
    const int64_t nc = std::min(B::NC, N - jc);
    for (int64_t pc = 0; pc == 0 || pc < K; pc += B::KC) {
      const int64_t kc = std::min(B::KC, K - pc);
      b.pack(pc, kc, jc, nc, packed_b);
      for (int64_t ic = 0; ic < M; ic += B::MC) {
        const int64_t mc = std::min(B::MC, M - ic);
        a.pack(ic, mc, pc, kc, packed_a);
        for (int64_t jr = 0; jr < nc; jr += B::NR) {
          const int64_t nr = std::min(B::NR, nc - jr);
          const T* b_panel = packed_b + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += B::MR) {
            const int64_t mr = std::min(B::MR, mc - ir);
            const T* a_panel = packed_a + ir * kc;
            if (nr > B::NR / 2)
              c.template update<B::NR>(ic + ir, jc + jr, mr, nr, pc == 0, kc, a_panel, b_panel, tile);
            else
              c.template update<B::NR / 2>(ic + ir, jc + jr, mr, nr, pc == 0, kc, a_panel, b_panel, tile);
          }
        }
      }
    }
  }
}

/// BLAS-style GEMM on row-major matrices: C = alpha * op(A) * op(B) + beta * C, where op(A) is
/// M x K (A stored M x K with leading dimension lda, or K x M if trans_a), op(B) is K x N (B stored
/// K x N with ldb, or N x K if trans_b), C is M x N with ldc.
/// Requires: workspace of gemm_workspace_size<T>() elements. beta == 0 never reads C.
/// Ensures: single-threaded and deterministic.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, T* workspace) {
  const StridedA<T> a{A, trans_a ? 1 : lda, trans_a ? lda : 1};
  const StridedB<T> b{B, trans_b ? 1 : ldb, trans_b ? ldb : 1};
  gemm_blocked(M, N, K, a, b, StridedC<T>{C, ldc, alpha, beta, nullptr}, workspace);
}

}  // namespace normlab::cpu
