// cuda::relu_*, add_forward, scaled_gradient and dropout_* (kernels/normlab/cuda/elementwise.cuh)
// against the double oracle and the CPU kernels: lengths that leave scalar heads and tails around
// the 16-byte packs (1, 3, 5, 4099, ...), arrays that start off a 16-byte boundary, NaN, Inf and
// signed zeros; gradients written (into NaN) and accumulated; the dropout mask bit for bit equal
// to the CPU's for several seeds and counters (one near the 32-bit carry), under several launch
// shapes; argument errors.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cuda/cuda_op_tests.hpp"
#include "cuda/cuda_test.hpp"
#include "normlab/cpu/elementwise.hpp"
#include "normlab/cuda/elementwise.cuh"
#include "oracle/elementwise.hpp"

using namespace normlab;

namespace {

/// Lengths around the pack size and the Philox block (4), and one over several blocks of threads.
const int64_t lengths[] = {1, 3, 4, 5, 17, 64, 65, 4099};

/// Element offsets of the arrays in their allocations: 0 (16-byte aligned), 1 (every array off
/// its boundary by the same amount: head, packs, tail) and, for one input only, scalar access.
const int64_t offsets[] = {0, 1};

/// Random values with NaN, +-Inf, +-0 and exact ties of ReLU's threshold sprinkled in.
template <typename T>
std::vector<T> awkward_values(int64_t n, uint64_t seed) {
  std::vector<T> v = testing::random_values<T>(n, seed);
  const T specials[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                        -std::numeric_limits<T>::infinity(), T(0), -T(0)};
  for (int64_t i = 0; i < n; i += 7) v[i] = specials[(i / 7) % 5];
  return v;
}

/// A device tensor of values.size() + offset elements holding `values` from element `offset`.
template <typename T>
Tensor<T> placed(const std::vector<T>& values, int64_t offset) {
  std::vector<T> padded(static_cast<size_t>(offset), T(42));
  padded.insert(padded.end(), values.begin(), values.end());
  return testing::to_device(padded);
}

template <typename T>
std::vector<T> placed_result(const Tensor<T>& t, int64_t offset) {
  const std::vector<T> all = testing::to_host(t);
  return std::vector<T>(all.begin() + offset, all.end());
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

/// Bitwise equality (NaN payloads and signed zeros included).
template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// Dropout forward and backward (written and accumulated) on n elements placed at `offset`:
/// byte for byte the CPU kernels' results, and the oracle's mask.
template <typename T>
void check_dropout_against_cpu(const DropoutDraw& draw, int64_t n, int64_t offset) {
  INFO("keep " << draw.keep << ", seed " << draw.seed << ", counter " << draw.counter_base
               << ", n = " << n << ", offset " << offset << ", " << sizeof(T) << "-byte values");
  const std::vector<T> x = awkward_values<T>(n, 50 + n);
  std::vector<T> y_cpu(n);
  cpu::dropout_forward(x.data(), y_cpu.data(), n, draw);
  const Tensor<T> xd = placed(x, offset), yd = placed(std::vector<T>(n), offset);
  cuda::dropout_forward(xd.data() + offset, yd.data() + offset, n, draw);
  const std::vector<T> y = placed_result(yd, offset);
  CHECK(same_bits(y, y_cpu));

  // The oracle's mask: kept elements are x / keep, dropped ones x * 0 (NaN and Inf stay).
  const std::vector<bool> mask = oracle::dropout_mask(n, draw.keep, draw.seed, draw.counter_base);
  const T scale = T(1) / static_cast<T>(draw.keep);
  for (int64_t i = 0; i < n; ++i) {
    const T expected = x[i] * (mask[i] ? scale : T(0));
    CHECK((y[i] == expected || (std::isnan(y[i]) && std::isnan(expected))));
  }

  const std::vector<T> dy = testing::random_values<T>(n, 60 + n);
  const Tensor<T> dyd = placed(dy, offset);
  for (const bool accumulate : {false, true}) {
    INFO("backward, accumulate " << accumulate);
    std::vector<T> dx_cpu = testing::random_values<T>(n, 70 + n);
    const Tensor<T> dxd = placed(dx_cpu, offset);
    cpu::dropout_backward(dy.data(), dx_cpu.data(), n, draw, accumulate);
    cuda::dropout_backward(dyd.data() + offset, GradientOut<T>{dxd.data() + offset, accumulate}, n,
                           draw);
    CHECK(same_bits(placed_result(dxd, offset), dx_cpu));
  }
}

}  // namespace

TEST_CASE("relu forward keeps NaN and matches the oracle, its backward masks by the saved output",
          "[cuda][elementwise]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const int64_t n : lengths) {
    for (const int64_t offset : offsets) {
      INFO("n = " << n << ", offset " << offset);
      const std::vector<float> x = awkward_values<float>(n, 10 + n);
      const Tensor<float> xd = placed(x, offset), yd = placed(std::vector<float>(n), offset);
      cuda::relu_forward(xd.data() + offset, yd.data() + offset, n);
      const std::vector<float> y = placed_result(yd, offset);
      const std::vector<double> y_ref = oracle::relu(to_double(x));
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(x[i])) {
          CHECK(std::isnan(y[i]));
        } else {
          CHECK(y[i] == y_ref[i]);
        }
      }

      const std::vector<float> dy = testing::random_values<float>(n, 20 + n);
      const Tensor<float> dyd = placed(dy, offset);
      std::vector<double> dx_ref(n);
      for (int64_t i = 0; i < n; ++i) dx_ref[i] = y_ref[i] > 0 ? dy[i] : 0.0;  // NaN: y_ref 0
      testing::check_gradient<float>(
          "relu dx", n,
          [&](GradientOut<float> dx) {
            // The gradient buffer starts at a 16-byte boundary: with offset 1 the arrays of the
            // call differ in alignment and the kernel takes the all-scalar path.
            cuda::relu_backward(yd.data() + offset, dyd.data() + offset, dx, n);
          },
          dx_ref, 1e-30, 6e-8);  // exact when written, one rounding when added
    }
  }
}

TEST_CASE("add and its backward (the scaled gradient) match the oracle", "[cuda][elementwise]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (const int64_t n : lengths) {
    for (const int64_t offset : offsets) {
      INFO("n = " << n << ", offset " << offset);
      const std::vector<float> a = testing::random_values<float>(n, 30 + n),
                               b = testing::random_values<float>(n, 40 + n, 1.0, 3.0);
      const Tensor<float> ad = placed(a, offset), bd = placed(b, offset),
                          yd = placed(std::vector<float>(n), offset);
      cuda::add_forward(ad.data() + offset, bd.data() + offset, yd.data() + offset, n);
      std::vector<double> y_ref(n);
      for (int64_t i = 0; i < n; ++i) y_ref[i] = double(a[i]) + double(b[i]);
      // One rounding of the exact sum: within 2^-24 relative.
      testing::require_close("add y", placed_result(yd, offset).data(), y_ref.data(), n, 1e-30,
                             6e-8);

      for (const float scale : {1.0f, -0.375f}) {
        INFO("scale " << scale);
        std::vector<double> dx_ref(n);
        for (int64_t i = 0; i < n; ++i) dx_ref[i] = double(scale) * a[i];
        testing::check_gradient<float>(
            "scaled gradient", n,
            [&](GradientOut<float> dx) { cuda::scaled_gradient(ad.data() + offset, dx, n, scale); },
            dx_ref, 1e-6, 1e-6);
      }
    }
  }
  // double: 16-byte packs of two, after a head of one element when the arrays are off by one.
  for (const int64_t n : {int64_t(5), int64_t(65)}) {
    for (const int64_t offset : offsets) {
      INFO("double, n = " << n << ", offset " << offset);
      const std::vector<double> a = testing::random_values<double>(n, 90 + n),
                                b = testing::random_values<double>(n, 95 + n);
      const Tensor<double> ad = placed(a, offset), bd = placed(b, offset),
                           yd = placed(std::vector<double>(n), offset);
      cuda::add_forward(ad.data() + offset, bd.data() + offset, yd.data() + offset, n);
      std::vector<double> y_ref(n);
      for (int64_t i = 0; i < n; ++i) y_ref[i] = a[i] + b[i];
      CHECK(placed_result(yd, offset) == y_ref);
    }
  }
}

TEST_CASE("dropout's mask and values equal the CPU kernel's bit for bit and the oracle's mask",
          "[cuda][elementwise][dropout]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  const DropoutDraw draws[] = {
      {0.5f, 7, 0},
      {0.9f, 0x123456789ABCDEF0ull, 1000},
      {0.25f, 3, 0xFFFFFFFEull},  // the counter carries into its high word inside the tensor
      {1.0f, 5, 11},              // keep everything
  };
  for (const DropoutDraw& draw : draws)
    for (const int64_t n : lengths)
      for (const int64_t offset : offsets) check_dropout_against_cpu<float>(draw, n, offset);
  // double: 4-element vectors of 32 bytes where aligned.
  for (const int64_t n : {int64_t(5), int64_t(65)})
    for (const int64_t offset : {int64_t(0), int64_t(2), int64_t(4)})
      check_dropout_against_cpu<double>(draws[1], n, offset);
}

TEST_CASE("dropout's mask does not depend on the launch shape", "[cuda][elementwise][dropout]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  // Grids of 1, 2 and 3 blocks make each thread take several Philox blocks in turn (grid-stride),
  // starting at different ones; the launcher's own grid gives each thread one.
  const DropoutDraw draw{0.6f, 99, 12345};
  const int64_t n = 4099;
  const std::vector<float> x = testing::random_values<float>(n, 80, 2.0);
  std::vector<float> y_cpu(n);
  cpu::dropout_forward(x.data(), y_cpu.data(), n, draw);
  const Tensor<float> xd = testing::to_device(x);
  for (const unsigned grid : {1u, 2u, 3u}) {
    INFO("grid of " << grid << " blocks");
    const Tensor<float> yd = Tensor<float>::zeros({n}).to(Device::cuda());
    NORMLAB_CUDA_LAUNCH(grid, cuda::grid_stride::kBlock, 0, nullptr,
                        cuda::elementwise_kernels::dropout_kernel<float, false>)
    (xd.data(), yd.data(), n, draw);
    NORMLAB_CUDA_CHECK(cudaGetLastError());
    CHECK(same_bits(testing::to_host(yd), y_cpu));
  }
}

TEST_CASE("elementwise launchers reject bad arguments with the op in the message",
          "[cuda][elementwise][errors]") {
  using Catch::Contains;
  const Tensor<float> x = Tensor<float>::zeros({8}).to(Device::cuda());
  float* p = x.data();
  REQUIRE_THROWS_WITH(cuda::relu_forward(p, p, -1),
                      Contains("cuda::relu_forward") && Contains("n = -1"));
  REQUIRE_THROWS_WITH(cuda::relu_forward(p, static_cast<float*>(nullptr), 8),
                      Contains("cuda::relu_forward") && Contains("'y'"));
  REQUIRE_THROWS_WITH(cuda::relu_backward(p, static_cast<const float*>(nullptr), {p, false}, 8),
                      Contains("cuda::relu_backward") && Contains("'dy'"));
  REQUIRE_THROWS_WITH(cuda::add_forward(p, static_cast<const float*>(nullptr), p, 8),
                      Contains("cuda::add_forward") && Contains("'b'"));
  REQUIRE_THROWS_WITH(cuda::scaled_gradient(static_cast<const float*>(nullptr), {p, true}, 8, 1.0f),
                      Contains("cuda::scaled_gradient") && Contains("'dy'"));
  REQUIRE_THROWS_WITH(
      cuda::dropout_forward(p, p, 8, DropoutDraw{0.0f, 1, 0}),
      Contains("cuda::dropout_forward") && Contains("(0, 1]") && Contains("8 elements"));
  REQUIRE_THROWS_WITH(cuda::dropout_backward(p, {p, false}, 8, DropoutDraw{1.5f, 1, 0}),
                      Contains("cuda::dropout_backward") && Contains("1.5"));
}
