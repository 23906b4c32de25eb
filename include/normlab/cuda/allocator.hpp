// Device memory for Tensor<T> on Device::cuda(i): the backend behind core/storage.hpp's caching
// allocator. Including this header registers it, so Tensor<T>::empty(shape, Device::cuda())
// works and Tensor::to() / copy_() copy between host and device with cudaMemcpy.
//
// Blocks are cudaMalloc'd once and then recycled by the CachingAllocator (freed blocks are kept
// per (device, size) and handed out again), so training, which repeats its shapes, stops calling
// cudaMalloc after its first step. The cache does not track streams: a block freed while a kernel
// on one stream still uses it may be handed to work on another stream, so tensors shared between
// streams must be kept alive (or the streams synchronised) until that work is done. Work on one
// stream, the default, is always safe: it runs in issue order.
#pragma once

#include <cstddef>
#include <cstring>
#include <mutex>

#include "normlab/core/storage.hpp"
#include "normlab/cuda/device.hpp"
#include "normlab/cuda/error.hpp"

namespace normlab::cuda {

/// cudaMalloc / cudaFree / cudaMemcpy on the device of the given index. Errors throw
/// normlab::Error (out of memory, no device, ...).
class CudaDeviceAllocator final : public DeviceAllocator {
 public:
  void* allocate(size_t bytes, int device_index) override {
    const DeviceGuard device(device_index);
    void* block = nullptr;
    NORMLAB_CUDA_CHECK(cudaMalloc(&block, bytes));
    return block;
  }
  void deallocate(void* block, size_t, int device_index) override {
    const DeviceGuard device(device_index);
    NORMLAB_CUDA_CHECK(cudaFree(block));
  }
  /// Synchronous with respect to the host: kernels issued before it on the default stream (or on
  /// streams that synchronise with it) are finished when the copy starts, and it is complete on
  /// return. Host-to-device copies go through a pinned (page-locked) staging buffer, kept and
  /// grown as needed, so that the transfer is one DMA at full bus speed (a training batch is
  /// uploaded this way every step); other directions use cudaMemcpy.
  void copy(void* destination, const void* source, size_t bytes, CopyKind kind) override {
    if (kind == CopyKind::HostToDevice) {
      std::lock_guard<std::mutex> lock(staging_mutex_);
      if (staging_bytes_ < bytes) {
        if (staging_ != nullptr) NORMLAB_CUDA_CHECK(cudaFreeHost(staging_));
        staging_ = nullptr;
        staging_bytes_ = 0;
        NORMLAB_CUDA_CHECK(cudaMallocHost(&staging_, bytes));
        staging_bytes_ = bytes;
      }
      std::memcpy(staging_, source, bytes);
      NORMLAB_CUDA_CHECK(cudaMemcpyAsync(destination, staging_, bytes, cudaMemcpyHostToDevice, nullptr));
      NORMLAB_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      return;
    }
    const cudaMemcpyKind direction =
        kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    NORMLAB_CUDA_CHECK(cudaMemcpy(destination, source, bytes, direction));
  }

 private:
  std::mutex staging_mutex_;
  void* staging_ = nullptr;  // pinned host memory of staging_bytes_ bytes; lives with the process
  size_t staging_bytes_ = 0;
};

/// The process's CUDA allocator backend; never destroyed (storages released during static
/// destruction still find it).
inline CudaDeviceAllocator& device_allocator() {
  static CudaDeviceAllocator* allocator = new CudaDeviceAllocator;
  return *allocator;
}

namespace detail {
// Registers the backend before main() in every program that includes this header.
inline const bool device_allocator_registered =
    (register_device_allocator(DeviceType::CUDA, device_allocator()), true);
}  // namespace detail

}  // namespace normlab::cuda
