// nn::Module<T>: the base of every layer. A module owns named parameters (tensors that require
// gradients, updated by an optimizer), named buffers (state that is saved but not trained, e.g.
// BatchNorm's running statistics) and named child modules, and has a train/eval mode that
// propagates to its children. forward() calls ops; the ops record the tape, so a module has no
// backward of its own.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "normlab/core/tensor.hpp"

namespace normlab::nn {

template <typename T>
class Module;

namespace detail {
/// Collects one row per module call while nn::summary() runs a forward pass.
template <typename T>
struct SummaryRecorder {
  struct Row {
    std::string type;
    Shape output;
    int64_t params;
  };
  std::vector<Row> rows;
};

template <typename T>
SummaryRecorder<T>*& active_summary() {
  thread_local SummaryRecorder<T>* recorder = nullptr;
  return recorder;
}
}  // namespace detail

template <typename T>
class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Ensures: the module's output for input x (recorded on the tape when gradients are on).
  virtual Tensor<T> forward(const Tensor<T>& x) = 0;
  /// A short description of the module and its configuration, e.g. "Conv2d(3, 16, k=3, s=1, p=1)".
  virtual std::string describe() const = 0;

  /// forward(x), plus one summary row when nn::summary() is recording.
  Tensor<T> operator()(const Tensor<T>& x) {
    Tensor<T> y = forward(x);
    if (auto* recorder = detail::active_summary<T>(); recorder && !is_container()) {
      int64_t own = 0;
      for (const auto& p : parameters_) own += p.second.numel();
      recorder->rows.push_back({describe(), y.shape(), own});
    }
    return y;
  }

  /// Every parameter of this module and its descendants, in registration order.
  std::vector<Tensor<T>> parameters() const {
    std::vector<Tensor<T>> out;
    for (auto& named : named_parameters()) out.push_back(named.second);
    return out;
  }
  /// (dotted path, tensor) for every parameter, e.g. ("block1.conv1.weight", ...).
  std::vector<std::pair<std::string, Tensor<T>>> named_parameters() const {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    collect(&Module::parameters_, "", out);
    return out;
  }
  /// (dotted path, tensor) for every buffer (running statistics), for checkpoints.
  std::vector<std::pair<std::string, Tensor<T>>> named_buffers() const {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    collect(&Module::buffers_, "", out);
    return out;
  }
  int64_t parameter_count() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
  }

  /// Ensures: this module and all descendants are in training (true) or evaluation mode.
  void train(bool on = true) {
    training_ = on;
    for (auto& child : children_) child.second->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Ensures: no parameter has a gradient (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
  }

  /// Requires: no parameter has a gradient (zero_grad() first); an optimizer made before keeps
  /// working (it holds the same tensors). Ensures: every parameter and buffer of this module and
  /// its descendants is on `device`, as PyTorch's module.to(device).
  void to(Device device) {
    for (auto& named : named_parameters()) named.second.move_to_(device);
    for (auto& named : named_buffers()) named.second.move_to_(device);
  }

  const std::vector<std::pair<std::string, std::shared_ptr<Module<T>>>>& children() const {
    return children_;
  }

 protected:
  /// Requires: a unique name. Ensures: `value` is a parameter (requires a gradient).
  Tensor<T> register_parameter(std::string name, Tensor<T> value) {
    value.set_requires_grad(true);
    parameters_.emplace_back(std::move(name), value);
    return value;
  }
  Tensor<T> register_buffer(std::string name, Tensor<T> value) {
    buffers_.emplace_back(std::move(name), value);
    return value;
  }
  template <typename M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    module->train(training_);
    children_.emplace_back(std::move(name), module);
    return module;
  }
  /// Containers (Sequential) are not rows of the summary: their children are.
  virtual bool is_container() const { return false; }

 private:
  using NamedTensors = std::vector<std::pair<std::string, Tensor<T>>>;
  void collect(NamedTensors Module::*member, const std::string& prefix, NamedTensors& out) const {
    for (const auto& named : this->*member) out.emplace_back(prefix + named.first, named.second);
    for (const auto& child : children_) child.second->collect(member, prefix + child.first + ".", out);
  }

  bool training_ = true;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module<T>>>> children_;
};

}  // namespace normlab::nn
