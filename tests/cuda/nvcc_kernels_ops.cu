// Compiled by nvcc only (ctest cuda:nvcc_no_spills:ops): instantiates every launcher of the
// model's other ops (elementwise, pooling, loss, SGD), and so every kernel, for float (log_softmax
// and nll_loss also for double), so that nvcc builds them for the real targets with warnings as
// errors and ptxas reports registers, spills and stack frames. Never linked.
#include "normlab/cuda/elementwise.cuh"
#include "normlab/cuda/loss.cuh"
#include "normlab/cuda/pool.cuh"
#include "normlab/cuda/sgd.cuh"

namespace cuda = normlab::cuda;

template <typename T>
void instantiate_unfused_loss_launchers(T* v, int32_t* i, cudaStream_t stream) {
  const normlab::GradientOut<T> grad{v, true};
  cuda::log_softmax_forward<T>(v, v, 1, 1, stream);
  cuda::log_softmax_backward<T>(v, v, grad, 1, 1, stream);
  cuda::nll_loss_forward<T>(v, i, v, v, i, 1, 1, stream);
  cuda::nll_loss_backward<T>(i, v, grad, 1, 1, stream);
}

void instantiate_op_launchers(float* f, double* d, int32_t* i, cudaStream_t stream) {
  const normlab::GradientOut<float> grad{f, false};
  const normlab::DropoutDraw draw{0.5f, 1, 0};
  cuda::relu_forward<float>(f, f, 1, stream);
  cuda::relu_backward<float>(f, f, grad, 1, stream);
  cuda::add_forward<float>(f, f, f, 1, stream);
  cuda::scaled_gradient<float>(f, grad, 1, 1.0f, stream);
  cuda::dropout_forward<float>(f, f, 1, draw, stream);
  cuda::dropout_backward<float>(f, grad, 1, draw, stream);
  cuda::max_pool2d_forward<float>(f, f, i, 1, 2, 2, 2, 2, stream);
  cuda::max_pool2d_backward<float>(i, f, grad, 1, 2, 2, 2, 2, stream);
  cuda::global_avg_pool2d_forward<float>(f, f, 1, 1, stream);
  cuda::global_avg_pool2d_backward<float>(f, grad, 1, 1, stream);
  cuda::cross_entropy_forward<float>(f, i, 0.0, f, f, f, f, i, 1, 1, stream);
  cuda::check_cross_entropy_targets(i, 1, 1, stream);
  cuda::cross_entropy_backward<float>(f, i, 0.0, f, f, f, grad, 1, 1, stream);
  instantiate_unfused_loss_launchers(f, i, stream);
  instantiate_unfused_loss_launchers(d, i, stream);
  cuda::check_nll_loss_targets(i, 1, 1, stream);
  cuda::sgd_update<float>(f, f, f, 1, normlab::SgdCoefficients<float>{}, stream);
}
