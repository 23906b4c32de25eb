// Atomic file writes: the bytes go to a temporary file in the destination's directory, which is
// flushed to disk (fsync) and then renamed over the destination (rename is atomic on POSIX file
// systems). A reader sees the old file or the new one, never half of one; on any failure the
// temporary file is removed and the destination is left as it was.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "normlab/core/error.hpp"

namespace normlab::io {

/// Requires: the directory of `path` exists and is writable.
/// Ensures: `path` holds exactly the `size` bytes at `data`, or a normlab::Error names `what`,
/// the path and the system's reason, and no file was created or changed.
inline void write_file_atomic(const std::string& path, const void* data, size_t size,
                              const char* what) {
  static std::atomic<unsigned> counter{0};
  const std::string temp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const auto fail = [&](const char* step) {
    const std::string reason = std::strerror(errno);
    std::remove(temp.c_str());
    throw Error(detail::concat(what, ": cannot write ", path, " (", step, ": ", reason, ")"));
  };
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) fail("creating a temporary file");
  const bool written = std::fwrite(data, 1, size, file) == size && std::fflush(file) == 0 &&
                       ::fsync(::fileno(file)) == 0;
  const int write_errno = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written) errno = write_errno;
  if (!written || !closed) fail("writing");
  if (std::rename(temp.c_str(), path.c_str()) != 0) fail("renaming the temporary file");
}

inline void write_file_atomic(const std::string& path, const std::string& text, const char* what) {
  write_file_atomic(path, text.data(), text.size(), what);
}

}  // namespace normlab::io
