// Training recipes. "original" is the published comparison's: SGD lr 0.01, momentum 0.9,
// StepLR(step 8, gamma 0.1), NLL loss. "tuned" is ours, within the same constraints (same model,
// <= 20 epochs): Nesterov momentum, weight decay, a one-epoch linear warm-up to a higher peak
// learning rate then cosine decay, per norm (docs/cifar10_norms.md records how they were chosen).
#pragma once

#include <cstdio>
#include <string>

#include "normlab/models/cifar_resnet.hpp"
#include "normlab/optim/step_lr.hpp"
#include "normlab/optim/warmup_cosine.hpp"

namespace cifar10_norms {

struct Recipe {
  std::string name;
  double lr = 0.01;  // peak learning rate
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  double label_smoothing = 0.0;
  bool cosine = false;  // false: StepLR(step_size, gamma) per epoch; true: warm-up + cosine per iteration
  int64_t step_size = 8;
  double gamma = 0.1;
  int64_t warmup_epochs = 1;

  /// Ensures: the learning rate of iteration `iteration` (0-based) of epoch `epoch` (0-based).
  double lr_at(int64_t epoch, int64_t iteration, int64_t iterations_per_epoch, int64_t epochs) const {
    if (!cosine) return normlab::optim::StepLR(lr, step_size, gamma).lr_at(epoch);
    const int64_t warmup = std::min(warmup_epochs, epochs - 1) * iterations_per_epoch;
    return normlab::optim::WarmupCosineLR(lr, warmup, epochs * iterations_per_epoch)
        .lr_at(epoch * iterations_per_epoch + iteration);
  }

  std::string describe() const {
    char text[320];
    if (cosine)
      std::snprintf(text, sizeof text,
                    "SGD lr %g (1-epoch linear warm-up from %g, cosine decay to 0 per iteration), momentum %g%s, "
                    "weight decay %g, label smoothing %g",
                    lr, lr / 10, momentum, nesterov ? " (Nesterov)" : "", weight_decay, label_smoothing);
    else
      std::snprintf(text, sizeof text, "SGD lr %g, momentum %g%s, weight decay %g, StepLR(step %lld, gamma %g)%s", lr,
                    momentum, nesterov ? " (Nesterov)" : "", weight_decay, static_cast<long long>(step_size), gamma,
                    label_smoothing > 0 ? ", label smoothing" : "");
    return text;
  }
};

/// Flags that replace one setting of a recipe; a negative value keeps the recipe's.
struct RecipeOverrides {
  double lr = -1;
  double weight_decay = -1;
  double label_smoothing = -1;
};

/// Requires: name is "original" or "tuned". Ensures: the recipe for `norm`, with every
/// non-negative field of `overrides` replacing the recipe's setting.
inline Recipe make_recipe(const std::string& name, normlab::models::NormKind norm, const RecipeOverrides& overrides) {
  Recipe r;
  r.name = name;
  if (name == "tuned") {
    r.cosine = true;
    r.nesterov = true;
    r.weight_decay = 5e-4;
    r.lr = norm == normlab::models::NormKind::Batch ? 0.1 : 0.05;
  }
  if (overrides.lr >= 0) r.lr = overrides.lr;
  if (overrides.weight_decay >= 0) r.weight_decay = overrides.weight_decay;
  if (overrides.label_smoothing >= 0) r.label_smoothing = overrides.label_smoothing;
  return r;
}

}  // namespace cifar10_norms
