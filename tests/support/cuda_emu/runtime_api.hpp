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

#include "cuda_emu/scheduler.hpp"

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
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

struct CUstream_st;
/// Streams are accepted and ignored: everything runs synchronously, in call order.
typedef struct CUstream_st* cudaStream_t;

namespace normlab::cuda_emu::detail {
inline cudaError_t last_error = cudaSuccess;

/// Ensures: `error` is returned and, if it is one, remembered for cudaGetLastError().
inline cudaError_t record(cudaError_t error) {
  if (error != cudaSuccess) last_error = error;
  return error;
}

inline constexpr std::align_val_t allocation_alignment{256};  // as cudaMalloc guarantees
}  // namespace normlab::cuda_emu::detail

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
  }
  return "unrecognized error code";
}

/// Ensures: *pointer holds `bytes` of 256-byte-aligned host memory for cudaFree.
inline cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
  if (pointer == nullptr) return normlab::cuda_emu::detail::record(cudaErrorInvalidValue);
  *pointer = ::operator new(bytes, normlab::cuda_emu::detail::allocation_alignment, std::nothrow);
  return *pointer == nullptr ? normlab::cuda_emu::detail::record(cudaErrorMemoryAllocation)
                             : cudaSuccess;
}

/// The typed form of cudaMalloc, as cuda_runtime.h declares it.
template <typename T>
cudaError_t cudaMalloc(T** pointer, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}

/// Requires: `pointer` is null or came from cudaMalloc and was not freed. Ensures: released.
inline cudaError_t cudaFree(void* pointer) {
  ::operator delete(pointer, normlab::cuda_emu::detail::allocation_alignment);
  return cudaSuccess;
}

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
                                   cudaMemcpyKind kind, cudaStream_t = nullptr) {
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
inline cudaError_t cudaMemsetAsync(void* pointer, int value, std::size_t bytes,
                                   cudaStream_t = nullptr) {
  return cudaMemset(pointer, value, bytes);
}

/// Launches are synchronous: nothing to wait for.
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

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
