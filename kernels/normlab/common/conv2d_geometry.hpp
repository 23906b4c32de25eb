// Conv2dGeometry: the sizes of one 2-D convolution, shared by the CPU kernels
// (kernels/normlab/cpu/conv2d.hpp) and the CUDA launchers (kernels/normlab/cuda/conv2d.cuh). Plain
// host code: the CUDA launchers convert it to 32-bit device sizes.
#pragma once

#include <cstdint>

namespace normlab {

/// Sizes of one conv2d call: input [batch, in_channels, height, width], weight [out_channels,
/// in_channels, kernel_h, kernel_w], zero padding on every side, the same stride along H and W.
struct Conv2dGeometry {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t stride, padding;

  int64_t out_height() const { return (height + 2 * padding - kernel_h) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel_w) / stride + 1; }
  int64_t out_pixels() const { return out_height() * out_width(); }
  int64_t in_pixels() const { return height * width; }
  /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
  int64_t patch_size() const { return in_channels * kernel_h * kernel_w; }

  // The CPU kernels' padded grid (see kernels/normlab/cpu/conv2d.hpp).
  int64_t padded_height() const { return height + 2 * padding; }
  int64_t padded_width() const { return width + 2 * padding; }
  int64_t padded_pixels() const { return padded_height() * padded_width(); }
  /// Columns of the im2col matrix on the padded grid.
  int64_t grid_pixels() const { return (out_height() - 1) * padded_width() + out_width(); }
  /// The output layout is the grid layout when every grid column is a real output.
  bool output_is_grid() const { return out_width() == padded_width(); }
};

}  // namespace normlab
