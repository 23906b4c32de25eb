// Compiled by nvcc only (ctest cuda:nvcc_no_spills:conv2d): instantiates every CUDA conv2d
// launcher, and so every kernel (forward, dgrad, wgrad partials with and without weights, the
// wgrad finalize), for float, so that nvcc builds them for the real targets with warnings as
// errors and ptxas reports registers, spills and stack frames. Never linked.
#include "normlab/cuda/conv2d.cuh"

namespace cuda = normlab::cuda;

void instantiate_conv2d_launchers(float* f, void* workspace, cudaStream_t stream) {
  const normlab::Conv2dGeometry g{1, 1, 1, 1, 1, 1, 1, 1, 0};
  const normlab::GradientOut<float> grad{f, false}, none{};
  cuda::conv2d_forward<float>(f, f, f, f, g, stream);
  cuda::conv2d_backward_data<float>(f, f, grad, g, stream);
  cuda::conv2d_backward_weights<float>(f, f, grad, grad, g, workspace, stream);
  cuda::conv2d_backward_weights<float>(f, f, none, grad, g, workspace, stream);
}
