// Differentiable elementwise ops: relu, add (the residual connection), dropout.
#pragma once

#include "normlab/autograd/tape.hpp"
#include "normlab/core/rng.hpp"
#include "normlab/ops/checks.hpp"
#include "normlab/ops/cpu_backend.hpp"

namespace normlab::ops {

/// Ensures: y = max(x, 0) elementwise; backward adds dy * (y > 0) to x's gradient.
template <typename T>
Tensor<T> relu(const Tensor<T>& x) {
  detail::require_defined("relu", "x", x);
  Backend<T>& kernels = detail::backend_for<T>("relu", x.device());
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  kernels.relu_forward(x.data(), y.data(), x.numel());
  if (autograd::needs_grad(x)) {
    autograd::record("relu", y, [&kernels, x, y = y.detach()](const Tensor<T>& dy) {
      kernels.relu_backward(y.data(), dy.data(), autograd::gradient_out(x), x.numel());
    });
  }
  return y;
}

/// Requires: a and b have the same shape. Ensures: y = a + b; backward passes dy to both.
template <typename T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  detail::require_same_shape("add", a, b);
  Backend<T>& kernels = detail::backend_for<T>("add", detail::require_same_device("add", a, b));
  Tensor<T> y = Tensor<T>::empty(a.shape(), a.device());
  kernels.add_forward(a.data(), b.data(), y.data(), a.numel());
  if (autograd::needs_grad(a, b)) {
    autograd::record("add", y, [&kernels, a, b](const Tensor<T>& dy) {
      for (const Tensor<T>* input : {&a, &b})
        kernels.scaled_gradient(dy.data(), autograd::gradient_out(*input), dy.numel(), T(1));
    });
  }
  return y;
}

namespace detail {
/// Requires: 0 < p < 1. Ensures: the mask of an inverted dropout with probability p over n
/// elements, reserving its (n + 3) / 4 Philox blocks from `rng`; ops::dropout and the norms'
/// fused dropout draw the same way, so they give the same mask from the same Rng state.
inline DropoutDraw draw_dropout(double p, Rng& rng, int64_t n) {
  DropoutDraw draw;
  draw.keep = static_cast<float>(1.0 - p);
  draw.seed = rng.seed();
  draw.counter_base = rng.reserve(static_cast<uint64_t>((n + 3) / 4));
  return draw;
}
}  // namespace detail

/// Requires: 0 <= p < 1. Ensures: in training, each element is zeroed with probability p and the
/// survivors are scaled by 1/(1-p) (inverted dropout), with the mask drawn from `rng` by counter
/// (independent of the thread count); in evaluation (training == false) or with p == 0, y is x.
template <typename T>
Tensor<T> dropout(const Tensor<T>& x, double p, bool training, Rng& rng = default_rng()) {
  detail::require_defined("dropout", "x", x);
  NORMLAB_CHECK(p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  Backend<T>& kernels = detail::backend_for<T>("dropout", x.device());
  const DropoutDraw draw = detail::draw_dropout(p, rng, x.numel());
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  kernels.dropout_forward(x.data(), y.data(), x.numel(), draw);
  if (autograd::needs_grad(x)) {
    autograd::record("dropout", y, [&kernels, x, draw](const Tensor<T>& dy) {
      kernels.dropout_backward(dy.data(), autograd::gradient_out(x), x.numel(), draw);
    });
  }
  return y;
}

/// Requires: new_shape has as many elements as x. Ensures: y views x's data with new_shape;
/// backward passes the gradient through unchanged.
template <typename T>
Tensor<T> reshape(const Tensor<T>& x, const Shape& new_shape) {
  detail::require_defined("reshape", "x", x);
  NORMLAB_CHECK(new_shape.numel() == x.numel(), "reshape: cannot reshape ", x.shape().str(),
                " to ", new_shape.str());
  Tensor<T> y = x.view(new_shape);
  if (autograd::needs_grad(x)) {
    Backend<T>& kernels = detail::backend_for<T>("reshape", x.device());
    autograd::record("reshape", y, [&kernels, x](const Tensor<T>& dy) {
      kernels.scaled_gradient(dy.data(), autograd::gradient_out(x), dy.numel(), T(1));
    });
  }
  return y;
}

}  // namespace normlab::ops
