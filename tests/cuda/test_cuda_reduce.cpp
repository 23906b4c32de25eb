// The building blocks of kernels/normlab/cuda/reduce.cuh: Welford warp and block reductions
// against a two-pass double oracle (on offset data too), every thread of a block receiving the
// same total; and the packed element loop: every element visited exactly once, packs only at
// 16-byte boundaries, for every length and alignment, and no packs when the runs read together
// are aligned differently.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda/cuda_test.hpp"
#include "normlab/cuda/allocator.hpp"
#include "normlab/cuda/reduce.cuh"
#include "support/gradcheck.hpp"

using namespace normlab;

namespace {

/// One block: thread t pushes x[t] - x[0], x[t + BlockSize] - x[0], ... into a Welford state (the
/// norm kernels' shift, which keeps offset data exact); then every thread writes the block total
/// (block_all_reduce) and its warp's total (warp_all_reduce).
template <int BlockSize>
__global__ void __launch_bounds__(BlockSize)
    welford_totals(const float* x, int n, WelfordState<float>* block_totals,
                   WelfordState<float>* warp_totals) {
  WelfordState<float> state;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += BlockSize)
    welford_push(state, x[i] - x[0]);
  warp_totals[threadIdx.x] = cuda::warp_all_reduce(state, cuda::WelfordMerge{});
  block_totals[threadIdx.x] = cuda::block_all_reduce<BlockSize>(state, cuda::WelfordMerge{});
}

/// One block of Workers threads walks the n elements at `base` with for_each_packed (split for
/// `base` and `other`): visits[i] counts the visits of element i, packed_elements the elements
/// visited in packs, misaligned_packs the packs not on a 16-byte boundary.
template <typename T, int Workers>
__global__ void count_visits(const T* base, const T* other, int n, int* visits,
                             int* packed_elements, int* misaligned_packs) {
  const cuda::PackedSplit split = cuda::packed_split(n, base, other);
  cuda::for_each_packed<T>(split, n, static_cast<int>(threadIdx.x), Workers,
                           [&](int64_t i, auto width) {
                             constexpr int K = decltype(width)::value;
                             if (K > 1) {
                               atomicAdd(packed_elements, K);
                               if (reinterpret_cast<uintptr_t>(base + i) % 16 != 0)
                                 atomicAdd(misaligned_packs, 1);
                             }
                             for (int k = 0; k < K; ++k) atomicAdd(&visits[i + k], 1);
                           });
}

template <int BlockSize>
void check_welford_totals(const std::vector<float>& values) {
  const int n = static_cast<int>(values.size());
  INFO("block of " << BlockSize << ", " << n << " values");
  const Tensor<float> x = Tensor<float>::from_data({n}, values).to(Device::cuda());
  const Tensor<float> block_totals = Tensor<float>::empty({BlockSize * 3}, Device::cuda());
  const Tensor<float> warp_totals = Tensor<float>::empty({BlockSize * 3}, Device::cuda());
  auto* block_states = reinterpret_cast<WelfordState<float>*>(block_totals.data());
  auto* warp_states = reinterpret_cast<WelfordState<float>*>(warp_totals.data());
  NORMLAB_CUDA_LAUNCH(1, BlockSize, 0, nullptr, welford_totals<BlockSize>)
  (x.data(), n, block_states, warp_states);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  const std::vector<float> block = block_totals.to(Device::cpu()).to_vector();
  const std::vector<float> warp = warp_totals.to(Device::cpu()).to_vector();

  // Two-pass oracle in double of the shifted values, for the block and for each warp's elements.
  auto oracle = [&](auto in_set) {
    double count = 0, sum = 0, m2 = 0;
    for (int i = 0; i < n; ++i)
      if (in_set(i)) count += 1, sum += double(values[i]) - values[0];
    const double mean = count > 0 ? sum / count : 0;
    for (int i = 0; i < n; ++i)
      if (in_set(i))
        m2 += (double(values[i]) - values[0] - mean) * (double(values[i]) - values[0] - mean);
    return std::vector<double>{count, mean, m2};
  };
  auto check_state = [&](const float* got, const std::vector<double>& expected) {
    CHECK(got[0] == expected[0]);
    const double spread = std::sqrt(expected[2] / std::max(expected[0], 1.0)) + 1e-30;
    CHECK(std::abs(got[1] - expected[1]) <= 1e-6 * std::abs(expected[1]) + 1e-5 * spread);
    CHECK(std::abs(got[2] - expected[2]) <= 1e-5 * expected[2] + 1e-30);
  };
  const std::vector<double> total = oracle([](int) { return true; });
  for (int t = 0; t < BlockSize; ++t) {
    INFO("thread " << t);
    for (int k = 0; k < 3; ++k) REQUIRE(block[3 * t + k] == block[k]);  // one total for all
    const int warp_index = t / 32;
    check_state(&warp[3 * t], oracle([&](int i) { return i % BlockSize / 32 == warp_index; }));
  }
  check_state(&block[0], total);
}

template <typename T>
void check_visits(int offset, int n, int other_offset, bool expect_packs) {
  constexpr int K = 16 / sizeof(T);
  INFO("element type of " << sizeof(T) << " bytes, offset " << offset << ", n " << n
                          << ", other offset " << other_offset);
  const Tensor<T> data = Tensor<T>::zeros({n + 2 * K}).to(Device::cuda());
  const Tensor<float> counters = Tensor<float>::zeros({n + 2}).to(Device::cuda());
  int* visits = reinterpret_cast<int*>(counters.data());  // zero bits are zero ints
  const T* base = data.data() + offset;
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, count_visits<T, 32>)
  (base, data.data() + other_offset, n, visits, visits + n, visits + n + 1);
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  std::vector<int> counts(n + 2);
  NORMLAB_CUDA_CHECK(
      cudaMemcpy(counts.data(), visits, sizeof(int) * (n + 2), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; ++i) {
    INFO("element " << i);
    REQUIRE(counts[i] == 1);
  }
  const int head = std::min(n, (K - offset % K) % K);
  const int packed = expect_packs ? (n - head) / K * K : 0;
  CHECK(counts[n] == packed);
  CHECK(counts[n + 1] == 0);
}

}  // namespace

TEST_CASE("warp and block Welford reductions match a two-pass oracle", "[cuda][reduce]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (int n : {1, 5, 64, 300, 1000}) {
    for (auto [offset, scale] : {std::pair{0.5, 2.0}, std::pair{100.0, 0.01}}) {
      const Tensor<float> x = testing::random_tensor<float>({n}, 7 + n, offset, scale);
      check_welford_totals<64>(x.to_vector());
      check_welford_totals<256>(x.to_vector());
    }
  }
  check_welford_totals<128>(std::vector<float>(77, 3.25f));  // constant: M2 exactly 0
}

TEST_CASE("packed loops visit every element once, packs only on 16-byte boundaries",
          "[cuda][reduce]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  for (int n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 130, 131}) {
    for (int offset = 0; offset < 4; ++offset) {
      check_visits<float>(offset, n, offset, true);
      check_visits<float>(offset, n, offset + 1, false);  // the other run is aligned differently
    }
    for (int offset = 0; offset < 2; ++offset) {
      check_visits<double>(offset, n, offset + 2, true);  // two packs further: same alignment
      check_visits<double>(offset, n, offset + 1, false);
    }
  }
}
