// StepLR: torch.optim.lr_scheduler.StepLR. The learning rate starts at base_lr (epoch 0) and is
// multiplied by gamma at every epoch that is a multiple of step_size. As in PyTorch the product
// is formed step by step (lr *= gamma), so the values are PyTorch's to the last bit: with
// base_lr 0.01 and gamma 0.1, epochs 16.. get (0.01 * 0.1) * 0.1 == 0.0001, where the closed
// form 0.01 * 0.1^2 would give 1.0000000000000002e-4.
//
// Typical use, one scheduler step per epoch:
//   optim::Sgd<float> sgd(net->parameters(), {0.01, 0.9});
//   optim::StepLR schedule(sgd, /*step_size=*/8, /*gamma=*/0.1);
//   for (int64_t epoch = 0; epoch < 20; ++epoch) { train_one_epoch(sgd); schedule.step(); }
#pragma once

#include <cstdint>
#include <functional>

#include "normlab/core/error.hpp"
#include "normlab/optim/sgd.hpp"

namespace normlab::optim {

class StepLR {
 public:
  /// A schedule on its own. Requires: base_lr >= 0, step_size >= 1, gamma > 0.
  /// Ensures: last_epoch() == 0 and lr() == base_lr.
  StepLR(double base_lr, int64_t step_size, double gamma)
      : base_lr_(base_lr), step_size_(step_size), gamma_(gamma), lr_(base_lr) {
    NORMLAB_CHECK(base_lr >= 0.0, "StepLR: invalid base learning rate ", base_lr);
    NORMLAB_CHECK(step_size >= 1, "StepLR: step_size must be at least 1, got ", step_size);
    NORMLAB_CHECK(gamma > 0.0, "StepLR: gamma must be positive, got ", gamma);
  }

  /// A schedule driving `optimizer`, starting from its current learning rate (PyTorch's
  /// initial_lr); step() and set_last_epoch() set the optimizer's learning rate.
  /// Requires: as above; `optimizer` outlives this scheduler.
  template <typename T>
  StepLR(Sgd<T>& optimizer, int64_t step_size, double gamma)
      : StepLR(optimizer.lr(), step_size, gamma) {
    apply_ = [&optimizer](double lr) { optimizer.set_lr(lr); };
  }

  /// Requires: epoch >= 0. Ensures: the learning rate in effect after `epoch` calls of step():
  /// base_lr multiplied by gamma once per multiple of step_size in [1, epoch], in that order.
  double lr_at(int64_t epoch) const {
    NORMLAB_CHECK(epoch >= 0, "StepLR::lr_at: epoch must be non-negative, got ", epoch);
    double lr = base_lr_;
    for (int64_t e = step_size_; e <= epoch; e += step_size_) lr *= gamma_;
    return lr;
  }

  /// Ensures: last_epoch() is one more; lr() == lr_at(last_epoch()) (applied to the optimizer).
  void step() {
    ++last_epoch_;
    if (last_epoch_ % step_size_ == 0) lr_ *= gamma_;
    apply();
  }

  /// Resumes a schedule (e.g. from a checkpoint). Requires: epoch >= 0.
  /// Ensures: last_epoch() == epoch and lr() == lr_at(epoch) (applied to the optimizer).
  void set_last_epoch(int64_t epoch) {
    lr_ = lr_at(epoch);
    last_epoch_ = epoch;
    apply();
  }

  /// The number of step() calls so far (PyTorch's last_epoch).
  int64_t last_epoch() const { return last_epoch_; }
  /// The current learning rate (PyTorch's get_last_lr()[0]).
  double lr() const { return lr_; }

 private:
  void apply() const {
    if (apply_) apply_(lr_);
  }

  double base_lr_;
  int64_t step_size_;
  double gamma_;
  int64_t last_epoch_ = 0;
  double lr_;
  std::function<void(double)> apply_;
};

}  // namespace normlab::optim
