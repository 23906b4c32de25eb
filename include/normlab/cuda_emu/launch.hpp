// Kernel launches and dynamic shared memory for the emulator: what NORMLAB_CUDA_LAUNCH and
// NORMLAB_DYNAMIC_SHARED expand to when the header is compiled by a host compiler.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "normlab/cuda_emu/runtime_api.hpp"
#include "normlab/cuda_emu/scheduler.hpp"

namespace normlab::cuda_emu {

/// A configured launch of a kernel taking Params...; calling it runs the kernel.
template <typename... Params>
class KernelLaunch {
 public:
  KernelLaunch(void (*kernel)(Params...), const detail::LaunchInfo& info)
      : kernel_(kernel), info_(info) {}

  /// Runs the kernel over the whole grid with `args` (converted to the kernel's parameter types
  /// as in a call) and returns when every block has finished. Throws Error on an invalid
  /// configuration or a misuse detected while running (see Runtime::launch).
  void operator()(Params... args) const {
    const auto call = [this, &args...] { kernel_(args...); };  // each thread gets copies
    const detail::KernelBody body{
        [](const void* context) { (*static_cast<const decltype(call)*>(context))(); }, &call};
    detail::Runtime::instance().launch(info_, body);
  }

 private:
  void (*kernel_)(Params...);
  detail::LaunchInfo info_;
};

/// What NORMLAB_CUDA_LAUNCH expands to: ensures a launch of `kernel` (called `name` in errors,
/// launched at `site`) that runs when called with the kernel's arguments. The stream is
/// ignored: launches are synchronous.
template <typename... Params>
KernelLaunch<Params...> launch(void (*kernel)(Params...), const char* name, CallSite site,
                               dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
                               cudaStream_t) {
  return KernelLaunch<Params...>(
      kernel, detail::LaunchInfo{name, site, reinterpret_cast<const void*>(kernel), grid, block,
                                 dynamic_shared_bytes});
}

/// Records the name of every kernel launched while alive, as written in its launch (e.g.
/// "k::conv2d_forward_kernel<T>"): how a test shows that work ran on the CUDA kernels. One at a
/// time.
class ScopedLaunchLog {
 public:
  ScopedLaunchLog() { detail::Runtime::instance().set_launch_log(&names_); }
  ~ScopedLaunchLog() { detail::Runtime::instance().set_launch_log(nullptr); }
  ScopedLaunchLog(const ScopedLaunchLog&) = delete;
  ScopedLaunchLog& operator=(const ScopedLaunchLog&) = delete;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
};

/// What NORMLAB_DYNAMIC_SHARED expands to: ensures the running launch's dynamic shared memory,
/// as many bytes as the launch asked for, 16-byte aligned, filled with 0xFF at each block start.
/// Requires: called from a kernel.
inline unsigned char* dynamic_shared_memory(CallSite site = CallSite::here()) {
  return detail::Runtime::instance().dynamic_shared(site);
}

}  // namespace normlab::cuda_emu
