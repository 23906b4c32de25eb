// main() of test_cuda_backend_gpu: with no usable GPU it says why and exits with 77, which CTest
// reports as a skip (SKIP_RETURN_CODE), never as a pass; otherwise it runs the Catch2 session.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "normlab/ops/backend.hpp"

int main(int argc, char** argv) {
  const std::string reason = normlab::ops::device_unavailable_reason(normlab::DeviceType::CUDA);
  if (!reason.empty()) {
    std::printf(
        "test_cuda_backend_gpu: SKIPPED, no CUDA device (%s); the same tests ran with the "
        "emulated backend (test_cuda_backend)\n",
        reason.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
