// bench_norms_cuda: normlab's CUDA norm kernels (kernels/normlab/cuda) timed on a GPU, side by
// side with cuDNN where cuDNN has the op and with normlab's CPU kernels on the same shape, in
// training mode with a per-channel affine (eps 1e-5, BN momentum 0.1), without and with the fused
// ReLU. Norms:
//   bn       BatchNorm2d: batch statistics, running-statistics update, normalise (+ ReLU)
//   gn       GroupNorm with 4 groups
//   ln       the comparison's LayerNorm = GroupNorm(1) (normalise over C, H, W; affine per channel)
//   ln_last  the transformers' LayerNorm over the last dimension of x [rows, D] with gamma, beta
//            [D]; a row reports it as N = rows, C = D, H = W = 1, and its CPU column is the CPU
//            GroupNorm(1) of [rows, D, 1, 1], which computes the same function
// Shapes: every distinct (C, H, W) of the CIFAR model's norms at batch 64, and tensors far larger
// than any GPU's L2 (64 and 256 MiB); ln_last at 4096x768 and 8192x1024 (transformer widths),
// 16384x4096 (block per row, row cached in shared memory) and 2048x32768 (uncached rows).
// --quick keeps the CIFAR shapes and 4096x768. Passes: forward, backward (dx, dgamma, dbeta
// written, not accumulated).
//
// Timing: one call per sample, bracketed by CUDA events on one stream; before each sample a
// cudaMemsetAsync writes a buffer of twice the device's L2 size, so every call starts with none of
// its tensors in L2 (as after the convolution that precedes a norm in the model). The host queues
// the call's kernels while the GPU does that write, so launch latency is hidden and the time is
// the GPU's. Median, min and max over --repeats samples after --warmup untimed calls.
// Bandwidth: the bytes of norm_cases.hpp's convention (the CPU bench_norms' one) / median time,
// and that as % of the device's peak DRAM bandwidth = 2 transfers per memory clock x bus width
// (cudaDevAttrMemoryClockRate, cudaDevAttrGlobalMemoryBusWidth).
// cuDNN: cudnnBatchNormalizationForwardTraining / cudnnBatchNormalizationBackward (spatial mode,
// NCHW float) for bn; for ln_last a graph-API norm operation in CUDNN_LAYER_NORM mode on
// [rows, D, 1, 1], for gn and ln one in CUDNN_GROUP_NORM mode with 4 and 1 groups
// (cudnn_graph_norm.hpp), each with outputs of its own that are checked once per row against ours
// (max |difference| <= kCheckTolerance x max(1, max |ours|)); rows with the fused ReLU, and graphs
// cuDNN cannot build on the device, say why cuDNN has no number (n/a (reason)).
// CPU: bench_norms' kernel calls on the same shape, compiled by the host compiler (see
// bench_norms_cuda.hpp), --threads OpenMP threads (default: all hardware threads).
//
//   bench_norms_cuda [--device 0] [--repeats 30] [--warmup 3] [--threads N] [--quick] [--csv]
//
// Without a CUDA device it says so, measures nothing and exits 0. docs/cuda_bench.md.
#include <cudnn.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_norms_cuda.hpp"
#include "cudnn_graph_norm.hpp"
#include "norm_cases.hpp"
#include "normlab/core/error.hpp"
#include "normlab/cuda/batch_norm.cuh"
#include "normlab/cuda/device.hpp"
#include "normlab/cuda/error.hpp"
#include "normlab/cuda/group_norm.cuh"
#include "normlab/cuda/layer_norm.cuh"
#include "normlab/cuda/stream.hpp"
#include "timing.hpp"

using namespace normlab;
using bench::NormKind;
using bench::NormShape;
using bench::Timing;
namespace cudnn_graph = bench::cudnn_graph;

namespace {

/// Throws normlab::Error naming the failed cuDNN call unless `status` is success.
void cudnn_check(cudnnStatus_t status, const char* expression) {
  NORMLAB_CHECK(status == CUDNN_STATUS_SUCCESS, "cuDNN call ", expression,
                " failed: ", cudnnGetErrorString(status));
}
#define BENCH_CUDNN_CHECK(...) cudnn_check((__VA_ARGS__), #__VA_ARGS__)

enum class Launchers { BatchNorm, GroupNorm, LayerNorm, LastDimLayerNorm };

/// What cuDNN computes the same norm with: its legacy BatchNorm calls, or a graph of one norm
/// operation (cudnn_graph_norm.hpp) in CUDNN_LAYER_NORM or CUDNN_GROUP_NORM mode.
enum class CudnnCall { LegacyBatchNorm, GraphLayerNorm, GraphGroupNorm };

struct GpuNorm {
  NormKind kind;  // name, and the groups of the CPU kernels computing the same function
  Launchers launchers;
  CudnnCall cudnn;
};

// ln (GroupNorm(1), affine per channel) is cuDNN's GROUP_NORM with one group: cuDNN's LAYER_NORM
// has an affine per (C, H, W) element.
constexpr GpuNorm kNorms[] = {
    {{"bn", 0}, Launchers::BatchNorm, CudnnCall::LegacyBatchNorm},
    {{"gn", 4}, Launchers::GroupNorm, CudnnCall::GraphGroupNorm},
    {{"ln", 1}, Launchers::LayerNorm, CudnnCall::GraphGroupNorm},
    {{"ln_last", 1}, Launchers::LastDimLayerNorm, CudnnCall::GraphLayerNorm},
};

/// The largest |cuDNN - ours| accepted, as a fraction of max(1, max |ours|) of the tensor.
constexpr double kCheckTolerance = 1e-4;

std::vector<NormShape> shapes(const GpuNorm& norm, bool quick) {
  if (norm.launchers == Launchers::LastDimLayerNorm) {
    if (quick) return {{4096, 768, 1, 1}};
    return {{4096, 768, 1, 1}, {8192, 1024, 1, 1}, {16384, 4096, 1, 1}, {2048, 32768, 1, 1}};
  }
  if (quick) return {{64, 16, 32, 32}, {64, 32, 16, 16}, {64, 32, 8, 8}};
  return {{64, 16, 32, 32}, {64, 32, 16, 16}, {64, 32, 8, 8}, {64, 64, 64, 64}, {256, 64, 64, 64}};
}

/// `count` elements of T in device memory (cudaMalloc: 256-byte aligned, as the launchers'
/// workspaces require), freed with the object.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    NORMLAB_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(count, 1) * sizeof(T)));
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  size_t count() const { return count_; }

 private:
  T* data_ = nullptr;
  size_t count_;
};

/// Ensures: `buffer` holds independent normal(mean, stddev) draws, or `mean` where stddev is 0.
void fill_normal(DeviceBuffer<float>& buffer, std::mt19937& rng, float mean, float stddev) {
  std::vector<float> host(buffer.count(), mean);
  if (stddev > 0) {
    std::normal_distribution<float> normal(mean, stddev);
    for (float& v : host) v = normal(rng);
  }
  NORMLAB_CUDA_CHECK(
      cudaMemcpy(buffer.get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
}

/// One norm at one shape on the GPU: the device buffers (x, dy ~ N(0, 1), gamma ~ N(1, 0.1),
/// beta ~ N(0, 0.1), as bench_norms) and the forward / backward launcher calls on `stream`.
class GpuNormCase {
 public:
  GpuNormCase(const GpuNorm& norm, const NormShape& s, bool relu, cudaStream_t stream,
              std::mt19937& rng)
      : norm_(norm),
        s_(s),
        relu_(relu),
        stream_(stream),
        x_(static_cast<size_t>(s.numel())),
        dy_(static_cast<size_t>(s.numel())),
        y_(static_cast<size_t>(s.numel())),
        dx_(static_cast<size_t>(s.numel())),
        gamma_(static_cast<size_t>(s.c)),
        beta_(static_cast<size_t>(s.c)),
        dgamma_(static_cast<size_t>(s.c)),
        dbeta_(static_cast<size_t>(s.c)),
        running_mean_(static_cast<size_t>(s.c)),
        running_var_(static_cast<size_t>(s.c)),
        mean_(statistics_count()),
        rstd_(statistics_count()),
        forward_workspace_(forward_workspace_bytes()),
        backward_workspace_(backward_workspace_bytes()) {
    fill_normal(x_, rng, 0.0f, 1.0f);
    fill_normal(dy_, rng, 0.0f, 1.0f);
    fill_normal(gamma_, rng, 1.0f, 0.1f);
    fill_normal(beta_, rng, 0.0f, 0.1f);
    fill_normal(running_mean_, rng, 0.0f, 0.0f);
    fill_normal(running_var_, rng, 1.0f, 0.0f);
  }

  void forward() {
    const int64_t N = s_.n, C = s_.c, HW = s_.h * s_.w;
    void* workspace = forward_workspace_.get();
    switch (norm_.launchers) {
      case Launchers::BatchNorm:
        cuda::batch_norm_forward(x_.get(), gamma_.get(), beta_.get(), running_mean_.get(),
                                 running_var_.get(), y_.get(), mean_.get(), rstd_.get(), N, C, HW,
                                 true, bench::kMomentum, bench::kEps, relu_, workspace, stream_);
        break;
      case Launchers::GroupNorm:
        cuda::group_norm_forward(x_.get(), gamma_.get(), beta_.get(), y_.get(), mean_.get(),
                                 rstd_.get(), N, C, HW, norm_.kind.groups, bench::kEps, relu_,
                                 workspace, stream_);
        break;
      case Launchers::LayerNorm:
        cuda::layer_norm_forward(x_.get(), gamma_.get(), beta_.get(), y_.get(), mean_.get(),
                                 rstd_.get(), N, C, HW, bench::kEps, relu_, workspace, stream_);
        break;
      case Launchers::LastDimLayerNorm:
        cuda::last_dim_layer_norm_forward(x_.get(), gamma_.get(), beta_.get(), y_.get(),
                                          mean_.get(), rstd_.get(), N, C, bench::kEps, relu_,
                                          stream_);
        break;
    }
  }

  /// Requires: forward() ran (its y, mean and rstd are the backward's inputs).
  void backward() {
    const int64_t N = s_.n, C = s_.c, HW = s_.h * s_.w;
    const float* relu_output = relu_ ? y_.get() : nullptr;
    void* workspace = backward_workspace_.get();
    switch (norm_.launchers) {
      case Launchers::BatchNorm:
        cuda::batch_norm_backward(x_.get(), relu_output, dy_.get(), gamma_.get(), mean_.get(),
                                  rstd_.get(), {dx_.get(), false}, {dgamma_.get(), false},
                                  {dbeta_.get(), false}, N, C, HW, true, workspace, stream_);
        break;
      case Launchers::GroupNorm:
        cuda::group_norm_backward(x_.get(), relu_output, dy_.get(), gamma_.get(), mean_.get(),
                                  rstd_.get(), {dx_.get(), false}, {dgamma_.get(), false},
                                  {dbeta_.get(), false}, N, C, HW, norm_.kind.groups, workspace,
                                  stream_);
        break;
      case Launchers::LayerNorm:
        cuda::layer_norm_backward(x_.get(), relu_output, dy_.get(), gamma_.get(), mean_.get(),
                                  rstd_.get(), {dx_.get(), false}, {dgamma_.get(), false},
                                  {dbeta_.get(), false}, N, C, HW, workspace, stream_);
        break;
      case Launchers::LastDimLayerNorm:
        cuda::last_dim_layer_norm_backward(x_.get(), relu_output, dy_.get(), gamma_.get(),
                                           mean_.get(), rstd_.get(), {dx_.get(), false},
                                           {dgamma_.get(), false}, {dbeta_.get(), false}, N, C,
                                           workspace, stream_);
        break;
    }
  }

  const NormShape& shape() const { return s_; }
  float* x() const { return x_.get(); }
  float* y() const { return y_.get(); }
  float* dy() const { return dy_.get(); }
  float* dx() const { return dx_.get(); }
  float* gamma() const { return gamma_.get(); }
  float* beta() const { return beta_.get(); }
  float* dgamma() const { return dgamma_.get(); }
  float* dbeta() const { return dbeta_.get(); }
  float* running_mean() const { return running_mean_.get(); }
  float* running_var() const { return running_var_.get(); }

 private:
  /// BatchNorm: one statistic per channel; the others one per (sample, group), rows for ln_last.
  size_t statistics_count() const {
    return static_cast<size_t>(norm_.kind.groups == 0 ? s_.c : s_.n * norm_.kind.groups);
  }
  size_t forward_workspace_bytes() const {
    const int64_t N = s_.n, C = s_.c, HW = s_.h * s_.w;
    switch (norm_.launchers) {
      case Launchers::BatchNorm:
        return cuda::batch_norm_forward_workspace_bytes<float>(N, C, HW, true);
      case Launchers::GroupNorm:
        return cuda::group_norm_forward_workspace_bytes<float>(N, C, HW, norm_.kind.groups);
      case Launchers::LayerNorm:
        return cuda::layer_norm_forward_workspace_bytes<float>(N, C, HW);
      case Launchers::LastDimLayerNorm:
        break;
    }
    return 0;  // the last-dimension LayerNorm's forward needs none
  }
  size_t backward_workspace_bytes() const {
    const int64_t N = s_.n, C = s_.c, HW = s_.h * s_.w;
    switch (norm_.launchers) {
      case Launchers::BatchNorm:
        return cuda::batch_norm_backward_workspace_bytes<float>(N, C, HW);
      case Launchers::GroupNorm:
        return cuda::group_norm_backward_workspace_bytes<float>(N, C, HW, norm_.kind.groups);
      case Launchers::LayerNorm:
        return cuda::layer_norm_backward_workspace_bytes<float>(N, C, HW);
      case Launchers::LastDimLayerNorm:
        break;
    }
    return cuda::last_dim_layer_norm_backward_workspace_bytes<float>(N, C);
  }

  GpuNorm norm_;
  NormShape s_;
  bool relu_;
  cudaStream_t stream_;
  DeviceBuffer<float> x_, dy_, y_, dx_, gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
  DeviceBuffer<double> mean_, rstd_;
  DeviceBuffer<unsigned char> forward_workspace_, backward_workspace_;
};

/// A cuDNN handle whose work goes to `stream`.
class CudnnHandle {
 public:
  explicit CudnnHandle(cudaStream_t stream) {
    BENCH_CUDNN_CHECK(cudnnCreate(&handle_));
    BENCH_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  }
  ~CudnnHandle() { cudnnDestroy(handle_); }
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return handle_; }

 private:
  cudnnHandle_t handle_ = nullptr;
};

/// cuDNN's BatchNorm on a GpuNormCase's buffers: CUDNN_BATCHNORM_SPATIAL (statistics per
/// channel over N, H, W, as ours), NCHW float, the same momentum and eps; y, dx, dgamma, dbeta
/// written (alpha 1, beta 0); its saved mean and inverse std (float) are its own.
class CudnnBatchNorm {
 public:
  CudnnBatchNorm(cudnnHandle_t handle, const GpuNormCase& data)
      : handle_(handle),
        data_(data),
        save_mean_(static_cast<size_t>(data.shape().c)),
        save_inv_std_(static_cast<size_t>(data.shape().c)) {
    const NormShape& s = data.shape();
    BENCH_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    BENCH_CUDNN_CHECK(cudnnCreateTensorDescriptor(&param_desc_));
    BENCH_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                 static_cast<int>(s.n), static_cast<int>(s.c),
                                                 static_cast<int>(s.h), static_cast<int>(s.w)));
    BENCH_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param_desc_, x_desc_, CUDNN_BATCHNORM_SPATIAL));
  }
  ~CudnnBatchNorm() {
    cudnnDestroyTensorDescriptor(param_desc_);
    cudnnDestroyTensorDescriptor(x_desc_);
  }
  CudnnBatchNorm(const CudnnBatchNorm&) = delete;
  CudnnBatchNorm& operator=(const CudnnBatchNorm&) = delete;

  void forward() {
    const float one = 1, zero = 0;
    BENCH_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
        handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc_, data_.x(), x_desc_, data_.y(),
        param_desc_, data_.gamma(), data_.beta(), bench::kMomentum, data_.running_mean(),
        data_.running_var(), bench::kEps, save_mean_.get(), save_inv_std_.get()));
  }
  /// Requires: forward() ran (its saved mean and inverse std are the backward's inputs).
  void backward() {
    const float one = 1, zero = 0;
    BENCH_CUDNN_CHECK(cudnnBatchNormalizationBackward(
        handle_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, x_desc_, data_.x(), x_desc_,
        data_.dy(), x_desc_, data_.dx(), param_desc_, data_.gamma(), data_.dgamma(), data_.dbeta(),
        bench::kEps, save_mean_.get(), save_inv_std_.get()));
  }

 private:
  cudnnHandle_t handle_;
  const GpuNormCase& data_;
  DeviceBuffer<float> save_mean_, save_inv_std_;
  cudnnTensorDescriptor_t x_desc_ = nullptr, param_desc_ = nullptr;
};

/// cuDNN's norm graphs (cudnn_graph_norm.hpp) on a GpuNormCase's inputs (x, dy, gamma as scale,
/// beta as bias, eps) with outputs of their own (y, dx, dgamma, dbeta, and float mean and
/// inverse std), so that they can be checked against ours. Statistics per (sample, group):
/// CUDNN_LAYER_NORM (groups 1) for ln_last's [rows, D, 1, 1], CUDNN_GROUP_NORM for gn and ln.
class CudnnGraphNorm {
 public:
  /// Requires: the handle's stream is the case's. Ensures: both graphs are planned and bound, or
  /// normlab::Error says why cuDNN cannot build one on this device.
  CudnnGraphNorm(cudnnHandle_t handle, const GpuNormCase& data, cudnnBackendNormMode_t mode,
                 int64_t groups)
      : shape_{mode, data.shape().n, data.shape().c, data.shape().h, data.shape().w, groups},
        y_(static_cast<size_t>(data.shape().numel())),
        dx_(static_cast<size_t>(data.shape().numel())),
        dgamma_(static_cast<size_t>(data.shape().c)),
        dbeta_(static_cast<size_t>(data.shape().c)),
        mean_(static_cast<size_t>(data.shape().n * groups)),
        inv_variance_(static_cast<size_t>(data.shape().n * groups)),
        forward_(handle, cudnn_graph::norm_forward_operation(shape_)),
        backward_(handle, cudnn_graph::norm_backward_operation(shape_)),
        forward_workspace_(static_cast<size_t>(forward_.workspace_bytes())),
        backward_workspace_(static_cast<size_t>(backward_.workspace_bytes())) {
    using namespace cudnn_graph;
    forward_.bind({{kX, data.x()},
                   {kScale, data.gamma()},
                   {kBias, data.beta()},
                   {kEpsilon, &epsilon_},
                   {kY, y_.get()},
                   {kMean, mean_.get()},
                   {kInvVariance, inv_variance_.get()}},
                  forward_workspace_.get());
    backward_.bind({{kX, data.x()},
                    {kDy, data.dy()},
                    {kScale, data.gamma()},
                    {kMean, mean_.get()},
                    {kInvVariance, inv_variance_.get()},
                    {kDx, dx_.get()},
                    {kDscale, dgamma_.get()},
                    {kDbias, dbeta_.get()}},
                   backward_workspace_.get());
  }
  CudnnGraphNorm(const CudnnGraphNorm&) = delete;  // the forward pack holds &epsilon_
  CudnnGraphNorm& operator=(const CudnnGraphNorm&) = delete;

  void forward() { forward_.execute(); }
  /// Requires: forward() ran (its mean and inverse std are the backward's inputs).
  void backward() { backward_.execute(); }

  const float* y() const { return y_.get(); }
  const float* dx() const { return dx_.get(); }
  const float* dgamma() const { return dgamma_.get(); }
  const float* dbeta() const { return dbeta_.get(); }

 private:
  cudnn_graph::NormGraphShape shape_;
  DeviceBuffer<float> y_, dx_, dgamma_, dbeta_, mean_, inv_variance_;
  alignas(16) float epsilon_ = static_cast<float>(bench::kEps);  // passed by value
  cudnn_graph::NormGraph forward_, backward_;
  DeviceBuffer<unsigned char> forward_workspace_, backward_workspace_;
};

constexpr int kCompareThreads = 256, kCompareBlocks = 1024;

/// max |ours[i] - theirs[i]| and max |ours[i]| over i < count; a NaN or infinite difference
/// counts as infinite. Flat float arrays: each thread folds a grid-stride slice, each block folds
/// its threads in shared memory and writes (difference, magnitude) to block_maxima[blockIdx.x];
/// the host folds the blocks. One pass over both arrays; a max is exact in float, so the result
/// does not depend on the order.
__global__ void __launch_bounds__(kCompareThreads)
    max_abs_difference_kernel(const float* ours, const float* theirs, int64_t count,
                              float2* block_maxima) {
  __shared__ float2 partial[kCompareThreads];
  float difference = 0, magnitude = 0;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += step) {
    const float d = fabsf(ours[i] - theirs[i]);
    difference = d <= FLT_MAX ? fmaxf(difference, d) : INFINITY;
    magnitude = fmaxf(magnitude, fabsf(ours[i]));
  }
  partial[threadIdx.x] = make_float2(difference, magnitude);
  __syncthreads();
  for (unsigned stride = kCompareThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      partial[threadIdx.x].x = fmaxf(partial[threadIdx.x].x, partial[threadIdx.x + stride].x);
      partial[threadIdx.x].y = fmaxf(partial[threadIdx.x].y, partial[threadIdx.x + stride].y);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) block_maxima[blockIdx.x] = partial[0];
}

/// How far a tensor of cuDNN's is from ours.
struct Difference {
  double max_abs;   // max |cuDNN - ours|
  double max_ours;  // max |ours|
  bool agrees() const { return max_abs <= kCheckTolerance * std::max(1.0, max_ours); }
};

/// Requires: `ours` and `theirs` hold `count` floats of device memory written by work queued on
/// `stream`. Ensures: their Difference, computed on the GPU after that work.
Difference difference(const float* ours, const float* theirs, size_t count, cudaStream_t stream) {
  const int blocks = static_cast<int>(std::min<size_t>(
      kCompareBlocks, std::max<size_t>(1, (count + kCompareThreads - 1) / kCompareThreads)));
  DeviceBuffer<float2> block_maxima(static_cast<size_t>(blocks));
  NORMLAB_CUDA_LAUNCH(blocks, kCompareThreads, 0, stream, max_abs_difference_kernel)
  (ours, theirs, static_cast<int64_t>(count), block_maxima.get());
  NORMLAB_CUDA_CHECK(cudaGetLastError());
  std::vector<float2> host(static_cast<size_t>(blocks));
  NORMLAB_CUDA_CHECK(cudaMemcpyAsync(host.data(), block_maxima.get(), host.size() * sizeof(float2),
                                     cudaMemcpyDeviceToHost, stream));
  NORMLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
  Difference result{0, 0};
  for (const float2& b : host) {
    result.max_abs = std::max(result.max_abs, static_cast<double>(b.x));
    result.max_ours = std::max(result.max_ours, static_cast<double>(b.y));
  }
  return result;
}

/// The check of one pass: the compared tensors' largest differences, for the row.
struct Check {
  std::string text;  // "y 1.2e-06 ok", "dx 3.0e-06, dgamma ..., dbeta ... MISMATCH (...)"
  double max_abs;    // the first tensor's (y forward, dx backward): the CSV column
  bool agrees;
};

/// Requires: at least one tensor. Ensures: the check of `tensors` (name, Difference).
Check check_of(const std::vector<std::pair<const char*, Difference>>& tensors) {
  Check check{"", tensors.front().second.max_abs, true};
  for (const auto& [name, d] : tensors) {
    char text[64];
    std::snprintf(text, sizeof text, "%s%s %.1e", check.text.empty() ? "" : ", ", name, d.max_abs);
    check.text += text;
    check.agrees = check.agrees && d.agrees();
  }
  char verdict[96] = " ok";
  if (!check.agrees)
    std::snprintf(verdict, sizeof verdict, " MISMATCH (beyond %g x max(1, max |ours|))",
                  kCheckTolerance);
  check.text += verdict;
  return check;
}

/// Times work queued on `stream`: each sample writes the L2 flush buffer, then brackets one call
/// with events (see the file comment).
class GpuTimer {
 public:
  GpuTimer(size_t flush_bytes, cudaStream_t stream) : flush_(flush_bytes), stream_(stream) {
    NORMLAB_CUDA_CHECK(cudaEventCreate(&start_));
    NORMLAB_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~GpuTimer() {
    cudaEventDestroy(stop_);
    cudaEventDestroy(start_);
  }
  GpuTimer(const GpuTimer&) = delete;
  GpuTimer& operator=(const GpuTimer&) = delete;

  /// Requires: repeats >= 1. Ensures: median/min/max GPU seconds of `call` over `repeats` samples
  /// after `warmup` untimed calls.
  template <typename F>
  Timing time(F&& call, int warmup, int repeats) {
    for (int i = 0; i < warmup; ++i) call();
    std::vector<double> seconds;
    for (int i = 0; i < repeats; ++i) {
      NORMLAB_CUDA_CHECK(cudaMemsetAsync(flush_.get(), i & 0xff, flush_.count(), stream_));
      NORMLAB_CUDA_CHECK(cudaEventRecord(start_, stream_));
      call();
      NORMLAB_CUDA_CHECK(cudaEventRecord(stop_, stream_));
      NORMLAB_CUDA_CHECK(cudaEventSynchronize(stop_));
      float milliseconds = 0;
      NORMLAB_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start_, stop_));
      seconds.push_back(1e-3 * milliseconds);
    }
    return bench::summarize(std::move(seconds));
  }

 private:
  DeviceBuffer<unsigned char> flush_;
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

struct DeviceInfo {
  std::string name;
  int major, minor, sms;
  int memory_clock_khz, bus_bits;
  size_t l2_bytes;
  /// 2 transfers per memory clock x bus width; 0 when the device reports no clock or width.
  double peak_gbs() const { return 2.0 * memory_clock_khz * 1e3 * (bus_bits / 8.0) / 1e9; }
};

DeviceInfo device_info(int device) {
  cudaDeviceProp p{};
  NORMLAB_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  int clock_khz = 0, bus_bits = 0, l2 = 0;
  NORMLAB_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device));
  NORMLAB_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  NORMLAB_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
  return {p.name,
          p.major,
          p.minor,
          p.multiProcessorCount,
          clock_khz,
          bus_bits,
          static_cast<size_t>(l2)};
}

/// `value` with `decimals` decimals if `present`, else "n/a".
std::string number(bool present, double value, int decimals) {
  if (!present) return "n/a";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

/// One measured pass: its bytes and the three timings (cuDNN's absent where it has no call),
/// and the check of cuDNN's outputs against ours where they have their own.
struct Row {
  const GpuNorm* norm;
  NormShape shape;
  bool relu;
  const char* pass;
  Timing gpu;
  std::optional<Timing> cudnn;
  std::string cudnn_absent;  // why cudnn is empty
  std::optional<Check> check;
  Timing cpu;
};

void print_row(const Row& r, double peak_gbs, int threads, bool csv) {
  const double bytes =
      static_cast<double>(bench::traffic(r.pass, r.relu).tensors_moved * r.shape.tensor_bytes());
  const double gbs = bytes / r.gpu.median / 1e9;
  const bool has_peak = peak_gbs > 0, has_cudnn = r.cudnn.has_value();
  const std::string peak = number(has_peak, peak_gbs, 2),
                    percent = number(has_peak, has_peak ? 100 * gbs / peak_gbs : 0, 1);
  const double cudnn_seconds = has_cudnn ? r.cudnn->median : 0;
  const std::string cudnn_us = number(has_cudnn, 1e6 * cudnn_seconds, 2),
                    cudnn_gbs = number(has_cudnn, has_cudnn ? bytes / cudnn_seconds / 1e9 : 0, 2),
                    ratio = number(has_cudnn, has_cudnn ? r.gpu.median / cudnn_seconds : 0, 3);
  std::string max_abs = "n/a";
  if (r.check) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3e", r.check->max_abs);
    max_abs = text;
  }
  const char* check = !r.check ? "n/a" : r.check->agrees ? "ok" : "mismatch";
  const double cpu_gbs = bytes / r.cpu.median / 1e9;
  const NormShape& s = r.shape;
  if (csv) {
    std::printf(
        "%s,%lld,%lld,%lld,%lld,%d,%s,%.2f,%.2f,%.2f,%.0f,%.2f,%s,%s,%s,%s,%s,%s,%s,%d,%.2f,%.2f\n",
        r.norm->kind.name, static_cast<long long>(s.n), static_cast<long long>(s.c),
        static_cast<long long>(s.h), static_cast<long long>(s.w), r.relu ? 1 : 0, r.pass,
        1e6 * r.gpu.median, 1e6 * r.gpu.min, 1e6 * r.gpu.max, bytes, gbs, peak.c_str(),
        percent.c_str(), cudnn_us.c_str(), cudnn_gbs.c_str(), ratio.c_str(), max_abs.c_str(), check,
        threads, 1e6 * r.cpu.median, cpu_gbs);
  } else {
    const std::string rows_by_d = std::to_string(s.n) + "x" + std::to_string(s.c);
    const std::string shape =
        r.norm->launchers == Launchers::LastDimLayerNorm
            ? rows_by_d
            : rows_by_d + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
    std::string cudnn = "n/a (" + r.cudnn_absent + ")";
    if (has_cudnn) {
      cudnn = number(true, 1e6 * cudnn_seconds, 1) + " us " +
              number(true, bytes / cudnn_seconds / 1e9, 1) + " GB/s, ours/cuDNN time " + ratio;
      if (r.check) cudnn += ", max |cuDNN - ours| " + r.check->text;
    }
    const std::string of_peak = has_peak ? percent + "% of peak" : "peak n/a";
    std::printf(
        "%-7s %-14s relu=%d %-8s %9.1f us (min %.1f, max %.1f) %7.1f GB/s %15s | cuDNN %s | "
        "CPU %.1f us %.1f GB/s\n",
        r.norm->kind.name, shape.c_str(), r.relu ? 1 : 0, r.pass, 1e6 * r.gpu.median,
        1e6 * r.gpu.min, 1e6 * r.gpu.max, gbs, of_peak.c_str(), cudnn.c_str(), 1e6 * r.cpu.median,
        cpu_gbs);
  }
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  const int device = static_cast<int>(bench::option_int(argc, argv, "--device", 0));
  const int repeats = static_cast<int>(bench::option_int(argc, argv, "--repeats", 30));
  const int warmup = static_cast<int>(bench::option_int(argc, argv, "--warmup", 3));
  const int threads = static_cast<int>(bench::option_int(
      argc, argv, "--threads", std::max(1u, std::thread::hardware_concurrency())));
  const bool quick = bench::option_flag(argc, argv, "--quick");
  const bool csv = bench::option_flag(argc, argv, "--csv");
  NORMLAB_CHECK(repeats >= 1 && warmup >= 0 && threads >= 1,
                "need --repeats >= 1, --warmup >= 0, --threads >= 1; got ", repeats, ", ", warmup,
                ", ", threads);

  const cuda::DeviceAvailability devices = cuda::device_availability();
  if (devices.count == 0) {
    std::printf("bench_norms_cuda: no CUDA device (%s): nothing was measured\n",
                devices.reason.c_str());
    return 0;
  }
  NORMLAB_CHECK(device >= 0 && device < devices.count, "--device ", device, " does not exist (",
                devices.count, " CUDA devices)");
  NORMLAB_CUDA_CHECK(cudaSetDevice(device));
  const DeviceInfo info = device_info(device);

  const cuda::Stream stream;  // declared first: destroyed after the timer and cuDNN's handle
  const size_t flush_bytes = 2 * std::max<size_t>(info.l2_bytes, size_t(1) << 20);
  GpuTimer timer(flush_bytes, stream);
  std::optional<CudnnHandle> cudnn;
  std::string cudnn_failure;
  try {
    cudnn.emplace(stream);
  } catch (const Error& e) {
    cudnn_failure = e.what();
  }

  if (csv) {
    std::printf(
        "norm,N,C,H,W,relu,pass,microseconds_median,microseconds_min,microseconds_max,bytes,"
        "gb_per_s,peak_gb_per_s,percent_of_peak,cudnn_microseconds_median,cudnn_gb_per_s,"
        "ours_over_cudnn_time,cudnn_max_abs_diff,cudnn_check,cpu_threads,cpu_microseconds_median,"
        "cpu_gb_per_s\n");
  } else {
    const size_t cudnn_version = cudnnGetVersion();
    const std::string cudnn_state = cudnn ? "" : " (unusable: " + cudnn_failure + ")";
    std::printf(
        "normlab bench_norms_cuda: device %d %s (sm_%d%d, %d SMs), peak DRAM bandwidth %s GB/s "
        "(memory clock %d MHz x 2 x %d-bit bus), L2 %.1f MiB, flushed before each sample by a "
        "%.1f MiB write; cuDNN %zu.%zu.%zu%s; CPU kernels on %d threads; %d repeats (+%d "
        "warm-up); float32, training mode, affine, eps %g; gn = GroupNorm(4), ln = "
        "GroupNorm(1), ln_last = LayerNorm over the last dimension of [N, C] (CPU: GroupNorm(1) "
        "of [N, C, 1, 1]); cuDNN: legacy BatchNorm for bn, graph norm operations for gn, ln "
        "(GROUP_NORM) and ln_last (LAYER_NORM), whose y (forward) and dx, dgamma, dbeta "
        "(backward) are checked against ours: max |cuDNN - ours| <= %g x max(1, max |ours|)\n%s\n",
        device, info.name.c_str(), info.major, info.minor, info.sms,
        number(info.peak_gbs() > 0, info.peak_gbs(), 0).c_str(), info.memory_clock_khz / 1000,
        info.bus_bits, info.l2_bytes / 1048576.0, flush_bytes / 1048576.0, cudnn_version / 10000,
        cudnn_version % 10000 / 100, cudnn_version % 100, cudnn_state.c_str(), threads, repeats,
        warmup, bench::kEps, kCheckTolerance, bench::kByteConvention);
  }

  std::mt19937 rng(1);
  int rows = 0, mismatches = 0;
  for (const GpuNorm& norm : kNorms) {
    for (const NormShape& shape : shapes(norm, quick)) {
      for (const bool relu : {false, true}) {
        GpuNormCase gpu(norm, shape, relu, stream, rng);
        gpu.forward();  // the backward's inputs
        const Timing gpu_forward = timer.time([&] { gpu.forward(); }, warmup, repeats);
        const Timing gpu_backward = timer.time([&] { gpu.backward(); }, warmup, repeats);

        std::optional<Timing> cudnn_forward, cudnn_backward;
        std::optional<Check> forward_check, backward_check;
        std::string cudnn_absent;  // why the cuDNN columns are n/a
        if (relu) {
          cudnn_absent =
              norm.cudnn == CudnnCall::LegacyBatchNorm
                  ? "cuDNN fuses BN + ReLU only in its ...Ex calls (NHWC half); not wired up"
                  : "a ReLU would be a second (pointwise) operation in cuDNN's graph; not wired up";
        } else if (!cudnn) {
          cudnn_absent = cudnn_failure;
        } else if (norm.cudnn == CudnnCall::LegacyBatchNorm) {
          CudnnBatchNorm reference(cudnn->get(), gpu);
          reference.forward();
          cudnn_forward = timer.time([&] { reference.forward(); }, warmup, repeats);
          cudnn_backward = timer.time([&] { reference.backward(); }, warmup, repeats);
        } else {
          try {
            const cudnnBackendNormMode_t mode =
                norm.cudnn == CudnnCall::GraphLayerNorm ? CUDNN_LAYER_NORM : CUDNN_GROUP_NORM;
            CudnnGraphNorm reference(cudnn->get(), gpu, mode, norm.kind.groups);
            reference.forward();
            cudnn_forward = timer.time([&] { reference.forward(); }, warmup, repeats);
            cudnn_backward = timer.time([&] { reference.backward(); }, warmup, repeats);
            const auto numel = static_cast<size_t>(shape.numel()), c = static_cast<size_t>(shape.c);
            forward_check = check_of({{"y", difference(gpu.y(), reference.y(), numel, stream)}});
            backward_check =
                check_of({{"dx", difference(gpu.dx(), reference.dx(), numel, stream)},
                          {"dgamma", difference(gpu.dgamma(), reference.dgamma(), c, stream)},
                          {"dbeta", difference(gpu.dbeta(), reference.dbeta(), c, stream)}});
            mismatches += (forward_check->agrees ? 0 : 1) + (backward_check->agrees ? 0 : 1);
          } catch (const Error& e) {
            cudnn_forward.reset();
            cudnn_backward.reset();
            forward_check.reset();
            cudnn_absent = e.what();
          }
        }

        const bench::CpuPassTimes cpu =
            bench::time_cpu_norm(norm.kind, shape, relu, threads, warmup, repeats);
        print_row({&norm, shape, relu, "forward", gpu_forward, cudnn_forward, cudnn_absent,
                   forward_check, cpu.forward},
                  info.peak_gbs(), threads, csv);
        print_row({&norm, shape, relu, "backward", gpu_backward, cudnn_backward, cudnn_absent,
                   backward_check, cpu.backward},
                  info.peak_gbs(), threads, csv);
        rows += 2;
      }
    }
  }
  if (!csv && mismatches > 0)
    std::printf(
        "bench_norms_cuda: cuDNN's outputs differ from ours beyond the tolerance on %d "
        "passes (marked MISMATCH)\n",
        mismatches);
  if (!csv) std::printf("bench_norms_cuda: measured %d rows on %s\n", rows, info.name.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_norms_cuda: %s\n", e.what());
    return 1;
  }
}
