// Stochastic gradient descent with momentum, weight decay and Nesterov momentum, with
// torch.optim.SGD's semantics: for each parameter p with a gradient g,
//
//   d = g + weight_decay * p
//   buf = d on the first step, else momentum * buf + (1 - dampening) * d      (if momentum > 0)
//   d = d + momentum * buf if nesterov, else buf                               (if momentum > 0)
//   p -= lr * d
//
// Parameters without a gradient are skipped (their momentum buffer is created on their first
// step with one). The update runs in the kernel of the parameter's device (ops/backend.hpp:
// kernels/normlab/cpu/sgd.hpp or cuda/sgd.cuh), one pass per parameter; momentum buffers are
// allocated on their parameter's device on its first step and reused after.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/ops/cpu_backend.hpp"

namespace normlab::optim {

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

template <typename T>
class Sgd {
 public:
  /// Requires: at least one parameter, each defined, on a device with kernels and listed once; lr >= 0,
  /// momentum >= 0, weight_decay >= 0; nesterov only with momentum > 0 and dampening == 0
  /// (PyTorch's checks). Ensures: no momentum buffers yet.
  Sgd(std::vector<Tensor<T>> params, SgdOptions options)
      : params_(std::move(params)), options_(options), buffers_(params_.size()) {
    NORMLAB_CHECK(!params_.empty(), "Sgd: empty parameter list");
    for (size_t i = 0; i < params_.size(); ++i) {
      NORMLAB_CHECK(params_[i].defined(), "Sgd: parameter ", i, " is an undefined tensor");
      ops::detail::backend_for<T>("Sgd", params_[i].device());
      for (size_t j = 0; j < i; ++j) {
        NORMLAB_CHECK(!params_[i].same(params_[j]), "Sgd: parameter ", i, " of shape ",
                      params_[i].shape().str(), " is the same tensor as parameter ", j);
      }
    }
    NORMLAB_CHECK(options_.lr >= 0.0, "Sgd: invalid learning rate ", options_.lr);
    NORMLAB_CHECK(options_.momentum >= 0.0, "Sgd: invalid momentum ", options_.momentum);
    NORMLAB_CHECK(options_.weight_decay >= 0.0, "Sgd: invalid weight_decay ",
                  options_.weight_decay);
    NORMLAB_CHECK(!options_.nesterov || (options_.momentum > 0.0 && options_.dampening == 0.0),
                  "Sgd: Nesterov momentum requires momentum > 0 and zero dampening (got momentum ",
                  options_.momentum, ", dampening ", options_.dampening, ")");
  }

  /// Ensures: every parameter with a gradient has taken one SGD step (see the file comment);
  /// parameters without one are unchanged. Allocates only the momentum buffers that do not
  /// exist yet.
  void step() {
    const bool with_momentum = options_.momentum != 0.0;
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor<T>& p = params_[i];
      if (!p.has_grad()) continue;
      SgdCoefficients<T> c{static_cast<T>(options_.lr),
                                static_cast<T>(options_.weight_decay),
                                static_cast<T>(options_.momentum),
                                static_cast<T>(options_.momentum),
                                static_cast<T>(1.0 - options_.dampening),
                                options_.nesterov};
      if (with_momentum && !buffers_[i].defined()) {
        // PyTorch's first step: buf = d. From a zeroed buffer: 0 * 0 + 1 * d.
        buffers_[i] = Tensor<T>::zeros(p.shape(), p.device());
        c.buffer_momentum = T(0);
        c.buffer_keep = T(1);
      }
      ops::detail::backend_for<T>("Sgd::step", p.device())
          .sgd_update(p.data(), p.grad().data(), with_momentum ? buffers_[i].data() : nullptr,
                      p.numel(), c);
    }
  }

  /// Ensures: no parameter has a gradient (PyTorch's zero_grad(set_to_none=True)); the next
  /// backward writes them afresh.
  void zero_grad() {
    for (const Tensor<T>& p : params_) p.zero_grad();
  }

  double lr() const { return options_.lr; }
  /// Requires: lr >= 0. Ensures: the next step() uses it.
  void set_lr(double lr) {
    NORMLAB_CHECK(lr >= 0.0, "Sgd::set_lr: invalid learning rate ", lr);
    options_.lr = lr;
  }
  const SgdOptions& options() const { return options_; }
  const std::vector<Tensor<T>>& params() const { return params_; }

  /// One entry per parameter, undefined where no buffer exists yet (before a parameter's first
  /// step, or always without momentum). The tensors are the live buffers (for checkpoints).
  const std::vector<Tensor<T>>& momentum_buffers() const { return buffers_; }

  /// Requires: one entry per parameter, each undefined or a tensor of its parameter's shape and
  /// device.
  /// Ensures: the optimizer continues from these buffers (it keeps the tensors, not copies);
  /// undefined entries start afresh (buf = d) on their parameter's next step.
  void set_momentum_buffers(std::vector<Tensor<T>> buffers) {
    NORMLAB_CHECK(buffers.size() == params_.size(), "Sgd::set_momentum_buffers: ", buffers.size(),
                  " buffers for ", params_.size(), " parameters");
    for (size_t i = 0; i < buffers.size(); ++i) {
      if (!buffers[i].defined()) continue;
      NORMLAB_CHECK(buffers[i].shape() == params_[i].shape() && buffers[i].device() == params_[i].device(),
                    "Sgd::set_momentum_buffers: buffer ", i, " has shape ",
                    buffers[i].shape().str(), " on ", buffers[i].device().str(), ", parameter ", i,
                    " has shape ", params_[i].shape().str(), " on ", params_[i].device().str());
    }
    buffers_ = std::move(buffers);
  }

 private:
  std::vector<Tensor<T>> params_;
  SgdOptions options_;
  std::vector<Tensor<T>> buffers_;
};

}  // namespace normlab::optim
