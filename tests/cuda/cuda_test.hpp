// Glue shared by the CUDA kernel tests, which are compiled twice: by g++ through the emulator
// (target test_cuda: every kernel runs on the CPU under each schedule) and by nvcc for a GPU
// (test_cuda_gpu, whose main skips everything when no device is present).
#pragma once

#include <catch2/catch.hpp>

#include "normlab/cuda_emu/cuda_emu.hpp"

#if defined(NORMLAB_CUDA_EMU)
#include "cuda_emu/catch_schedules.hpp"
/// Runs the rest of the test case under each emulator schedule (forward, reverse, random:1).
#define NORMLAB_CUDA_EACH_SCHEDULE() NORMLAB_EMU_EACH_SCHEDULE()
#else
/// On a GPU there is one schedule: the hardware's.
#define NORMLAB_CUDA_EACH_SCHEDULE() static_cast<void>(0)
#endif
