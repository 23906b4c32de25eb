// What the norm benchmarks measure and how they count bytes, shared by bench_norms (the CPU
// kernels) and bench_norms_cuda (the CUDA kernels, cuDNN and the CPU kernels side by side), so
// that both report GB/s of the same bytes. Plain C++: nvcc compiles it too.
#pragma once

#include <cstdint>
#include <string>

namespace normlab::bench {

/// Training-mode eps and BatchNorm's running-statistics momentum of every norm benchmark.
constexpr double kEps = 1e-5, kMomentum = 0.1;

/// An NCHW input; the last-dimension LayerNorm's [rows, D] is {rows, D, 1, 1}.
struct NormShape {
  int64_t n, c, h, w;
  int64_t numel() const { return n * c * h * w; }
  /// Ensures: the bytes of one float32 tensor of this shape.
  int64_t tensor_bytes() const { return numel() * static_cast<int64_t>(sizeof(float)); }
};

struct NormKind {
  const char* name;  // bn, gn, ln, ...
  int64_t groups;    // 0 for BatchNorm
};

/// The byte convention: one count of each tensor a pass logically reads or writes (4 bytes per
/// element); gamma, beta, the statistics and the running statistics are not counted.
struct PassTraffic {
  int64_t tensors_moved;    // bytes = tensors_moved * numel * sizeof(float)
  int64_t tensors_touched;  // distinct tensors: the pass's working set
};
/// Requires: pass is "forward", "backward" or "forward_backward".
inline PassTraffic traffic(const std::string& pass, bool relu) {
  const int64_t backward = relu ? 4 : 3;  // read x, dy (, y) + write dx
  if (pass == "forward") return {2, 2};   // read x + write y
  if (pass == "backward") return {backward, backward};
  return {2 + backward, 4};  // forward_backward: x, y, dy, dx
}

/// The convention as the benchmarks print it.
constexpr const char* kByteConvention =
    "bytes counted (float32): forward = read x + write y; backward = read x, dy (and y when the "
    "ReLU is fused) + write dx; forward_backward = the sum; gamma, beta and statistics not "
    "counted. GB/s = bytes / median time, 1 GB = 1e9 bytes.";

}  // namespace normlab::bench
