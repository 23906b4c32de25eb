// SGD against sequences worked out by hand (plain, momentum, dampening, weight decay, Nesterov),
// zero_grad and skipping parameters without gradients, momentum-buffer checkpoints, option
// checks; StepLR's learning-rate sequence on its own and driving an optimizer.
#include <catch2/catch.hpp>
#include <vector>

#include "normlab/optim/sgd.hpp"
#include "normlab/optim/step_lr.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using optim::Sgd;
using optim::SgdOptions;
using optim::StepLR;
using testing::TensorD;

namespace {

// One scalar parameter starting at 1.0 receives the gradients 0.5, -0.25, 1.0 with lr 0.1.
// The expected parameter after each step, worked out by hand from torch.optim.SGD's update:
const std::vector<double> kGrads = {0.5, -0.25, 1.0};
struct HandCase {
  const char* name;
  SgdOptions options;
  std::vector<double> expected;
};
const std::vector<HandCase> kHandCases = {
    // d = g: 1 - 0.05, + 0.025, - 0.1
    {"plain", {0.1, 0.0, 0.0, 0.0, false}, {0.95, 0.975, 0.875}},
    // d = g + 0.1 p: 0.6, -0.156, 1.09556
    {"weight decay", {0.1, 0.0, 0.0, 0.1, false}, {0.94, 0.9556, 0.846044}},
    // buf = 0.5, 0.45 - 0.25 = 0.2, 0.18 + 1 = 1.18
    {"momentum", {0.1, 0.9, 0.0, 0.0, false}, {0.95, 0.93, 0.812}},
    // buf = 0.5 (no dampening on the first step), 0.45 - 0.125 = 0.325, 0.2925 + 0.5 = 0.7925
    {"momentum, dampening", {0.1, 0.9, 0.5, 0.0, false}, {0.95, 0.9175, 0.83825}},
    // d = 0.6, buf 0.6; d = -0.156, buf 0.384; d = 1.09016, buf 1.43576
    {"momentum, weight decay", {0.1, 0.9, 0.0, 0.1, false}, {0.94, 0.9016, 0.758024}},
    // buf 0.5, d = 0.5 + 0.45; buf 0.2, d = -0.25 + 0.18; buf 1.18, d = 1 + 1.062
    {"nesterov", {0.1, 0.9, 0.0, 0.0, true}, {0.905, 0.912, 0.7058}},
    // d = 0.6, buf 0.6, d = 1.14; d = -0.1614, buf 0.3786, d = 0.17934;
    // d = 1.0868066, buf 1.4275466, d = 2.37159854
    {"nesterov, weight decay", {0.1, 0.9, 0.0, 0.1, true}, {0.886, 0.868066, 0.630906146}},
};

/// The update is linear in (parameter, gradient) jointly, so element i starting at scale_i and
/// receiving scale_i * g follows scale_i times the scalar sequence. Sizes below and above the
/// kernel's parallel threshold, with a vector tail.
template <typename T>
void check_hand_case(const HandCase& hand, int64_t n, double rtol) {
  INFO(hand.name << ", " << n << " elements");
  std::vector<double> scale(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    scale[i] = (i % 2 ? -1.0 : 1.0) * (1.0 + static_cast<double>(i) / n);
  Tensor<T> p = Tensor<T>::empty({n});
  for (int64_t i = 0; i < n; ++i) p.data()[i] = static_cast<T>(scale[i]);
  Sgd<T> sgd({p}, hand.options);
  const T* buffer = nullptr;
  for (size_t step = 0; step < kGrads.size(); ++step) {
    Tensor<T> g = Tensor<T>::empty({n});
    for (int64_t i = 0; i < n; ++i) g.data()[i] = static_cast<T>(scale[i] * kGrads[step]);
    p.set_grad(g);
    sgd.step();
    std::vector<double> expected(scale);
    for (double& v : expected) v *= hand.expected[step];
    INFO("step " << step + 1);
    testing::require_close("parameter", p.data(), expected.data(), n, 0.0, rtol);
    // Momentum buffers exist exactly with momentum, and are allocated once.
    REQUIRE(sgd.momentum_buffers()[0].defined() == (hand.options.momentum > 0));
    if (hand.options.momentum > 0) {
      if (step == 0) buffer = sgd.momentum_buffers()[0].data();
      CHECK(sgd.momentum_buffers()[0].data() == buffer);
    }
  }
}

}  // namespace

TEST_CASE("SGD follows hand-computed sequences", "[sgd]") {
  for (const HandCase& hand : kHandCases) {
    for (int64_t n : {1, 37, 40001}) {
      check_hand_case<double>(hand, n, 1e-13);
      check_hand_case<float>(hand, n, 1e-6);
    }
  }
}

TEST_CASE("SGD skips parameters without a gradient, and zero_grad clears gradients", "[sgd]") {
  TensorD a = TensorD::from_data({2}, {1.0, 2.0}), b = TensorD::from_data({1}, {1.0});
  Sgd<double> sgd({a, b}, SgdOptions{0.1, 0.9});
  a.set_grad(TensorD::from_data({2}, {0.5, 0.5}));
  sgd.step();
  sgd.step();  // a's buffer: 0.5, then 0.95
  CHECK(a.to_vector() == std::vector<double>{1.0 - 0.05 - 0.095, 2.0 - 0.05 - 0.095});
  CHECK(b.item() == 1.0);
  CHECK_FALSE(sgd.momentum_buffers()[1].defined());

  // b's first step with a gradient starts its buffer afresh (buf = d), whatever a's state.
  b.set_grad(TensorD::from_data({1}, {2.0}));
  sgd.step();
  CHECK(b.item() == Approx(1.0 - 0.2).epsilon(1e-15));
  CHECK(sgd.momentum_buffers()[1].item() == 2.0);
  CHECK(sgd.momentum_buffers()[0].to_vector() ==
        std::vector<double>{0.9 * 0.95 + 0.5, 0.9 * 0.95 + 0.5});

  sgd.zero_grad();
  CHECK_FALSE(a.has_grad());
  CHECK_FALSE(b.has_grad());
  const std::vector<double> before = a.to_vector();
  const std::vector<double> buffer_before = sgd.momentum_buffers()[0].to_vector();
  sgd.step();  // no gradients: nothing moves, not even through momentum (as in PyTorch)
  CHECK(a.to_vector() == before);
  CHECK(sgd.momentum_buffers()[0].to_vector() == buffer_before);
}

TEST_CASE("SGD momentum buffers restore a run", "[sgd]") {
  const SgdOptions options{0.05, 0.9, 0.1, 0.01, false};
  auto grad = [](int step) { return testing::random_tensor<double>({3, 4}, 100 + step); };
  auto run = [&](Sgd<double>& sgd, int from, int to) {
    for (int step = from; step < to; ++step) {
      sgd.params()[0].set_grad(grad(step));
      sgd.step();
    }
  };
  Sgd<double> uninterrupted({testing::random_tensor<double>({3, 4}, 1)}, options);
  run(uninterrupted, 0, 3);
  Sgd<double> interrupted({testing::random_tensor<double>({3, 4}, 1)}, options);
  run(interrupted, 0, 2);

  // Continue from the interrupted run's parameters, with and without its buffers.
  Sgd<double> restored({interrupted.params()[0].clone()}, options);
  restored.set_momentum_buffers({interrupted.momentum_buffers()[0].clone()});
  run(restored, 2, 3);
  CHECK(restored.params()[0].to_vector() == uninterrupted.params()[0].to_vector());
  Sgd<double> fresh({interrupted.params()[0].clone()}, options);
  run(fresh, 2, 3);
  CHECK(fresh.params()[0].to_vector() != uninterrupted.params()[0].to_vector());

  CHECK_THROWS_WITH(
      restored.set_momentum_buffers({}),
      Catch::Contains("set_momentum_buffers") && Catch::Contains("0 buffers for 1 parameters"));
  CHECK_THROWS_WITH(restored.set_momentum_buffers({TensorD::zeros({4, 3})}),
                    Catch::Contains("set_momentum_buffers") && Catch::Contains("[4, 3]") &&
                        Catch::Contains("[3, 4]"));
}

TEST_CASE("SGD rejects invalid options and parameter lists", "[sgd][errors]") {
  TensorD p = TensorD::zeros({2});
  auto make = [&](SgdOptions o) { return Sgd<double>({p}, o); };
  CHECK_THROWS_WITH(make({-0.1}), Catch::Contains("learning rate"));
  CHECK_THROWS_WITH(make({0.1, -0.9}), Catch::Contains("momentum"));
  CHECK_THROWS_WITH(make({0.1, 0.9, 0.0, -1e-4}), Catch::Contains("weight_decay"));
  CHECK_THROWS_WITH(make({0.1, 0.0, 0.0, 0.0, true}), Catch::Contains("Nesterov"));
  CHECK_THROWS_WITH(make({0.1, 0.9, 0.1, 0.0, true}), Catch::Contains("Nesterov"));
  CHECK_NOTHROW(make({0.1, 0.9, 0.0, 0.0, true}));
  CHECK_THROWS_WITH(Sgd<double>({}, SgdOptions{}), Catch::Contains("empty parameter list"));
  CHECK_THROWS_WITH(Sgd<double>({p, p}, SgdOptions{}), Catch::Contains("same tensor"));
  CHECK_THROWS_WITH(Sgd<double>({TensorD()}, SgdOptions{}), Catch::Contains("undefined"));
  Sgd<double> sgd({p}, SgdOptions{});
  CHECK_THROWS_WITH(sgd.set_lr(-1), Catch::Contains("learning rate"));
  sgd.set_lr(0.5);
  CHECK(sgd.lr() == 0.5);
  CHECK(sgd.options().lr == 0.5);
}

TEST_CASE("StepLR gives PyTorch's learning-rate sequence", "[step_lr]") {
  // Step 8, gamma 0.1 over 20 epochs: 0.01 x8, 0.001 x8, 0.0001 x4 (PyTorch's chained products,
  // which are exactly these doubles).
  std::vector<double> expected;
  for (int i = 0; i < 20; ++i) expected.push_back(i < 8 ? 0.01 : i < 16 ? 0.001 : 0.0001);

  StepLR schedule(0.01, 8, 0.1);
  TensorD p = TensorD::zeros({1});
  Sgd<double> sgd({p}, SgdOptions{0.01, 0.9});
  StepLR driving(sgd, 8, 0.1);
  for (int64_t epoch = 0; epoch < 20; ++epoch) {
    INFO("epoch " << epoch);
    CHECK(schedule.last_epoch() == epoch);
    CHECK(schedule.lr() == expected[epoch]);
    CHECK(schedule.lr_at(epoch) == expected[epoch]);
    CHECK(sgd.lr() == expected[epoch]);
    CHECK(driving.lr() == expected[epoch]);
    schedule.step();
    driving.step();
  }
  CHECK(schedule.last_epoch() == 20);
  CHECK(schedule.lr_at(24) == Approx(1e-5).epsilon(1e-12));

  // Resuming at epoch 10 continues the same sequence.
  Sgd<double> resumed_sgd({p}, SgdOptions{0.01, 0.9});
  StepLR resumed(resumed_sgd, 8, 0.1);
  resumed.set_last_epoch(10);
  for (int64_t epoch = 10; epoch < 20; ++epoch) {
    CHECK(resumed.last_epoch() == epoch);
    CHECK(resumed_sgd.lr() == expected[epoch]);
    resumed.step();
  }

  CHECK_THROWS_WITH(StepLR(0.01, 0, 0.1),
                    Catch::Contains("StepLR") && Catch::Contains("step_size"));
  CHECK_THROWS_WITH(StepLR(0.01, 8, 0.0), Catch::Contains("StepLR") && Catch::Contains("gamma"));
  CHECK_THROWS_WITH(StepLR(-0.01, 8, 0.1), Catch::Contains("StepLR"));
  CHECK_THROWS_WITH(schedule.lr_at(-1), Catch::Contains("lr_at"));
}
