// Tensor<T>: an n-d array of T (float or double) on one device: a shape plus shared ownership of
// contiguous row-major storage (NCHW for images). Copying a Tensor copies the handle, not the
// data, as in PyTorch; clone() copies the data. A tensor that requires_grad() receives its
// gradient in grad() when autograd::backward() runs (see include/normlab/autograd/tape.hpp).
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include "normlab/core/device.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/rng.hpp"
#include "normlab/core/shape.hpp"
#include "normlab/core/storage.hpp"

namespace normlab {

namespace detail {
template <typename T>
struct TensorImpl;
}

template <typename T>
class Tensor {
  static_assert(std::is_floating_point_v<T>, "Tensor<T>: T must be a floating-point type");

 public:
  using value_type = T;

  /// An undefined tensor (no shape, no storage); defined() is false.
  Tensor() = default;

  /// Ensures: a tensor of `shape` on `device` with uninitialised contents.
  static Tensor empty(const Shape& shape, Device device = Device::cpu()) {
    Tensor t;
    t.impl_ = std::make_shared<detail::TensorImpl<T>>();
    t.impl_->shape = shape;
    t.impl_->storage = std::make_shared<Storage<T>>(static_cast<size_t>(shape.numel()), device);
    return t;
  }
  static Tensor full(const Shape& shape, T value, Device device = Device::cpu()) {
    Tensor t = empty(shape, device);
    t.fill_(value);
    return t;
  }
  static Tensor zeros(const Shape& shape, Device device = Device::cpu()) { return full(shape, T(0), device); }
  static Tensor ones(const Shape& shape, Device device = Device::cpu()) { return full(shape, T(1), device); }

  /// Requires: values.size() == shape.numel().
  static Tensor from_data(const Shape& shape, const std::vector<T>& values) {
    NORMLAB_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from_data: ",
                  values.size(), " values for shape ", shape.str(), " (", shape.numel(), " elements)");
    Tensor t = empty(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  /// Ensures: independent draws from N(mean, stddev^2), in element order from `rng`.
  static Tensor randn(const Shape& shape, Rng& rng, T mean = T(0), T stddev = T(1)) {
    Tensor t = empty(shape);
    T* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(mean + stddev * rng.normal());
    return t;
  }
  /// Ensures: independent draws from U[low, high), in element order from `rng`.
  static Tensor uniform(const Shape& shape, Rng& rng, T low, T high) {
    Tensor t = empty(shape);
    T* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(low + (high - low) * rng.uniform_double());
    return t;
  }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return checked().shape; }
  int64_t rank() const { return shape().rank(); }
  int64_t size(int64_t axis) const { return shape()[axis]; }
  int64_t numel() const { return shape().numel(); }
  Device device() const { return checked().storage->device(); }

  /// The first element of the contiguous storage. A Tensor is a handle: constness of the
  /// handle does not make the data read-only (as in PyTorch).
  T* data() const { return checked().storage->data(); }

  /// Requires: a CPU tensor and an in-range index with one entry per axis.
  T& at(std::initializer_list<int64_t> index) const {
    require_cpu("Tensor::at");
    const Shape& s = shape();
    NORMLAB_CHECK(static_cast<int64_t>(index.size()) == s.rank(), "Tensor::at: ", index.size(),
                  " indices for a tensor of shape ", s.str());
    int64_t offset = 0, axis = 0;
    for (int64_t i : index) {
      NORMLAB_CHECK(i >= 0 && i < s[axis], "Tensor::at: index ", i, " out of range on axis ", axis,
                    " of shape ", s.str());
      offset = offset * s[axis] + i;
      ++axis;
    }
    return data()[offset];
  }
  /// Requires: numel() == 1. Ensures: the element, copied to the host from any device.
  T item() const {
    NORMLAB_CHECK(numel() == 1, "Tensor::item: tensor of shape ", shape().str(), " has ", numel(),
                  " elements, expected 1");
    T value;
    copy_bytes(&value, Device::cpu(), data(), device(), sizeof(T));
    return value;
  }
  /// Ensures: the elements in order, copied to the host from any device.
  std::vector<T> to_vector() const {
    std::vector<T> values(static_cast<size_t>(numel()));
    copy_bytes(values.data(), Device::cpu(), data(), device(), sizeof(T) * values.size());
    return values;
  }

  /// Ensures: every element is `value` (on a device: written from a host buffer).
  void fill_(T value) const {
    if (device().is_cpu()) {
      std::fill(data(), data() + numel(), value);
    } else {
      const std::vector<T> values(static_cast<size_t>(numel()), value);
      copy_bytes(data(), device(), values.data(), Device::cpu(), sizeof(T) * values.size());
    }
  }
  /// Requires: same shape (the devices may differ). Ensures: this tensor's data equals `other`'s.
  void copy_(const Tensor& other) const {
    NORMLAB_CHECK(other.shape() == shape(), "Tensor::copy_: shape ", other.shape().str(),
                  " into ", shape().str());
    copy_bytes(data(), device(), other.data(), other.device(), sizeof(T) * numel());
  }
  /// Ensures: a new tensor with a copy of the data, not tracked by autograd.
  Tensor clone() const {
    Tensor t = empty(shape(), device());
    t.copy_(*this);
    return t;
  }
  /// Ensures: this tensor if it is on `device` already, else a copy of it on `device`; like
  /// clone(), the copy is not tracked by autograd.
  Tensor to(Device device) const {
    if (device == this->device()) return *this;
    Tensor t = empty(shape(), device);
    t.copy_(*this);
    return t;
  }
  /// Ensures: this tensor's data is on `device` (copied there unless it is already), seen by every
  /// handle of this tensor; views made earlier keep the old data. Like PyTorch's
  /// `param.data = param.data.to(device)`: how modules move their parameters. Requires: no
  /// gradient (it would be left on the old device).
  void move_to_(Device device) const {
    if (device == this->device()) return;
    NORMLAB_CHECK(!has_grad(), "Tensor::move_to_: tensor of shape ", shape().str(),
                  " has a gradient on ", this->device().str(), "; call zero_grad() first");
    auto moved = std::make_shared<Storage<T>>(static_cast<size_t>(numel()), device);
    copy_bytes(moved->data(), device, data(), this->device(), sizeof(T) * numel());
    checked().storage = std::move(moved);
  }
  /// Ensures: a tensor sharing this one's data, with no gradient and requires_grad() false.
  Tensor detach() const {
    Tensor t;
    t.impl_ = std::make_shared<detail::TensorImpl<T>>();
    t.impl_->shape = shape();
    t.impl_->storage = checked().storage;
    return t;
  }
  /// Requires: new_shape.numel() == numel(). Ensures: a detached tensor sharing the data.
  /// (ops::reshape is the differentiable version.)
  Tensor view(const Shape& new_shape) const {
    NORMLAB_CHECK(new_shape.numel() == numel(), "Tensor::view: cannot view shape ", shape().str(),
                  " as ", new_shape.str());
    Tensor t = detach();
    t.impl_->shape = new_shape;
    return t;
  }

  // ---- autograd -------------------------------------------------------------------------------
  bool requires_grad() const { return defined() && impl_->requires_grad; }
  /// Ensures: backward() will compute this tensor's gradient (for leaves: parameters, inputs).
  Tensor& set_requires_grad(bool on = true) {
    checked().requires_grad = on;
    return *this;
  }
  bool has_grad() const { return defined() && impl_->grad.defined(); }
  /// The accumulated gradient (undefined if none has been computed since the last zero_grad).
  Tensor grad() const { return checked().grad; }
  /// Ensures: has_grad() is false (the next backward writes the gradient afresh).
  void zero_grad() const { checked().grad = Tensor(); }
  /// Requires: g has this tensor's shape. Ensures: grad() is g.
  void set_grad(const Tensor& g) const {
    NORMLAB_CHECK(g.shape() == shape(), "Tensor::set_grad: gradient of shape ", g.shape().str(),
                  " for a tensor of shape ", shape().str());
    checked().grad = g;
  }

  /// True when both handles refer to the same tensor.
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  detail::TensorImpl<T>& checked() const {
    NORMLAB_CHECK(impl_ != nullptr, "use of an undefined Tensor");
    return *impl_;
  }
  void require_cpu(const char* what) const {
    NORMLAB_CHECK(device().is_cpu(), what, ": needs a CPU tensor, this one is on ", device().str());
  }

  std::shared_ptr<detail::TensorImpl<T>> impl_;
};

namespace detail {
template <typename T>
struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage<T>> storage;
  bool requires_grad = false;
  Tensor<T> grad;
};
}  // namespace detail

}  // namespace normlab
