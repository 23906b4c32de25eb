// The CUDA C++ language extensions, spelled for a host compiler: function and variable
// qualifiers, dim3/uint3, the built-in index variables and warpSize.
#pragma once

#if __has_include(<vector_types.h>)
// The CUDA toolkit is on the include path: take dim3, uint3 and the qualifier macros from it, so
// that toolkit headers which also compile on the host (cuda_fp16.h, cuda_bf16.h) can be mixed in.
#include <vector_types.h>
#else
/// Three unsigned coordinates, as CUDA's uint3 (the type of threadIdx and blockIdx).
struct uint3 {
  unsigned int x, y, z;
};

/// A launch extent, as CUDA's dim3: unspecified dimensions are 1.
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
#endif

// Execution-space qualifiers mean nothing on the host: every function is a host function.
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __forceinline__
#define __forceinline__ inline
#endif
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// Static shared memory is a function-local static: blocks run one at a time, so every thread of
// the running block sees the same variable. The section lets the scheduler poison all of it at
// block start. GCC 12 drops section attributes on statics of template instantiations (Clang
// keeps them), so there static shared memory is not poisoned; see docs/cuda.md.
#undef __shared__
#define __shared__ static __attribute__((section("normlab_emu_shared")))

namespace normlab::cuda_emu::detail {
// What the built-in variables below read; the scheduler rewrites them at every fiber switch.
inline uint3 thread_index{};
inline uint3 block_index{};
inline dim3 block_dim{};
inline dim3 grid_dim{};
}  // namespace normlab::cuda_emu::detail

// Read-only views, as in CUDA; plain globals (not thread_local): all fibers share one OS thread.
inline const uint3& threadIdx = normlab::cuda_emu::detail::thread_index;
inline const uint3& blockIdx = normlab::cuda_emu::detail::block_index;
inline const dim3& blockDim = normlab::cuda_emu::detail::block_dim;
inline const dim3& gridDim = normlab::cuda_emu::detail::grid_dim;

// CUDA's warpSize is a run-time int; here it can also be used in constant expressions, which
// nvcc rejects (the nvcc compile check catches that).
inline const int warpSize = 32;
