// Rng: a seeded Philox4x32-10 stream. Sequential draws (initialisation, shuffling, augmentation)
// read it like any generator; parallel kernels (dropout) reserve a range of counters with
// reserve() and compute element i's bits from (seed, base + i) themselves, so their results do not
// depend on the number of threads. The whole state is three integers, saved by checkpoints.
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/common/philox.hpp"
#include "normlab/core/error.hpp"

namespace normlab {

class Rng {
 public:
  struct State {
    uint64_t seed = 0;
    uint64_t counter = 0;
    uint32_t used = 4;  // values of the current block already handed out
  };

  explicit Rng(uint64_t seed = 0) { state_.seed = seed; }

  uint64_t seed() const { return state_.seed; }
  State state() const { return state_; }
  void set_state(const State& s) {
    NORMLAB_CHECK(s.used <= 4, "Rng::set_state: invalid state (used=", s.used, ")");
    state_ = s;
    if (state_.used < 4) block_ = philox4x32(state_.seed, state_.counter - 1, 0);
  }

  /// Ensures: 32 uniformly random bits.
  uint32_t next_u32() {
    if (state_.used == 4) {
      block_ = philox4x32(state_.seed, state_.counter++, 0);
      state_.used = 0;
    }
    return block_.v[state_.used++];
  }
  uint64_t next_u64() { return (static_cast<uint64_t>(next_u32()) << 32) | next_u32(); }

  /// Ensures: uniform in [0, 1) with 24 random bits.
  float uniform() { return uniform_from_bits(next_u32()); }
  /// Ensures: uniform in [0, 1) with 53 random bits.
  double uniform_double() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
  /// Ensures: a standard normal draw (Box-Muller in double).
  double normal() {
    const double u1 = 1.0 - uniform_double();  // (0, 1]
    const double u2 = uniform_double();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  /// Requires: n > 0. Ensures: uniform integer in [0, n) (rejection sampling, no modulo bias).
  uint64_t below(uint64_t n) {
    NORMLAB_CHECK(n > 0, "Rng::below: n must be positive");
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = next_u64(); while (r >= limit);
    return r % n;
  }

  /// Ensures: returns a base counter b such that counters [b, b + blocks) are used by nobody
  /// else; a kernel computes block i as philox4x32(seed(), b + i, 0).
  uint64_t reserve(uint64_t blocks) {
    const uint64_t base = state_.counter;
    state_.counter += blocks;
    state_.used = 4;
    return base;
  }

 private:
  State state_;
  Philox4 block_{};
};

}  // namespace normlab

namespace normlab {

/// The process-wide generator used where no Rng is passed explicitly (parameter initialisation,
/// dropout), like torch's default generator. manual_seed() resets it.
inline Rng& default_rng() {
  static Rng rng(0);
  return rng;
}
inline void manual_seed(uint64_t seed) { default_rng() = Rng(seed); }

}  // namespace normlab
