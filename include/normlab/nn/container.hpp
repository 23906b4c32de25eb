// Containers: Sequential (modules applied in order) and Residual (body(x) + shortcut(x), the
// shortcut being the identity when absent).
#pragma once

#include <memory>
#include <string>

#include "normlab/nn/module.hpp"
#include "normlab/ops/elementwise.hpp"

namespace normlab::nn {

template <typename T>
class Sequential : public Module<T> {
 public:
  Sequential() = default;

  /// Ensures: `module` runs after the ones added before; named by its position unless `name` is given.
  template <typename M>
  std::shared_ptr<M> add(std::shared_ptr<M> module, std::string name = "") {
    if (name.empty()) name = std::to_string(this->children().size());
    return this->register_module(std::move(name), std::move(module));
  }
  /// Ensures: constructs M(args...) and adds it.
  template <typename M, typename... Args>
  std::shared_ptr<M> emplace(Args&&... args) {
    return add(std::make_shared<M>(std::forward<Args>(args)...));
  }

  Tensor<T> forward(const Tensor<T>& x) override {
    Tensor<T> y = x;
    for (auto& child : this->children()) y = (*child.second)(y);
    return y;
  }
  std::string describe() const override { return "Sequential"; }
  size_t size() const { return this->children().size(); }

 protected:
  bool is_container() const override { return true; }
};

template <typename T>
class Residual : public Module<T> {
 public:
  /// Requires: body and shortcut map the same input to outputs of the same shape.
  Residual(std::shared_ptr<Module<T>> body, std::shared_ptr<Module<T>> shortcut)
      : body_(this->register_module("body", std::move(body))) {
    if (shortcut) shortcut_ = this->register_module("shortcut", std::move(shortcut));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    Tensor<T> main = (*body_)(x);
    return ops::add(main, shortcut_ ? (*shortcut_)(x) : x);
  }
  std::string describe() const override { return "Residual add"; }

 private:
  std::shared_ptr<Module<T>> body_, shortcut_;
};

}  // namespace normlab::nn
