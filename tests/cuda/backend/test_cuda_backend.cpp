// CPU == CUDA through the whole stack: the ops, the tape, the nn modules, Sgd and checkpoints on
// CUDA tensors against the same calls on CPU tensors, first op by op (outputs and gradients, in
// double), then a few training steps of the comparison's model on tiny inputs (losses and
// parameters, in float). This file is host code that never includes a CUDA header: the CUDA
// backend is registered by another translation unit (register_backend.cpp / .cu). Built twice:
// test_cuda_backend, whose backend is compiled by g++ with the CUDA-on-CPU emulator (the kernels
// run on the CPU, under each emulator schedule), and, with nvcc, test_cuda_backend_gpu, whose
// backend is compiled by nvcc (skipped, visibly, without a GPU).
#include <catch2/catch.hpp>

#include <functional>
#include <string>
#include <vector>

#include "normlab/io/module_state.hpp"
#include "normlab/normlab.hpp"
#include "support/gradcheck.hpp"

#if defined(NORMLAB_TEST_EMULATED)
#include "cuda_emu/catch_schedules.hpp"
#define EACH_SCHEDULE() NORMLAB_EMU_EACH_SCHEDULE()
/// Emulated device memory is host memory, so a CPU kernel would compute the right numbers on it
/// too: the log shows that CUDA kernels did the work.
#define REQUIRE_CUDA_KERNELS_RUN(statement)                                     \
  do {                                                                          \
    const normlab::cuda_emu::ScopedLaunchLog launch_log;                        \
    statement;                                                                  \
    REQUIRE_FALSE(launch_log.names().empty());                                  \
  } while (false)
#else
#define EACH_SCHEDULE() static_cast<void>(0)
#define REQUIRE_CUDA_KERNELS_RUN(statement) statement
#endif

namespace {

using namespace normlab;

const Device kCuda = Device::cuda();

/// An op's argument: a tensor, and whether its gradient is checked.
template <typename T>
struct Argument {
  Tensor<T> value;
  bool grad = true;
};

template <typename T>
using OpCall = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

/// What one run of an op gives: its output, the gradients of its arguments (for the output
/// gradient dy) and the arguments' values after the call (running statistics change in place).
struct OpRun {
  std::vector<double> y;
  std::vector<std::vector<double>> grads, values;
};

template <typename T>
std::vector<double> host_values(const Tensor<T>& t) {
  const std::vector<T> v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

/// Runs `op` on copies of the arguments on `device` and back-propagates dy (a fixed random
/// tensor of the output's shape) through the tape.
template <typename T>
OpRun run_op(const OpCall<T>& op, const std::vector<Argument<T>>& arguments, Device device) {
  std::vector<Tensor<T>> inputs;
  for (const Argument<T>& a : arguments) {
    Tensor<T> copy = a.value.clone().to(device);
    copy.set_requires_grad(a.grad);
    inputs.push_back(copy);
  }
  Tensor<T> y = op(inputs);
  REQUIRE(y.device() == device);
  OpRun run;
  run.y = host_values(y);
  if (y.requires_grad()) {
    y.set_grad(testing::random_tensor<T>(y.shape(), 99).to(device));
    autograd::NoGradGuard no_grad;
    autograd::tape().run_backward();
  }
  for (const Tensor<T>& input : inputs) {
    run.grads.push_back(input.has_grad() ? host_values(input.grad()) : std::vector<double>());
    run.values.push_back(host_values(input));
  }
  return run;
}

void require_same(const std::string& what, const std::vector<double>& cpu, const std::vector<double>& cuda,
                  double tolerance) {
  INFO(what);
  REQUIRE(cpu.size() == cuda.size());
  testing::require_close(what.c_str(), cuda.data(), cpu.data(), static_cast<int64_t>(cpu.size()), tolerance,
                         tolerance);
}

/// The op on the CPU and on CUDA: same output, same gradients, same arguments afterwards.
template <typename T>
void check_op(const std::string& name, const OpCall<T>& op, const std::vector<Argument<T>>& arguments,
              double tolerance = 1e-10) {
  INFO("op " << name);
  const OpRun cpu = run_op(op, arguments, Device::cpu());
  OpRun cuda;
  REQUIRE_CUDA_KERNELS_RUN(cuda = run_op(op, arguments, kCuda));
  require_same(name + " output", cpu.y, cuda.y, tolerance);
  for (size_t i = 0; i < arguments.size(); ++i) {
    REQUIRE(cpu.grads[i].empty() == !arguments[i].grad);
    require_same(name + " gradient of argument " + std::to_string(i), cpu.grads[i], cuda.grads[i], tolerance);
    require_same(name + " argument " + std::to_string(i) + " after the call", cpu.values[i], cuda.values[i],
                 tolerance);
  }
}

using TensorD = Tensor<double>;

TensorD sample(const Shape& shape, uint64_t seed, double offset = 0, double scale = 1) {
  return testing::random_tensor<double>(shape, seed, offset, scale);
}

}  // namespace

TEST_CASE("a program with the CUDA backend can use CUDA tensors", "[cuda][backend]") {
  CHECK(ops::device_unavailable_reason(DeviceType::CUDA).empty());
  CHECK(ops::device_unavailable_reason(DeviceType::CPU).empty());
  const TensorD x = sample({2, 3}, 1).to(kCuda);
  CHECK(x.device() == kCuda);
  CHECK(x.to_vector() == sample({2, 3}, 1).to_vector());
  TensorD filled = TensorD::full({5}, 2.5, kCuda);
  CHECK(filled.to_vector() == std::vector<double>(5, 2.5));
  CHECK(TensorD::ones({1}, kCuda).item() == 1.0);
  const TensorD large = sample({100, 101}, 2);  // a larger upload after smaller ones
  CHECK(large.to(kCuda).to_vector() == large.to_vector());
}

TEST_CASE("elementwise ops and dropout on CUDA tensors match the CPU", "[cuda][backend]") {
  EACH_SCHEDULE();
  const Shape shape{3, 5, 7};  // 105 elements: not a multiple of any vector width
  check_op<double>("relu", [](const auto& in) { return ops::relu(in[0]); }, {{sample(shape, 1)}});
  check_op<double>("add", [](const auto& in) { return ops::add(in[0], in[1]); },
                   {{sample(shape, 2)}, {sample(shape, 3)}});
  check_op<double>("add, one gradient", [](const auto& in) { return ops::add(in[0], in[1]); },
                   {{sample(shape, 2)}, {sample(shape, 3), false}});
  check_op<double>("dropout 0.3",
                   [](const auto& in) {
                     Rng rng(7);
                     return ops::dropout(in[0], 0.3, true, rng);
                   },
                   {{sample(shape, 4)}});
  check_op<double>("reshape", [](const auto& in) { return ops::reshape(in[0], Shape{15, 7}); },
                   {{sample(shape, 5)}});
}

TEST_CASE("norms on CUDA tensors match the CPU, with the fused ReLU and dropout", "[cuda][backend]") {
  EACH_SCHEDULE();
  const Shape shape{3, 6, 5, 3};  // odd HW
  const TensorD gamma = sample({6}, 11, 1.0, 0.2), beta = sample({6}, 12);
  for (const bool fuse_relu : {false, true}) {
    for (const double p : {0.0, 0.25}) {
      if (p > 0 && !fuse_relu) continue;
      INFO("fuse_relu " << fuse_relu << ", dropout " << p);
      const auto dropout = [p](Rng& rng) { return ops::FusedDropout{p, &rng}; };
      check_op<double>("batch_norm2d, training, running statistics",
                       [&](const auto& in) {
                         Rng rng(3);
                         return ops::batch_norm2d(in[0], in[1], in[2], in[3], in[4], true, 0.1, 1e-5,
                                                  fuse_relu, dropout(rng));
                       },
                       {{sample(shape, 13, 50.0, 0.01)},  // large offset, small variance
                        {gamma},
                        {beta},
                        {sample({6}, 14), false},
                        {sample({6}, 15, 2.0, 0.1), false}},
                       1e-8);
      check_op<double>("group_norm, 3 groups",
                       [&](const auto& in) {
                         Rng rng(4);
                         return ops::group_norm(in[0], 3, in[1], in[2], 1e-5, fuse_relu, dropout(rng));
                       },
                       {{sample(shape, 16)}, {gamma}, {beta}});
      check_op<double>("layer_norm",
                       [&](const auto& in) {
                         Rng rng(5);
                         return ops::layer_norm(in[0], in[1], in[2], 1e-5, fuse_relu, dropout(rng));
                       },
                       {{sample(shape, 17)}, {gamma}, {beta}});
    }
  }
  check_op<double>("batch_norm2d, evaluation",
                   [](const auto& in) { return ops::batch_norm2d(in[0], in[1], in[2], in[3], in[4], false); },
                   {{sample(shape, 18)}, {gamma}, {beta}, {sample({6}, 19), false},
                    {sample({6}, 20, 2.0, 0.1), false}});
  check_op<double>("batch_norm2d without affine or running statistics",
                   [](const auto& in) {
                     return ops::batch_norm2d(in[0], TensorD(), TensorD(), TensorD(), TensorD(), true);
                   },
                   {{sample({1, 2, 1, 3}, 21)}});
}

TEST_CASE("convolution, pooling and losses on CUDA tensors match the CPU", "[cuda][backend]") {
  EACH_SCHEDULE();
  check_op<double>("conv2d 3x3, stride 2, padding 1, bias",
                   [](const auto& in) { return ops::conv2d(in[0], in[1], in[2], 2, 1); },
                   {{sample({2, 3, 7, 5}, 31)}, {sample({4, 3, 3, 3}, 32)}, {sample({4}, 33)}});
  check_op<double>("conv2d 1x1, no bias, weight gradient only",
                   [](const auto& in) { return ops::conv2d(in[0], in[1], TensorD()); },
                   {{sample({1, 5, 3, 3}, 34), false}, {sample({2, 5, 1, 1}, 35)}});
  check_op<double>("max_pool2d 2x2", [](const auto& in) { return ops::max_pool2d(in[0], 2, 2); },
                   {{sample({2, 3, 5, 7}, 36)}});
  check_op<double>("max_pool2d 3x3 stride 2", [](const auto& in) { return ops::max_pool2d(in[0], 3, 2); },
                   {{sample({1, 2, 7, 7}, 37)}});
  check_op<double>("global_avg_pool2d", [](const auto& in) { return ops::global_avg_pool2d(in[0]); },
                   {{sample({3, 5, 3, 3}, 38)}});
  const std::vector<int32_t> targets{2, 0, 9, 4, 4};
  check_op<double>("log_softmax", [](const auto& in) { return ops::log_softmax(in[0]); },
                   {{sample({5, 10}, 39, 0.0, 5.0)}});
  check_op<double>("nll_loss", [&](const auto& in) { return ops::nll_loss(in[0], targets); },
                   {{sample({5, 10, 1, 1}, 40)}});
  check_op<double>("cross_entropy, label smoothing 0.1",
                   [&](const auto& in) { return ops::cross_entropy(in[0], targets, 0.1); },
                   {{sample({5, 10}, 41, 0.0, 5.0)}});
}

TEST_CASE("bad arguments on CUDA tensors are reported like on the CPU", "[cuda][backend]") {
  const TensorD x = sample({2, 3, 4, 4}, 51).to(kCuda), w = sample({4, 3, 3, 3}, 52);
  CHECK_THROWS_WITH(ops::conv2d(x, w, TensorD()), Catch::Contains("conv2d: tensors on different devices") &&
                                                      Catch::Contains("cuda:0") && Catch::Contains("cpu"));
  CHECK_THROWS_WITH(ops::nll_loss(sample({2, 3}, 53).to(kCuda), {0, 3}),
                    Catch::Contains("target at index 1 is 3, outside [0, 3)"));
  CHECK_THROWS_WITH(ops::add(sample({2}, 54).to(kCuda), sample({2}, 55)),
                    Catch::Contains("add: tensors on different devices (cuda:0 and cpu"));
}

namespace {

/// Losses and final parameters of `steps` SGD steps (momentum, Nesterov, weight decay) of the
/// comparison's model with `norm` on a fixed batch of 4 tiny 8x8 images, on `device`.
struct TrainingRun {
  std::vector<double> losses;
  std::vector<std::vector<double>> parameters, buffers;
  std::vector<double> eval_output;
};

TrainingRun train(models::NormKind norm, bool fuse_epilogues, Device device, int steps) {
  Rng init(1), dropout(2);
  models::CifarResNetOptions options;
  options.norm = norm;
  options.dropout = 0.1;
  options.fuse_epilogues = fuse_epilogues;
  auto net = models::cifar_resnet<float>(options, init, dropout);
  net->to(device);
  optim::SgdOptions sgd_options;
  sgd_options.lr = 0.05;
  sgd_options.momentum = 0.9;
  sgd_options.nesterov = true;
  sgd_options.weight_decay = 5e-4;
  optim::Sgd<float> sgd(net->parameters(), sgd_options);
  const Tensor<float> images = testing::random_tensor<float>({4, 3, 8, 8}, 61).to(device);
  const std::vector<int32_t> labels{3, 7, 0, 3};
  TrainingRun run;
  net->train();
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    const Tensor<float> loss = ops::nll_loss((*net)(images), labels);
    run.losses.push_back(loss.item());
    autograd::backward(loss);
    sgd.step();
  }
  for (const Tensor<float>& p : net->parameters()) {
    REQUIRE(p.device() == device);
    run.parameters.push_back(host_values(p));
  }
  for (const auto& named : net->named_buffers()) run.buffers.push_back(host_values(named.second));
  net->eval();
  autograd::NoGradGuard no_grad;
  run.eval_output = host_values((*net)(images));
  return run;
}

}  // namespace

TEST_CASE("the comparison's model trains on CUDA tensors as on the CPU", "[cuda][backend][training]") {
  const auto [norm, fuse] = GENERATE(table<models::NormKind, bool>({{models::NormKind::Batch, true},
                                                                     {models::NormKind::Group, true},
                                                                     {models::NormKind::Layer, true},
                                                                     {models::NormKind::Batch, false}}));
  INFO("norm " << models::norm_kind_name(norm) << ", fused epilogues " << fuse);
  const int steps = 3;
  const TrainingRun cpu = train(norm, fuse, Device::cpu(), steps);
  TrainingRun cuda;
  REQUIRE_CUDA_KERNELS_RUN(cuda = train(norm, fuse, kCuda, steps));
  // Float sums in a different order on each backend: agreement to a few float ulps per step,
  // amplified by three steps of training, well below any change training makes.
  const double tolerance = 2e-4;
  require_same("training losses", cpu.losses, cuda.losses, tolerance);
  CHECK(cpu.losses.back() < cpu.losses.front());  // it learns the batch
  REQUIRE(cpu.parameters.size() == cuda.parameters.size());
  for (size_t i = 0; i < cpu.parameters.size(); ++i)
    require_same("parameter " + std::to_string(i), cpu.parameters[i], cuda.parameters[i], tolerance);
  REQUIRE(cpu.buffers.size() == cuda.buffers.size());
  for (size_t i = 0; i < cpu.buffers.size(); ++i)
    require_same("buffer " + std::to_string(i), cpu.buffers[i], cuda.buffers[i], tolerance);
  require_same("evaluation output", cpu.eval_output, cuda.eval_output, tolerance);
}

TEST_CASE("a checkpoint of a CUDA model restores on the CPU and back", "[cuda][backend][checkpoint]") {
  Rng init(1), dropout(2);
  auto net = models::cifar_resnet<float>({}, init, dropout);
  net->to(kCuda);
  io::Checkpoint ckpt;
  io::save_module_state(ckpt, *net);
  Rng init_cpu(9), dropout_cpu(9);
  auto restored = models::cifar_resnet<float>({}, init_cpu, dropout_cpu);
  io::load_module_state(ckpt, *restored);
  const auto a = net->named_parameters(), b = restored->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(b[i].second.device() == Device::cpu());
    CHECK(a[i].second.to_vector() == b[i].second.to_vector());
  }
  auto back = models::cifar_resnet<float>({}, init_cpu, dropout_cpu);
  back->to(kCuda);
  io::load_module_state(ckpt, *back);
  CHECK(back->parameters().front().to_vector() == net->parameters().front().to_vector());
}
