// cuda::conv2d_forward, conv2d_backward_data and conv2d_backward_weights against the double
// oracle of tests/oracle/conv.hpp, with the CPU kernels' bound (support/conv_check.hpp: the
// rounding bound of a float sum of the result's terms, from their count and magnitude), on small
// awkward shapes: N = 1, Cin = 3, odd H and W, 1x1, 3x3, 5x5 and 3x1 kernels, stride 1, 2 and 3,
// padding 0, 1 and 2, outputs that only see padding, a 1x1 output, inputs the output never
// reaches, and sizes that make M, Nc and K of every pass ragged multiples of the 64 x 64 x 16
// tiles (several tiles along each); with and without bias; gradients written and accumulated;
// the wgrad with its own split of K, with 2 slices, and with more slices than K steps (empty
// slices); dbias alone. Also: the multiply-shift division, bit-identical results under every
// schedule, argument errors.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/cuda_test.hpp"
#include "normlab/cuda/allocator.hpp"
#include "normlab/cuda/conv2d.cuh"
#include "oracle/conv.hpp"
#include "support/conv_check.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;

namespace {

struct ConvCase {
  std::string name;
  oracle::ConvShape s;
  bool bias;
};

const ConvCase kCases[] = {
    {"N=1 Cin=3 1x1 @5x7", {1, 3, 5, 7, 4, 1, 1, 1, 0}, true},
    {"N=1 3x3 p1 @5x7 Cout=5", {1, 3, 5, 7, 5, 3, 3, 1, 1}, true},
    {"5x5 p2 @5x7", {2, 3, 5, 7, 3, 5, 5, 1, 2}, false},
    {"3x3 s2 p1 @7x5", {2, 3, 7, 5, 6, 3, 3, 2, 1}, true},
    {"1x1 s2 @5x7", {1, 3, 5, 7, 4, 1, 1, 2, 0}, false},
    {"5x5 s2 p2 @9x7", {1, 2, 9, 7, 3, 5, 5, 2, 2}, true},
    {"3x3 s2 p0 @8x6 (last input row and column unused)", {1, 3, 8, 6, 2, 3, 3, 2, 0}, true},
    {"1x1 p2 (outputs of padding only)", {1, 3, 4, 5, 2, 1, 1, 1, 2}, true},
    {"3x1 kernel s3 p1 @8x10", {2, 3, 8, 10, 4, 3, 1, 3, 1}, true},
    {"output 1x1: 3x3 p0 @3x3", {1, 4, 3, 3, 5, 3, 3, 1, 0}, false},
    // forward M = 70, Nc = 144, K = 27; dgrad K = 630; wgrad M = 70, Nc = 27, K = 144.
    {"ragged tiles: 3->70 3x3 p1 @9x8", {2, 3, 9, 8, 70, 3, 3, 1, 1}, true},
    // dgrad M = 67, Nc = 35; forward K = 603; wgrad Nc = 603.
    {"ragged tiles: 67->5 3x3 p1 @5x7", {1, 67, 5, 7, 5, 3, 3, 1, 1}, false},
    {"a model layer: 16->32 3x3 p1 @8x8", {2, 16, 8, 8, 32, 3, 3, 1, 1}, true},
};

Conv2dGeometry geometry(const oracle::ConvShape& s) {
  return {s.N, s.Cin, s.H, s.W, s.Cout, s.KH, s.KW, s.stride, s.padding};
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

std::vector<float> random_values(int64_t n, uint64_t seed, double scale = 1.0) {
  return testing::random_tensor<float>({n}, seed, 0.0, scale).to_vector();
}

Tensor<float> device_copy(const std::vector<float>& v) {
  return Tensor<float>::from_data({static_cast<int64_t>(v.size())}, v).to(Device::cuda());
}

std::vector<float> host_copy(const Tensor<float>& t) { return t.to(Device::cpu()).to_vector(); }

/// A device gradient buffer of n elements: to be written (prior empty) or added to (a copy of
/// prior).
struct DeviceGradient {
  Tensor<float> buffer;
  GradientOut<float> out;
};
DeviceGradient device_gradient(int64_t n, const std::vector<float>& prior) {
  Tensor<float> buffer =
      prior.empty() ? Tensor<float>::empty({n}, Device::cuda()) : device_copy(prior);
  return {buffer, {buffer.data(), !prior.empty()}};
}

/// Checks a gradient that was written (prior empty) or added to prior: exact (+ prior), with the
/// bound of a sum of `terms` terms (one more, the prior, when accumulating).
void check_gradient(const std::string& what, const Tensor<float>& device,
                    const std::vector<float>& prior, std::vector<double> exact,
                    std::vector<double> magnitude, int64_t terms) {
  for (size_t i = 0; i < prior.size(); ++i) {
    exact[i] += prior[i];
    magnitude[i] += std::abs(prior[i]);
  }
  testing::check_close(what + (prior.empty() ? " (written)" : " (accumulated)"), host_copy(device),
                       exact, magnitude, terms + (prior.empty() ? 0 : 1));
}

/// The inputs of a case and the oracle's results on them (exact, and on absolute values: the
/// magnitude of the terms).
struct Problem {
  std::vector<float> x, w, bias, dy;
  std::vector<double> y, y_magnitude;
  oracle::ConvGradients<double> grads, grads_magnitude;

  Problem(const ConvCase& c, uint64_t seed) {
    const oracle::ConvShape& s = c.s;
    const double fan_in = static_cast<double>(s.Cin * s.KH * s.KW);
    x = random_values(s.N * s.Cin * s.H * s.W, seed);
    w = random_values(s.Cout * s.Cin * s.KH * s.KW, seed + 1, 1.0 / std::sqrt(fan_in));
    if (c.bias) bias = random_values(s.Cout, seed + 2);
    dy = random_values(s.N * s.Cout * s.OH() * s.OW(), seed + 3);
    const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(bias),
                              dyd = to_double(dy);
    using testing::absolute;
    y = oracle::conv2d_forward(xd, wd, bd, s);
    y_magnitude = oracle::conv2d_forward(absolute(xd), absolute(wd), absolute(bd), s);
    grads = oracle::conv2d_backward(xd, wd, dyd, s);
    grads_magnitude = oracle::conv2d_backward(absolute(xd), absolute(wd), absolute(dyd), s);
  }
};

/// Every pass of the case against the oracle: y; dx written and accumulated; dweight (and dbias)
/// written and accumulated for each wgrad split; dbias alone.
void check_case(const ConvCase& c, uint64_t seed) {
  INFO("case " << c.name);
  const oracle::ConvShape& s = c.s;
  const Conv2dGeometry g = geometry(s);
  const Problem p(c, seed);
  const Tensor<float> x = device_copy(p.x), w = device_copy(p.w), dy = device_copy(p.dy);
  const Tensor<float> bias = c.bias ? device_copy(p.bias) : Tensor<float>();
  const float* bias_data = c.bias ? bias.data() : nullptr;
  const int64_t P = s.OH() * s.OW();

  Tensor<float> y = Tensor<float>::empty({s.N * s.Cout * P}, Device::cuda());
  cuda::conv2d_forward(x.data(), w.data(), bias_data, y.data(), g);
  testing::check_close("y", host_copy(y), p.y, p.y_magnitude, s.Cin * s.KH * s.KW + 1);

  for (bool accumulate : {false, true}) {
    const std::vector<float> dx_prior =
        accumulate ? random_values(s.N * s.Cin * s.H * s.W, seed + 4) : std::vector<float>();
    const DeviceGradient dx = device_gradient(s.N * s.Cin * s.H * s.W, dx_prior);
    cuda::conv2d_backward_data(dy.data(), w.data(), dx.out, g);
    check_gradient("dx", dx.buffer, dx_prior, p.grads.dx, p.grads_magnitude.dx,
                   s.Cout * s.KH * s.KW);
  }

  const int64_t k_steps = (s.N * P + 15) / 16;
  for (int64_t slices : {int64_t(0), int64_t(2), k_steps + 2}) {
    const cuda::Conv2dLaunchConfig config{slices};
    const int64_t used = cuda::conv2d_wgrad_slices(g, config);
    INFO("wgrad_slices " << slices << " (" << used << " used)");
    const Tensor<float> workspace = Tensor<float>::empty(
        {static_cast<int64_t>(cuda::conv2d_wgrad_workspace_bytes<float>(g, config) /
                              sizeof(float))},
        Device::cuda());
    // Each result sums N*P products over `used` partial sums, then adds the partials.
    const int64_t terms = s.N * P + used;
    for (bool accumulate : {false, true}) {
      const std::vector<float> dw_prior =
          accumulate ? random_values(static_cast<int64_t>(p.w.size()), seed + 5)
                     : std::vector<float>();
      const std::vector<float> db_prior =
          accumulate && c.bias ? random_values(s.Cout, seed + 6) : std::vector<float>();
      const DeviceGradient dw = device_gradient(static_cast<int64_t>(p.w.size()), dw_prior);
      const DeviceGradient db =
          c.bias ? device_gradient(s.Cout, db_prior) : DeviceGradient{Tensor<float>(), {}};
      cuda::conv2d_backward_weights(x.data(), dy.data(), dw.out, db.out, g, workspace.data(),
                                    nullptr, config);
      check_gradient("dweight", dw.buffer, dw_prior, p.grads.dw, p.grads_magnitude.dw, terms);
      if (c.bias)
        check_gradient("dbias", db.buffer, db_prior, p.grads.db, p.grads_magnitude.db, terms);
    }
    if (c.bias) {  // dbias alone (no x needed)
      const DeviceGradient db = device_gradient(s.Cout, {});
      cuda::conv2d_backward_weights<float>(nullptr, dy.data(), {}, db.out, g, workspace.data(),
                                           nullptr, config);
      check_gradient("dbias alone", db.buffer, {}, p.grads.db, p.grads_magnitude.db, terms);
    }
  }
}

}  // namespace

TEST_CASE("conv2d forward, dgrad and wgrad match the oracle on awkward shapes", "[cuda][conv2d]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  uint64_t seed = 100;
  for (const ConvCase& c : kCases) check_case(c, seed += 10);
}

TEST_CASE("conv2d's multiply-shift division equals integer division", "[cuda][conv2d]") {
  // Divisors: every one up to 300, and powers of two with their neighbours up to 2^31 - 1.
  std::vector<int64_t> divisors;
  for (int64_t d = 1; d <= 300; ++d) divisors.push_back(d);
  for (int b = 9; b <= 31; ++b)
    for (int64_t d : {(int64_t(1) << b) - 1, int64_t(1) << b, (int64_t(1) << b) + 1})
      if (d < (int64_t(1) << 31)) divisors.push_back(d);
  const int64_t largest = (int64_t(1) << 31) - 1;
  for (int64_t d : divisors) {
    const cuda::FastDivmod by(d);
    // Dividends around the first multiples, around multiples spread over the range, and the
    // largest ones.
    std::vector<int64_t> dividends;
    for (int64_t n = 0; n <= 600; ++n) dividends.push_back(n);
    for (int64_t q = 1; q * d <= largest; q = q * 3 + 1)
      for (int64_t n : {q * d - 1, q * d, q * d + 1}) dividends.push_back(n);
    for (int64_t n = largest - 600; n <= largest; ++n) dividends.push_back(n);
    int64_t failures = 0;
    for (int64_t n : dividends) {
      if (n < 0 || n > largest) continue;
      int q = -1, r = -1;
      by.divmod(static_cast<int>(n), q, r);
      if (q != n / d || r != n % d) {
        if (failures++ < 3) UNSCOPED_INFO(n << " / " << d << ": got " << q << " rest " << r);
      }
    }
    INFO("divisor " << d);
    CHECK(failures == 0);
  }
}

TEST_CASE("conv2d gives bit-identical results from run to run", "[cuda][conv2d]") {
  // Every sum has a fixed order given the sizes and the split: neither the thread and block
  // order (each emulator schedule) nor a second run may change a bit.
  const ConvCase c{"3x3 p1 @9x8", {2, 3, 9, 8, 70, 3, 3, 1, 1}, true};
  const Conv2dGeometry g = geometry(c.s);
  const Problem p(c, 7);
  const cuda::Conv2dLaunchConfig config{3};
  auto run = [&] {
    const Tensor<float> x = device_copy(p.x), w = device_copy(p.w), dy = device_copy(p.dy),
                        bias = device_copy(p.bias);
    Tensor<float> y = Tensor<float>::empty({static_cast<int64_t>(p.y.size())}, Device::cuda());
    const DeviceGradient dx = device_gradient(static_cast<int64_t>(p.x.size()), {}),
                         dw = device_gradient(static_cast<int64_t>(p.w.size()), {}),
                         db = device_gradient(c.s.Cout, {});
    const Tensor<float> workspace = Tensor<float>::empty(
        {static_cast<int64_t>(cuda::conv2d_wgrad_workspace_bytes<float>(g, config) /
                              sizeof(float))},
        Device::cuda());
    cuda::conv2d_forward(x.data(), w.data(), bias.data(), y.data(), g);
    cuda::conv2d_backward_data(dy.data(), w.data(), dx.out, g);
    cuda::conv2d_backward_weights(x.data(), dy.data(), dw.out, db.out, g, workspace.data(), nullptr,
                                  config);
    return std::vector<std::vector<float>>{host_copy(y), host_copy(dx.buffer), host_copy(dw.buffer),
                                           host_copy(db.buffer)};
  };
  const auto first = run();
  CHECK(run() == first);
#if defined(NORMLAB_CUDA_EMU)
  for (const auto& schedule : cuda_emu::schedules_to_test()) {
    INFO("schedule " << schedule);
    const cuda_emu::ScopedSchedule scoped(schedule);
    CHECK(run() == first);
  }
#endif
}

TEST_CASE("conv2d rejects bad arguments with the op and sizes in the message",
          "[cuda][conv2d][errors]") {
  using Catch::Contains;
  float buffer[4] = {};
  float* f = buffer;
  const GradientOut<float> grad{f, false};
  const Conv2dGeometry good{1, 3, 5, 7, 4, 3, 3, 1, 1};
  REQUIRE_THROWS_WITH(
      cuda::conv2d_forward<float>(f, f, nullptr, f, {1, 0, 5, 7, 4, 3, 3, 1, 1}),
      Contains("cuda::conv2d_forward") && Contains("x [1, 0, 5, 7]") && Contains("positive"));
  REQUIRE_THROWS_WITH(cuda::conv2d_backward_data<float>(f, f, grad, {1, 3, 5, 7, 4, 3, 3, 0, 1}),
                      Contains("cuda::conv2d_backward_data") && Contains("stride 0"));
  REQUIRE_THROWS_WITH(cuda::conv2d_forward<float>(f, f, nullptr, f, {1, 3, 2, 7, 4, 5, 3, 1, 1}),
                      Contains("larger than the padded input") &&
                          Contains("weight [4, 3, 5, 3], stride 1, padding 1"));
  REQUIRE_THROWS_WITH(
      cuda::conv2d_forward<float>(f, f, nullptr, f, {1, 1 << 16, 1 << 8, 1 << 8, 4, 1, 1, 1, 0}),
      Contains("32-bit indices") && Contains("x 4294967296"));
  REQUIRE_THROWS_WITH(cuda::conv2d_forward<float>(nullptr, f, nullptr, f, good),
                      Contains("cuda::conv2d_forward") && Contains("'x'"));
  REQUIRE_THROWS_WITH(cuda::conv2d_backward_data<float>(f, nullptr, grad, good),
                      Contains("'weight'"));
  REQUIRE_THROWS_WITH(cuda::conv2d_backward_weights<float>(f, f, grad, {}, good, nullptr),
                      Contains("cuda::conv2d_backward_weights") && Contains("'workspace'"));
  REQUIRE_THROWS_WITH(cuda::conv2d_backward_weights<float>(nullptr, f, grad, {}, good, f),
                      Contains("'x'"));
  REQUIRE_THROWS_WITH(cuda::conv2d_backward_weights<float>(f, f, grad, {}, good, f, nullptr, {-1}),
                      Contains("wgrad_slices") && Contains("-1"));
}
