// main() of test_cuda_gpu, the CUDA kernel tests compiled by nvcc for a real GPU. With no usable
// device it says why and exits with 77, which CTest reports as a skip (SKIP_RETURN_CODE), never
// as a pass; with one, it names the device and runs the Catch2 session.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>

#include "normlab/cuda/device.hpp"

int main(int argc, char** argv) {
  const normlab::cuda::DeviceAvailability devices = normlab::cuda::device_availability();
  if (devices.count == 0) {
    std::printf(
        "test_cuda_gpu: SKIPPED, no CUDA device (%s); the same tests ran on the CPU "
        "through the emulator (test_cuda)\n",
        devices.reason.c_str());
    return 77;
  }
  cudaDeviceProp properties{};
  NORMLAB_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
  std::printf("test_cuda_gpu: running on CUDA device 0: %s (sm_%d%d)\n", properties.name,
              properties.major, properties.minor);
  return Catch::Session().run(argc, argv);
}
