// NORMLAB_CUDA_CHECK: every CUDA runtime call of the backend goes through it, so a failure
// becomes a normlab::Error naming the call, its file and line, and CUDA's error string.
//
// The headers of normlab/cuda/ are CUDA C++: compile them with nvcc for a GPU, or with a host
// compiler and the CUDA-on-CPU emulator on the include path (tests/support, target
// normlab_cuda_emu), which then provides the runtime API. Host-only code never includes them.
#pragma once

#include "normlab/cuda_emu/cuda_emu.hpp"
#include "normlab/core/error.hpp"

namespace normlab::cuda::detail {

/// Ensures: returns if `status` is cudaSuccess, else throws normlab::Error with the failed
/// expression, where it was called and CUDA's description of the error. The runtime also keeps
/// a failure for the next cudaGetLastError(); it is cleared here, so that it is reported once.
inline void check(cudaError_t status, const char* expression, const char* file, int line) {
  if (status == cudaSuccess) return;
  cudaGetLastError();
  throw Error(normlab::detail::concat("CUDA error at ", file, ":", line, ": ", expression,
                                      " failed: ", cudaGetErrorString(status), " (error ",
                                      static_cast<int>(status), ")"));
}

}  // namespace normlab::cuda::detail

/// Evaluates a CUDA runtime call and throws normlab::Error unless it returned cudaSuccess.
#define NORMLAB_CUDA_CHECK(...) \
  ::normlab::cuda::detail::check((__VA_ARGS__), #__VA_ARGS__, __FILE__, __LINE__)
