// cuda::batch_norm_forward/backward against the double oracle (support/norm_check.hpp, the CPU
// kernels' tolerances): training with batch statistics, evaluation with running statistics and
// without them, on awkward shapes (N = 1, HW = 1, odd sizes, one channel, C not a multiple of 4,
// planes with 16-byte packs and scalar tails) and normal, offset and constant data, with and
// without affine and fused ReLU, each with the default chunk and with tiny chunks (many work
// items per plane, chunk starts at every alignment); running statistics over several steps;
// bit-identical results under every schedule; argument errors.
#include <vector>

#include "cuda/cuda_norm_ops.hpp"
#include "cuda/cuda_test.hpp"
#include "oracle/norm.hpp"
#include "support/norm_check.hpp"

using namespace normlab;
using testing::NormCase;
using testing::NormData;

namespace {

enum class Mode {
  Training,       // batch statistics, running statistics updated
  Eval,           // running statistics
  EvalUntracked,  // no running statistics: batch statistics
};

/// Running statistics for evaluation: the batch statistics of another draw of the case's data.
std::pair<Tensor<float>, Tensor<float>> running_statistics(const NormCase& c) {
  const oracle::NormShape& s = c.shape;
  const oracle::NormStatistics<double> st =
      oracle::norm_statistics(testing::to_double(testing::norm_input<double>(s, c.data, 99)), s,
                              oracle::batch_norm_grouping(s));
  return {Tensor<float>::from_data({s.C}, std::vector<float>(st.mean.begin(), st.mean.end())),
          Tensor<float>::from_data({s.C}, std::vector<float>(st.var.begin(), st.var.end()))};
}

testing::NormUnderTest cuda_batch_norm_under_test(const NormCase& c, Mode mode,
                                                  const cuda::NormLaunchConfig& config) {
  const oracle::NormShape s = c.shape;
  Tensor<float> running_mean, running_var;
  if (mode != Mode::EvalUntracked) std::tie(running_mean, running_var) = running_statistics(c);
  const bool batch_statistics = mode != Mode::Eval;
  const bool fuse_relu = c.fuse_relu;
  testing::CudaNormKernels kernels;
  kernels.statistics_count = s.C;
  kernels.forward = [=](const testing::DeviceForward& f) {
    // Fresh device copies: each forward starts from the same running statistics.
    const Tensor<float> rm = testing::on_device(running_mean), rv = testing::on_device(running_var);
    const Tensor<double> workspace =
        testing::device_workspace(cuda::batch_norm_forward_workspace_bytes<float>(
            s.N, s.C, s.plane(), batch_statistics, config));
    cuda::batch_norm_forward(f.x.data(), testing::data_or_null(f.gamma),
                             testing::data_or_null(f.beta), testing::data_or_null(rm),
                             testing::data_or_null(rv), f.y.data(), f.mean.data(), f.rstd.data(),
                             s.N, s.C, s.plane(), batch_statistics, 0.1, 1e-5, fuse_relu,
                             workspace.data(), nullptr, config);
  };
  kernels.backward = [=](const testing::DeviceForward& f, const testing::DeviceBackward& b) {
    const Tensor<double> workspace = testing::device_workspace(
        cuda::batch_norm_backward_workspace_bytes<float>(s.N, s.C, s.plane(), config));
    cuda::batch_norm_backward(f.x.data(), testing::data_or_null(b.relu_output), b.dy.data(),
                              testing::data_or_null(f.gamma), f.mean.data(), f.rstd.data(), b.dx,
                              b.dgamma, b.dbeta, s.N, s.C, s.plane(), batch_statistics,
                              workspace.data(), nullptr, config);
  };
  testing::NormUnderTest t = testing::device_norm_under_test(
      "cuda batch_norm2d", kernels, fuse_relu, oracle::batch_norm_grouping(s));
  if (mode == Mode::Eval) {
    t.fixed_mean = testing::to_double(running_mean);
    t.fixed_var = testing::to_double(running_var);
  }
  return t;
}

const oracle::NormShape awkward_shapes[] = {
    {1, 3, 5, 7},   // N = 1 (statistics over one plane)
    {7, 5, 1, 1},   // HW = 1 (statistics over the batch)
    {3, 5, 7, 3},   // odd everything
    {2, 1, 3, 3},   // one channel
    {2, 6, 9, 15},  // C not a multiple of 4, planes of 135: packs and tails at every offset
};

/// The default chunk, and chunks of 7 elements (many work items per plane, starting at every
/// 16-byte alignment, partial last chunks).
const cuda::NormLaunchConfig configs[] = {{}, {7}};

void check_cases(const std::vector<NormCase>& cases, Mode mode) {
  for (const cuda::NormLaunchConfig& config : configs) {
    INFO("chunk " << config.chunk);
    for (const NormCase& c : cases)
      testing::check_norm_against_oracle(cuda_batch_norm_under_test(c, mode, config), c);
  }
}

}  // namespace

TEST_CASE("batch_norm training matches the oracle on awkward shapes and data",
          "[cuda][batch_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const auto& s : awkward_shapes) check_cases(testing::cases_of_shape(s), Mode::Training);
}

TEST_CASE("batch_norm training matches the oracle at a CIFAR-like shape", "[cuda][batch_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  check_cases({{{4, 16, 32, 32}, true, true, NormData::Normal},
               {{4, 16, 32, 32}, false, false, NormData::Offset}},
              Mode::Training);
}

TEST_CASE("batch_norm eval matches the oracle with and without running statistics",
          "[cuda][batch_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  testing::CaseSettings settings;
  settings.data = {NormData::Normal, NormData::Offset};
  for (const auto& s : {awkward_shapes[0], awkward_shapes[1], awkward_shapes[4]}) {
    const std::vector<NormCase> cases = testing::cases_of_shape(s, settings);
    check_cases(cases, Mode::Eval);
    check_cases(cases, Mode::EvalUntracked);
  }
}

TEST_CASE("batch_norm updates running statistics as PyTorch over several steps",
          "[cuda][batch_norm]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  const oracle::NormShape s{4, 3, 5, 7};
  const cuda::NormLaunchConfig config{6};
  for (double momentum : {0.1, 0.35}) {
    INFO("momentum " << momentum);
    Tensor<float> running_mean = Tensor<float>::zeros({s.C}).to(Device::cuda());
    Tensor<float> running_var = Tensor<float>::ones({s.C}).to(Device::cuda());
    std::vector<double> mean_ref(s.C, 0.0), var_ref(s.C, 1.0);
    for (int step = 0; step < 3; ++step) {
      const Tensor<float> x =
          testing::random_tensor<float>({s.N, s.C, s.H, s.W}, 40 + step, step - 1.0, 1.0 + step);
      const Tensor<float> xd = x.to(Device::cuda()),
                          y = Tensor<float>::empty(x.shape(), Device::cuda());
      const Tensor<double> mean = Tensor<double>::empty({s.C}, Device::cuda()),
                           rstd = Tensor<double>::empty({s.C}, Device::cuda());
      const Tensor<double> workspace = testing::device_workspace(
          cuda::batch_norm_forward_workspace_bytes<float>(s.N, s.C, s.plane(), true, config));
      cuda::batch_norm_forward<float>(xd.data(), nullptr, nullptr, running_mean.data(),
                                      running_var.data(), y.data(), mean.data(), rstd.data(), s.N,
                                      s.C, s.plane(), true, momentum, 1e-5, false, workspace.data(),
                                      nullptr, config);
      oracle::update_running_statistics(
          mean_ref, var_ref,
          oracle::norm_statistics(testing::to_double(x), s, oracle::batch_norm_grouping(s)),
          momentum);
    }
    testing::require_close("running_mean", running_mean.to(Device::cpu()).data(), mean_ref.data(),
                           s.C, 1e-6, 1e-5);
    testing::require_close("running_var", running_var.to(Device::cpu()).data(), var_ref.data(), s.C,
                           1e-6, 1e-5);
  }
}

#if defined(NORMLAB_CUDA_EMU)
TEST_CASE("batch_norm gives bit-identical results under every schedule", "[cuda][batch_norm]") {
  // Every reduction has a fixed order, so no thread or block order may change a bit.
  const NormCase c{{3, 5, 9, 15}, true, true, NormData::Normal};
  std::vector<float> first_y, first_dx, first_dgamma;
  for (const auto& schedule : cuda_emu::schedules_to_test()) {
    INFO("schedule " << schedule);
    const cuda_emu::ScopedSchedule scoped(schedule);
    const testing::NormUnderTest t = cuda_batch_norm_under_test(c, Mode::Training, {7});
    Tensor<float> x = testing::norm_input<float>(c.shape, c.data, 3).set_requires_grad();
    Tensor<float> gamma =
        testing::random_tensor<float>({c.shape.C}, 4, 1.0, 0.5).set_requires_grad();
    const Tensor<float> beta = testing::random_tensor<float>({c.shape.C}, 5);
    const Tensor<float> y = t.op(x, gamma, beta);
    testing::backward_from(y, testing::random_tensor<float>(x.shape(), 6));
    if (first_y.empty()) {
      first_y = y.to_vector();
      first_dx = x.grad().to_vector();
      first_dgamma = gamma.grad().to_vector();
    }
    CHECK(y.to_vector() == first_y);
    CHECK(x.grad().to_vector() == first_dx);
    CHECK(gamma.grad().to_vector() == first_dgamma);
  }
}
#endif

TEST_CASE("batch_norm rejects bad arguments with the op and sizes in the message",
          "[cuda][batch_norm][errors]") {
  using Catch::Contains;
  const testing::ErrorTestBuffers buffers(12, 3);
  float* p = buffers.p;
  double* d = buffers.d;
  void* workspace = buffers.workspace;
  REQUIRE_THROWS_WITH(
      cuda::batch_norm_forward<float>(p, nullptr, nullptr, nullptr, nullptr, p, d, d, 0, 3, 4, true,
                                      0.1, 1e-5, false, workspace),
      Contains("cuda::batch_norm_forward") && Contains("N = 0"));
  REQUIRE_THROWS_WITH(
      cuda::batch_norm_forward<float>(p, nullptr, nullptr, nullptr, nullptr, p, d, d, 1, 3, 1, true,
                                      0.1, 1e-5, false, workspace),
      Contains("more than 1 value per channel") && Contains("HW = 1"));
  REQUIRE_THROWS_WITH(
      cuda::batch_norm_forward<float>(p, nullptr, nullptr, nullptr, nullptr, p, d, d, 1, 3, 4,
                                      false, 0.1, 1e-5, false, workspace),
      Contains("running_mean"));
  REQUIRE_THROWS_WITH(cuda::batch_norm_forward<float>(p, nullptr, nullptr, p, nullptr, p, d, d, 1,
                                                      3, 4, true, 0.1, 1e-5, false, workspace),
                      Contains("both"));
  REQUIRE_THROWS_WITH(
      cuda::batch_norm_forward<float>(p, nullptr, nullptr, nullptr, nullptr, p, d, d, 1, 3, 4, true,
                                      1.5, 1e-5, false, workspace),
      Contains("momentum") && Contains("1.5"));
  REQUIRE_THROWS_WITH(cuda::batch_norm_forward<float>(p, nullptr, nullptr, nullptr, nullptr, p, d,
                                                      d, 1, 3, 4, true, 0.1, 0.0, false, workspace),
                      Contains("eps"));
  REQUIRE_THROWS_WITH(cuda::batch_norm_forward<float>(p, nullptr, nullptr, nullptr, nullptr, p, d,
                                                      d, 1, 3, 4, true, 0.1, 1e-5, false, nullptr),
                      Contains("'workspace'"));
  REQUIRE_THROWS_WITH(
      cuda::batch_norm_backward<float>(p, nullptr, nullptr, nullptr, d, d, {p, false}, {}, {}, 1, 3,
                                       4, true, workspace),
      Contains("cuda::batch_norm_backward") && Contains("'dy'"));
}
