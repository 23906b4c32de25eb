// test_cudnn_crosscheck: our CUDA launchers against cuDNN on the same device buffers, on a GPU
// only: without one, main() says why and exits with 77 (a CTest skip). Written from the cuDNN
// 9.19 headers and documentation on a machine without a GPU: it compiles, it has never run.
//
// Cross-checked, in float32, NCHW, inputs drawn from a fixed seed:
//   conv2d     cuda::conv2d_forward (with bias), conv2d_backward_data, conv2d_backward_weights
//              (weights and bias) against cudnnConvolutionForward + cudnnAddTensor,
//              cudnnConvolutionBackwardData, cudnnConvolutionBackwardFilter and
//              cudnnConvolutionBackwardBias (CUDNN_CROSS_CORRELATION; each algorithm the first one
//              the _v7 heuristics rank with status success), on every conv layer shape of
//              models/cifar_resnet.hpp at batch 4 and on awkward shapes (N = 1, odd sizes, stride
//              2, 5x5 kernels).
//   BatchNorm  cuda::batch_norm_forward / backward in training against
//              cudnnBatchNormalizationForwardTraining / cudnnBatchNormalizationBackward
//              (CUDNN_BATCHNORM_SPATIAL, eps 1e-5, exponential average factor = momentum 0.1):
//              y, the saved mean and inverse std (ours are double: compared as float), the running
//              mean and variance, dx, dgamma, dbeta; the model's norm shapes at batch 4 and awkward
//              ones (N = 1 with odd HW and odd C; HW = 1).
//   GroupNorm(4), LayerNorm (= GroupNorm(1)) and the last-dimension LayerNorm against cuDNN's
//              norm graphs (bench/cudnn_graph_norm.hpp, shared with bench_norms_cuda): y, dx,
//              dgamma, dbeta when cuDNN builds an execution plan; when it refuses the graph, a WARN
//              with cuDNN's reason and no failure (which graphs cuDNN supports is not documented
//              precisely enough to require one).
// Tolerance, per output: max |ours - cuDNN| <= 1e-4 * max(1, max |cuDNN|). Both sides round each
// sum in float (ours partly in double), in different orders: an estimate of the rounding of these
// sums (at most 4096 terms) is ~1e-6 of their largest magnitude, so the bound leaves a wide margin
// (not measured: this has never run) while a wrong index or a missing term (an error of the order
// of one term, about 1e-3 to 1e-2 of the scale for these sizes) fails.
// The convolutions run with CUDNN_FMA_MATH, not CUDNN_DEFAULT_MATH: the default lets cuDNN use
// TF32 tensor cores for float data on Ampere and later (inputs rounded to 10 mantissa bits, errors
// ~1e-3), which the tolerance above would reject; FMA math keeps cuDNN in plain fp32.
#define CATCH_CONFIG_RUNNER
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cudnn_graph_norm.hpp"
#include "normlab/common/conv2d_geometry.hpp"
#include "normlab/cuda/batch_norm.cuh"
#include "normlab/cuda/conv2d.cuh"
#include "normlab/cuda/device.hpp"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/layer_norm.cuh"

namespace {

using normlab::Conv2dGeometry;
using normlab::GradientOut;
namespace cuda = normlab::cuda;
namespace graph = normlab::bench::cudnn_graph;

constexpr double kTolerance = 1e-4;  // relative to max(1, max |cuDNN|), see the file comment
constexpr double kEps = 1e-5;
constexpr double kMomentum = 0.1;
constexpr unsigned kSeed = 20261125;

/// Turns a cuDNN status other than success into a Catch failure naming the call, the status and
/// cuDNN's last error message.
#define NORMLAB_CUDNN_REQUIRE(...)                                                    \
  do {                                                                                \
    const cudnnStatus_t cudnn_status_ = (__VA_ARGS__);                                \
    if (cudnn_status_ != CUDNN_STATUS_SUCCESS)                                        \
      FAIL(#__VA_ARGS__ << " returned " << cudnnGetErrorString(cudnn_status_) << " (" \
                        << static_cast<int>(cudnn_status_)                            \
                        << "): " << graph::last_error_message());                     \
  } while (false)

/// A cuDNN handle or descriptor, created with the object and destroyed with it.
template <typename Handle, cudnnStatus_t (*kCreate)(Handle*), cudnnStatus_t (*kDestroy)(Handle)>
class CudnnObject {
 public:
  CudnnObject() { NORMLAB_CUDNN_REQUIRE(kCreate(&handle_)); }
  ~CudnnObject() {
    if (handle_ != nullptr) kDestroy(handle_);
  }
  CudnnObject(CudnnObject&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  CudnnObject(const CudnnObject&) = delete;
  CudnnObject& operator=(const CudnnObject&) = delete;
  CudnnObject& operator=(CudnnObject&&) = delete;

  Handle get() const { return handle_; }

 private:
  Handle handle_ = nullptr;
};

using CudnnHandle = CudnnObject<cudnnHandle_t, cudnnCreate, cudnnDestroy>;
using TensorDescriptor =
    CudnnObject<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor =
    CudnnObject<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    CudnnObject<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                cudnnDestroyConvolutionDescriptor>;

int to_int(int64_t v) { return static_cast<int>(v); }

/// Ensures: a packed NCHW float tensor descriptor of [n, c, h, w].
TensorDescriptor tensor4d(int64_t n, int64_t c, int64_t h, int64_t w) {
  TensorDescriptor descriptor;
  NORMLAB_CUDNN_REQUIRE(cudnnSetTensor4dDescriptor(descriptor.get(), CUDNN_TENSOR_NCHW,
                                                   CUDNN_DATA_FLOAT, to_int(n), to_int(c),
                                                   to_int(h), to_int(w)));
  return descriptor;
}

/// `count` elements of T in device memory (cudaMalloc: 256-byte aligned, as the launchers'
/// workspaces require), freed with the object.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    NORMLAB_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(count, 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    NORMLAB_CUDA_CHECK(
        cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }

  /// Ensures: the contents, after everything queued on the legacy default stream (ours and the
  /// cuDNN handle's) has finished.
  std::vector<T> download() const {
    std::vector<T> host(count_);
    NORMLAB_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t count_;
};

std::vector<float> normal_values(std::mt19937& rng, int64_t count, float mean, float stddev) {
  std::normal_distribution<float> normal(mean, stddev);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = normal(rng);
  return values;
}

std::vector<float> to_float(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

/// Checks max |ours - cudnn| <= kTolerance * max(1, max |cudnn|); a NaN or infinite difference
/// counts as infinite. The differences are reported with the check (INFO).
void check_close(const std::string& what, const std::vector<float>& ours,
                 const std::vector<float>& cudnn) {
  REQUIRE(ours.size() == cudnn.size());
  double difference = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const double d = std::fabs(static_cast<double>(ours[i]) - static_cast<double>(cudnn[i]));
    if (!(d <= difference)) difference = std::isfinite(d) ? d : INFINITY;
    scale = std::max(scale, std::fabs(static_cast<double>(cudnn[i])));
  }
  const double bound = kTolerance * std::max(1.0, scale);
  INFO(what << ": max |ours - cuDNN| = " << difference << ", max |cuDNN| = " << scale << ", bound "
            << bound << " (" << ours.size() << " values)");
  CHECK(difference <= bound);
}

// ---- convolution ------------------------------------------------------------------------------

std::string describe(const Conv2dGeometry& g) {
  std::ostringstream text;
  text << "x [" << g.batch << ", " << g.in_channels << ", " << g.height << ", " << g.width
       << "], weight [" << g.out_channels << ", " << g.in_channels << ", " << g.kernel_h << ", "
       << g.kernel_w << "], stride " << g.stride << ", padding " << g.padding;
  return text.str();
}

/// Ensures: the first of the heuristics' `returned` results whose status is success (cuDNN ranks
/// them by expected speed); fails the test if there is none.
template <typename Perf, size_t kCount>
Perf first_successful(const char* call, const std::array<Perf, kCount>& results, int returned) {
  const Perf* chosen = nullptr;
  for (int i = 0; i < returned && i < static_cast<int>(kCount); ++i) {
    if (results[static_cast<size_t>(i)].status == CUDNN_STATUS_SUCCESS) {
      chosen = &results[static_cast<size_t>(i)];
      break;
    }
  }
  INFO(call << " returned " << returned << " algorithm(s); one with status success is needed");
  REQUIRE(chosen != nullptr);
  return *chosen;
}

/// Runs the three passes of one convolution, ours and cuDNN's, on the same inputs and compares
/// y, dx, dweight and dbias.
void crosscheck_conv(cudnnHandle_t handle, const Conv2dGeometry& g, std::mt19937& rng) {
  const int64_t x_count = g.batch * g.in_channels * g.in_pixels();
  const int64_t y_count = g.batch * g.out_channels * g.out_pixels();
  const int64_t w_count = g.out_channels * g.patch_size();
  const DeviceBuffer<float> x(normal_values(rng, x_count, 0, 1));
  const DeviceBuffer<float> weight(normal_values(rng, w_count, 0, 1));
  const DeviceBuffer<float> bias(normal_values(rng, g.out_channels, 0, 1));
  const DeviceBuffer<float> dy(normal_values(rng, y_count, 0, 1));

  const TensorDescriptor x_desc = tensor4d(g.batch, g.in_channels, g.height, g.width);
  const TensorDescriptor y_desc = tensor4d(g.batch, g.out_channels, g.out_height(), g.out_width());
  const TensorDescriptor bias_desc = tensor4d(1, g.out_channels, 1, 1);
  const FilterDescriptor w_desc;
  NORMLAB_CUDNN_REQUIRE(cudnnSetFilter4dDescriptor(
      w_desc.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(g.out_channels),
      to_int(g.in_channels), to_int(g.kernel_h), to_int(g.kernel_w)));
  const ConvolutionDescriptor conv;
  NORMLAB_CUDNN_REQUIRE(cudnnSetConvolution2dDescriptor(
      conv.get(), to_int(g.padding), to_int(g.padding), to_int(g.stride), to_int(g.stride), 1, 1,
      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // Plain fp32 FMA kernels, no TF32 (see the file comment).
  NORMLAB_CUDNN_REQUIRE(cudnnSetConvolutionMathType(conv.get(), CUDNN_FMA_MATH));
  int n = 0, c = 0, h = 0, w = 0;
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolution2dForwardOutputDim(conv.get(), x_desc.get(),
                                                              w_desc.get(), &n, &c, &h, &w));
  REQUIRE(n == g.batch);
  REQUIRE(c == g.out_channels);
  REQUIRE(h == g.out_height());
  REQUIRE(w == g.out_width());
  const float one = 1, zero = 0;

  // Forward: y = conv(x, weight) + bias.
  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> fwd_results{};
  int returned = 0;
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolutionForwardAlgorithm_v7(
      handle, x_desc.get(), w_desc.get(), conv.get(), y_desc.get(),
      static_cast<int>(fwd_results.size()), &returned, fwd_results.data()));
  const cudnnConvolutionFwdAlgo_t fwd_algo =
      first_successful("cudnnGetConvolutionForwardAlgorithm_v7", fwd_results, returned).algo;
  size_t fwd_bytes = 0;
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolutionForwardWorkspaceSize(
      handle, x_desc.get(), w_desc.get(), conv.get(), y_desc.get(), fwd_algo, &fwd_bytes));
  const DeviceBuffer<unsigned char> fwd_workspace(fwd_bytes);
  const DeviceBuffer<float> y_cudnn(static_cast<size_t>(y_count)),
      y_ours(static_cast<size_t>(y_count));
  NORMLAB_CUDNN_REQUIRE(cudnnConvolutionForward(
      handle, &one, x_desc.get(), x.get(), w_desc.get(), weight.get(), conv.get(), fwd_algo,
      fwd_workspace.get(), fwd_bytes, &zero, y_desc.get(), y_cudnn.get()));
  NORMLAB_CUDNN_REQUIRE(
      cudnnAddTensor(handle, &one, bias_desc.get(), bias.get(), &one, y_desc.get(), y_cudnn.get()));
  cuda::conv2d_forward(x.get(), weight.get(), bias.get(), y_ours.get(), g);
  {
    INFO("cuDNN forward algorithm " << static_cast<int>(fwd_algo));
    check_close("forward y", y_ours.download(), y_cudnn.download());
  }

  // Data gradient.
  std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>
      data_results{};
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolutionBackwardDataAlgorithm_v7(
      handle, w_desc.get(), y_desc.get(), conv.get(), x_desc.get(),
      static_cast<int>(data_results.size()), &returned, data_results.data()));
  const cudnnConvolutionBwdDataAlgo_t data_algo =
      first_successful("cudnnGetConvolutionBackwardDataAlgorithm_v7", data_results, returned).algo;
  size_t data_bytes = 0;
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolutionBackwardDataWorkspaceSize(
      handle, w_desc.get(), y_desc.get(), conv.get(), x_desc.get(), data_algo, &data_bytes));
  const DeviceBuffer<unsigned char> data_workspace(data_bytes);
  const DeviceBuffer<float> dx_cudnn(static_cast<size_t>(x_count)),
      dx_ours(static_cast<size_t>(x_count));
  NORMLAB_CUDNN_REQUIRE(cudnnConvolutionBackwardData(
      handle, &one, w_desc.get(), weight.get(), y_desc.get(), dy.get(), conv.get(), data_algo,
      data_workspace.get(), data_bytes, &zero, x_desc.get(), dx_cudnn.get()));
  cuda::conv2d_backward_data(dy.get(), weight.get(), GradientOut<float>{dx_ours.get(), false}, g);
  {
    INFO("cuDNN backward data algorithm " << static_cast<int>(data_algo));
    check_close("dx", dx_ours.download(), dx_cudnn.download());
  }

  // Weight and bias gradients.
  std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>
      filter_results{};
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
      handle, x_desc.get(), y_desc.get(), conv.get(), w_desc.get(),
      static_cast<int>(filter_results.size()), &returned, filter_results.data()));
  const cudnnConvolutionBwdFilterAlgo_t filter_algo =
      first_successful("cudnnGetConvolutionBackwardFilterAlgorithm_v7", filter_results, returned)
          .algo;
  size_t filter_bytes = 0;
  NORMLAB_CUDNN_REQUIRE(cudnnGetConvolutionBackwardFilterWorkspaceSize(
      handle, x_desc.get(), y_desc.get(), conv.get(), w_desc.get(), filter_algo, &filter_bytes));
  const DeviceBuffer<unsigned char> filter_workspace(filter_bytes);
  const DeviceBuffer<float> dw_cudnn(static_cast<size_t>(w_count)),
      dw_ours(static_cast<size_t>(w_count));
  const DeviceBuffer<float> db_cudnn(static_cast<size_t>(g.out_channels)),
      db_ours(static_cast<size_t>(g.out_channels));
  NORMLAB_CUDNN_REQUIRE(cudnnConvolutionBackwardFilter(
      handle, &one, x_desc.get(), x.get(), y_desc.get(), dy.get(), conv.get(), filter_algo,
      filter_workspace.get(), filter_bytes, &zero, w_desc.get(), dw_cudnn.get()));
  NORMLAB_CUDNN_REQUIRE(cudnnConvolutionBackwardBias(handle, &one, y_desc.get(), dy.get(), &zero,
                                                     bias_desc.get(), db_cudnn.get()));
  const DeviceBuffer<unsigned char> wgrad_workspace(cuda::conv2d_wgrad_workspace_bytes<float>(g));
  cuda::conv2d_backward_weights(x.get(), dy.get(), GradientOut<float>{dw_ours.get(), false},
                                GradientOut<float>{db_ours.get(), false}, g, wgrad_workspace.get());
  {
    INFO("cuDNN backward filter algorithm " << static_cast<int>(filter_algo));
    check_close("dweight", dw_ours.download(), dw_cudnn.download());
  }
  check_close("dbias", db_ours.download(), db_cudnn.download());
}

TEST_CASE("conv2d forward, dgrad, wgrad and bias gradient match cuDNN", "[cudnn][conv2d]") {
  // {batch, in_channels, height, width, out_channels, kernel_h, kernel_w, stride, padding}
  const std::pair<const char*, Conv2dGeometry> cases[] = {
      // Every conv layer of models/cifar_resnet.hpp at batch 4 (3x3 convs pad 1, 1x1 pad 0).
      {"stem 3->16 3x3 @32x32", {4, 3, 32, 32, 16, 3, 3, 1, 1}},
      {"stem 16->32 3x3 @32x32", {4, 16, 32, 32, 32, 3, 3, 1, 1}},
      {"transition 32->16 1x1 @32x32", {4, 32, 32, 32, 16, 1, 1, 1, 0}},
      {"block1 16->16 3x3 @16x16", {4, 16, 16, 16, 16, 3, 3, 1, 1}},
      {"block1 16->32 3x3 @16x16", {4, 16, 16, 16, 32, 3, 3, 1, 1}},
      {"block1 32->32 3x3 @16x16", {4, 32, 16, 16, 32, 3, 3, 1, 1}},
      {"block1 shortcut 16->32 1x1 @16x16", {4, 16, 16, 16, 32, 1, 1, 1, 0}},
      {"transition 32->16 1x1 @16x16", {4, 32, 16, 16, 16, 1, 1, 1, 0}},
      {"block2 16->16 3x3 @8x8", {4, 16, 8, 8, 16, 3, 3, 1, 1}},
      {"block2 16->32 3x3 @8x8", {4, 16, 8, 8, 32, 3, 3, 1, 1}},
      {"block2 32->32 3x3 @8x8", {4, 32, 8, 8, 32, 3, 3, 1, 1}},
      {"block2 shortcut 16->32 1x1 @8x8", {4, 16, 8, 8, 32, 1, 1, 1, 0}},
      {"head 32->10 1x1 @1x1", {4, 32, 1, 1, 10, 1, 1, 1, 0}},
      // Awkward shapes.
      {"N=1 3->5 3x3 s2 p1 @7x9", {1, 3, 7, 9, 5, 3, 3, 2, 1}},
      {"N=2 5->6 5x5 p2 @9x7", {2, 5, 9, 7, 6, 5, 5, 1, 2}},
      {"N=1 7->3 3x3 s2 p0 @8x6", {1, 7, 8, 6, 3, 3, 3, 2, 0}},
  };
  const CudnnHandle handle;
  std::mt19937 rng(kSeed);
  for (const auto& [name, g] : cases) {
    INFO("conv " << name << ": " << describe(g));
    crosscheck_conv(handle.get(), g, rng);
  }
}

// ---- norms ------------------------------------------------------------------------------------

/// x [n, c, h, w]; the last-dimension LayerNorm reads it as [n rows, c] with h = w = 1.
struct NormShape {
  int64_t n, c, h, w;
  int64_t count() const { return n * c * h * w; }
  int64_t hw() const { return h * w; }
};

std::string describe(const NormShape& s) {
  std::ostringstream text;
  text << "[" << s.n << ", " << s.c << ", " << s.h << ", " << s.w << "]";
  return text.str();
}

/// The norm inputs of the model's layers at batch 4, then awkward ones.
const NormShape kModelNormShapes[] = {{4, 16, 32, 32}, {4, 32, 32, 32}, {4, 16, 16, 16},
                                      {4, 32, 16, 16}, {4, 16, 8, 8},   {4, 32, 8, 8}};

/// x ~ N(0.5, 2) (an offset, so that the mean matters), dy ~ N(0, 1), gamma ~ N(1, 0.1),
/// beta ~ N(0, 0.1), on the device.
struct NormInputs {
  NormInputs(const NormShape& s, std::mt19937& rng)
      : x(normal_values(rng, s.count(), 0.5f, 2.0f)),
        dy(normal_values(rng, s.count(), 0, 1)),
        gamma(normal_values(rng, s.c, 1, 0.1f)),
        beta(normal_values(rng, s.c, 0, 0.1f)) {}
  DeviceBuffer<float> x, dy, gamma, beta;
};

/// One side's y, dx, dgamma and dbeta.
struct NormOutputs {
  explicit NormOutputs(const NormShape& s)
      : y(static_cast<size_t>(s.count())),
        dx(static_cast<size_t>(s.count())),
        dgamma(static_cast<size_t>(s.c)),
        dbeta(static_cast<size_t>(s.c)) {}
  DeviceBuffer<float> y, dx, dgamma, dbeta;
};

void check_norm_outputs(const NormOutputs& ours, const NormOutputs& cudnn) {
  check_close("y", ours.y.download(), cudnn.y.download());
  check_close("dx", ours.dx.download(), cudnn.dx.download());
  check_close("dgamma", ours.dgamma.download(), cudnn.dgamma.download());
  check_close("dbeta", ours.dbeta.download(), cudnn.dbeta.download());
}

void crosscheck_batch_norm(cudnnHandle_t handle, const NormShape& s, std::mt19937& rng) {
  const NormInputs in(s, rng);
  std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
  const std::vector<float> running_mean = normal_values(rng, s.c, 0, 0.1f);
  std::vector<float> running_var(static_cast<size_t>(s.c));
  for (float& v : running_var) v = uniform(rng);
  const size_t channels = static_cast<size_t>(s.c);

  // Ours.
  NormOutputs ours(s);
  const DeviceBuffer<float> mean_ours_running(running_mean), var_ours_running(running_var);
  const DeviceBuffer<double> mean_ours(channels), rstd_ours(channels);
  const DeviceBuffer<unsigned char> forward_workspace(
      cuda::batch_norm_forward_workspace_bytes<float>(s.n, s.c, s.hw(), true));
  const DeviceBuffer<unsigned char> backward_workspace(
      cuda::batch_norm_backward_workspace_bytes<float>(s.n, s.c, s.hw()));
  cuda::batch_norm_forward(in.x.get(), in.gamma.get(), in.beta.get(), mean_ours_running.get(),
                           var_ours_running.get(), ours.y.get(), mean_ours.get(), rstd_ours.get(),
                           s.n, s.c, s.hw(), true, kMomentum, kEps, false, forward_workspace.get());
  cuda::batch_norm_backward<float>(
      in.x.get(), nullptr, in.dy.get(), in.gamma.get(), mean_ours.get(), rstd_ours.get(),
      GradientOut<float>{ours.dx.get(), false}, GradientOut<float>{ours.dgamma.get(), false},
      GradientOut<float>{ours.dbeta.get(), false}, s.n, s.c, s.hw(), true,
      backward_workspace.get());

  // cuDNN: spatial mode, statistics and parameters [1, C, 1, 1].
  NormOutputs cudnn(s);
  const DeviceBuffer<float> mean_cudnn_running(running_mean), var_cudnn_running(running_var);
  const DeviceBuffer<float> mean_cudnn(channels), inv_std_cudnn(channels);
  const TensorDescriptor x_desc = tensor4d(s.n, s.c, s.h, s.w);
  const TensorDescriptor param_desc = tensor4d(1, s.c, 1, 1);
  const float one = 1, zero = 0;
  NORMLAB_CUDNN_REQUIRE(cudnnBatchNormalizationForwardTraining(
      handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc.get(), in.x.get(), x_desc.get(),
      cudnn.y.get(), param_desc.get(), in.gamma.get(), in.beta.get(), kMomentum,
      mean_cudnn_running.get(), var_cudnn_running.get(), kEps, mean_cudnn.get(),
      inv_std_cudnn.get()));
  NORMLAB_CUDNN_REQUIRE(cudnnBatchNormalizationBackward(
      handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, x_desc.get(), in.x.get(),
      x_desc.get(), in.dy.get(), x_desc.get(), cudnn.dx.get(), param_desc.get(), in.gamma.get(),
      cudnn.dgamma.get(), cudnn.dbeta.get(), kEps, mean_cudnn.get(), inv_std_cudnn.get()));

  check_norm_outputs(ours, cudnn);
  check_close("saved mean", to_float(mean_ours.download()), mean_cudnn.download());
  check_close("saved inverse std", to_float(rstd_ours.download()), inv_std_cudnn.download());
  check_close("running mean", mean_ours_running.download(), mean_cudnn_running.download());
  check_close("running variance", var_ours_running.download(), var_cudnn_running.download());
}

TEST_CASE("BatchNorm training forward and backward match cuDNN", "[cudnn][batch_norm]") {
  std::vector<NormShape> shapes(std::begin(kModelNormShapes), std::end(kModelNormShapes));
  shapes.push_back({1, 5, 7, 5});  // N = 1, odd C, odd HW
  shapes.push_back({3, 7, 1, 1});  // HW = 1
  const CudnnHandle handle;
  std::mt19937 rng(kSeed);
  for (const NormShape& s : shapes) {
    INFO("BatchNorm x " << describe(s));
    crosscheck_batch_norm(handle.get(), s, rng);
  }
}

/// Our norms with cuDNN graph counterparts (bench/cudnn_graph_norm.hpp).
enum class GraphNormKind {
  kGroup,    // group_norm_forward/backward, G groups      vs CUDNN_GROUP_NORM, G groups
  kLayer,    // layer_norm_forward/backward (GroupNorm(1))  vs CUDNN_GROUP_NORM, 1 group: the
             // same maths with the per-channel affine (CUDNN_LAYER_NORM's scale would span C, H, W)
  kLastDim,  // last_dim_layer_norm_forward/backward on [n, c] vs CUDNN_LAYER_NORM on [n, c, 1, 1]
};

/// Ensures: our forward (training) and backward of `kind` on `in`, written to `out`.
void run_ours(GraphNormKind kind, const NormShape& s, int64_t groups, const NormInputs& in,
              NormOutputs& out) {
  const size_t statistics = static_cast<size_t>(s.n * groups);
  const DeviceBuffer<double> mean(statistics), rstd(statistics);
  const GradientOut<float> dx{out.dx.get(), false}, dgamma{out.dgamma.get(), false},
      dbeta{out.dbeta.get(), false};
  switch (kind) {
    case GraphNormKind::kGroup: {
      const DeviceBuffer<unsigned char> forward_workspace(
          cuda::group_norm_forward_workspace_bytes<float>(s.n, s.c, s.hw(), groups));
      const DeviceBuffer<unsigned char> backward_workspace(
          cuda::group_norm_backward_workspace_bytes<float>(s.n, s.c, s.hw(), groups));
      cuda::group_norm_forward(in.x.get(), in.gamma.get(), in.beta.get(), out.y.get(), mean.get(),
                               rstd.get(), s.n, s.c, s.hw(), groups, kEps, false,
                               forward_workspace.get());
      cuda::group_norm_backward<float>(in.x.get(), nullptr, in.dy.get(), in.gamma.get(), mean.get(),
                                       rstd.get(), dx, dgamma, dbeta, s.n, s.c, s.hw(), groups,
                                       backward_workspace.get());
      break;
    }
    case GraphNormKind::kLayer: {
      const DeviceBuffer<unsigned char> forward_workspace(
          cuda::layer_norm_forward_workspace_bytes<float>(s.n, s.c, s.hw()));
      const DeviceBuffer<unsigned char> backward_workspace(
          cuda::layer_norm_backward_workspace_bytes<float>(s.n, s.c, s.hw()));
      cuda::layer_norm_forward(in.x.get(), in.gamma.get(), in.beta.get(), out.y.get(), mean.get(),
                               rstd.get(), s.n, s.c, s.hw(), kEps, false, forward_workspace.get());
      cuda::layer_norm_backward<float>(in.x.get(), nullptr, in.dy.get(), in.gamma.get(), mean.get(),
                                       rstd.get(), dx, dgamma, dbeta, s.n, s.c, s.hw(),
                                       backward_workspace.get());
      break;
    }
    case GraphNormKind::kLastDim: {
      const DeviceBuffer<unsigned char> backward_workspace(
          cuda::last_dim_layer_norm_backward_workspace_bytes<float>(s.n, s.c));
      cuda::last_dim_layer_norm_forward(in.x.get(), in.gamma.get(), in.beta.get(), out.y.get(),
                                        mean.get(), rstd.get(), s.n, s.c, kEps, false);
      cuda::last_dim_layer_norm_backward<float>(in.x.get(), nullptr, in.dy.get(), in.gamma.get(),
                                                mean.get(), rstd.get(), dx, dgamma, dbeta, s.n, s.c,
                                                backward_workspace.get());
      break;
    }
  }
  // The statistics and workspaces are freed on return: finish with them first.
  NORMLAB_CUDA_CHECK(cudaDeviceSynchronize());
}

/// Ensures: true with cuDNN's forward (training) and backward graphs of `shape` run on `in` into
/// `out`; false, with a WARN of cuDNN's reason, when cuDNN builds no execution plan for them.
/// A failure after planning (binding, execution) fails the test.
bool run_cudnn_graph(cudnnHandle_t handle, const graph::NormGraphShape& shape, const NormInputs& in,
                     NormOutputs& out) {
  std::optional<graph::NormGraph> forward, backward;
  try {
    forward.emplace(handle, graph::norm_forward_operation(shape));
    backward.emplace(handle, graph::norm_backward_operation(shape));
  } catch (const normlab::Error& e) {
    WARN("cuDNN refuses the " << graph::mode_name(shape.mode) << " graph (" << shape.groups
                              << " group(s)) for x [" << shape.n << ", " << shape.c << ", "
                              << shape.h << ", " << shape.w << "], not compared: " << e.what());
    return false;
  }
  const size_t statistics = static_cast<size_t>(shape.n * shape.groups);
  const DeviceBuffer<float> mean(statistics), inv_variance(statistics);
  const DeviceBuffer<unsigned char> forward_workspace(
      static_cast<size_t>(forward->workspace_bytes()));
  const DeviceBuffer<unsigned char> backward_workspace(
      static_cast<size_t>(backward->workspace_bytes()));
  alignas(16) float epsilon = static_cast<float>(kEps);  // passed by value (host address)
  forward->bind({{graph::kX, in.x.get()},
                 {graph::kScale, in.gamma.get()},
                 {graph::kBias, in.beta.get()},
                 {graph::kEpsilon, &epsilon},
                 {graph::kY, out.y.get()},
                 {graph::kMean, mean.get()},
                 {graph::kInvVariance, inv_variance.get()}},
                forward_workspace.get());
  forward->execute();
  backward->bind({{graph::kX, in.x.get()},
                  {graph::kDy, in.dy.get()},
                  {graph::kScale, in.gamma.get()},
                  {graph::kMean, mean.get()},
                  {graph::kInvVariance, inv_variance.get()},
                  {graph::kDx, out.dx.get()},
                  {graph::kDscale, out.dgamma.get()},
                  {graph::kDbias, out.dbeta.get()}},
                 backward_workspace.get());
  backward->execute();
  NORMLAB_CUDA_CHECK(cudaDeviceSynchronize());
  return true;
}

void crosscheck_graph_norm(cudnnHandle_t handle, GraphNormKind kind, const NormShape& s,
                           int64_t groups, std::mt19937& rng) {
  const NormInputs in(s, rng);
  NormOutputs ours(s), cudnn(s);
  run_ours(kind, s, groups, in, ours);
  const cudnnBackendNormMode_t mode =
      kind == GraphNormKind::kLastDim ? CUDNN_LAYER_NORM : CUDNN_GROUP_NORM;
  if (run_cudnn_graph(handle, {mode, s.n, s.c, s.h, s.w, groups}, in, cudnn))
    check_norm_outputs(ours, cudnn);
}

TEST_CASE("GroupNorm(4) matches cuDNN's group norm graph", "[cudnn][group_norm]") {
  std::vector<NormShape> shapes(std::begin(kModelNormShapes), std::end(kModelNormShapes));
  shapes.push_back({1, 12, 7, 5});  // N = 1, odd HW, 3 channels per group
  const CudnnHandle handle;
  std::mt19937 rng(kSeed);
  for (const NormShape& s : shapes) {
    INFO("GroupNorm(4) x " << describe(s));
    crosscheck_graph_norm(handle.get(), GraphNormKind::kGroup, s, 4, rng);
  }
}

TEST_CASE("LayerNorm (GroupNorm(1)) matches cuDNN's group norm graph", "[cudnn][layer_norm]") {
  std::vector<NormShape> shapes(std::begin(kModelNormShapes), std::end(kModelNormShapes));
  shapes.push_back({1, 5, 7, 5});  // N = 1, odd C, odd HW
  const CudnnHandle handle;
  std::mt19937 rng(kSeed);
  for (const NormShape& s : shapes) {
    INFO("LayerNorm x " << describe(s));
    crosscheck_graph_norm(handle.get(), GraphNormKind::kLayer, s, 1, rng);
  }
}

TEST_CASE("last-dimension LayerNorm matches cuDNN's layer norm graph", "[cudnn][layer_norm]") {
  // [rows, D]: the warp-per-row kernel (D <= 1024, packed and unpacked) and a block-per-row one.
  const NormShape shapes[] = {{64, 768, 1, 1}, {7, 33, 1, 1}, {1, 1000, 1, 1}, {16, 4096, 1, 1}};
  const CudnnHandle handle;
  std::mt19937 rng(kSeed);
  for (const NormShape& s : shapes) {
    INFO("last-dim LayerNorm x [" << s.n << ", " << s.c << "]");
    crosscheck_graph_norm(handle.get(), GraphNormKind::kLastDim, s, 1, rng);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const normlab::cuda::DeviceAvailability devices = normlab::cuda::device_availability();
  if (devices.count == 0) {
    std::printf(
        "test_cudnn_crosscheck: SKIPPED, no CUDA device (%s); nothing to compare with cuDNN\n",
        devices.reason.c_str());
    return 77;
  }
  cudaDeviceProp properties{};
  NORMLAB_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
  const size_t version = cudnnGetVersion();
  std::printf("test_cudnn_crosscheck: CUDA device 0: %s (sm_%d%d), cuDNN %zu.%zu.%zu\n",
              properties.name, properties.major, properties.minor, version / 10000,
              version % 10000 / 100, version % 100);
  return Catch::Session().run(argc, argv);
}
