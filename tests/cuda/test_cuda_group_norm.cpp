// cuda::group_norm_forward/backward against the double oracle (support/norm_check.hpp, the CPU
// kernels' tolerances) on awkward shapes: N = 1, HW = 1 (with three channels per group and with one
// element per group), G = C, G = 1, odd sizes, C not a multiple of 4, planes with packs and scalar
// tails; normal, offset and constant data; with and without affine and fused ReLU; with the
// default chunk and with tiny chunks; argument errors.
#include <vector>

#include "cuda/cuda_norm_ops.hpp"
#include "cuda/cuda_test.hpp"
#include "oracle/norm.hpp"
#include "support/norm_check.hpp"

using namespace normlab;
using testing::NormCase;
using testing::NormData;

namespace {

testing::NormUnderTest cuda_group_norm_under_test(const NormCase& c, int64_t G,
                                                  const cuda::NormLaunchConfig& config) {
  const oracle::NormShape s = c.shape;
  const bool fuse_relu = c.fuse_relu;
  testing::CudaNormKernels kernels;
  kernels.statistics_count = s.N * G;
  kernels.forward = [=](const testing::DeviceForward& f) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::group_norm_forward_workspace_bytes<float>(s.N, s.C, s.plane(), G, config));
    cuda::group_norm_forward(f.x.data(), testing::data_or_null(f.gamma),
                             testing::data_or_null(f.beta), f.y.data(), f.mean.data(),
                             f.rstd.data(), s.N, s.C, s.plane(), G, 1e-5, fuse_relu,
                             workspace.data(), nullptr, config);
  };
  kernels.backward = [=](const testing::DeviceForward& f, const testing::DeviceBackward& b) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::group_norm_backward_workspace_bytes<float>(s.N, s.C, s.plane(), G, config));
    cuda::group_norm_backward(f.x.data(), testing::data_or_null(b.relu_output), b.dy.data(),
                              testing::data_or_null(f.gamma), f.mean.data(), f.rstd.data(), b.dx,
                              b.dgamma, b.dbeta, s.N, s.C, s.plane(), G, workspace.data(), nullptr,
                              config);
  };
  return testing::device_norm_under_test("cuda group_norm", kernels, fuse_relu,
                                         oracle::group_norm_grouping(s, G));
}

struct GroupShape {
  oracle::NormShape shape;
  int64_t groups;
};

const GroupShape awkward_shapes[] = {
    {{1, 8, 5, 5}, 4},   // N = 1
    {{4, 6, 1, 1}, 2},   // HW = 1, three channels per group
    {{2, 4, 1, 1}, 4},   // one element per group: variance 0
    {{3, 6, 5, 5}, 6},   // G = C (InstanceNorm)
    {{2, 6, 3, 3}, 1},   // G = 1 (the comparison's LayerNorm)
    {{3, 15, 7, 3}, 5},  // odd everything
    {{2, 6, 9, 15}, 3},  // C not a multiple of 4, planes of 135: packs and tails at every offset
};

const cuda::NormLaunchConfig configs[] = {{}, {7}};

}  // namespace

TEST_CASE("group_norm matches the oracle on awkward shapes and data", "[cuda][group_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const cuda::NormLaunchConfig& config : configs)
    for (const GroupShape& gs : awkward_shapes)
      for (const NormCase& c : testing::cases_of_shape(gs.shape)) {
        INFO("groups " << gs.groups << ", chunk " << config.chunk);
        testing::check_norm_against_oracle(cuda_group_norm_under_test(c, gs.groups, config), c);
      }
}

TEST_CASE("group_norm matches the oracle at a CIFAR-like shape", "[cuda][group_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  const NormCase c{{4, 32, 16, 16}, true, true, NormData::Normal};
  testing::check_norm_against_oracle(cuda_group_norm_under_test(c, 4, {}), c);
  const NormCase offset{{4, 32, 8, 8}, false, false, NormData::Offset};
  testing::check_norm_against_oracle(cuda_group_norm_under_test(offset, 4, {}), offset);
}

TEST_CASE("group_norm rejects bad arguments with the op and sizes in the message",
          "[cuda][group_norm][errors]") {
  using Catch::Contains;
  const testing::ErrorTestBuffers buffers(54, 8);
  float* p = buffers.p;
  double* d = buffers.d;
  void* workspace = buffers.workspace;
  REQUIRE_THROWS_WITH(
      cuda::group_norm_forward<float>(p, nullptr, nullptr, p, d, d, 2, 6, 3, 4, 1e-5, false,
                                      workspace),
      Contains("cuda::group_norm_forward") && Contains("6 channels") && Contains("4 groups"));
  REQUIRE_THROWS_WITH(cuda::group_norm_forward<float>(p, nullptr, nullptr, p, d, d, 2, 6, 0, 3,
                                                      1e-5, false, workspace),
                      Contains("HW = 0"));
  REQUIRE_THROWS_WITH(cuda::group_norm_forward<float>(p, nullptr, nullptr, p, d, d, 2, 6, 3, 3,
                                                      1e-5, false, workspace, nullptr, {0}),
                      Contains("chunk"));
  REQUIRE_THROWS_WITH(cuda::group_norm_backward<float>(p, nullptr, p, nullptr, nullptr, d,
                                                       {p, false}, {}, {}, 2, 6, 3, 0, workspace),
                      Contains("cuda::group_norm_backward") && Contains("0 groups"));
}
