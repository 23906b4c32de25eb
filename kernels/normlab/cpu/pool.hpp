// Pooling CPU kernels over NCHW planes: max pooling (kernel k, stride s, no padding) and global
// average pooling (adaptive average pooling to 1x1). Layout: `planes` = N*C contiguous planes of
// H*W elements; one OpenMP thread handles whole planes (static schedule), so every result is
// independent of the thread count.
//
// Max pooling variants:
//   - 2x2 stride 2 (the CIFAR model's pooling): each output reads one 2x2 block of two adjacent
//     input rows; the windows tile the plane, so the backward writes every input element exactly
//     once (no zero-fill, no scatter). Inner loops are branch-free selects and vectorise.
//   - any other kernel/stride: window loops, and a zero-fill + scatter-add backward.
// The argmax of each window is saved as an int32 offset h*W + w inside its plane (as PyTorch);
// ties go to the first maximal element in row-major window order and a NaN wins its window.
#pragma once

#include <cstdint>

#include "normlab/common/pool_math.hpp"

namespace normlab::cpu {

/// Output extent of a pooling sweep (normlab/common/pool_math.hpp, shared with the CUDA kernels).
using normlab::pooled_extent;

namespace detail {

template <bool kSaveArgmax, typename T>
void max_pool2d_2x2_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H,
                            int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < OH; ++oh) {
      const T* row0 = x + p * H * W + 2 * oh * W;
      const T* row1 = row0 + W;
      T* y_row = y + (p * OH + oh) * OW;
      const int32_t row_offset = static_cast<int32_t>(2 * oh * W);
      const int32_t w = static_cast<int32_t>(W);
#pragma omp simd
      for (int64_t ow = 0; ow < OW; ++ow) {
        T best = row0[2 * ow];
        int32_t at = 0;
        if (max_pool_takes(row0[2 * ow + 1], best)) {
          best = row0[2 * ow + 1];
          at = 1;
        }
        if (max_pool_takes(row1[2 * ow], best)) {
          best = row1[2 * ow];
          at = w;
        }
        if (max_pool_takes(row1[2 * ow + 1], best)) {
          best = row1[2 * ow + 1];
          at = w + 1;
        }
        y_row[ow] = best;
        if constexpr (kSaveArgmax) {
          argmax[(p * OH + oh) * OW + ow] = row_offset + static_cast<int32_t>(2 * ow) + at;
        }
      }
    }
  }
}

template <bool kSaveArgmax, typename T>
void max_pool2d_general_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H,
                                int64_t W, int64_t kernel, int64_t stride) {
  const int64_t OH = pooled_extent(H, kernel, stride), OW = pooled_extent(W, kernel, stride);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const T* plane = x + p * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t at = oh * stride * W + ow * stride;
        T best = plane[at];
        for (int64_t kh = 0; kh < kernel; ++kh) {
          for (int64_t kw = 0; kw < kernel; ++kw) {
            const int64_t i = (oh * stride + kh) * W + ow * stride + kw;
            if (max_pool_takes(plane[i], best)) {
              best = plane[i];
              at = i;
            }
          }
        }
        y[(p * OH + oh) * OW + ow] = best;
        if constexpr (kSaveArgmax) argmax[(p * OH + oh) * OW + ow] = static_cast<int32_t>(at);
      }
    }
  }
}

template <bool kSaveArgmax, typename T>
void max_pool2d_forward_dispatch(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H,
                                 int64_t W, int64_t kernel, int64_t stride) {
  if (kernel == 2 && stride == 2) {
    max_pool2d_2x2_forward<kSaveArgmax>(x, y, argmax, planes, H, W);
  } else {
    max_pool2d_general_forward<kSaveArgmax>(x, y, argmax, planes, H, W, kernel, stride);
  }
}

template <bool kAccumulate, typename T>
void max_pool2d_2x2_backward(const int32_t* argmax, const T* dy, T* dx, int64_t planes, int64_t H,
                             int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    T* plane = dx + p * H * W;
    for (int64_t oh = 0; oh < OH; ++oh) {
      T* row0 = plane + 2 * oh * W;
      T* row1 = row0 + W;
      const T* dy_row = dy + (p * OH + oh) * OW;
      const int32_t* at_row = argmax + (p * OH + oh) * OW;
      const int32_t w = static_cast<int32_t>(W);
      const int32_t row_offset = static_cast<int32_t>(2 * oh * W);
#pragma omp simd
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int32_t local = at_row[ow] - row_offset - static_cast<int32_t>(2 * ow);
        const T g = dy_row[ow];
        const T g00 = local == 0 ? g : T(0), g01 = local == 1 ? g : T(0);
        const T g10 = local == w ? g : T(0), g11 = local == w + 1 ? g : T(0);
        // (A compile-time choice: a runtime one here stops GCC from vectorising the loop.)
        if constexpr (kAccumulate) {
          row0[2 * ow] += g00;
          row0[2 * ow + 1] += g01;
          row1[2 * ow] += g10;
          row1[2 * ow + 1] += g11;
        } else {
          row0[2 * ow] = g00;
          row0[2 * ow + 1] = g01;
          row1[2 * ow] = g10;
          row1[2 * ow + 1] = g11;
        }
      }
      // An odd width leaves the last column outside every window.
      if (!kAccumulate && W % 2) row0[W - 1] = row1[W - 1] = T(0);
    }
    // An odd height leaves the last row outside every window.
    if (!kAccumulate && H % 2) {
      for (int64_t w = 0; w < W; ++w) plane[(H - 1) * W + w] = T(0);
    }
  }
}

}  // namespace detail

/// y[p, oh, ow] = max of x over the window at (oh*stride, ow*stride); argmax (if not null)
/// receives its in-plane offset. Requires: 1 <= kernel <= min(H, W), stride >= 1, H*W < 2^31.
/// One pass: read x, write y (and argmax).
template <typename T>
void max_pool2d_forward(const T* x, T* y, int32_t* argmax, int64_t planes, int64_t H, int64_t W,
                        int64_t kernel, int64_t stride) {
  if (argmax != nullptr) {
    detail::max_pool2d_forward_dispatch<true>(x, y, argmax, planes, H, W, kernel, stride);
  } else {
    detail::max_pool2d_forward_dispatch<false>(x, y, argmax, planes, H, W, kernel, stride);
  }
}

/// dx (+)= dy routed to each window's argmax; input elements in no window's argmax get 0.
/// Requires: the argmax written by max_pool2d_forward with the same sizes. 2x2 s2: one pass
/// (read argmax, dy, (dx); write dx). Otherwise: zero-fill (unless accumulating), then one
/// scatter-add pass in output order within each plane.
template <typename T>
void max_pool2d_backward(const int32_t* argmax, const T* dy, T* dx, int64_t planes, int64_t H,
                         int64_t W, int64_t kernel, int64_t stride, bool accumulate) {
  if (kernel == 2 && stride == 2) {
    if (accumulate) {
      detail::max_pool2d_2x2_backward<true>(argmax, dy, dx, planes, H, W);
    } else {
      detail::max_pool2d_2x2_backward<false>(argmax, dy, dx, planes, H, W);
    }
    return;
  }
  const int64_t OH = pooled_extent(H, kernel, stride), OW = pooled_extent(W, kernel, stride);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    T* plane = dx + p * H * W;
    if (!accumulate) {
      for (int64_t i = 0; i < H * W; ++i) plane[i] = T(0);
    }
    for (int64_t o = p * OH * OW; o < (p + 1) * OH * OW; ++o) plane[argmax[o]] += dy[o];
  }
}

/// y[p] = mean of plane p. One pass over x; each plane is summed in double.
template <typename T>
void global_avg_pool2d_forward(const T* x, T* y, int64_t planes, int64_t HW) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const T* plane = x + p * HW;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < HW; ++i) sum += static_cast<double>(plane[i]);
    y[p] = static_cast<T>(sum / static_cast<double>(HW));
  }
}

/// dx[p, i] (+)= dy[p] / HW. One pass: read dy, (dx); write dx.
template <typename T>
void global_avg_pool2d_backward(const T* dy, T* dx, int64_t planes, int64_t HW, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    T* plane = dx + p * HW;
    const T g = dy[p] / static_cast<T>(HW);
    if (accumulate) {
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) plane[i] += g;
    } else {
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) plane[i] = g;
    }
  }
}

}  // namespace normlab::cpu
