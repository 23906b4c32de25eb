// Stream: an owned CUDA stream. Kernel launchers take a cudaStream_t (nullptr: the default
// stream); a Stream converts to one.
#pragma once

#include "normlab/cuda/error.hpp"

namespace normlab::cuda {

/// A stream created with cudaStreamCreate (it synchronises with the legacy default stream, so
/// the blocking copies of Tensor::to() wait for its work) and destroyed with the object.
class Stream {
 public:
  Stream() { NORMLAB_CUDA_CHECK(cudaStreamCreate(&stream_)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const { return stream_; }
  operator cudaStream_t() const { return stream_; }
  /// Ensures: all work issued to the stream so far has finished.
  void synchronize() const { NORMLAB_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace normlab::cuda
