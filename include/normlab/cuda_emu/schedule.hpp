// The order in which the emulator runs the blocks of a grid and the threads of a block.
//
// A launch runs its blocks one after another and, inside a block, each thread (a fiber) runs
// until it reaches __syncthreads(), a warp collective or its end. The schedule decides which
// block goes first and which waiting thread runs next:
//   forward      block 0, 1, 2, ...; in each round thread 0, 1, 2, ...
//   reverse      the last block first; in each round the last thread first
//   random:SEED  a seeded permutation of the blocks, and a fresh one of the threads every round
// A kernel that is missing a __syncthreads() reads another thread's value before or after it
// was written depending on the order, so it gives a wrong answer under at least one schedule.
//
// Choosing one: set_schedule()/ScopedSchedule in a program or test; otherwise the environment
// variable NORMLAB_EMU_SCHEDULE=forward|reverse|random:SEED; otherwise forward.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "normlab/cuda_emu/error.hpp"

namespace normlab::cuda_emu {

/// A deterministic block and thread order; `seed` matters for Order::random only.
struct Schedule {
  enum class Order { forward, reverse, random };
  Order order = Order::forward;
  std::uint64_t seed = 0;
};

/// Ensures: true when both give the same order (the seed counts for random only).
inline bool operator==(const Schedule& a, const Schedule& b) {
  return a.order == b.order && (a.order != Schedule::Order::random || a.seed == b.seed);
}

/// Ensures: "forward", "reverse" or "random:SEED", the form parse_schedule() reads.
inline std::string to_string(const Schedule& schedule) {
  switch (schedule.order) {
    case Schedule::Order::forward:
      return "forward";
    case Schedule::Order::reverse:
      return "reverse";
    case Schedule::Order::random:
      break;
  }
  return "random:" + std::to_string(schedule.seed);
}

/// Writes to_string(schedule) (Catch2 prints schedules with it).
inline std::ostream& operator<<(std::ostream& out, const Schedule& schedule) {
  return out << to_string(schedule);
}

/// Requires: `text` is "forward", "reverse" or "random:SEED" with SEED a decimal integer.
/// Ensures: the schedule it names. Throws Error otherwise.
inline Schedule parse_schedule(const std::string& text) {
  if (text == "forward") return {Schedule::Order::forward, 0};
  if (text == "reverse") return {Schedule::Order::reverse, 0};
  const std::string prefix = "random:";
  if (text.compare(0, prefix.size(), prefix) == 0 && text.size() > prefix.size() &&
      text.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
    return {Schedule::Order::random, std::stoull(text.substr(prefix.size()))};
  }
  throw Error("normlab cuda_emu: schedule '" + text +
              "' is not one of forward, reverse, random:SEED");
}

namespace detail {
/// The schedule named by NORMLAB_EMU_SCHEDULE, if the variable is set. Throws Error if invalid.
inline std::optional<Schedule> environment_schedule() {
  const char* text = std::getenv("NORMLAB_EMU_SCHEDULE");
  if (text == nullptr || *text == '\0') return std::nullopt;
  return parse_schedule(text);
}

inline std::optional<Schedule> chosen_schedule;
}  // namespace detail

/// Ensures: the schedule the next launch uses: the one set by set_schedule(), else the one in
/// NORMLAB_EMU_SCHEDULE, else forward. Throws Error if the variable holds no valid schedule.
inline Schedule current_schedule() {
  if (detail::chosen_schedule) return *detail::chosen_schedule;
  return detail::environment_schedule().value_or(Schedule{});
}

/// Ensures: later launches use `schedule`, whatever NORMLAB_EMU_SCHEDULE says.
inline void set_schedule(const Schedule& schedule) { detail::chosen_schedule = schedule; }

/// Sets a schedule for the lifetime of the object, then restores the previous choice.
class ScopedSchedule {
 public:
  explicit ScopedSchedule(const Schedule& schedule) : previous_(detail::chosen_schedule) {
    set_schedule(schedule);
  }
  ~ScopedSchedule() { detail::chosen_schedule = previous_; }
  ScopedSchedule(const ScopedSchedule&) = delete;
  ScopedSchedule& operator=(const ScopedSchedule&) = delete;

 private:
  std::optional<Schedule> previous_;
};

/// Ensures: the schedules a kernel test should run under: the one in NORMLAB_EMU_SCHEDULE if it
/// is set (to reproduce a failure or try other seeds), else forward, reverse and random:1.
inline std::vector<Schedule> schedules_to_test() {
  if (const std::optional<Schedule> pinned = detail::environment_schedule()) return {*pinned};
  return {
      {Schedule::Order::forward, 0}, {Schedule::Order::reverse, 0}, {Schedule::Order::random, 1}};
}

}  // namespace normlab::cuda_emu
