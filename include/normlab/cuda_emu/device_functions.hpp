// What kernel bodies call: __syncthreads, the warp collectives, atomics and the maths that CUDA
// spells differently from the C++ standard library. All are host functions in the global
// namespace, with CUDA's names and overloads. The trailing CallSite parameter of the
// synchronising ones is filled in by its default argument with the caller's file and line.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "normlab/cuda_emu/scheduler.hpp"

namespace normlab::cuda_emu::detail {

/// One lane's shuffle of `var`. Requires: T is 4 or 8 bytes.
template <typename T>
T shuffle(WarpOp op, unsigned mask, T var, int operand, int width, CallSite site) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "CUDA shuffles 4- and 8-byte values");
  WarpCall call;
  call.op = op;
  call.mask = mask;
  call.width = width;
  call.value_bytes = sizeof(T);
  std::memcpy(&call.value, &var, sizeof(T));
  call.operand = operand;
  const std::uint64_t bits = Runtime::instance().warp_collective(call, site);
  T result;
  std::memcpy(&result, &bits, sizeof(T));
  return result;
}

/// One lane's vote (ballot, any, all) or __syncwarp; ensures: the collective's result.
inline std::uint64_t vote(WarpOp op, unsigned mask, int predicate, CallSite site) {
  WarpCall call;
  call.op = op;
  call.mask = mask;
  call.value = predicate != 0;
  return Runtime::instance().warp_collective(call, site);
}

// Atomics. A fiber never switches inside one of these calls, so each is atomic with respect to
// every other emulated thread. Each returns the old value.
template <typename T>
T atomic_add(T* address, T value) {
  const T old = *address;
  if constexpr (std::is_integral_v<T>) {  // wraps around, as on the GPU
    using Bits = std::make_unsigned_t<T>;
    *address = static_cast<T>(static_cast<Bits>(old) + static_cast<Bits>(value));
  } else {
    *address = old + value;
  }
  return old;
}
template <typename T>
T atomic_max(T* address, T value) {
  const T old = *address;
  if (old < value) *address = value;
  return old;
}
template <typename T>
T atomic_min(T* address, T value) {
  const T old = *address;
  if (value < old) *address = value;
  return old;
}
template <typename T>
T atomic_cas(T* address, T compare, T value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}
template <typename T>
T atomic_exch(T* address, T value) {
  const T old = *address;
  *address = value;
  return old;
}

}  // namespace normlab::cuda_emu::detail

/// Waits until every thread of the block has reached this same __syncthreads(). The launch
/// throws normlab::cuda_emu::Error if a thread has exited or waits at another __syncthreads().
inline void __syncthreads(normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {
  normlab::cuda_emu::detail::Runtime::instance().syncthreads(site);
}

// Warp collectives, after PTX shfl.sync / vote.sync / bar.warp.sync. Requires: the calling lane
// is in `mask` (else Error); every non-exited lane named in `mask` calls the same collective
// with the same mask (and width) - else the launch throws Error naming both call sites. A
// shuffle whose source lane does not take part returns all ones (NaN for float and double).
//   __shfl_sync       var of lane srcLane within the lane's segment of `width` lanes
//   __shfl_up_sync    var of lane - delta, or the lane's own if that is below its segment
//   __shfl_down_sync  var of lane + delta, or the lane's own if that is above its segment
//   __shfl_xor_sync   var of lane ^ laneMask, or the lane's own if that is above its segment
#define NORMLAB_EMU_SHUFFLES(T)                                                                   \
  inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize,                   \
                       normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {  \
    return normlab::cuda_emu::detail::shuffle(normlab::cuda_emu::detail::WarpOp::shfl_idx, mask,  \
                                              var, srcLane, width, site);                         \
  }                                                                                               \
  inline T __shfl_up_sync(                                                                        \
      unsigned mask, T var, unsigned delta, int width = warpSize,                                 \
      normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {                   \
    return normlab::cuda_emu::detail::shuffle(normlab::cuda_emu::detail::WarpOp::shfl_up, mask,   \
                                              var, static_cast<int>(delta), width, site);         \
  }                                                                                               \
  inline T __shfl_down_sync(                                                                      \
      unsigned mask, T var, unsigned delta, int width = warpSize,                                 \
      normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {                   \
    return normlab::cuda_emu::detail::shuffle(normlab::cuda_emu::detail::WarpOp::shfl_down, mask, \
                                              var, static_cast<int>(delta), width, site);         \
  }                                                                                               \
  inline T __shfl_xor_sync(                                                                       \
      unsigned mask, T var, int laneMask, int width = warpSize,                                   \
      normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {                   \
    return normlab::cuda_emu::detail::shuffle(normlab::cuda_emu::detail::WarpOp::shfl_xor, mask,  \
                                              var, laneMask, width, site);                        \
  }
NORMLAB_EMU_SHUFFLES(int)
NORMLAB_EMU_SHUFFLES(unsigned int)
NORMLAB_EMU_SHUFFLES(long)
NORMLAB_EMU_SHUFFLES(unsigned long)
NORMLAB_EMU_SHUFFLES(long long)
NORMLAB_EMU_SHUFFLES(unsigned long long)
NORMLAB_EMU_SHUFFLES(float)
NORMLAB_EMU_SHUFFLES(double)
#undef NORMLAB_EMU_SHUFFLES

/// Ensures: bit i set for each taking-part lane i of `mask` whose predicate is non-zero.
inline unsigned __ballot_sync(
    unsigned mask, int predicate,
    normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {
  using normlab::cuda_emu::detail::WarpOp;
  return static_cast<unsigned>(
      normlab::cuda_emu::detail::vote(WarpOp::ballot, mask, predicate, site));
}

/// Ensures: non-zero if the predicate is non-zero for some taking-part lane of `mask`.
inline int __any_sync(unsigned mask, int predicate,
                      normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {
  using normlab::cuda_emu::detail::WarpOp;
  return static_cast<int>(normlab::cuda_emu::detail::vote(WarpOp::any, mask, predicate, site));
}

/// Ensures: non-zero if the predicate is non-zero for every taking-part lane of `mask`.
inline int __all_sync(unsigned mask, int predicate,
                      normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {
  using normlab::cuda_emu::detail::WarpOp;
  return static_cast<int>(normlab::cuda_emu::detail::vote(WarpOp::all, mask, predicate, site));
}

/// Waits until every non-exited lane named in `mask` has reached a __syncwarp(mask).
inline void __syncwarp(unsigned mask = 0xFFFFFFFFu,
                       normlab::cuda_emu::CallSite site = normlab::cuda_emu::CallSite::here()) {
  using normlab::cuda_emu::detail::WarpOp;
  normlab::cuda_emu::detail::vote(WarpOp::syncwarp, mask, 1, site);
}

// A block's threads are fibers on one OS thread and blocks run one after another, so every
// write is visible to every later read: fences have nothing to do (and bugs that need them are
// invisible here; see docs/cuda.md).
inline void __threadfence() {}
inline void __threadfence_block() {}

// Atomics: CUDA's non-template overloads (so arguments convert as they do there); each returns
// the old value.
inline int atomicAdd(int* address, int value) {
  return normlab::cuda_emu::detail::atomic_add(address, value);
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  return normlab::cuda_emu::detail::atomic_add(address, value);
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return normlab::cuda_emu::detail::atomic_add(address, value);
}
inline float atomicAdd(float* address, float value) {
  return normlab::cuda_emu::detail::atomic_add(address, value);
}
inline double atomicAdd(double* address, double value) {
  return normlab::cuda_emu::detail::atomic_add(address, value);
}
inline int atomicMax(int* address, int value) {
  return normlab::cuda_emu::detail::atomic_max(address, value);
}
inline unsigned atomicMax(unsigned* address, unsigned value) {
  return normlab::cuda_emu::detail::atomic_max(address, value);
}
inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value) {
  return normlab::cuda_emu::detail::atomic_max(address, value);
}
inline int atomicMin(int* address, int value) {
  return normlab::cuda_emu::detail::atomic_min(address, value);
}
inline unsigned atomicMin(unsigned* address, unsigned value) {
  return normlab::cuda_emu::detail::atomic_min(address, value);
}
inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  return normlab::cuda_emu::detail::atomic_min(address, value);
}
inline int atomicCAS(int* address, int compare, int value) {
  return normlab::cuda_emu::detail::atomic_cas(address, compare, value);
}
inline unsigned atomicCAS(unsigned* address, unsigned compare, unsigned value) {
  return normlab::cuda_emu::detail::atomic_cas(address, compare, value);
}
inline unsigned long long atomicCAS(unsigned long long* address, unsigned long long compare,
                                    unsigned long long value) {
  return normlab::cuda_emu::detail::atomic_cas(address, compare, value);
}
inline int atomicExch(int* address, int value) {
  return normlab::cuda_emu::detail::atomic_exch(address, value);
}
inline unsigned atomicExch(unsigned* address, unsigned value) {
  return normlab::cuda_emu::detail::atomic_exch(address, value);
}
inline unsigned long long atomicExch(unsigned long long* address, unsigned long long value) {
  return normlab::cuda_emu::detail::atomic_exch(address, value);
}
inline float atomicExch(float* address, float value) {
  return normlab::cuda_emu::detail::atomic_exch(address, value);
}

// Maths with CUDA-only spellings (fmaxf, sqrtf, expf, ... come from <math.h>). The fast
// intrinsics are exact here: GPU approximation errors are not reproduced.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fdividef(float x, float y) { return x / y; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }

/// Ensures: *address (CUDA loads it through the read-only data cache).
template <typename T>
T __ldg(const T* address) {
  return *address;
}

// CUDA's global min/max overloads for device code.
inline int min(int a, int b) { return b < a ? b : a; }
inline unsigned min(unsigned a, unsigned b) { return b < a ? b : a; }
inline long long min(long long a, long long b) { return b < a ? b : a; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return b < a ? b : a; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a < b ? b : a; }
inline unsigned max(unsigned a, unsigned b) { return a < b ? b : a; }
inline long long max(long long a, long long b) { return a < b ? b : a; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a < b ? b : a; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
