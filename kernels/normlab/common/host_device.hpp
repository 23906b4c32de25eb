// NORMLAB_HOST_DEVICE marks functions that both the CPU kernels (plain C++) and the CUDA
// kernels (nvcc, or g++ through the CUDA emulator) call. Under a plain C++ compiler it is empty.
#pragma once

#if defined(__CUDACC__)
#define NORMLAB_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define NORMLAB_HOST_DEVICE inline
#endif
