// cuda::sgd_update (kernels/normlab/cuda/sgd.cuh) against a hand-computed sequence and against
// the CPU optimizer's kernel over several steps: plain SGD, weight decay, momentum (PyTorch's
// first step buf = d, then momentum and dampening), Nesterov; lengths with scalar heads and tails
// around the 16-byte packs and arrays aligned differently (all-scalar path); argument errors.
#include <cstdint>
#include <vector>

#include "cuda/cuda_op_tests.hpp"
#include "cuda/cuda_test.hpp"
#include "normlab/cpu/sgd.hpp"
#include "normlab/cuda/sgd.cuh"

using namespace normlab;

namespace {

/// The coefficients of step `step` (0-based) of torch.optim.SGD with these options: the buffer's
/// first step takes buf = d (buffer_momentum 0, buffer_keep 1).
SgdCoefficients<float> coefficients(float lr, float weight_decay, float momentum, float dampening,
                                    bool nesterov, int step) {
  return {lr,
          weight_decay,
          momentum,
          step == 0 ? 0.0f : momentum,
          step == 0 ? 1.0f : 1.0f - dampening,
          nesterov};
}

}  // namespace

TEST_CASE("sgd_update follows a hand-computed Nesterov sequence with weight decay", "[cuda][sgd]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  // One parameter p = 1 with a constant gradient 0.5; lr 0.1, weight decay 0.1, momentum 0.9,
  // Nesterov. Step 1: d = 0.5 + 0.1 = 0.6, buf = 0.6, d = 0.6 + 0.54 = 1.14, p = 0.886.
  // Step 2: d = 0.5 + 0.0886 = 0.5886, buf = 0.54 + 0.5886 = 1.1286, d = 0.5886 + 1.01574 =
  // 1.60434, p = 0.886 - 0.160434 = 0.725566.
  const Tensor<float> param = testing::to_device(std::vector<float>{1.0f});
  const Tensor<float> grad = testing::to_device(std::vector<float>{0.5f});
  const Tensor<float> buffer = Tensor<float>::zeros({1}).to(Device::cuda());
  const double expected_param[] = {0.886, 0.725566};
  const double expected_buffer[] = {0.6, 1.1286};
  for (int step = 0; step < 2; ++step) {
    INFO("step " << step + 1);
    cuda::sgd_update(param.data(), grad.data(), buffer.data(), 1,
                     coefficients(0.1f, 0.1f, 0.9f, 0.0f, true, step));
    testing::require_close("param", testing::to_host(param).data(), &expected_param[step], 1, 1e-7,
                           1e-6);
    testing::require_close("buffer", testing::to_host(buffer).data(), &expected_buffer[step], 1,
                           1e-7, 1e-6);
  }
}

TEST_CASE("sgd_update matches the CPU kernel over several steps for every option", "[cuda][sgd]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  struct Options {
    float lr, weight_decay, momentum, dampening;
    bool nesterov;
  };
  const Options options[] = {
      {0.1f, 0.0f, 0.0f, 0.0f, false},    // plain SGD (no buffer)
      {0.05f, 5e-4f, 0.0f, 0.0f, false},  // weight decay only
      {0.1f, 5e-4f, 0.9f, 0.0f, false},   // momentum, the model's recipe
      {0.1f, 0.0f, 0.9f, 0.25f, false},   // momentum with dampening
      {0.02f, 1e-3f, 0.8f, 0.0f, true},   // Nesterov
  };
  // Lengths around the pack size and over several blocks; offset 1 of the parameter only makes
  // the arrays differ in alignment (all scalar), offset 1 of all three gives head, packs, tail.
  for (const Options& o : options) {
    for (const int64_t n : {int64_t(1), int64_t(3), int64_t(6), int64_t(1029)}) {
      for (const int64_t param_offset : {int64_t(0), int64_t(1)}) {
        for (const int64_t other_offset : {int64_t(0), int64_t(1)}) {
          INFO("lr " << o.lr << ", weight decay " << o.weight_decay << ", momentum " << o.momentum
                     << ", dampening " << o.dampening << ", nesterov " << o.nesterov
                     << ", n = " << n << ", offsets " << param_offset << " " << other_offset);
          const bool with_momentum = o.momentum != 0.0f;
          std::vector<float> param = testing::random_values<float>(n + param_offset, 1);
          std::vector<float> buffer(static_cast<size_t>(n + other_offset), 0.0f);
          const Tensor<float> param_d = testing::to_device(param),
                              buffer_d = testing::to_device(buffer);
          for (int step = 0; step < 3; ++step) {
            const std::vector<float> grad =
                testing::random_values<float>(n + other_offset, 10 + step);
            const Tensor<float> grad_d = testing::to_device(grad);
            const SgdCoefficients<float> c =
                coefficients(o.lr, o.weight_decay, o.momentum, o.dampening, o.nesterov, step);
            cpu::sgd_update(param.data() + param_offset, grad.data() + other_offset,
                            with_momentum ? buffer.data() + other_offset : nullptr, n, c);
            cuda::sgd_update(param_d.data() + param_offset, grad_d.data() + other_offset,
                             with_momentum ? buffer_d.data() + other_offset : nullptr, n, c);
          }
          // The same arithmetic in the same order: equal up to contraction into FMAs.
          testing::require_close("param", testing::to_host(param_d).data(), param.data(),
                                 n + param_offset, 1e-7, 1e-6);
          testing::require_close("buffer", testing::to_host(buffer_d).data(), buffer.data(),
                                 n + other_offset, 1e-7, 1e-6);
        }
      }
    }
  }
}

TEST_CASE("sgd_update in double matches the CPU kernel", "[cuda][sgd]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  // 16-byte packs of two doubles, with a head of one element when every array is off by one.
  const SgdCoefficients<double> c{0.1, 1e-3, 0.9, 0.9, 1.0, true};
  for (const int64_t n : {int64_t(3), int64_t(66)}) {
    for (const int64_t offset : {int64_t(0), int64_t(1)}) {
      INFO("n = " << n << ", offset " << offset);
      std::vector<double> param = testing::random_values<double>(n + offset, 1),
                          grad = testing::random_values<double>(n + offset, 2),
                          buffer = testing::random_values<double>(n + offset, 3);
      const Tensor<double> param_d = testing::to_device(param), grad_d = testing::to_device(grad),
                           buffer_d = testing::to_device(buffer);
      cpu::sgd_update(param.data() + offset, grad.data() + offset, buffer.data() + offset, n, c);
      cuda::sgd_update(param_d.data() + offset, grad_d.data() + offset, buffer_d.data() + offset, n,
                       c);
      testing::require_close("param", testing::to_host(param_d).data(), param.data(), n + offset,
                             1e-15, 1e-14);
      testing::require_close("buffer", testing::to_host(buffer_d).data(), buffer.data(), n + offset,
                             1e-15, 1e-14);
    }
  }
}

TEST_CASE("sgd_update rejects bad arguments with the op in the message", "[cuda][sgd][errors]") {
  using Catch::Contains;
  const Tensor<float> x = Tensor<float>::zeros({8}).to(Device::cuda());
  float* p = x.data();
  const SgdCoefficients<float> c = coefficients(0.1f, 0.0f, 0.9f, 0.0f, false, 0);
  REQUIRE_THROWS_WITH(cuda::sgd_update(p, p, p, -2, c),
                      Contains("cuda::sgd_update") && Contains("n = -2"));
  REQUIRE_THROWS_WITH(cuda::sgd_update(p, static_cast<const float*>(nullptr), p, 8, c),
                      Contains("cuda::sgd_update") && Contains("'grad'"));
}
