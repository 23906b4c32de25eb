// Shape: the extents of a tensor, outermost first (NCHW for images).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) { validate(); }
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) { validate(); }

  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  /// Requires: -rank() <= axis < rank(). Negative axes count from the end.
  int64_t operator[](int64_t axis) const { return dims_[normalize_axis(axis)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  const std::vector<int64_t>& dims() const { return dims_; }
  bool operator==(const Shape& other) const { return dims_ == other.dims_; }
  bool operator!=(const Shape& other) const { return dims_ != other.dims_; }

  std::string str() const {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < dims_.size(); ++i) out << (i ? ", " : "") << dims_[i];
    out << ']';
    return out.str();
  }

 private:
  void validate() const {
    for (int64_t d : dims_) NORMLAB_CHECK(d >= 0, "Shape: negative extent in ", str());
  }
  size_t normalize_axis(int64_t axis) const {
    const int64_t r = rank();
    NORMLAB_CHECK(axis >= -r && axis < r, "Shape: axis ", axis, " out of range for ", str());
    return static_cast<size_t>(axis < 0 ? axis + r : axis);
  }
  std::vector<int64_t> dims_;
};

inline std::ostream& operator<<(std::ostream& out, const Shape& shape) { return out << shape.str(); }

}  // namespace normlab
