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
//    constant data; a misaligned row start falls back to single elements (same results up to the
//    order of the float sums).
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
  kernels.forward = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                        const Tensor<float>& beta, const Tensor<float>& y,
                        const Tensor<double>& mean, const Tensor<double>& rstd) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::layer_norm_forward_workspace_bytes<float>(s.N, s.C, s.plane(), config));
    cuda::layer_norm_forward(x.data(), testing::data_or_null(gamma), testing::data_or_null(beta),
                             y.data(), mean.data(), rstd.data(), s.N, s.C, s.plane(), 1e-5,
                             fuse_relu, workspace.data(), nullptr, config);
  };
  kernels.backward = [=](const Tensor<float>& x, const Tensor<float>& relu_output,
                         const Tensor<float>& dy, const Tensor<float>& gamma,
                         const Tensor<double>& mean, const Tensor<double>& rstd,
                         cuda::GradientOut<float> dx, cuda::GradientOut<float> dgamma,
                         cuda::GradientOut<float> dbeta) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::layer_norm_backward_workspace_bytes<float>(s.N, s.C, s.plane(), config));
    cuda::layer_norm_backward(x.data(), testing::data_or_null(relu_output), dy.data(),
                              testing::data_or_null(gamma), mean.data(), rstd.data(), dx, dgamma,
                              dbeta, s.N, s.C, s.plane(), workspace.data(), nullptr, config);
  };
  testing::NormUnderTest t;
  t.grouping = oracle::group_norm_grouping(s, 1);
  t.op = [=](const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta) {
    return testing::device_norm_op("cuda layer_norm", kernels, fuse_relu, x, gamma, beta);
  };
  t.saved_statistics = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                           const Tensor<float>& beta, std::vector<double>& mean,
                           std::vector<double>& rstd) {
    testing::device_saved_statistics(kernels, x, gamma, beta, mean, rstd);
  };
  return t;
}

/// The last-dimension LayerNorm of case c, whose shape is [rows, D, 1, 1].
testing::NormUnderTest cuda_last_dim_under_test(const NormCase& c,
                                                const cuda::LastDimLayerNormConfig& config) {
  const int64_t rows = c.shape.N, D = c.shape.C;
  testing::CudaNormKernels kernels;
  kernels.statistics_count = rows;
  kernels.forward = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                        const Tensor<float>& beta, const Tensor<float>& y,
                        const Tensor<double>& mean, const Tensor<double>& rstd) {
    cuda::last_dim_layer_norm_forward(x.data(), testing::data_or_null(gamma),
                                      testing::data_or_null(beta), y.data(), mean.data(),
                                      rstd.data(), rows, D, 1e-5, nullptr, config);
  };
  kernels.backward = [=](const Tensor<float>& x, const Tensor<float>&, const Tensor<float>& dy,
                         const Tensor<float>& gamma, const Tensor<double>& mean,
                         const Tensor<double>& rstd, cuda::GradientOut<float> dx,
                         cuda::GradientOut<float> dgamma, cuda::GradientOut<float> dbeta) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::last_dim_layer_norm_backward_workspace_bytes<float>(rows, D, config));
    cuda::last_dim_layer_norm_backward(x.data(), dy.data(), testing::data_or_null(gamma),
                                       mean.data(), rstd.data(), dx, dgamma, dbeta, rows, D,
                                       workspace.data(), nullptr, config);
  };
  testing::NormUnderTest t;
  t.grouping = oracle::group_norm_grouping(c.shape, 1);
  t.op = [=](const Tensor<float>& x, const Tensor<float>& gamma, const Tensor<float>& beta) {
    return testing::device_norm_op("cuda last_dim_layer_norm", kernels, false, x, gamma, beta);
  };
  t.saved_statistics = [=](const Tensor<float>& x, const Tensor<float>& gamma,
                           const Tensor<float>& beta, std::vector<double>& mean,
                           std::vector<double>& rstd) {
    testing::device_saved_statistics(kernels, x, gamma, beta, mean, rstd);
  };
  return t;
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
      for (bool relu : {false, true})
        for (NormData data : {NormData::Normal, NormData::Offset, NormData::Constant}) {
          const NormCase c{s, true, relu, data};
          INFO("chunk " << config.chunk);
          testing::check_norm_against_oracle(cuda_layer_norm_under_test(c, config), c);
        }
}

TEST_CASE("last-dimension layer norm matches the oracle with each kernel", "[cuda][layer_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const Path& path : paths())
    for (int64_t D : path.lengths)
      for (int64_t rows : {1, 5})
        for (bool affine : {true, false})
          for (NormData data : {NormData::Normal, NormData::Offset, NormData::Constant}) {
            const NormCase c{{rows, D, 1, 1}, affine, false, data};
            INFO(path.name << ": " << rows << " rows of " << D);
            testing::check_norm_against_oracle(cuda_last_dim_under_test(c, path.config), c);
          }
}

TEST_CASE("last-dimension layer norm works from a misaligned row start", "[cuda][layer_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  // Rows of 8 starting one float past a 16-byte boundary cannot use packs: the warp kernel
  // falls back to single elements, the block kernels to scalar heads and tails.
  const int64_t rows = 3, D = 8;
  const Tensor<float> host = testing::random_tensor<float>({rows * D + 1}, 12);
  const Tensor<float> shifted = host.to(Device::cuda());
  const Tensor<float> aligned =
      Tensor<float>::from_data({rows * D},
                               std::vector<float>(host.data() + 1, host.data() + 1 + rows * D))
          .to(Device::cuda());
  const Tensor<float> gamma = testing::random_tensor<float>({D}, 13, 1.0, 0.5).to(Device::cuda());
  for (const Path& path : paths()) {
    INFO(path.name);
    auto run = [&](const float* x) {
      const Tensor<float> y = Tensor<float>::empty({rows * D}, Device::cuda());
      const Tensor<double> stats = Tensor<double>::empty({2 * rows}, Device::cuda());
      cuda::last_dim_layer_norm_forward<float>(x, gamma.data(), nullptr, y.data(), stats.data(),
                                               stats.data() + rows, rows, D, 1e-5, nullptr,
                                               path.config);
      return y.to(Device::cpu()).to_vector();
    };
    // Another split of the row may change the order of the float sums: equal to the forward's
    // tolerance, not to the bit.
    const std::vector<float> expected = run(aligned.data());
    testing::require_close("y from a misaligned row", run(shifted.data() + 1).data(),
                           expected.data(), rows * D, 2 * testing::kOutputTolerance,
                           2 * testing::kOutputTolerance);
  }
}

TEST_CASE("layer norms reject bad arguments with the op and sizes in the message",
          "[cuda][layer_norm][errors]") {
  using Catch::Contains;
  const Tensor<float> x = Tensor<float>::zeros({12}).to(Device::cuda());
  const Tensor<double> stats = Tensor<double>::empty({4}, Device::cuda()),
                       workspace = testing::device_workspace(4096);
  float* p = x.data();
  double* d = stats.data();
  REQUIRE_THROWS_WITH(cuda::layer_norm_forward<float>(p, nullptr, nullptr, p, d, d, 2, 0, 3, 1e-5,
                                                      false, workspace.data()),
                      Contains("cuda::layer_norm_forward") && Contains("C = 0"));
  REQUIRE_THROWS_WITH(
      cuda::last_dim_layer_norm_forward<float>(p, nullptr, nullptr, p, d, d, 0, 4, 1e-5),
      Contains("cuda::last_dim_layer_norm_forward") && Contains("rows = 0"));
  REQUIRE_THROWS_WITH(
      cuda::last_dim_layer_norm_forward<float>(p, nullptr, nullptr, p, d, d, 3, 4, -1.0),
      Contains("eps"));
  REQUIRE_THROWS_WITH(cuda::last_dim_layer_norm_backward<float>(p, p, nullptr, d, d, {p, false},
                                                                {p, false}, {}, 3, 4, nullptr),
                      Contains("cuda::last_dim_layer_norm_backward") && Contains("'workspace'"));
  REQUIRE_THROWS_WITH(cuda::last_dim_layer_norm_backward<float>(p, nullptr, nullptr, d, d, {}, {},
                                                                {}, 3, 4, nullptr),
                      Contains("'dy'"));
}
