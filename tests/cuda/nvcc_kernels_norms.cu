// Compiled by nvcc only (ctest cuda:nvcc_no_spills:norms): instantiates every CUDA norm
// launcher, and so every kernel, for float, so that nvcc builds them for the real targets with
// warnings as errors and ptxas reports registers, spills and stack frames. Never linked.
#include "normlab/cuda/batch_norm.cuh"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/layer_norm.cuh"

namespace cuda = normlab::cuda;

void instantiate_norm_launchers(float* f, double* d, void* workspace, cudaStream_t stream) {
  const normlab::GradientOut<float> grad{f, false};
  cuda::batch_norm_forward<float>(f, f, f, f, f, f, d, d, 1, 1, 2, true, 0.1, 1e-5, true, workspace,
                                  stream);
  cuda::batch_norm_backward<float>(f, f, f, f, d, d, grad, grad, grad, 1, 1, 2, true, workspace,
                                   stream);
  cuda::group_norm_forward<float>(f, f, f, f, d, d, 1, 1, 1, 1, 1e-5, true, workspace, stream);
  cuda::group_norm_backward<float>(f, f, f, f, d, d, grad, grad, grad, 1, 1, 1, 1, workspace,
                                   stream);
  cuda::layer_norm_forward<float>(f, f, f, f, d, d, 1, 1, 1, 1e-5, true, workspace, stream);
  cuda::layer_norm_backward<float>(f, f, f, f, d, d, grad, grad, grad, 1, 1, 1, workspace, stream);
  cuda::last_dim_layer_norm_forward<float>(f, f, f, f, d, d, 1, 1, 1e-5, true, stream);
  cuda::last_dim_layer_norm_backward<float>(f, f, f, f, d, d, grad, grad, grad, 1, 1, workspace,
                                            stream);
}
