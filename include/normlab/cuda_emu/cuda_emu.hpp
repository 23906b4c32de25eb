// The CUDA dialect of normlab's kernels: include this header from every .cuh kernel file and
// kernel launcher. Under nvcc it only defines the macros below; under a host compiler (g++,
// clang++) it also pulls in the CUDA-on-CPU emulator, which runs the same kernel source on the
// CPU - each CUDA thread a fiber, one block at a time - and throws normlab::cuda_emu::Error on
// misuse. docs/cuda.md explains how it works and what it can and cannot catch.
//
// Writing a kernel that compiles in both builds (no #ifdef in kernel bodies):
//
//   template <int BlockSize>
//   __global__ void __launch_bounds__(BlockSize) row_sum(const float* __restrict__ x,
//                                                       float* __restrict__ sums, int width) {
//     __shared__ float partial[BlockSize];                // static shared memory: as in CUDA
//     NORMLAB_DYNAMIC_SHARED(float, row);                 // dynamic shared memory: a macro
//     ...threadIdx, blockIdx, blockDim, gridDim, warpSize, __syncthreads(), __shfl_xor_sync(),
//     atomicAdd(), rsqrtf(), ... as in CUDA...
//   }
//
//   inline void launch_row_sum(const float* x, float* sums, int rows, int width,
//                              cudaStream_t stream) {
//     NORMLAB_CUDA_LAUNCH(rows, 256, width * sizeof(float), stream, row_sum<256>)(x, sums, width);
//   }
//
// NORMLAB_CUDA_LAUNCH(grid, block, shared_bytes, stream, kernel...)(args...)
//   Launches `kernel` (a __global__ function, template arguments allowed: it is the last macro
//   argument so that its commas need no parentheses; parenthesise any other argument with a
//   comma). nvcc: kernel<<<grid, block, shared_bytes, stream>>>(args...). Emulator: runs the grid
//   before returning; errors name the kernel as written, and the file and line of the launch.
// NORMLAB_DYNAMIC_SHARED(T, name);
//   Declares `T* name` pointing at the launch's dynamic shared memory, 16-byte aligned. nvcc:
//   one raw `extern __shared__` byte array shared by all kernels and cast (a typed extern array
//   in a template kernel clashes between instantiations). Emulator: fresh memory per launch,
//   poisoned with 0xFF at each block start.
// NORMLAB_HOST_DEVICE (normlab/common/host_device.hpp)
//   For functions that CPU kernels and CUDA kernels share.
// NORMLAB_CUDA_EMU
//   Defined (to 1) only under the emulator, for test code that must tell the builds apart.
//
// Above 48 KiB of dynamic shared memory a kernel must opt in first, in both builds:
//   cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
#pragma once

#include "normlab/common/host_device.hpp"

#if defined(__CUDACC__)

#define NORMLAB_CUDA_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>

#define NORMLAB_DYNAMIC_SHARED(T, name)                                         \
  extern __shared__ __align__(16) unsigned char normlab_dynamic_shared_bytes[]; \
  T* name = reinterpret_cast<T*>(normlab_dynamic_shared_bytes)

#else

#include "normlab/cuda_emu/device_functions.hpp"
#include "normlab/cuda_emu/error.hpp"
#include "normlab/cuda_emu/language.hpp"
#include "normlab/cuda_emu/launch.hpp"
#include "normlab/cuda_emu/runtime_api.hpp"
#include "normlab/cuda_emu/schedule.hpp"

#define NORMLAB_CUDA_EMU 1

#define NORMLAB_CUDA_LAUNCH(grid, block, shared_bytes, stream, ...)                               \
  ::normlab::cuda_emu::launch(__VA_ARGS__, #__VA_ARGS__,                                          \
                              ::normlab::cuda_emu::CallSite{__FILE__, __LINE__}, (grid), (block), \
                              (shared_bytes), (stream))

#define NORMLAB_DYNAMIC_SHARED(T, name) \
  T* name = reinterpret_cast<T*>(::normlab::cuda_emu::dynamic_shared_memory())

#endif
