// The CUDA backend of cifar10_norms (--device cuda), compiled by nvcc: including the header
// registers the CUDA kernels with the ops and the device allocator (docs/cuda.md). The rest of
// the program is host code built by the C++ compiler.
#include "normlab/cuda/backend.hpp"
