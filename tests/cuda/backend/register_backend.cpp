// The one translation unit of test_cuda_backend that includes the CUDA backend: compiled by g++
// with the CUDA-on-CPU emulator, so its kernels run on the CPU. (register_backend.cu is the same
// for nvcc, in test_cuda_backend_gpu.)
#include "normlab/cuda/backend.hpp"
