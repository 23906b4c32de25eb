// The one translation unit of test_cuda_backend_gpu that includes the CUDA backend, compiled by
// nvcc for the GPU; the test itself (test_cuda_backend.cpp) is host code built by g++.
#include "normlab/cuda/backend.hpp"
