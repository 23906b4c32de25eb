// Which CUDA devices exist, and a guard that makes one of them current for a scope.
#pragma once

#include <string>

#include "normlab/cuda/error.hpp"

namespace normlab::cuda {

/// What the runtime reports about devices: `count` usable devices, or 0 and the reason (e.g.
/// "CUDA driver version is insufficient for CUDA runtime version" on a machine without a GPU).
struct DeviceAvailability {
  int count = 0;
  std::string reason;
};

/// Ensures: the device count, or 0 with the runtime's error string; never throws. Clears the
/// error it may leave for cudaGetLastError().
inline DeviceAvailability device_availability() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return {0, cudaGetErrorString(status)};
  }
  return {count, count == 0 ? "no CUDA device found" : ""};
}

/// Makes device `index` current while alive and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    NORMLAB_CUDA_CHECK(cudaGetDevice(&previous_));
    if (index != previous_) NORMLAB_CUDA_CHECK(cudaSetDevice(index));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace normlab::cuda
