// Naive reference (oracle) for conv2d, templated, run in double: the direct 7-loop convolution
// and its backward, written straight from the definition with no shared code with the kernels.
#pragma once

#include <cstdint>
#include <vector>

namespace normlab::oracle {

struct ConvShape {
  int64_t N, Cin, H, W, Cout, KH, KW, stride, padding;
  int64_t OH() const { return (H + 2 * padding - KH) / stride + 1; }
  int64_t OW() const { return (W + 2 * padding - KW) / stride + 1; }
};

/// Calls f(n, co, ci, oh, ow, kh, kw, x_index) for every term x[x_index] * w[co, ci, kh, kw] of
/// every output y[n, co, oh, ow] whose input position lies inside the image.
template <typename F>
void for_each_conv_term(const ConvShape& s, F&& f) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t oh = 0; oh < s.OH(); ++oh)
        for (int64_t ow = 0; ow < s.OW(); ++ow)
          for (int64_t ci = 0; ci < s.Cin; ++ci)
            for (int64_t kh = 0; kh < s.KH; ++kh)
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t ih = oh * s.stride - s.padding + kh;
                const int64_t iw = ow * s.stride - s.padding + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                f(n, co, ci, oh, ow, kh, kw, ((n * s.Cin + ci) * s.H + ih) * s.W + iw);
              }
}

/// y[n, co, oh, ow] = bias[co] + sum w[co, ci, kh, kw] * x[n, ci, oh*s - p + kh, ow*s - p + kw];
/// an empty bias means none.
template <typename T>
std::vector<T> conv2d_forward(const std::vector<T>& x, const std::vector<T>& w,
                              const std::vector<T>& bias, const ConvShape& s) {
  std::vector<T> y(static_cast<size_t>(s.N * s.Cout * s.OH() * s.OW()), T(0));
  for_each_conv_term(s, [&](int64_t n, int64_t co, int64_t ci, int64_t oh, int64_t ow, int64_t kh,
                            int64_t kw, int64_t xi) {
    y[((n * s.Cout + co) * s.OH() + oh) * s.OW() + ow] += w[((co * s.Cin + ci) * s.KH + kh) * s.KW + kw] * x[xi];
  });
  if (!bias.empty())
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t co = 0; co < s.Cout; ++co)
        for (int64_t p = 0; p < s.OH() * s.OW(); ++p) y[(n * s.Cout + co) * s.OH() * s.OW() + p] += bias[co];
  return y;
}

template <typename T>
struct ConvGradients {
  std::vector<T> dx, dw, db;
};

/// The gradients of sum(dy * y) for y = conv2d_forward(x, w, bias): each term's derivative.
template <typename T>
ConvGradients<T> conv2d_backward(const std::vector<T>& x, const std::vector<T>& w,
                                 const std::vector<T>& dy, const ConvShape& s) {
  ConvGradients<T> g{std::vector<T>(x.size(), T(0)), std::vector<T>(w.size(), T(0)),
                     std::vector<T>(static_cast<size_t>(s.Cout), T(0))};
  for_each_conv_term(s, [&](int64_t n, int64_t co, int64_t ci, int64_t oh, int64_t ow, int64_t kh,
                            int64_t kw, int64_t xi) {
    const int64_t wi = ((co * s.Cin + ci) * s.KH + kh) * s.KW + kw;
    const T g_out = dy[((n * s.Cout + co) * s.OH() + oh) * s.OW() + ow];
    g.dx[xi] += w[wi] * g_out;
    g.dw[wi] += x[xi] * g_out;
  });
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t p = 0; p < s.OH() * s.OW(); ++p) g.db[co] += dy[(n * s.Cout + co) * s.OH() * s.OW() + p];
  return g;
}

}  // namespace normlab::oracle
