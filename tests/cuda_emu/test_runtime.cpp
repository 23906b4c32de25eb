// The emulator's launch checks, schedules and runtime API shims.
#include <cstdlib>
#include <numeric>
#include <vector>

#include "cuda_emu/catch_schedules.hpp"
#include "emu_test_kernels.cuh"

namespace et = normlab::emu_test;
namespace emu = normlab::cuda_emu;
using Catch::Matchers::Contains;

namespace {

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

// Launches a kernel from inside a kernel (no dynamic parallelism in the emulator, and none in
// nvcc without relocatable device code: this kernel is emulator-only).
__global__ void launches_from_a_kernel(int* next_ticket, int* tickets) {
  NORMLAB_CUDA_LAUNCH(1, 1, 0, nullptr, et::take_tickets)(next_ticket, tickets);
}

}  // namespace

TEST_CASE("launch limits: threads per block, block and grid dimensions, zero sizes",
          "[cuda_emu][launch_limits]") {
  int ticket = 0;
  std::vector<int> tickets(2048);
  const auto launch = [&](dim3 grid, dim3 block) {
    return error_of([&] {
      NORMLAB_CUDA_LAUNCH(grid, block, 0, nullptr, et::take_tickets)(&ticket, tickets.data());
    });
  };
  const int launch_line = __LINE__ - 3;
  const std::string site = std::string(__FILE__) + ":" + std::to_string(launch_line);

  const std::string too_many = launch(1, 1025);
  CHECK_THAT(too_many, Contains("kernel 'et::take_tickets' launched at " + site));
  CHECK_THAT(too_many, Contains("block dimension x = 1025 exceeds the limit 1024"));
  CHECK_THAT(launch(1, dim3(32, 33)),
             Contains("a block of 1056 threads exceeds the limit of 1024"));
  CHECK_THAT(launch(1, dim3(1, 2, 65)), Contains("block dimension z = 65 exceeds the limit 64"));
  CHECK_THAT(launch(dim3(1, 65536), 1),
             Contains("grid dimension y = 65536 exceeds the limit 65535"));
  CHECK_THAT(launch(dim3(1, 1, 65536), 1), Contains("grid dimension z = 65536"));
  CHECK_THAT(launch(0, 32), Contains("zero-sized launch"));
  CHECK_THAT(launch(2, dim3(32, 0)), Contains("zero-sized launch"));
  CHECK(ticket == 0);  // none of them ran
  CHECK(launch(dim3(1, 2), dim3(2, 2, 64)).empty());
  CHECK(ticket == 512);
}

TEST_CASE("dynamic shared memory above 48 KiB needs cudaFuncSetAttribute",
          "[cuda_emu][launch_limits]") {
  float sum = 0.0f;
  const int floats_48k = 48 * 1024 / 4;
  et::launch_fill_dynamic_shared(&sum, floats_48k);
  CHECK(sum == float(floats_48k));

  const std::string message = error_of([&] { et::launch_fill_dynamic_shared(&sum, 16 * 1024); });
  CHECK_THAT(message, Contains("kernel 'fill_dynamic_shared'"));
  CHECK_THAT(message, Contains("65536 bytes of dynamic shared memory exceed the kernel's limit "
                               "of 49152"));
  CHECK_THAT(message, Contains("cudaFuncSetAttribute"));

  CHECK(cudaFuncSetAttribute(et::fill_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             164 * 1024) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  REQUIRE(cudaFuncSetAttribute(et::fill_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               64 * 1024) == cudaSuccess);
  et::launch_fill_dynamic_shared(&sum, 16 * 1024);
  CHECK(sum == float(16 * 1024));
  CHECK_THROWS_WITH(et::launch_fill_dynamic_shared(&sum, 16 * 1024 + 1),
                    Contains("exceed the kernel's limit of 65536"));
}

TEST_CASE("device functions outside a kernel and launches inside one are errors",
          "[cuda_emu][launch_limits]") {
  CHECK_THROWS_WITH(__syncthreads(), Contains("__syncthreads at") && Contains("outside a kernel"));
  CHECK_THROWS_WITH(__shfl_sync(0xFFFFFFFFu, 1.0f, 0), Contains("outside a kernel"));
  CHECK_THROWS_WITH(emu::dynamic_shared_memory(), Contains("outside a kernel"));
  int ticket = 0;
  std::vector<int> tickets(1);
  const std::string message = error_of([&] {
    NORMLAB_CUDA_LAUNCH(1, 1, 0, nullptr, launches_from_a_kernel)(&ticket, tickets.data());
  });
  CHECK_THAT(message, Contains("kernel 'et::take_tickets'"));
  CHECK_THAT(message, Contains("launched from inside kernel 'launches_from_a_kernel'"));
}

TEST_CASE("schedules order blocks and threads forward, in reverse or at random",
          "[cuda_emu][schedule]") {
  const int blocks = 3, threads = 40, total = blocks * threads;
  const auto tickets_under = [&](const emu::Schedule& schedule) {
    const emu::ScopedSchedule scoped(schedule);
    int next = 0;
    std::vector<int> tickets(total, -1);
    et::launch_take_tickets(&next, tickets.data(), blocks, threads);
    return tickets;
  };
  std::vector<int> forward(total);
  std::iota(forward.begin(), forward.end(), 0);
  const std::vector<int> reverse(forward.rbegin(), forward.rend());
  CHECK(tickets_under(emu::parse_schedule("forward")) == forward);
  CHECK(tickets_under(emu::parse_schedule("reverse")) == reverse);
  const std::vector<int> random1 = tickets_under(emu::parse_schedule("random:1"));
  CHECK(std::is_permutation(random1.begin(), random1.end(), forward.begin()));
  CHECK(random1 != forward);
  CHECK(random1 != reverse);
  CHECK(tickets_under(emu::parse_schedule("random:1")) == random1);
  CHECK(tickets_under(emu::parse_schedule("random:2")) != random1);
}

TEST_CASE("schedule names parse and print, and NORMLAB_EMU_SCHEDULE pins the test schedules",
          "[cuda_emu][schedule]") {
  for (const char* name : {"forward", "reverse", "random:0", "random:12345"}) {
    CHECK(emu::to_string(emu::parse_schedule(name)) == name);
  }
  for (const char* bad : {"", "Forward", "random", "random:", "random:x1", "backwards"}) {
    CHECK_THROWS_WITH(emu::parse_schedule(bad), Contains("is not one of forward, reverse"));
  }
  const char* saved = std::getenv("NORMLAB_EMU_SCHEDULE");
  const std::string saved_value = saved ? saved : "";
  setenv("NORMLAB_EMU_SCHEDULE", "random:77", 1);
  CHECK(emu::schedules_to_test() == std::vector<emu::Schedule>{emu::parse_schedule("random:77")});
  CHECK(emu::current_schedule() == emu::parse_schedule("random:77"));
  {
    const emu::ScopedSchedule scoped(emu::parse_schedule("reverse"));
    CHECK(emu::current_schedule() == emu::parse_schedule("reverse"));
  }
  CHECK(emu::current_schedule() == emu::parse_schedule("random:77"));
  setenv("NORMLAB_EMU_SCHEDULE", "sideways", 1);
  CHECK_THROWS_WITH(emu::current_schedule(), Contains("'sideways'"));
  unsetenv("NORMLAB_EMU_SCHEDULE");
  CHECK(emu::schedules_to_test().size() == 3);
  CHECK(emu::current_schedule() == emu::parse_schedule("forward"));
  if (saved) setenv("NORMLAB_EMU_SCHEDULE", saved_value.c_str(), 1);
}

TEST_CASE("runtime API shims: allocation, copies, memset, errors", "[cuda_emu][runtime_api]") {
  float* device = nullptr;
  REQUIRE(cudaMalloc(&device, 10 * sizeof(float)) == cudaSuccess);
  CHECK(reinterpret_cast<std::uintptr_t>(device) % 256 == 0);
  const std::vector<float> host = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  CHECK(cudaMemcpy(device, host.data(), 10 * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemsetAsync(device + 5, 0, 5 * sizeof(float), nullptr) == cudaSuccess);
  std::vector<float> back(10, -1.0f);
  CHECK(cudaMemcpyAsync(back.data(), device, 10 * sizeof(float), cudaMemcpyDeviceToHost, nullptr) ==
        cudaSuccess);
  CHECK(cudaStreamSynchronize(nullptr) == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(back == std::vector<float>{1, 2, 3, 4, 5, 0, 0, 0, 0, 0});
  CHECK(cudaMemset(device, 0, 0) == cudaSuccess);
  CHECK(cudaFree(device) == cudaSuccess);
  CHECK(cudaFree(nullptr) == cudaSuccess);

  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaMemcpy(nullptr, host.data(), 4, cudaMemcpyDefault) == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(std::string(cudaGetErrorString(cudaSuccess)) == "no error");
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)) == "invalid argument");
  CHECK(std::string(cudaGetErrorString(cudaErrorMemoryAllocation)) == "out of memory");
}
