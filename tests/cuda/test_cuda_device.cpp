// The device seam (include/normlab/cuda): Tensor<T> on Device::cuda() with storage from the
// caching allocator (blocks recycled, not re-allocated), host <-> device copies with to() and
// copy_(), CUDA errors as normlab::Error with file:line and CUDA's string, host-only accessors
// refusing device tensors, streams.
#include <algorithm>
#include <string>
#include <vector>

#include "cuda/cuda_norm_ops.hpp"
#include "cuda/cuda_test.hpp"
#include "normlab/cuda/device.hpp"
#include "normlab/cuda/stream.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;

TEST_CASE("tensors round-trip through device memory", "[cuda][device]") {
  const Tensor<float> host = testing::random_tensor<float>({3, 5, 7}, 1);
  const Tensor<float> device = host.to(Device::cuda());
  CHECK(device.device() == Device::cuda());
  CHECK(device.shape() == host.shape());
  CHECK(device.data() != host.data());
  CHECK(device.to(Device::cuda()).same(device));  // already there: the same tensor

  const Tensor<float> back = device.to(Device::cpu());
  CHECK(back.device() == Device::cpu());
  CHECK(back.to_vector() == host.to_vector());

  const Tensor<float> copy = device.clone();  // device to device
  CHECK(copy.device() == Device::cuda());
  CHECK(copy.data() != device.data());
  const Tensor<float> into = Tensor<float>::zeros(host.shape());
  into.copy_(copy);  // device to host through copy_
  CHECK(into.to_vector() == host.to_vector());

  const Tensor<double> ones = Tensor<double>::ones({4}).to(Device::cuda());
  CHECK(ones.to(Device::cpu()).to_vector() == std::vector<double>(4, 1.0));
}

TEST_CASE("storage is recycled by the caching allocator", "[cuda][device]") {
  CachingAllocator& cache = caching_allocator(DeviceType::CUDA);
  const void* first = nullptr;
  {
    const Tensor<float> t = Tensor<float>::empty({1000, 3}, Device::cuda());
    first = t.data();
  }
  const size_t cached = cache.cached_bytes();
  CHECK(cached >= 12000);
  const Tensor<float> again = Tensor<float>::empty({3, 1000}, Device::cuda());  // same bytes
  CHECK(again.data() == first);
  CHECK(cache.cached_bytes() == cached - CachingAllocator::round_up(12000));
}

TEST_CASE("errors name the call, the file and line, and CUDA's message", "[cuda][device]") {
  using Catch::Contains;
  REQUIRE_THROWS_WITH(NORMLAB_CUDA_CHECK(cudaSetDevice(4096)),
                      Contains("CUDA error at") && Contains("test_cuda_device.cpp:") &&
                          Contains("cudaSetDevice(4096)") && Contains("invalid device ordinal"));
  REQUIRE_THROWS_WITH(Tensor<float>::empty({4}, Device::cuda(4096)),
                      Contains("cudaSetDevice") && Contains("invalid device ordinal"));
  const Tensor<float> device = Tensor<float>::zeros({2}).to(Device::cuda());
  REQUIRE_THROWS_WITH(device.at({0}), Contains("Tensor::at") && Contains("cuda:0"));
  // fill_, to_vector and item work on device tensors, through copies.
  device.fill_(1.5f);
  CHECK(device.to_vector() == std::vector<float>{1.5f, 1.5f});
  CHECK(device.view({2, 1}).to_vector() == std::vector<float>{1.5f, 1.5f});
}

TEST_CASE("devices are counted, and kernels run on a created stream", "[cuda][device]") {
  NORMLAB_CUDA_EACH_SCHEDULE();
  const cuda::DeviceAvailability devices = cuda::device_availability();
  REQUIRE(devices.count >= 1);
  CHECK(devices.reason.empty());

  // GroupNorm on a created stream gives the bits of the default stream.
  const int64_t N = 2, C = 6, HW = 10, G = 3;
  const Tensor<float> x = testing::random_tensor<float>({N, C, HW}, 9).to(Device::cuda());
  const Tensor<double> workspace =
      testing::device_workspace(cuda::group_norm_forward_workspace_bytes<float>(N, C, HW, G));
  auto run = [&](cudaStream_t stream) {
    const Tensor<float> y = Tensor<float>::empty(x.shape(), Device::cuda());
    const Tensor<double> stats = Tensor<double>::empty({2 * N * G}, Device::cuda());
    cuda::group_norm_forward<float>(x.data(), nullptr, nullptr, y.data(), stats.data(),
                                    stats.data() + N * G, N, C, HW, G, 1e-5, true, workspace.data(),
                                    stream);
    return y.to(Device::cpu()).to_vector();
  };
  const cuda::Stream stream;
  CHECK(stream.get() != nullptr);
  const std::vector<float> on_stream = run(stream);
  stream.synchronize();
  const std::vector<float> on_default = run(nullptr);
  CHECK(on_stream == on_default);
  CHECK(std::any_of(on_default.begin(), on_default.end(), [](float v) { return v > 0; }));
}
