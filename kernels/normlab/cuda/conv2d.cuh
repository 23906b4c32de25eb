// 2-D convolution on the GPU: forward, data gradient (dgrad) and weight/bias gradient (wgrad) as
// tiled implicit GEMMs in shared memory with register blocking; the CUDA twin of cpu/conv2d.hpp
// (same Conv2dGeometry, same results up to rounding). Design and tests: docs/cuda_conv.md.
//
// Layout: x and dx [N, Cin, H, W], y and dy [N, Cout, OH, OW] (NCHW); weight and dweight [Cout,
// Cin, KH, KW] (OIHW); bias and dbias [Cout]. Kp = Cin*KH*KW, P = OH*OW, s = stride, p = padding.
// Each pass is C [M x Nc] = A [M x K] * B [K x Nc] with A and B read straight from the tensors (no
// im2col buffer); a flattened index lists its parts slowest first:
//
//   pass     M     Nc                 K                       A[m, k]            B[k, n]
//   forward  Cout  N*P (n, oh, ow)    Kp (ci, kh, kw)         w[co, ci, kh, kw]  x[n, ci, ih, iw]
//   dgrad    Cin   N*H*W (n, ih, iw)  Cout*KH*KW (co, kh, kw) w[co, ci, kh, kw]  dy[n, co, oh, ow]
//   wgrad    Cout  Kp (ci, kh, kw)    N*P (n, oh, ow)         dy[n, co, oh, ow]  x[n, ci, ih, iw]
//
// with ih = oh*s - p + kh and iw = ow*s - p + kw. B is 0 where (ih, iw) falls in the padding, and
// (dgrad) where ih + p - kh or iw + p - kw is negative, not a multiple of s or past the output.
// forward: y = C + bias; dgrad: dx (+)= C, each dx element one dot product (the gather form of the
// transposed convolution: no col2im scatter, no atomics; for s > 1 all but 1/s^2 of B's terms are
// zeros that are still multiplied); wgrad: dweight (+)= C, dbias (+)= the row sums of A.
//
// Tiles: a block of 256 threads computes a 64 x 64 tile of C (rows m0.., columns n0..) in steps
// of 16 along K. Thread t = (tx = t % 16, ty = t / 16) owns the 4 x 4 outputs (m0 + ty + 16i,
// n0 + tx + 16j), in fp32 registers (T for other types): 16 consecutive threads store 16
// consecutive columns, and columns are the contiguous index of y, dx and dweight. Per step each
// thread loads 4 elements of A and 4 of B from global memory into registers, for the next step
// while it computes this one, then stores them into the shared tiles As[16][64 + 1] and
// Bs[16][64 + 1] (k-major; the +1 spreads the k-fastest stores over the banks). Loads are
// coalesced along whichever index of the operand is contiguous in memory: along k for w (forward,
// dgrad), dy (wgrad A) and x (wgrad B), so 16 consecutive threads read 16 consecutive k; along the
// rows of B (output or input pixels) for x (forward) and dy (dgrad), so 64 consecutive threads
// read 64 consecutive pixels. From shared memory each thread reads 4 A and 4 B values per k and
// does 16 FMAs. Rows, columns and k past M, Nc, K load zeros, and outputs past M, Nc are not
// stored, so any sizes work. Index arithmetic is 32-bit, divisions by the sizes are
// multiply-shifts (FastDivmod); the launchers check that every tensor has fewer than 2^31
// elements.
//
// wgrad splits K (N*P, long: 131072 for a CIFAR batch of 128 at 32x32) into S slices (grid z;
// conv2d_wgrad_slices): slice z sums its whole 16-wide K steps into its own partial tile of the
// caller's workspace, and the blocks of column tile 0 also sum their A tile rows (dy) into a
// partial dbias. conv2d_wgrad_finalize then adds the S partials of each element in slice order
// and writes or accumulates dweight and dbias. Every sum has a fixed order given the sizes and
// S, so results are bit-identical from run to run: no atomics.
//
// Passes over global memory: forward reads x once per 64 output channels and w once per 64
// output pixels (L2-resident), and writes y once; dgrad reads dy once per 64 input channels and
// writes dx once; wgrad reads dy once per 64 patch elements (Kp) and x once per 64 output
// channels, writes S partial copies of dweight and dbias, which the finalize reads once to write
// dweight and dbias. Within a pass, neighbouring patches share their x (or dy) through L1/L2.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "normlab/common/conv2d_geometry.hpp"
#include "normlab/common/gradient_out.hpp"
#include "normlab/common/host_device.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/grid_stride.cuh"
#include "normlab/cuda_emu/cuda_emu.hpp"

namespace normlab::cuda {

/// Tuning of the conv2d launchers. The results depend on it only through the order of the float
/// sums of the wgrad; tests force several slices on small shapes.
struct Conv2dLaunchConfig {
  int64_t wgrad_slices = 0;  // K slices of the wgrad; 0: chosen from the sizes
};

/// Division of 32-bit dividends below 2^31 by a divisor fixed at launch, as a multiply and a
/// shift (Granlund and Montgomery): with l = ceil(log2 d), shift = 31 + l and multiplier =
/// ceil(2^shift / d) < 2^32, floor(n / d) = (n * multiplier) >> shift for 0 <= n < 2^31.
struct FastDivmod {
  uint32_t divisor = 1, multiplier = 1u << 31, shift = 31;

  FastDivmod() = default;
  /// Requires: 1 <= d < 2^31.
  explicit FastDivmod(int64_t d) : divisor(static_cast<uint32_t>(d)) {
    uint32_t log2_ceil = 0;
    while ((uint64_t(1) << log2_ceil) < divisor) ++log2_ceil;
    shift = 31 + log2_ceil;
    multiplier = static_cast<uint32_t>(((uint64_t(1) << shift) + divisor - 1) / divisor);
  }
  /// Requires: 0 <= n < 2^31. Ensures: n / divisor.
  NORMLAB_HOST_DEVICE int quotient(int n) const {
    return static_cast<int>((uint64_t(static_cast<uint32_t>(n)) * multiplier) >> shift);
  }
  /// Requires: 0 <= n < 2^31. Ensures: q = n / divisor, r = n % divisor.
  NORMLAB_HOST_DEVICE void divmod(int n, int& q, int& r) const {
    q = quotient(n);
    r = n - q * static_cast<int>(divisor);
  }
};

namespace conv_detail {

constexpr int kTileM = 64;  // rows of C per block
constexpr int kTileN = 64;  // columns of C per block
constexpr int kTileK = 16;  // K per step
constexpr int kThreads = 256;
constexpr int kMinBlocks = 2;  // per SM, for __launch_bounds__ (at most 128 registers)
constexpr int kThreadRows = kTileM / 16, kThreadCols = kTileN / 16;  // the 4 x 4 per thread
constexpr int kTilePad = 1;
// The wgrad's split: about kTargetBlocks blocks in all, each slice at least kMinStepsPerSlice
// K steps.
constexpr int64_t kTargetBlocks = 512;
constexpr int64_t kMinStepsPerSlice = 8;
constexpr int64_t kMaxSlices = 65535;  // grid z

/// The sizes on the device: 32-bit, with the divisors the kernels use.
struct ConvDims {
  int N, Cin, H, W, Cout, KH, KW, stride, padding, OH, OW;
  int HW, P, KHKW, Kp;
  FastDivmod by_khkw, by_kw, by_hw, by_w, by_p, by_ow, by_stride;
};

/// Requires: a geometry accepted by check_geometry.
inline ConvDims make_dims(const Conv2dGeometry& g) {
  const auto i32 = [](int64_t v) { return static_cast<int>(v); };
  ConvDims d{};
  d.N = i32(g.batch), d.Cin = i32(g.in_channels), d.H = i32(g.height), d.W = i32(g.width);
  d.Cout = i32(g.out_channels), d.KH = i32(g.kernel_h), d.KW = i32(g.kernel_w);
  d.stride = i32(g.stride), d.padding = i32(g.padding);
  d.OH = i32(g.out_height()), d.OW = i32(g.out_width());
  d.HW = d.H * d.W, d.P = d.OH * d.OW, d.KHKW = d.KH * d.KW, d.Kp = d.Cin * d.KHKW;
  d.by_khkw = FastDivmod(d.KHKW), d.by_kw = FastDivmod(d.KW), d.by_hw = FastDivmod(d.HW);
  d.by_w = FastDivmod(d.W);
  d.by_p = FastDivmod(d.P), d.by_ow = FastDivmod(d.OW), d.by_stride = FastDivmod(d.stride);
  return d;
}

// ---- operands ---------------------------------------------------------------------------------
// An operand is A (M x K) or B transposed (Nc x K), seen as rows of K values. It gives row(r), the
// part of the address computation that depends only on the row (done once per thread), and
// at(row, k), the value (0 in the padding); kAlongK says whether consecutive k are adjacent in
// memory (else consecutive rows are). The main loop calls at() only for r < rows, k < K.

/// forward A: w[co, k], k = (ci, kh, kw).
template <typename T>
struct WeightRows {
  static constexpr bool kAlongK = true;
  const T* w;
  ConvDims d;
  struct Row {
    const T* w;
  };
  __device__ __forceinline__ Row row(int co) const { return {w + co * d.Kp}; }
  __device__ __forceinline__ T at(const Row& r, int k) const { return r.w[k]; }
};

/// dgrad A: w[co, ci, kh, kw] as row ci, k = (co, kh, kw).
template <typename T>
struct TransposedWeightRows {
  static constexpr bool kAlongK = true;
  const T* w;
  ConvDims d;
  struct Row {
    const T* w;
  };
  __device__ __forceinline__ Row row(int ci) const { return {w + ci * d.KHKW}; }
  __device__ __forceinline__ T at(const Row& r, int k) const {
    int co, tap;
    d.by_khkw.divmod(k, co, tap);
    return r.w[co * d.Kp + tap];
  }
};

/// forward B: row (n, oh, ow), k = (ci, kh, kw): x[n, ci, oh*s - p + kh, ow*s - p + kw].
template <typename T>
struct InputPatchRows {
  static constexpr bool kAlongK = false;
  const T* x;
  ConvDims d;
  struct Row {
    const T* image;
    int ih0, iw0;
  };
  __device__ __forceinline__ Row row(int column) const {
    int n, q, oh, ow;
    d.by_p.divmod(column, n, q);
    d.by_ow.divmod(q, oh, ow);
    return {x + n * d.Cin * d.HW, oh * d.stride - d.padding, ow * d.stride - d.padding};
  }
  __device__ __forceinline__ T at(const Row& r, int k) const {
    int ci, tap, kh, kw;
    d.by_khkw.divmod(k, ci, tap);
    d.by_kw.divmod(tap, kh, kw);
    const int ih = r.ih0 + kh, iw = r.iw0 + kw;
    if (static_cast<unsigned>(ih) >= static_cast<unsigned>(d.H) ||
        static_cast<unsigned>(iw) >= static_cast<unsigned>(d.W))
      return T(0);
    return r.image[(ci * d.H + ih) * d.W + iw];
  }
};

/// dgrad B: row (n, ih, iw), k = (co, kh, kw): dy[n, co, oh, ow] where oh*s = ih + p - kh and
/// ow*s = iw + p - kw exactly, 0 if there is no such output.
template <typename T>
struct OutputGradGatherRows {
  static constexpr bool kAlongK = false;
  const T* dy;
  ConvDims d;
  struct Row {
    const T* image;
    int ih_padded, iw_padded;
  };
  __device__ __forceinline__ Row row(int column) const {
    int n, pixel, ih, iw;
    d.by_hw.divmod(column, n, pixel);
    d.by_w.divmod(pixel, ih, iw);
    return {dy + n * d.Cout * d.P, ih + d.padding, iw + d.padding};
  }
  __device__ __forceinline__ T at(const Row& r, int k) const {
    int co, tap, kh, kw;
    d.by_khkw.divmod(k, co, tap);
    d.by_kw.divmod(tap, kh, kw);
    const int oh_s = r.ih_padded - kh, ow_s = r.iw_padded - kw;
    if (oh_s < 0 || ow_s < 0) return T(0);
    int oh, oh_rest, ow, ow_rest;
    d.by_stride.divmod(oh_s, oh, oh_rest);
    d.by_stride.divmod(ow_s, ow, ow_rest);
    if ((oh_rest | ow_rest) != 0 || oh >= d.OH || ow >= d.OW) return T(0);
    return r.image[(co * d.OH + oh) * d.OW + ow];
  }
};

/// wgrad A: row co, k = (n, oh, ow): dy[n, co, oh, ow].
template <typename T>
struct OutputGradRows {
  static constexpr bool kAlongK = true;
  const T* dy;
  ConvDims d;
  struct Row {
    const T* channel;
  };
  __device__ __forceinline__ Row row(int co) const { return {dy + co * d.P}; }
  __device__ __forceinline__ T at(const Row& r, int k) const {
    int n, q;
    d.by_p.divmod(k, n, q);
    return r.channel[n * d.Cout * d.P + q];
  }
};

/// wgrad B: row (ci, kh, kw), k = (n, oh, ow): x[n, ci, oh*s - p + kh, ow*s - p + kw].
template <typename T>
struct InputTapRows {
  static constexpr bool kAlongK = true;
  const T* x;
  ConvDims d;
  struct Row {
    const T* channel;
    int kh_offset, kw_offset;
  };
  __device__ __forceinline__ Row row(int patch_row) const {
    int ci, tap, kh, kw;
    d.by_khkw.divmod(patch_row, ci, tap);
    d.by_kw.divmod(tap, kh, kw);
    return {x + ci * d.HW, kh - d.padding, kw - d.padding};
  }
  __device__ __forceinline__ T at(const Row& r, int k) const {
    int n, q, oh, ow;
    d.by_p.divmod(k, n, q);
    d.by_ow.divmod(q, oh, ow);
    const int ih = oh * d.stride + r.kh_offset, iw = ow * d.stride + r.kw_offset;
    if (static_cast<unsigned>(ih) >= static_cast<unsigned>(d.H) ||
        static_cast<unsigned>(iw) >= static_cast<unsigned>(d.W))
      return T(0);
    return r.channel[n * d.Cin * d.HW + ih * d.W + iw];
  }
};

// ---- the tile main loop -----------------------------------------------------------------------

template <typename T>
using SharedTile = T[kTileK][kTileM + kTilePad];  // kTileM == kTileN

/// One thread's share of loading a 64-row x 16-k tile of an operand: 4 (row, k) positions fixed
/// per thread (4 rows at one k when the operand is contiguous along k, else one row at 4 k), the
/// row parts of their addresses, and the values staged in registers between load and store.
template <typename T, class Operand>
struct TileLoader {
  static constexpr int kLoads = kTileM * kTileK / kThreads;  // 4
  static constexpr int kRowsHeld = Operand::kAlongK ? kLoads : 1;
  typename Operand::Row rows[kRowsHeld];
  bool row_valid[kRowsHeld];
  T staged[kLoads];

  __device__ __forceinline__ static int local_row(int i) {
    return Operand::kAlongK ? static_cast<int>(threadIdx.x) / kTileK + i * (kThreads / kTileK)
                            : static_cast<int>(threadIdx.x) % kTileM;
  }
  __device__ __forceinline__ static int local_k(int i) {
    return Operand::kAlongK ? static_cast<int>(threadIdx.x) % kTileK
                            : static_cast<int>(threadIdx.x) / kTileM + i * (kThreads / kTileM);
  }

  __device__ __forceinline__ TileLoader(const Operand& op, int row0, int row_count) {
    for (int i = 0; i < kRowsHeld; ++i) {
      const int r = row0 + local_row(i);
      row_valid[i] = r < row_count;
      rows[i] = op.row(row_valid[i] ? r : 0);
    }
  }
  /// Stages the values of the step starting at k0 (zeros past k_end and past the last row).
  __device__ __forceinline__ void load(const Operand& op, int k0, int k_end) {
    for (int i = 0; i < kLoads; ++i) {
      const int held = Operand::kAlongK ? i : 0;
      const int k = k0 + local_k(i);
      staged[i] = row_valid[held] && k < k_end ? op.at(rows[held], k) : T(0);
    }
  }
  __device__ __forceinline__ void store(SharedTile<T>& tile) const {
    for (int i = 0; i < kLoads; ++i) tile[local_k(i)][local_row(i)] = staged[i];
  }
};

/// Does nothing with the A tiles (forward, dgrad).
struct NoRowSums {
  template <typename T>
  __device__ __forceinline__ void add(const SharedTile<T>&) {}
};

/// wgrad's dbias: when active (blocks of column tile 0, dbias wanted), thread t < 64 sums row t
/// of every A tile (dy of output channel m0 + t).
template <typename T>
struct RowSums {
  bool active;
  T sum = T(0);
  __device__ __forceinline__ void add(const SharedTile<T>& a) {
    if (!active || threadIdx.x >= kTileM) return;
    for (int k = 0; k < kTileK; ++k) sum += a[k][threadIdx.x];
  }
};

/// The block's tile of C = A * B over the K steps [step_begin, step_end): acc[i][j] = C[m0 + ty +
/// 16i, n0 + tx + 16j]. Multiply = false skips B and the products (wgrad for dbias alone);
/// row_sums sees every A tile. Every thread of the block must call it (it has barriers).
template <typename T, bool Multiply, class OperandA, class OperandB, class RowSumsT>
__device__ __forceinline__ void gemm_tile(const OperandA& a, const OperandB& b, int m0, int n0,
                                          int M, int Nc, int K, int step_begin, int step_end,
                                          T (&acc)[kThreadRows][kThreadCols], RowSumsT& row_sums) {
  __shared__ SharedTile<T> a_tile;
  __shared__ SharedTile<T> b_tile;
  const int tx = static_cast<int>(threadIdx.x) % 16, ty = static_cast<int>(threadIdx.x) / 16;
  for (int i = 0; i < kThreadRows; ++i)
    for (int j = 0; j < kThreadCols; ++j) acc[i][j] = T(0);

  TileLoader<T, OperandA> a_loader(a, m0, M);
  TileLoader<T, OperandB> b_loader(b, n0, Multiply ? Nc : 0);
  if (step_begin < step_end) {
    a_loader.load(a, step_begin * kTileK, K);
    if (Multiply) b_loader.load(b, step_begin * kTileK, K);
  }
  for (int step = step_begin; step < step_end; ++step) {
    a_loader.store(a_tile);
    if (Multiply) b_loader.store(b_tile);
    __syncthreads();
    if (step + 1 < step_end) {  // the next step's global loads overlap this step's products
      a_loader.load(a, (step + 1) * kTileK, K);
      if (Multiply) b_loader.load(b, (step + 1) * kTileK, K);
    }
    row_sums.add(a_tile);
    if (Multiply) {
      for (int k = 0; k < kTileK; ++k) {
        T a_values[kThreadRows], b_values[kThreadCols];
        for (int i = 0; i < kThreadRows; ++i) a_values[i] = a_tile[k][ty + 16 * i];
        for (int j = 0; j < kThreadCols; ++j) b_values[j] = b_tile[k][tx + 16 * j];
        for (int i = 0; i < kThreadRows; ++i)
          for (int j = 0; j < kThreadCols; ++j) acc[i][j] += a_values[i] * b_values[j];
      }
    }
    __syncthreads();
  }
}

__device__ __forceinline__ int thread_col() { return static_cast<int>(threadIdx.x) % 16; }
__device__ __forceinline__ int thread_row() { return static_cast<int>(threadIdx.x) / 16; }
__device__ __forceinline__ int steps(int K) { return (K + kTileK - 1) / kTileK; }

// ---- kernels ----------------------------------------------------------------------------------
// Grid: x = column tiles of C, y = row tiles, z = K slices (wgrad; 1 otherwise); kThreads threads.

/// y = w * patches(x) + bias (see the file comment).
template <typename T>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    conv2d_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                          const T* __restrict__ bias, T* __restrict__ y, ConvDims d) {
  const int m0 = static_cast<int>(blockIdx.y) * kTileM, n0 = static_cast<int>(blockIdx.x) * kTileN;
  const int Nc = d.N * d.P;
  T acc[kThreadRows][kThreadCols];
  NoRowSums none;
  gemm_tile<T, true>(WeightRows<T>{weight, d}, InputPatchRows<T>{x, d}, m0, n0, d.Cout, Nc, d.Kp, 0,
                     steps(d.Kp), acc, none);
  for (int j = 0; j < kThreadCols; ++j) {
    const int column = n0 + thread_col() + 16 * j;
    if (column >= Nc) continue;
    int n, q;
    d.by_p.divmod(column, n, q);
    T* out = y + n * d.Cout * d.P + q;
    for (int i = 0; i < kThreadRows; ++i) {
      const int co = m0 + thread_row() + 16 * i;
      if (co < d.Cout) out[co * d.P] = acc[i][j] + (bias != nullptr ? bias[co] : T(0));
    }
  }
}

/// dx (+)= w^T * gathered(dy) (see the file comment).
template <typename T>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    conv2d_backward_data_kernel(const T* __restrict__ dy, const T* __restrict__ weight,
                                GradientOut<T> dx, ConvDims d) {
  const int m0 = static_cast<int>(blockIdx.y) * kTileM, n0 = static_cast<int>(blockIdx.x) * kTileN;
  const int Nc = d.N * d.HW, K = d.Cout * d.KHKW;
  T acc[kThreadRows][kThreadCols];
  NoRowSums none;
  gemm_tile<T, true>(TransposedWeightRows<T>{weight, d}, OutputGradGatherRows<T>{dy, d}, m0, n0,
                     d.Cin, Nc, K, 0, steps(K), acc, none);
  for (int j = 0; j < kThreadCols; ++j) {
    const int column = n0 + thread_col() + 16 * j;
    if (column >= Nc) continue;
    int n, pixel;
    d.by_hw.divmod(column, n, pixel);
    const int image = n * d.Cin * d.HW + pixel;
    for (int i = 0; i < kThreadRows; ++i) {
      const int ci = m0 + thread_row() + 16 * i;
      if (ci < d.Cin) dx.store(image + ci * d.HW, acc[i][j]);
    }
  }
}

/// Slice z of the wgrad: partials[z] = [dweight part (Cout x Kp) | dbias part (Cout)] over its K
/// steps. Weights = false: dbias part only (grid x = 1).
template <typename T, bool Weights>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    conv2d_wgrad_partials_kernel(const T* __restrict__ x, const T* __restrict__ dy,
                                 T* __restrict__ partials, bool bias, ConvDims d) {
  const int m0 = static_cast<int>(blockIdx.y) * kTileM, n0 = static_cast<int>(blockIdx.x) * kTileN;
  const int K = d.N * d.P, all_steps = steps(K), slices = static_cast<int>(gridDim.z);
  const int z = static_cast<int>(blockIdx.z);
  // Slice z takes steps [all_steps * z / S, all_steps * (z + 1) / S) (64-bit: the product).
  const int step_begin = static_cast<int>(int64_t(all_steps) * z / slices);
  const int step_end = static_cast<int>(int64_t(all_steps) * (z + 1) / slices);
  T acc[kThreadRows][kThreadCols];
  RowSums<T> row_sums{bias && blockIdx.x == 0};
  gemm_tile<T, Weights>(OutputGradRows<T>{dy, d}, InputTapRows<T>{x, d}, m0, n0, d.Cout, d.Kp, K,
                        step_begin, step_end, acc, row_sums);
  T* slice = partials + z * (d.Cout * d.Kp + d.Cout);
  if (Weights) {
    for (int i = 0; i < kThreadRows; ++i) {
      const int co = m0 + thread_row() + 16 * i;
      if (co >= d.Cout) continue;
      for (int j = 0; j < kThreadCols; ++j) {
        const int column = n0 + thread_col() + 16 * j;
        if (column < d.Kp) slice[co * d.Kp + column] = acc[i][j];
      }
    }
  }
  const int co = m0 + static_cast<int>(threadIdx.x);
  if (row_sums.active && static_cast<int>(threadIdx.x) < kTileM && co < d.Cout)
    slice[d.Cout * d.Kp + co] = row_sums.sum;
}

/// dweight, dbias (+)= the sum of the S partials in slice order, one thread per element
/// (grid-stride over [first, last) of a slice's [dweight (weight_count) | dbias] layout).
template <typename T>
__global__ void __launch_bounds__(grid_stride::kBlock, grid_stride::kMinBlocks)
    conv2d_wgrad_finalize(const T* __restrict__ partials, int slices, int slice_size,
                          int weight_count, int first, int last, GradientOut<T> dweight,
                          GradientOut<T> dbias) {
  for (int64_t e = first + grid_stride::thread_index(); e < last;
       e += grid_stride::thread_count()) {
    const int element = static_cast<int>(e);
    T sum = T(0);
    for (int z = 0; z < slices; ++z) sum += partials[z * slice_size + element];
    if (element < weight_count)
      dweight.store(element, sum);
    else
      dbias.store(element - weight_count, sum);
  }
}

// ---- launcher helpers -------------------------------------------------------------------------

inline std::string describe(const Conv2dGeometry& g) {
  return normlab::detail::concat("x [", g.batch, ", ", g.in_channels, ", ", g.height, ", ", g.width,
                                 "], weight [", g.out_channels, ", ", g.in_channels, ", ",
                                 g.kernel_h, ", ", g.kernel_w, "], stride ", g.stride, ", padding ",
                                 g.padding);
}

/// Throws normlab::Error naming `op` and the sizes unless the geometry is one the kernels take:
/// positive sizes, stride >= 1, padding >= 0, the kernel within the padded input, and fewer than
/// 2^31 elements in every tensor and GEMM dimension (32-bit indices).
inline void check_geometry(const char* op, const Conv2dGeometry& g) {
  NORMLAB_CHECK(g.batch >= 1 && g.in_channels >= 1 && g.height >= 1 && g.width >= 1 &&
                    g.out_channels >= 1 && g.kernel_h >= 1 && g.kernel_w >= 1,
                op, ": every size must be positive: ", describe(g));
  NORMLAB_CHECK(g.stride >= 1 && g.padding >= 0, op,
                ": stride must be >= 1 and padding >= 0: ", describe(g));
  NORMLAB_CHECK(g.height + 2 * g.padding >= g.kernel_h && g.width + 2 * g.padding >= g.kernel_w, op,
                ": the kernel is larger than the padded input: ", describe(g));
  constexpr int64_t limit = int64_t(1) << 31;
  const int64_t x_size = g.batch * g.in_channels * g.in_pixels();
  const int64_t y_size = g.batch * g.out_channels * g.out_pixels();
  const int64_t w_size = g.out_channels * g.patch_size();
  NORMLAB_CHECK(x_size < limit && y_size < limit && w_size < limit && g.padded_height() < limit &&
                    g.padded_width() < limit && g.stride < limit,
                op, ": sizes need 32-bit indices (x ", x_size, ", y ", y_size, ", weight ", w_size,
                " elements, at most 2^31 - 1): ", describe(g));
  NORMLAB_CHECK((std::max(g.in_channels, g.out_channels) + kTileM - 1) / kTileM <= 65535, op,
                ": more than 65535 tiles of ", kTileM, " channels: ", describe(g));
}

inline unsigned tiles(int64_t n, int64_t tile) {
  return static_cast<unsigned>((n + tile - 1) / tile);
}

}  // namespace conv_detail

/// Ensures: the number of K slices conv2d_backward_weights uses for these sizes: config's, or
/// enough for about 512 blocks in all with at least 8 K steps (128 terms) per slice, at least 1
/// and at most 65535.
inline int64_t conv2d_wgrad_slices(const Conv2dGeometry& g, const Conv2dLaunchConfig& config = {}) {
  namespace k = conv_detail;
  if (config.wgrad_slices > 0) return config.wgrad_slices;
  const int64_t tiles =
      int64_t(k::tiles(g.out_channels, k::kTileM)) * k::tiles(g.patch_size(), k::kTileN);
  const int64_t steps = (g.batch * g.out_pixels() + k::kTileK - 1) / k::kTileK;
  const int64_t wanted = (k::kTargetBlocks + tiles - 1) / tiles;
  const int64_t most = std::max<int64_t>(1, steps / k::kMinStepsPerSlice);
  return std::min(std::max<int64_t>(1, std::min(wanted, most)), k::kMaxSlices);
}

/// Ensures: the bytes of device workspace conv2d_backward_weights needs: S partial copies of
/// dweight and dbias (S = conv2d_wgrad_slices(g, config)). Forward and dgrad need none.
template <typename T>
size_t conv2d_wgrad_workspace_bytes(const Conv2dGeometry& g,
                                    const Conv2dLaunchConfig& config = {}) {
  return static_cast<size_t>(conv2d_wgrad_slices(g, config) *
                             (g.out_channels * g.patch_size() + g.out_channels)) *
         sizeof(T);
}

/// All pointers are device memory. Ensures: y[n, co, oh, ow] = bias[co] + sum_{ci, kh, kw}
/// weight[co, ci, kh, kw] * x[n, ci, oh*s - p + kh, ow*s - p + kw] (zero padding), as
/// cpu::conv2d_forward; y is written, never read. bias may be null (none).
/// Requires: x [N, Cin, H, W], weight [Cout, Cin, KH, KW], bias [Cout], y [N, Cout, OH, OW] for
/// geometry g (sizes as check_geometry states). Kernels are queued on `stream`.
template <typename T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dGeometry& g,
                    cudaStream_t stream = nullptr) {
  namespace k = conv_detail;
  const char* op = "cuda::conv2d_forward";
  k::check_geometry(op, g);
  grid_stride::check_pointer(op, x, "x");
  grid_stride::check_pointer(op, weight, "weight");
  grid_stride::check_pointer(op, y, "y");
  const dim3 grid(k::tiles(g.batch * g.out_pixels(), k::kTileN),
                  k::tiles(g.out_channels, k::kTileM));
  NORMLAB_CUDA_LAUNCH(grid, k::kThreads, 0, stream, k::conv2d_forward_kernel<T>)
  (x, weight, bias, y, k::make_dims(g));
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Data gradient of conv2d_forward; all pointers are device memory. Ensures: dx (+)= the gradient
/// of sum(dy * y) with respect to x: dx[n, ci, ih, iw] = sum over (co, kh, kw) with oh*s = ih + p -
/// kh, ow*s = iw + p - kw inside the output of weight[co, ci, kh, kw] * dy[n, co, oh, ow]; written
/// or added to as dx.accumulate says; nothing when dx.data is null.
/// Requires: dy [N, Cout, OH, OW], weight [Cout, Cin, KH, KW], dx [N, Cin, H, W] for g.
template <typename T>
void conv2d_backward_data(const T* dy, const T* weight, GradientOut<T> dx, const Conv2dGeometry& g,
                          cudaStream_t stream = nullptr) {
  namespace k = conv_detail;
  const char* op = "cuda::conv2d_backward_data";
  k::check_geometry(op, g);
  if (dx.data == nullptr) return;
  grid_stride::check_pointer(op, dy, "dy");
  grid_stride::check_pointer(op, weight, "weight");
  const dim3 grid(k::tiles(g.batch * g.in_pixels(), k::kTileN), k::tiles(g.in_channels, k::kTileM));
  NORMLAB_CUDA_LAUNCH(grid, k::kThreads, 0, stream, k::conv2d_backward_data_kernel<T>)
  (dy, weight, dx, k::make_dims(g));
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

/// Weight and bias gradients of conv2d_forward; all pointers are device memory. Ensures, for each
/// output whose data is not null (written or added to as its accumulate flag says):
/// dweight[co, ci, kh, kw] (+)= sum_{n, oh, ow} dy[n, co, oh, ow] * x[n, ci, oh*s - p + kh, ow*s -
/// p + kw], dbias[co] (+)= sum_{n, oh, ow} dy[n, co, oh, ow]; bit-identical results for fixed
/// sizes and config. Requires: x, dy as above; `workspace` holds
/// conv2d_wgrad_workspace_bytes<T>(g, config) bytes, aligned for T.
template <typename T>
void conv2d_backward_weights(const T* x, const T* dy, GradientOut<T> dweight, GradientOut<T> dbias,
                             const Conv2dGeometry& g, void* workspace,
                             cudaStream_t stream = nullptr, const Conv2dLaunchConfig& config = {}) {
  namespace k = conv_detail;
  const char* op = "cuda::conv2d_backward_weights";
  k::check_geometry(op, g);
  NORMLAB_CHECK(config.wgrad_slices >= 0 && config.wgrad_slices <= k::kMaxSlices, op,
                ": wgrad_slices must be in [0, ", k::kMaxSlices, "], got ", config.wgrad_slices);
  const bool weights = dweight.data != nullptr, bias = dbias.data != nullptr;
  if (!weights && !bias) return;
  grid_stride::check_pointer(op, dy, "dy");
  grid_stride::check_pointer(op, workspace, "workspace");
  if (weights) grid_stride::check_pointer(op, x, "x");
  const int64_t slices = conv2d_wgrad_slices(g, config);
  const int64_t weight_count = g.out_channels * g.patch_size();
  NORMLAB_CHECK(slices * (weight_count + g.out_channels) < (int64_t(1) << 31), op, ": ", slices,
                " slices of ", weight_count + g.out_channels,
                " partial sums need more than 2^31 - 1 elements: ", k::describe(g));
  T* partials = static_cast<T*>(workspace);
  const dim3 grid(weights ? k::tiles(g.patch_size(), k::kTileN) : 1u,
                  k::tiles(g.out_channels, k::kTileM), static_cast<unsigned>(slices));
  const k::ConvDims d = k::make_dims(g);
  if (weights) {
    NORMLAB_CUDA_LAUNCH(grid, k::kThreads, 0, stream, k::conv2d_wgrad_partials_kernel<T, true>)
    (x, dy, partials, bias, d);
  } else {
    NORMLAB_CUDA_LAUNCH(grid, k::kThreads, 0, stream, k::conv2d_wgrad_partials_kernel<T, false>)
    (x, dy, partials, bias, d);
  }
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  const int64_t first = weights ? 0 : weight_count;
  const int64_t last = bias ? weight_count + g.out_channels : weight_count;
  NORMLAB_CUDA_LAUNCH(grid_stride::grid_for(last - first), grid_stride::kBlock, 0, stream,
                      k::conv2d_wgrad_finalize<T>)
  (partials, static_cast<int>(slices), static_cast<int>(weight_count + g.out_channels),
   static_cast<int>(weight_count), static_cast<int>(first), static_cast<int>(last), dweight, dbias);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace normlab::cuda
