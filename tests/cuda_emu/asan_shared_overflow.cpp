// Built with ASan only: a kernel writes one float past the end of its dynamic shared memory.
// The emulator allocates exactly the bytes the launch asked for, so ASan must stop the program
// with a heap-buffer-overflow in write_past_dynamic_shared (the ctest checks the report).
#include <cstdio>

#include "normlab/cuda_emu/cuda_emu.hpp"

// BUG: a block of 32 threads and 32 floats of dynamic shared memory; thread 31 writes slot 32.
__global__ void write_past_dynamic_shared(float* out) {
  NORMLAB_DYNAMIC_SHARED(float, slots);
  slots[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = slots[threadIdx.x];
}

int main() {
  float out[32];
  NORMLAB_CUDA_LAUNCH(1, 32, 32 * sizeof(float), nullptr, write_past_dynamic_shared)(out);
  std::puts("the overflow went unnoticed");
  return 0;
}
