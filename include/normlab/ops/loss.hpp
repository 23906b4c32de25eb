// Differentiable classification losses: log_softmax, nll_loss (mean) and the fused cross_entropy
// (log_softmax + nll_loss in one kernel each way, optional label smoothing). Class scores are
// [N, K], or [N, K, 1, 1] as a 1x1 convolution head produces them. Losses are tensors of shape
// [1], so autograd::backward(loss) applies. Kernels: kernels/normlab/cpu/loss.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "normlab/autograd/tape.hpp"
#include "normlab/core/storage.hpp"
#include "normlab/cpu/loss.hpp"
#include "normlab/ops/checks.hpp"

namespace normlab::ops {

namespace detail {

struct ClassScores {
  int64_t rows, classes;
};

/// Requires: t is [N, K] or [N, K, 1, 1] with N, K >= 1.
template <typename T>
ClassScores class_scores(const char* op, const char* name, const Tensor<T>& t) {
  require_defined(op, name, t);
  const Shape& s = t.shape();
  NORMLAB_CHECK(s.rank() == 2 || (s.rank() == 4 && s[2] == 1 && s[3] == 1), op, ": '", name,
                "' must be [N, K] or [N, K, 1, 1], got shape ", s.str());
  NORMLAB_CHECK(s[0] >= 1 && s[1] >= 1, op, ": '", name,
                "' needs at least one row and one class, got shape ", s.str());
  return {s[0], s[1]};
}

/// Requires: one target per row of `scores`, each in [0, K). Ensures: a copy in cached storage
/// for the backward.
inline std::shared_ptr<Storage<int32_t>> checked_targets(const char* op, const Shape& scores,
                                                         const ClassScores& c,
                                                         const std::vector<int32_t>& targets) {
  NORMLAB_CHECK(static_cast<int64_t>(targets.size()) == c.rows, op, ": ", targets.size(),
                " targets for input of shape ", scores.str(), " (expected ", c.rows, ")");
  for (size_t n = 0; n < targets.size(); ++n) {
    NORMLAB_CHECK(targets[n] >= 0 && targets[n] < c.classes, op, ": target at index ", n, " is ",
                  targets[n], ", outside [0, ", c.classes, ") for input of shape ", scores.str());
  }
  auto saved = std::make_shared<Storage<int32_t>>(targets.size(), Device::cpu());
  std::copy(targets.begin(), targets.end(), saved->data());
  return saved;
}

}  // namespace detail

/// Requires: logits is [N, K] or [N, K, 1, 1]. Ensures: y is [N, K], y[n] = log_softmax(logits[n])
/// over the classes, computed with a max shift (no overflow for any finite logits); backward
/// adds dy - softmax * sum(dy) per row.
template <typename T>
Tensor<T> log_softmax(const Tensor<T>& logits) {
  const detail::ClassScores c = detail::class_scores("log_softmax", "logits", logits);
  detail::require_cpu("log_softmax", logits);
  Tensor<T> y = Tensor<T>::empty({c.rows, c.classes}, logits.device());
  cpu::log_softmax_forward(logits.data(), y.data(), c.rows, c.classes);
  if (autograd::needs_grad(logits)) {
    autograd::record("log_softmax", y, [logits, y = y.detach(), c](const Tensor<T>& dy) {
      if (!logits.requires_grad()) return;
      auto dx = autograd::gradient_sink(logits);
      cpu::log_softmax_backward(y.data(), dy.data(), dx.data, c.rows, c.classes, dx.accumulate);
    });
  }
  return y;
}

/// Requires: log_probs is [N, K] or [N, K, 1, 1]; targets has N entries in [0, K).
/// Ensures: a [1] tensor, -mean_n log_probs[n, targets[n]]; backward adds -dloss / N at each
/// row's target.
template <typename T>
Tensor<T> nll_loss(const Tensor<T>& log_probs, const std::vector<int32_t>& targets) {
  const detail::ClassScores c = detail::class_scores("nll_loss", "log_probs", log_probs);
  detail::require_cpu("nll_loss", log_probs);
  auto saved_targets = detail::checked_targets("nll_loss", log_probs.shape(), c, targets);
  Tensor<T> loss = Tensor<T>::empty({1}, log_probs.device());
  cpu::nll_loss_forward(log_probs.data(), saved_targets->data(), loss.data(), c.rows, c.classes);
  if (autograd::needs_grad(log_probs)) {
    autograd::record("nll_loss", loss, [log_probs, saved_targets, c](const Tensor<T>& dloss) {
      if (!log_probs.requires_grad()) return;
      auto dx = autograd::gradient_sink(log_probs);
      cpu::nll_loss_backward(saved_targets->data(), dloss.data()[0], dx.data, c.rows, c.classes,
                             dx.accumulate);
    });
  }
  return loss;
}

/// Requires: logits is [N, K] or [N, K, 1, 1]; targets has N entries in [0, K);
/// 0 <= label_smoothing < 1. Ensures: a [1] tensor equal to
/// nll_loss(log_softmax(logits), targets) when label_smoothing is 0, and in general PyTorch's
/// CrossEntropyLoss(label_smoothing): mean_n sum_k -q_k log_softmax(logits[n])_k with
/// q_k = (1 - label_smoothing) [k == targets[n]] + label_smoothing / K. Backward adds
/// (softmax - q) * dloss / N, from the row max and log-sum saved by the forward.
template <typename T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int32_t>& targets,
                        double label_smoothing = 0.0) {
  const detail::ClassScores c = detail::class_scores("cross_entropy", "logits", logits);
  detail::require_cpu("cross_entropy", logits);
  NORMLAB_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0,
                "cross_entropy: label_smoothing must be in [0, 1), got ", label_smoothing);
  auto saved_targets = detail::checked_targets("cross_entropy", logits.shape(), c, targets);
  // Rows 0 and 1: each row's max and log-sum (saved for backward); row 2: each row's loss.
  Tensor<T> row_stats = Tensor<T>::empty({3, c.rows}, logits.device());
  T* max = row_stats.data();
  T* log_sum = max + c.rows;
  Tensor<T> loss = Tensor<T>::empty({1}, logits.device());
  cpu::cross_entropy_forward(logits.data(), saved_targets->data(), label_smoothing, max, log_sum,
                             log_sum + c.rows, loss.data(), c.rows, c.classes);
  if (autograd::needs_grad(logits)) {
    autograd::record(
        "cross_entropy", loss,
        [logits, saved_targets, row_stats, label_smoothing, c](const Tensor<T>& dloss) {
          if (!logits.requires_grad()) return;
          auto dx = autograd::gradient_sink(logits);
          const T* max = row_stats.data();
          cpu::cross_entropy_backward(logits.data(), saved_targets->data(), label_smoothing, max,
                                      max + c.rows, dloss.data()[0], dx.data, c.rows, c.classes,
                                      dx.accumulate);
        });
  }
  return loss;
}

}  // namespace normlab::ops
