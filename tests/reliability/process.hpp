// Running the cifar10_norms binary from a test: a child process whose standard output and error
// go to files, waited for or killed (SIGKILL) from the test.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"

extern char** environ;

namespace normlab::testing {

struct ProcessResult {
  int exit_code = -1;  // when the process exited, else -1
  int signal = 0;      // the signal that ended it, else 0
  std::string out, err;
};

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class Process {
 public:
  /// Requires: args[0] is an executable path; `log_prefix` a writable path prefix.
  /// Ensures: the process runs with stdout in log_prefix + ".out" and stderr in log_prefix +
  /// ".err".
  Process(const std::vector<std::string>& args, const std::string& log_prefix)
      : out_path_(log_prefix + ".out"), err_path_(log_prefix + ".err") {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    NORMLAB_CHECK(rc == 0, "cannot start ", args[0], " (error ", rc, ")");
  }
  ~Process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// Ensures: true while the process has not ended (it is reaped when it has).
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == 0) return true;
    record(status);
    return false;
  }
  void kill(int signal) {
    if (pid_ > 0) ::kill(pid_, signal);
  }
  /// Ensures: the process has ended; its exit code or signal and its output.
  ProcessResult wait() {
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      record(status);
    }
    result_.out = read_text_file(out_path_);
    result_.err = read_text_file(err_path_);
    return result_;
  }

 private:
  void record(int status) {
    if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result_.signal = WTERMSIG(status);
    pid_ = -1;
  }

  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  ProcessResult result_;
};

/// Ensures: `args` run to completion; their result.
inline ProcessResult run_process(const std::vector<std::string>& args,
                                 const std::string& log_prefix) {
  return Process(args, log_prefix).wait();
}

}  // namespace normlab::testing
