// The LayerNorms of kernels/normlab/cuda/layer_norm.cuh against the double oracle
// (support/norm_check.hpp, the CPU kernels' tolerances):
//  - the comparison's LayerNorm (over (C, H, W), per-channel affine): GroupNorm with one group;
//  - the last-dimension LayerNorm on [rows, D]. Its oracle is the same one: a [rows, D] LayerNorm
//    is GroupNorm with one group on [rows, D, 1, 1] (a row is a sample, a column a channel with its
//    own gamma and beta), so oracle::norm_statistics / norm_forward / norm_backward with
//    group_norm_grouping(shape, 1) compute it in double, and cpu::group_norm_forward with G = 1,
//    HW = 1 is its CPU reference. Each of the three kernels (warp per row, block per row with the
//    row in shared memory, uncached) runs on rows of 1 to 1024 elements (packs of 4 and single
//    elements, partial warps of columns), one or several rows per worker, on normal, offset and
//    constant data, with and without affine and fused ReLU (the oracle's y through ReLU, its
//    backward with dy masked by y > 0); a misaligned row start (x, dy, y, dx) falls back to single
//    elements (same results up to the order of the float sums).
#include <algorithm>
#include <array>
#include <vector>

#include "cuda/cuda_norm_ops.hpp"
#include "cuda/cuda_test.hpp"
#include "oracle/norm.hpp"
#include "support/norm_check.hpp"

using namespace normlab;
using testing::NormCase;
using testing::NormData;

namespace {

testing::NormUnderTest cuda_layer_norm_under_test(const NormCase& c,
                                                  const cuda::NormLaunchConfig& config) {
  const oracle::NormShape s = c.shape;
  const bool fuse_relu = c.fuse_relu;
  testing::CudaNormKernels kernels;
  kernels.statistics_count = s.N;
  kernels.forward = [=](const testing::DeviceForward& f) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::layer_norm_forward_workspace_bytes<float>(s.N, s.C, s.plane(), config));
    cuda::layer_norm_forward(f.x.data(), testing::data_or_null(f.gamma),
                             testing::data_or_null(f.beta), f.y.data(), f.mean.data(),
                             f.rstd.data(), s.N, s.C, s.plane(), 1e-5, fuse_relu, workspace.data(),
                             nullptr, config);
  };
  kernels.backward = [=](const testing::DeviceForward& f, const testing::DeviceBackward& b) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::layer_norm_backward_workspace_bytes<float>(s.N, s.C, s.plane(), config));
    cuda::layer_norm_backward(f.x.data(), testing::data_or_null(b.relu_output), b.dy.data(),
                              testing::data_or_null(f.gamma), f.mean.data(), f.rstd.data(), b.dx,
                              b.dgamma, b.dbeta, s.N, s.C, s.plane(), workspace.data(), nullptr,
                              config);
  };
  return testing::device_norm_under_test("cuda layer_norm", kernels, fuse_relu,
                                         oracle::group_norm_grouping(s, 1));
}

/// The last-dimension LayerNorm of case c, whose shape is [rows, D, 1, 1].
testing::NormUnderTest cuda_last_dim_under_test(const NormCase& c,
                                                const cuda::LastDimLayerNormConfig& config) {
  const int64_t rows = c.shape.N, D = c.shape.C;
  const bool fuse_relu = c.fuse_relu;
  testing::CudaNormKernels kernels;
  kernels.statistics_count = rows;
  kernels.forward = [=](const testing::DeviceForward& f) {
    cuda::last_dim_layer_norm_forward(f.x.data(), testing::data_or_null(f.gamma),
                                      testing::data_or_null(f.beta), f.y.data(), f.mean.data(),
                                      f.rstd.data(), rows, D, 1e-5, fuse_relu, nullptr, config);
  };
  kernels.backward = [=](const testing::DeviceForward& f, const testing::DeviceBackward& b) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::last_dim_layer_norm_backward_workspace_bytes<float>(rows, D, config));
    cuda::last_dim_layer_norm_backward(f.x.data(), testing::data_or_null(b.relu_output),
                                       b.dy.data(), testing::data_or_null(f.gamma), f.mean.data(),
                                       f.rstd.data(), b.dx, b.dgamma, b.dbeta, rows, D,
                                       workspace.data(), nullptr, config);
  };
  return testing::device_norm_under_test("cuda last_dim_layer_norm", kernels, fuse_relu,
                                         oracle::group_norm_grouping(c.shape, 1));
}

struct Path {
  const char* name;
  cuda::LastDimLayerNormConfig config;
  std::vector<int64_t> lengths;  // D
};

/// Each kernel with one worker per row (up to 256) and with two workers for all rows.
std::vector<Path> paths() {
  const std::vector<int64_t> warp_lengths = {1, 3, 4, 33, 100, 130, 257, 1024};
  const std::vector<int64_t> block_lengths = {1, 3, 100, 301};
  return {{"warp per row", {}, warp_lengths},
          {"warp per row, 2 workers", {1024, 48 * 1024, 2}, warp_lengths},
          {"block per row, cached", {0, 48 * 1024, 256}, block_lengths},
          {"block per row, cached, 2 workers", {0, 48 * 1024, 2}, block_lengths},
          {"block per row, uncached", {0, 0, 256}, block_lengths},
          {"block per row, uncached, 2 workers", {0, 0, 2}, block_lengths}};
}

}  // namespace

TEST_CASE("layer_norm (GroupNorm with one group) matches the oracle", "[cuda][layer_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const cuda::NormLaunchConfig& config : {cuda::NormLaunchConfig{}, cuda::NormLaunchConfig{5}})
    for (const oracle::NormShape& s :
         {oracle::NormShape{2, 6, 3, 3}, oracle::NormShape{1, 5, 7, 1}})
      for (const NormCase& c : testing::cases_of_shape(s, {{true}})) {
        INFO("chunk " << config.chunk);
        testing::check_norm_against_oracle(cuda_layer_norm_under_test(c, config), c);
      }
}

TEST_CASE("last-dimension layer norm matches the oracle with each kernel, with and without ReLU",
          "[cuda][layer_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const Path& path : paths())
    for (int64_t D : path.lengths)
      for (int64_t rows : {1, 5})
        for (const NormCase& c : testing::cases_of_shape({rows, D, 1, 1})) {
          INFO(path.name << ": " << rows << " rows of " << D);
          testing::check_norm_against_oracle(cuda_last_dim_under_test(c, path.config), c);
        }
}

TEST_CASE("last-dimension layer norm works from a misaligned row start", "[cuda][layer_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  // Rows of 8 starting one float past a 16-byte boundary cannot use packs: the warp kernel
  // falls back to single elements, the block kernels to scalar heads and tails. Forward and
  // backward, with and without the fused ReLU (whose saved y is then misaligned too).
  const int64_t rows = 3, D = 8, n = rows * D;
  /// The same n values at a 16-byte boundary (offset 0) and one float past it (offset 1).
  const auto at_both_offsets = [&](uint64_t seed) {
    const Tensor<float> host = testing::random_tensor<float>({n + 1}, seed);
    return std::array<Tensor<float>, 2>{
        Tensor<float>::from_data({n}, std::vector<float>(host.data() + 1, host.data() + 1 + n))
            .to(Device::cuda()),
        host.to(Device::cuda())};
  };
  const std::array<Tensor<float>, 2> x = at_both_offsets(12), dy = at_both_offsets(14);
  const Tensor<float> gamma = testing::random_tensor<float>({D}, 13, 1.0, 0.5).to(Device::cuda());
  for (const Path& path : paths())
    for (bool relu : {false, true}) {
      INFO(path.name << (relu ? ", fused ReLU" : ""));
      // y and dx of the inputs at `offset`, written at that offset too.
      auto run = [&](int offset) {
        const Tensor<float> y = Tensor<float>::empty({n + 1}, Device::cuda()),
                            dx = Tensor<float>::empty({n + 1}, Device::cuda());
        const Tensor<double> stats = Tensor<double>::empty({2 * rows}, Device::cuda());
        float *y_at = y.data() + offset, *dx_at = dx.data() + offset;
        cuda::last_dim_layer_norm_forward<float>(x[offset].data() + offset, gamma.data(), nullptr,
                                                 y_at, stats.data(), stats.data() + rows, rows, D,
                                                 1e-5, relu, nullptr, path.config);
        cuda::last_dim_layer_norm_backward<float>(x[offset].data() + offset, relu ? y_at : nullptr,
                                                  dy[offset].data() + offset, gamma.data(),
                                                  stats.data(), stats.data() + rows, {dx_at, false},
                                                  {}, {}, rows, D, nullptr, nullptr, path.config);
        const std::vector<float> host_y = y.to(Device::cpu()).to_vector(),
                                 host_dx = dx.to(Device::cpu()).to_vector();
        return std::array<std::vector<float>, 2>{
            std::vector<float>(host_y.begin() + offset, host_y.begin() + offset + n),
            std::vector<float>(host_dx.begin() + offset, host_dx.begin() + offset + n)};
      };
      // Another split of the row may change the order of the float sums: equal to the
      // tolerances of the oracle checks, not to the bit.
      const auto expected = run(0), got = run(1);
      testing::require_close("y from a misaligned row", got[0].data(), expected[0].data(), n,
                             2 * testing::kOutputTolerance, 2 * testing::kOutputTolerance);
      testing::require_close("dx from a misaligned row", got[1].data(), expected[1].data(), n,
                             4 * testing::kGradientTolerance, 4 * testing::kGradientTolerance);
      if (relu) CHECK(std::count(got[0].begin(), got[0].end(), 0.0f) > 0);
    }
}

TEST_CASE("layer norms reject bad arguments with the op and sizes in the message",
          "[cuda][layer_norm][errors]") {
  using Catch::Contains;
  const testing::ErrorTestBuffers buffers(12, 4);
  float* p = buffers.p;
  double* d = buffers.d;
  REQUIRE_THROWS_WITH(cuda::layer_norm_forward<float>(p, nullptr, nullptr, p, d, d, 2, 0, 3, 1e-5,
                                                      false, buffers.workspace),
                      Contains("cuda::layer_norm_forward") && Contains("C = 0"));
  REQUIRE_THROWS_WITH(
      cuda::last_dim_layer_norm_forward<float>(p, nullptr, nullptr, p, d, d, 0, 4, 1e-5, true),
      Contains("cuda::last_dim_layer_norm_forward") && Contains("rows = 0"));
  REQUIRE_THROWS_WITH(cuda::last_dim_layer_norm_forward<float>(p, nullptr, nullptr, p, d, d,
                                                               int64_t(1) << 31, 4, 1e-5, false),
                      Contains("rows = 2147483648"));
  REQUIRE_THROWS_WITH(
      cuda::last_dim_layer_norm_forward<float>(p, nullptr, nullptr, p, d, d, 3, 4, -1.0, false),
      Contains("eps"));
  REQUIRE_THROWS_WITH(cuda::last_dim_layer_norm_backward<float>(p, p, p, nullptr, d, d, {p, false},
                                                                {p, false}, {}, 3, 4, nullptr),
                      Contains("cuda::last_dim_layer_norm_backward") && Contains("'workspace'"));
  REQUIRE_THROWS_WITH(cuda::last_dim_layer_norm_backward<float>(p, p, nullptr, nullptr, d, d, {},
                                                                {}, {}, 3, 4, nullptr),
                      Contains("'dy'"));
}
