// Source locations and the one exception type of the CUDA emulator.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

namespace normlab::cuda_emu {

/// A file:line in the kernel or launcher source.
struct CallSite {
  const char* file = "";
  int line = 0;

  /// Ensures: the location of the call to here(); used as a default argument, the location of
  /// the call whose argument it defaults (GCC and Clang evaluate __builtin_FILE/LINE there).
  static constexpr CallSite here(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return {file, line};
  }
};

/// Ensures: true when both name the same file and line.
inline bool operator==(const CallSite& a, const CallSite& b) {
  return a.line == b.line && std::strcmp(a.file, b.file) == 0;
}
/// Ensures: !(a == b).
inline bool operator!=(const CallSite& a, const CallSite& b) { return !(a == b); }

/// Ensures: "file:line".
inline std::string to_string(const CallSite& site) {
  return std::string(site.file) + ":" + std::to_string(site.line);
}

/// Thrown for every misuse the emulator detects: launch limits, divergent barriers, mismatched
/// warp collectives, deadlocks, bad schedules. The message names the kernel, the launch site,
/// the block and thread, and the source line of the offending call.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace normlab::cuda_emu
