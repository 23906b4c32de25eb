// Naive reference implementations (oracles) of max pooling and global average pooling on NCHW
// data, templated, run in double. Written from the definitions, one window at a time.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace normlab::oracle {

struct PoolGeometry {
  int64_t N, C, H, W, kernel, stride;
  int64_t out_h() const { return (H - kernel) / stride + 1; }
  int64_t out_w() const { return (W - kernel) / stride + 1; }
};

/// The in-plane offset (h*W + w) of each window's maximum: the first maximal element in
/// row-major window order, or the last NaN when the window holds NaNs (PyTorch's rule).
template <typename T>
std::vector<int64_t> max_pool2d_argmax(const std::vector<T>& x, const PoolGeometry& g) {
  std::vector<int64_t> argmax;
  for (int64_t p = 0; p < g.N * g.C; ++p) {
    const T* plane = x.data() + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.out_h(); ++oh) {
      for (int64_t ow = 0; ow < g.out_w(); ++ow) {
        int64_t best = -1;
        for (int64_t kh = 0; kh < g.kernel; ++kh) {
          for (int64_t kw = 0; kw < g.kernel; ++kw) {
            const int64_t i = (oh * g.stride + kh) * g.W + ow * g.stride + kw;
            if (best < 0 || plane[i] > plane[best] || std::isnan(plane[i])) best = i;
          }
        }
        argmax.push_back(best);
      }
    }
  }
  return argmax;
}

template <typename T>
std::vector<T> max_pool2d(const std::vector<T>& x, const PoolGeometry& g) {
  const std::vector<int64_t> argmax = max_pool2d_argmax(x, g);
  std::vector<T> y(argmax.size());
  const int64_t per_plane = g.out_h() * g.out_w();
  for (size_t o = 0; o < y.size(); ++o) y[o] = x[(o / per_plane) * g.H * g.W + argmax[o]];
  return y;
}

/// dx = sum over windows of dy routed to the window's argmax.
template <typename T>
std::vector<T> max_pool2d_backward(const std::vector<T>& x, const std::vector<T>& dy,
                                   const PoolGeometry& g) {
  const std::vector<int64_t> argmax = max_pool2d_argmax(x, g);
  std::vector<T> dx(x.size(), T(0));
  const int64_t per_plane = g.out_h() * g.out_w();
  for (size_t o = 0; o < dy.size(); ++o) dx[(o / per_plane) * g.H * g.W + argmax[o]] += dy[o];
  return dx;
}

template <typename T>
std::vector<T> global_avg_pool2d(const std::vector<T>& x, int64_t planes, int64_t HW) {
  std::vector<T> y(planes, T(0));
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t i = 0; i < HW; ++i) y[p] += x[p * HW + i];
    y[p] /= HW;
  }
  return y;
}

template <typename T>
std::vector<T> global_avg_pool2d_backward(const std::vector<T>& dy, int64_t planes, int64_t HW) {
  std::vector<T> dx(planes * HW);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < HW; ++i) dx[p * HW + i] = dy[p] / HW;
  return dx;
}

}  // namespace normlab::oracle
