// The few CUDA runtime API calls that kernel launchers and tests make, on host memory.
//
// "Device" memory is ordinary host memory (so ASan sees overruns of it), copies are memcpy,
// launches are synchronous, so synchronisation has nothing to wait for. Invalid launches and
// kernel faults throw normlab::cuda_emu::Error at the launch instead of setting an error code;
// the calls below return error codes, as CUDA does, and record them for cudaGetLastError().
#pragma once

#include <cstddef>
#include <cstring>
#include <new>

#include "normlab/cuda_emu/scheduler.hpp"

#if __has_include(<cuda_runtime_api.h>)
// The CUDA toolkit is on the include path (and its headers, e.g. cuda_fp16.h, may include this
// one anyway): take the types and C declarations from it; the emulator defines the functions.
#include <cuda_runtime_api.h>
#else
// The subset of cuda_runtime_api.h that the emulator implements, with CUDA's values.
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

typedef struct CUstream_st* cudaStream_t;

extern "C" {
cudaError_t cudaGetLastError(void);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaMalloc(void** devPtr, size_t size);
cudaError_t cudaFree(void* devPtr);
cudaError_t cudaMallocHost(void** ptr, size_t size);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream = 0);
cudaError_t cudaMemset(void* devPtr, int value, size_t count);
cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream = 0);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
}
#endif

namespace normlab::cuda_emu::detail {
inline cudaError_t last_error = cudaSuccess;

/// Ensures: `error` is returned and, if it is one, remembered for cudaGetLastError().
inline cudaError_t record(cudaError_t error) {
  if (error != cudaSuccess) last_error = error;
  return error;
}

inline constexpr std::align_val_t allocation_alignment{256};  // as cudaMalloc guarantees
}  // namespace normlab::cuda_emu::detail

// The runtime calls, with C linkage as CUDA declares them.
extern "C" {

/// Ensures: the error recorded since the last call (cudaSuccess if none), which is cleared.
inline cudaError_t cudaGetLastError() {
  const cudaError_t error = normlab::cuda_emu::detail::last_error;
  normlab::cuda_emu::detail::last_error = cudaSuccess;
  return error;
}

/// Ensures: CUDA's name for `error`.
inline const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    default:  // the emulator's calls return no other code
      return "unrecognized error code";
  }
}

/// Ensures: *pointer holds `bytes` of 256-byte-aligned host memory for cudaFree.
inline cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
  if (pointer == nullptr) return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  *pointer = ::operator new(bytes, normlab::cuda_emu::detail::allocation_alignment, std::nothrow);
  return *pointer == nullptr ? normlab::cuda_emu::detail::record(cudaErrorMemoryAllocation)
                             : cudaSuccess;
}

/// Requires: `pointer` is null or came from cudaMalloc and was not freed. Ensures: released.
inline cudaError_t cudaFree(void* pointer) {
  ::operator delete(pointer, normlab::cuda_emu::detail::allocation_alignment);
  return cudaSuccess;
}

/// Page-locked host memory: plain host memory here, with cudaMalloc's alignment.
inline cudaError_t cudaMallocHost(void** pointer, std::size_t bytes) { return cudaMalloc(pointer, bytes); }

/// Requires: `pointer` is null or came from cudaMallocHost and was not freed. Ensures: released.
inline cudaError_t cudaFreeHost(void* pointer) { return cudaFree(pointer); }

/// Ensures: `bytes` copied from `source` to `destination` (every kind is a host copy).
inline cudaError_t cudaMemcpy(void* destination, const void* source, std::size_t bytes,
                              cudaMemcpyKind) {
  if (bytes != 0 && (destination == nullptr || source == nullptr)) {
    return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  }
  if (bytes != 0) std::memmove(destination, source, bytes);
  return cudaSuccess;
}

/// As cudaMemcpy (the copy is done when the call returns).
inline cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes,
                                   cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(destination, source, bytes, kind);
}

/// Ensures: `bytes` bytes at `pointer` set to `value`.
inline cudaError_t cudaMemset(void* pointer, int value, std::size_t bytes) {
  if (bytes != 0 && pointer == nullptr) {
    return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  }
  if (bytes != 0) std::memset(pointer, value, bytes);
  return cudaSuccess;
}

/// As cudaMemset (done when the call returns).
inline cudaError_t cudaMemsetAsync(void* pointer, int value, std::size_t bytes, cudaStream_t) {
  return cudaMemset(pointer, value, bytes);
}

/// Launches are synchronous: nothing to wait for.
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

/// The emulator is one device, number 0.
inline cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : normlab::cuda_emu::detail::record(cudaErrorInvalidDevice);
}

/// Streams are accepted and ignored (launches are synchronous); a created stream is a distinct
/// non-null handle until cudaStreamDestroy (so ASan reports a stream that is never destroyed).
inline cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  *stream = reinterpret_cast<cudaStream_t>(new std::max_align_t);
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  delete reinterpret_cast<std::max_align_t*>(stream);
  return cudaSuccess;
}

}  // extern "C"

/// The typed form of cudaMalloc, as cuda_runtime.h declares it.
template <typename T>
cudaError_t cudaMalloc(T** pointer, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}

/// Only cudaFuncAttributeMaxDynamicSharedMemorySize is supported: ensures later launches of
/// `kernel` may use up to `value` bytes of dynamic shared memory; cudaErrorInvalidValue for
/// another attribute or a value outside [0, 163 KiB] (the sm_80 opt-in limit).
template <typename... Params>
cudaError_t cudaFuncSetAttribute(void (*kernel)(Params...), cudaFuncAttribute attribute,
                                 int value) {
  namespace detail = normlab::cuda_emu::detail;
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<std::size_t>(value) > detail::max_dynamic_shared_opt_in) {
    return detail::record(cudaErrorInvalidValue);
  }
  detail::Runtime::instance().set_dynamic_shared_limit(reinterpret_cast<const void*>(kernel),
                                                       static_cast<std::size_t>(value));
  return cudaSuccess;
}
