// The emulator with the CUDA toolkit's headers on the include path: dim3 and the runtime API
// declarations then come from the toolkit, so that host-compilable toolkit headers such as
// cuda_fp16.h can be used in emulated kernels.
#include <cuda_fp16.h>

#include <vector>

#include "cuda_emu/catch_schedules.hpp"
#include "emu_test_kernels.cuh"

namespace {

// Widens a half-precision row to float, sums it in shared memory and broadcasts the sum with a
// shuffle. One warp; sum[0] = sum of x[0..31].
__global__ void half_row_sum(const __half* x, float* sum) {
  __shared__ float widened[32];
  widened[threadIdx.x] = __half2float(x[threadIdx.x]);
  __syncthreads();
  float total = threadIdx.x == 0 ? 0.0f : widened[threadIdx.x];
  if (threadIdx.x == 0) {
    for (int j = 0; j < 32; ++j) total += widened[j];
  }
  total = __shfl_sync(0xFFFFFFFFu, total, 0);
  sum[threadIdx.x] = total;
}

}  // namespace

TEST_CASE("half-precision kernel with cuda_fp16.h", "[cuda_emu][toolkit_headers]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<__half> x(32);
  for (int i = 0; i < 32; ++i) x[i] = __float2half(0.5f * float(i));
  std::vector<float> sums(32);
  NORMLAB_CUDA_LAUNCH(1, 32, 0, nullptr, half_row_sum)(x.data(), sums.data());
  CHECK(sums == std::vector<float>(32, 0.5f * 31 * 32 / 2));
}

TEST_CASE("project test kernels and runtime shims with the toolkit's declarations",
          "[cuda_emu][toolkit_headers]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const std::vector<float> x(512, 1.5f);
  float* device = nullptr;
  REQUIRE(cudaMalloc(&device, 2 * sizeof(float)) == cudaSuccess);
  normlab::emu_test::launch_block_sum_shared<256>(x.data(), device, 512);
  std::vector<float> sums(2);
  CHECK(cudaMemcpy(sums.data(), device, 2 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(sums == std::vector<float>{384.0f, 384.0f});
  CHECK(cudaFree(device) == cudaSuccess);
  CHECK(cudaMemset(nullptr, 0, 4) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)) == "invalid argument");
}
