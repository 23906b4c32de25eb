// Layers without normalisation: Conv2d, ReLU, Dropout, MaxPool2d, AdaptiveAvgPool2d (to 1x1),
// Flatten, LogSoftmax. Each is a thin owner of parameters/configuration that calls one op.
#pragma once

#include <cmath>
#include <string>

#include "normlab/core/rng.hpp"
#include "normlab/nn/module.hpp"
#include "normlab/ops/conv.hpp"
#include "normlab/ops/elementwise.hpp"
#include "normlab/ops/loss.hpp"
#include "normlab/ops/pool.hpp"

namespace normlab::nn {

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  bool bias = true;
};

/// 2-D convolution, weight [out, in, k, k], PyTorch's default initialisation: weight and bias
/// uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)] (kaiming_uniform with a = sqrt(5)).
template <typename T>
class Conv2d : public Module<T> {
 public:
  /// Requires: positive channel counts and kernel size.
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Conv2dOptions options = {},
         Rng& rng = default_rng())
      : in_(in_channels), out_(out_channels), kernel_(kernel_size), options_(options) {
    NORMLAB_CHECK(in_channels > 0 && out_channels > 0 && kernel_size > 0,
                  "Conv2d: channels and kernel size must be positive, got in=", in_channels,
                  " out=", out_channels, " kernel=", kernel_size);
    const T bound = static_cast<T>(1.0 / std::sqrt(static_cast<double>(in_channels * kernel_size * kernel_size)));
    weight_ = this->register_parameter(
        "weight", Tensor<T>::uniform({out_channels, in_channels, kernel_size, kernel_size}, rng, -bound, bound));
    if (options.bias) bias_ = this->register_parameter("bias", Tensor<T>::uniform({out_channels}, rng, -bound, bound));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return ops::conv2d(x, weight_, bias_, options_.stride, options_.padding);
  }
  std::string describe() const override {
    return "Conv2d(" + std::to_string(in_) + ", " + std::to_string(out_) + ", k=" +
           std::to_string(kernel_) + ", s=" + std::to_string(options_.stride) +
           ", p=" + std::to_string(options_.padding) + (options_.bias ? ")" : ", no bias)");
  }
  const Tensor<T>& weight() const { return weight_; }
  const Tensor<T>& bias() const { return bias_; }

 private:
  int64_t in_, out_, kernel_;
  Conv2dOptions options_;
  Tensor<T> weight_, bias_;
};

template <typename T>
class ReLU : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return ops::relu(x); }
  std::string describe() const override { return "ReLU"; }
};

/// Inverted dropout in training mode, identity in evaluation mode. Draws its masks from `rng`
/// (by default the process-wide generator), which must outlive the module.
template <typename T>
class Dropout : public Module<T> {
 public:
  /// Requires: 0 <= p < 1.
  explicit Dropout(double p, Rng& rng = default_rng()) : p_(p), rng_(&rng) {
    NORMLAB_CHECK(p >= 0.0 && p < 1.0, "Dropout: probability must be in [0, 1), got ", p);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return ops::dropout(x, p_, this->is_training(), *rng_); }
  std::string describe() const override { return "Dropout(p=" + format_probability() + ")"; }

 private:
  std::string format_probability() const {
    std::string s = std::to_string(p_);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
    return s;
  }
  double p_;
  Rng* rng_;
};

template <typename T>
class MaxPool2d : public Module<T> {
 public:
  /// Requires: kernel, stride > 0 (stride defaults to the kernel size, as in PyTorch).
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0) : kernel_(kernel), stride_(stride ? stride : kernel) {
    NORMLAB_CHECK(kernel > 0 && stride_ > 0, "MaxPool2d: kernel and stride must be positive, got ",
                  kernel, ", ", stride_);
  }
  Tensor<T> forward(const Tensor<T>& x) override { return ops::max_pool2d(x, kernel_, stride_); }
  std::string describe() const override {
    return "MaxPool2d(k=" + std::to_string(kernel_) + ", s=" + std::to_string(stride_) + ")";
  }

 private:
  int64_t kernel_, stride_;
};

/// Adaptive average pooling to a 1x1 output: [N, C, H, W] -> [N, C, 1, 1].
template <typename T>
class AdaptiveAvgPool2d : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return ops::global_avg_pool2d(x); }
  std::string describe() const override { return "AdaptiveAvgPool2d(1)"; }
};

/// [N, d1, d2, ...] -> [N, d1 * d2 * ...].
template <typename T>
class Flatten : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override {
    NORMLAB_CHECK(x.rank() >= 1, "Flatten: input must have a batch axis, got shape ", x.shape().str());
    return ops::reshape(x, Shape{x.size(0), x.numel() / std::max<int64_t>(x.size(0), 1)});
  }
  std::string describe() const override { return "Flatten"; }
};

/// log_softmax over axis 1 of [N, K].
template <typename T>
class LogSoftmax : public Module<T> {
 public:
  Tensor<T> forward(const Tensor<T>& x) override { return ops::log_softmax(x); }
  std::string describe() const override { return "LogSoftmax(dim=1)"; }
};

}  // namespace normlab::nn
