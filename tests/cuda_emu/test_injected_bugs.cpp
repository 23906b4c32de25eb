// Kernels with injected bugs: the emulator must expose each one, either by throwing an Error
// whose message names the kernel, the launch site and the offending source line, or by giving a
// visibly wrong answer under at least one schedule.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "cuda_emu/catch_schedules.hpp"
#include "emu_test_kernels.cuh"

namespace et = normlab::emu_test;
namespace emu = normlab::cuda_emu;
using Catch::Matchers::Contains;

namespace {

const std::vector<emu::Schedule> all_schedules = {
    {emu::Schedule::Order::forward, 0},
    {emu::Schedule::Order::reverse, 0},
    {emu::Schedule::Order::random, 1},
    {emu::Schedule::Order::random, 2},
};

// Ensures: the message of the Error that `launch` throws ("" if it throws none).
template <typename Launch>
std::string error_of(Launch launch) {
  try {
    launch();
  } catch (const emu::Error& e) {
    return e.what();
  }
  return "";
}

// Ensures: the text of line `line` of `file`, or "" if there is none.
std::string source_line(const std::string& file, int line) {
  std::ifstream in(file);
  std::string text;
  for (int i = 0; i < line && std::getline(in, text); ++i) {
  }
  return in ? text : "";
}

struct SourceSite {
  std::string file;
  int line;
};

// Ensures: the file:line sites in `message` that point into emu_test_kernels.cuh, in order.
std::vector<SourceSite> kernel_file_sites(const std::string& message) {
  const std::string name = "emu_test_kernels.cuh:";
  std::vector<SourceSite> sites;
  for (std::size_t at = message.find(name); at != std::string::npos;
       at = message.find(name, at + 1)) {
    const std::size_t start = message.rfind(' ', at) + 1;  // 0 if there is no space before
    sites.push_back({message.substr(start, at + name.size() - 1 - start),
                     std::atoi(message.c_str() + at + name.size())});
  }
  return sites;
}

// Checks that `message` names `kernel`, its launch site (a line holding NORMLAB_CUDA_LAUNCH)
// and, after the launch, a site in emu_test_kernels.cuh whose line holds `call`.
void check_names_sites(const std::string& message, const std::string& kernel,
                       const std::string& call) {
  INFO("message: " << message);
  CHECK_THAT(message, Contains("kernel '" + kernel));
  const std::vector<SourceSite> sites = kernel_file_sites(message);
  REQUIRE(sites.size() >= 2);
  CHECK_THAT(source_line(sites[0].file, sites[0].line), Contains("NORMLAB_CUDA_LAUNCH"));
  CHECK_THAT(source_line(sites[1].file, sites[1].line), Contains(call));
}

}  // namespace

TEST_CASE("missing __syncthreads in a shared-memory reduction gives a wrong sum",
          "[cuda_emu][injected_bug]") {
  const int n = 512;
  const std::vector<float> x(n, 1.0f);
  int wrong = 0;
  for (const emu::Schedule& schedule : all_schedules) {
    const emu::ScopedSchedule scoped(schedule);
    std::vector<float> sums(2);
    et::launch_block_sum_missing_loop_sync<256>(x.data(), sums.data(), n);
    const bool right = sums[0] == 256.0f && sums[1] == 256.0f;
    UNSCOPED_INFO(schedule << ": sums " << sums[0] << ", " << sums[1]);
    wrong += right ? 0 : 1;
  }
  CHECK(wrong >= 1);
}

TEST_CASE("missing __syncthreads between a shared write and a neighbour's read",
          "[cuda_emu][injected_bug]") {
  const int tiles = 2;
  std::vector<float> x(64 * tiles);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  int wrong = 0;
  for (const emu::Schedule& schedule : all_schedules) {
    const emu::ScopedSchedule scoped(schedule);
    std::vector<float> y(x.size());
    et::launch_rotate_tiles_missing_sync(x.data(), y.data(), tiles);
    int mismatches = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      mismatches += y[i] == x[i - i % 64 + (i + 1) % 64] ? 0 : 1;
    }
    UNSCOPED_INFO(schedule << ": " << mismatches << " wrong elements");
    wrong += mismatches > 0 ? 1 : 0;
  }
  CHECK(wrong >= 1);
}

TEST_CASE("__syncthreads in a divergent branch is an error", "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<float> out(64);
  const std::string message = error_of([&] { et::launch_barrier_in_divergent_branch(out.data()); });
  CHECK_THAT(message, Contains("divergent __syncthreads()"));
  CHECK_THAT(message, Contains("has already exited"));
  check_names_sites(message, "barrier_in_divergent_branch", "__syncthreads()");
}

TEST_CASE("threads waiting at two different __syncthreads is an error",
          "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<float> out(64);
  const std::string message = error_of([&] { et::launch_barriers_in_both_branches(out.data()); });
  CHECK_THAT(message, Contains("divergent __syncthreads()"));
  CHECK_THAT(message, Contains("waits at the one at"));
  check_names_sites(message, "barriers_in_both_branches", "__syncthreads()");
}

TEST_CASE("a shuffle whose mask misses the calling lane is an error", "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<float> out(32, 1.0f);
  const std::string message = error_of([&] { et::launch_shuffle_mask_misses_caller(out.data()); });
  CHECK_THAT(message, Contains("is not in its mask 0xffff0000"));
  check_names_sites(message, "shuffle_mask_misses_caller", "__shfl_down_sync");
}

TEST_CASE("lanes of one mask at different collectives is an error", "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<float> out(32, 1.0f);
  const std::string message =
      error_of([&] { et::launch_halves_call_different_collectives(out.data()); });
  CHECK_THAT(message, Contains("mismatched warp collectives"));
  CHECK_THAT(message, Contains("__shfl_xor_sync(mask 0xffffffff)"));
  CHECK_THAT(message, Contains("__ballot_sync(mask 0xffffffff)"));
  check_names_sites(message, "halves_call_different_collectives", "_sync(full_mask");
}

TEST_CASE("a warp collective waiting for a lane stuck at __syncthreads is a deadlock",
          "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<float> out(64);
  const std::string message = error_of([&] { et::launch_syncwarp_against_barrier(out.data()); });
  CHECK_THAT(message, Contains("deadlock"));
  CHECK_THAT(message, Contains("__syncwarp(mask 0xffffffff)"));
  check_names_sites(message, "syncwarp_against_barrier", "__syncwarp()");
}

TEST_CASE("reading never-written static shared memory gives a visibly wrong result",
          "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  for (int launch = 0; launch < 2; ++launch) {  // also after a launch that filled the slots
    float sum = 0.0f;
    et::launch_sum_unwritten_static_shared(&sum);
    CHECK(std::isnan(sum));
  }
}

TEST_CASE("reading never-written dynamic shared memory gives a visibly wrong result",
          "[cuda_emu][injected_bug]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  float sum = 0.0f;
  et::launch_sum_unwritten_dynamic_shared(&sum);
  CHECK(std::isnan(sum));
  double sum_d = 0.0;
  et::launch_sum_unwritten_dynamic_shared(&sum_d);
  CHECK(std::isnan(sum_d));
}

TEST_CASE("the emulator stays usable after a kernel error", "[cuda_emu][injected_bug]") {
  std::vector<float> out(64);
  CHECK_THROWS_AS(et::launch_barrier_in_divergent_branch(out.data()), emu::Error);
  const std::vector<float> x(256, 2.0f);
  std::vector<float> sums(1);
  et::launch_block_sum_shared<256>(x.data(), sums.data(), 256);
  CHECK(sums[0] == 512.0f);
}
