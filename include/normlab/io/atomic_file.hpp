// Atomic file writes: the bytes go to a temporary file in the destination's directory, which is
// flushed to disk (fsync) and then renamed over the destination (rename is atomic on POSIX file
// systems); then the directory is flushed too, so that the rename itself survives a crash or
// power loss. A reader sees the old file or the new one, never half of one; on a failure before
// the rename the temporary file is removed and the destination is left as it was.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "normlab/core/error.hpp"

namespace normlab::io {

/// Requires: the directory of `path` exists and is writable.
/// Ensures: `path` holds exactly the `size` bytes at `data`, durably, or a normlab::Error names
/// `what`, the path and the system's reason; then no file was created or changed, except when
/// only the final directory flush failed (the message says so: the new file is in place but a
/// crash could still undo the rename).
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

  const size_t slash = path.find_last_of('/');
  const std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (fd >= 0) ::close(fd);
  if (!synced)
    throw Error(detail::concat(what, ": wrote ", path, " but could not flush its directory ",
                               directory, " (", std::strerror(sync_errno),
                               "): a crash could undo the write"));
}

inline void write_file_atomic(const std::string& path, const std::string& text, const char* what) {
  write_file_atomic(path, text.data(), text.size(), what);
}

}  // namespace normlab::io
