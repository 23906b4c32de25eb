// The benchmarks' plain-C++ helpers, free of normlab and OpenMP so that the nvcc-compiled
// bench_norms_cuda shares them with the CPU benchmarks: a median/min/max summary of timed
// samples and "--name value" command-line options.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace normlab::bench {

struct Timing {
  double median, min, max;  // seconds
};

/// Requires: at least one sample (seconds). Ensures: their median (the mean of the two middle
/// ones for an even count), min and max.
inline Timing summarize(std::vector<double> seconds) {
  std::sort(seconds.begin(), seconds.end());
  const size_t n = seconds.size();
  const double median = n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
  return {median, seconds.front(), seconds.back()};
}

/// Parses "--name value" style integer options; returns `fallback` when absent.
inline long option_int(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::stol(argv[i + 1]);
  return fallback;
}
inline bool option_flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return true;
  return false;
}

}  // namespace normlab::bench
