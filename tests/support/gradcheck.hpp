// Finite-difference gradient check (in double) for any differentiable op.
//
// The op's output y is contracted with a fixed random tensor w into the scalar L = sum(w * y), so
// every output element gets a different upstream gradient. Autograd gives dL/dx for each input;
// central differences (L(x + h e_i) - L(x - h e_i)) / 2h give the reference, element by element.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "normlab/autograd/tape.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab::testing {

using TensorD = Tensor<double>;

struct GradcheckOptions {
  double step = 1e-6;
  double abs_tolerance = 1e-7;
  double rel_tolerance = 1e-5;
  uint64_t seed = 1234;
  int64_t max_checked_per_input = -1;  // > 0: check this many evenly spaced elements per input
};

/// Requires: `f` is a differentiable function of `inputs` (its result may have any shape) that
/// records its ops on the tape when inputs require gradients. Ensures: a Catch2 failure for every
/// input element whose autograd gradient differs from the central difference.
inline void gradcheck(const std::function<TensorD(const std::vector<TensorD>&)>& f,
                      std::vector<TensorD> inputs, const GradcheckOptions& options = {}) {
  Rng rng(options.seed);
  TensorD weights;
  auto contracted = [&](const std::vector<TensorD>& args) {
    TensorD y = f(args);
    if (!weights.defined()) weights = TensorD::randn(y.shape(), rng);
    double sum = 0;
    for (int64_t i = 0; i < y.numel(); ++i) sum += weights.data()[i] * y.data()[i];
    return std::make_pair(y, sum);
  };

  for (auto& x : inputs) {
    x.zero_grad();
    x.set_requires_grad(true);
  }
  {
    TensorD y = contracted(inputs).first;
    REQUIRE(y.requires_grad());
    // Seed dL/dy = w and run the tape.
    y.set_grad(weights.clone());
    autograd::NoGradGuard no_grad;
    autograd::tape().run_backward();
  }

  autograd::NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    TensorD& x = inputs[k];
    REQUIRE(x.has_grad());
    const TensorD analytic = x.grad();
    const int64_t checked = options.max_checked_per_input > 0
                                ? std::min(options.max_checked_per_input, x.numel())
                                : x.numel();
    for (int64_t j = 0; j < checked; ++j) {
      const int64_t i = j * x.numel() / checked;
      const double saved = x.data()[i];
      x.data()[i] = saved + options.step;
      const double plus = contracted(inputs).second;
      x.data()[i] = saved - options.step;
      const double minus = contracted(inputs).second;
      x.data()[i] = saved;
      const double numeric = (plus - minus) / (2 * options.step);
      const double got = analytic.data()[i];
      const double tolerance = options.abs_tolerance + options.rel_tolerance * std::abs(numeric);
      if (std::abs(got - numeric) > tolerance) {
        FAIL_CHECK("gradient of input " << k << " (shape " << x.shape().str() << ") element " << i
                                        << ": autograd " << got << " vs finite difference " << numeric);
      }
    }
  }
}

/// Largest |a - b| / (atol + rtol * |b|) over all elements; <= 1 means "a matches b".
template <typename A, typename B>
double normalized_error(const A* a, const B* b, int64_t n, double atol, double rtol) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double err = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])) /
                       (atol + rtol * std::abs(static_cast<double>(b[i])));
    if (!(err <= worst)) worst = err;  // NaN propagates as a failure
  }
  return worst;
}

/// Ensures: a Catch2 failure unless every element of `got` matches `expected` within tolerances.
template <typename A, typename B>
void require_close(const char* what, const A* got, const B* expected, int64_t n, double atol,
                   double rtol) {
  INFO(what << ": normalized error (<= 1 passes)");
  CHECK(normalized_error(got, expected, n, atol, rtol) <= 1.0);
}

/// A tensor of `shape` with entries offset + scale * N(0,1), in the given precision.
template <typename T>
Tensor<T> random_tensor(const Shape& shape, uint64_t seed, double offset = 0.0, double scale = 1.0) {
  Rng rng(seed);
  return Tensor<T>::randn(shape, rng, static_cast<T>(offset), static_cast<T>(scale));
}

/// Ensures: a copy of `x` converted to precision U (e.g. float data for the double oracle).
template <typename U, typename T>
Tensor<U> convert(const Tensor<T>& x) {
  Tensor<U> y = Tensor<U>::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = static_cast<U>(x.data()[i]);
  return y;
}

}  // namespace normlab::testing
