// Catch2 glue for emulated kernel tests.
#pragma once

#include <catch2/catch.hpp>

#include "normlab/cuda_emu/cuda_emu.hpp"

// Runs the rest of the enclosing TEST_CASE once per schedule of schedules_to_test() (forward,
// reverse and random:1, or only the one in NORMLAB_EMU_SCHEDULE), with that schedule set and
// named in the report of any failure. Use it once, at the top of the test case.
#define NORMLAB_EMU_EACH_SCHEDULE()                                                            \
  const ::normlab::cuda_emu::Schedule normlab_emu_schedule =                                   \
      GENERATE(::Catch::Generators::from_range(::normlab::cuda_emu::schedules_to_test()));     \
  const ::normlab::cuda_emu::ScopedSchedule normlab_emu_scoped_schedule(normlab_emu_schedule); \
  INFO("emulator schedule: " << normlab_emu_schedule)
