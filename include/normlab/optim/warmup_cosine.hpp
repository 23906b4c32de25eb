// WarmupCosineLR: a per-iteration learning-rate schedule: linear warm-up from
// peak_lr * warmup_start_factor to peak_lr over `warmup_steps`, then cosine decay to
// peak_lr * final_factor at `total_steps` (as torch's LinearLR followed by CosineAnnealingLR).
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/core/error.hpp"

namespace normlab::optim {

class WarmupCosineLR {
 public:
  /// Requires: peak_lr >= 0, 0 <= warmup_steps < total_steps, factors in [0, 1].
  WarmupCosineLR(double peak_lr, int64_t warmup_steps, int64_t total_steps, double warmup_start_factor = 0.1,
                 double final_factor = 0.0)
      : peak_(peak_lr), warmup_(warmup_steps), total_(total_steps), start_(warmup_start_factor), final_(final_factor) {
    NORMLAB_CHECK(peak_lr >= 0 && warmup_steps >= 0 && warmup_steps < total_steps,
                  "WarmupCosineLR: need peak_lr >= 0 and 0 <= warmup_steps (", warmup_steps, ") < total_steps (",
                  total_steps, ")");
    NORMLAB_CHECK(start_ >= 0 && start_ <= 1 && final_ >= 0 && final_ <= 1,
                  "WarmupCosineLR: factors must be in [0, 1], got ", start_, " and ", final_);
  }

  /// Requires: step >= 0. Ensures: the learning rate for iteration `step` (0-based); steps past
  /// the end keep the final rate.
  double lr_at(int64_t step) const {
    NORMLAB_CHECK(step >= 0, "WarmupCosineLR::lr_at: step must be non-negative, got ", step);
    if (step < warmup_) return peak_ * (start_ + (1.0 - start_) * static_cast<double>(step) / warmup_);
    const double progress = std::min(1.0, static_cast<double>(step - warmup_) / (total_ - warmup_));
    return peak_ * (final_ + (1.0 - final_) * 0.5 * (1.0 + std::cos(3.141592653589793 * progress)));
  }

 private:
  double peak_;
  int64_t warmup_, total_;
  double start_, final_;
};

}  // namespace normlab::optim
