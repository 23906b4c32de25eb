// cuda_device_report: a program linked with the CUDA runtime and cuDNN that starts on any
// machine, prints the versions it was built and linked with and the CUDA devices it finds, or
// that it finds none and why (ctest cuda:device_report checks the message). Exit code 0 either
// way: having no GPU is a fact to report, not an error.
#include <cudnn.h>

#include <cstdio>

#include "normlab/cuda/device.hpp"

int main() {
  int runtime = 0;
  NORMLAB_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  const size_t cudnn = cudnnGetVersion();
  std::printf("CUDA runtime %d.%d, cuDNN %zu.%zu.%zu\n", runtime / 1000, runtime % 1000 / 10,
              cudnn / 10000, cudnn % 10000 / 100, cudnn % 100);
  const normlab::cuda::DeviceAvailability devices = normlab::cuda::device_availability();
  if (devices.count == 0) {
    std::printf("no CUDA device: %s\n", devices.reason.c_str());
    return 0;
  }
  for (int i = 0; i < devices.count; ++i) {
    cudaDeviceProp p{};
    NORMLAB_CUDA_CHECK(cudaGetDeviceProperties(&p, i));
    std::printf("CUDA device %d: %s, sm_%d%d, %d SMs, %.1f GiB\n", i, p.name, p.major, p.minor,
                p.multiProcessorCount, static_cast<double>(p.totalGlobalMem) / (1 << 30));
  }
  return 0;
}
