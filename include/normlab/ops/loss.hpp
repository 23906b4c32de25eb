// Differentiable classification losses: log_softmax, nll_loss (mean) and the fused cross_entropy
// (log_softmax + nll_loss in one kernel each way, optional label smoothing). Class scores are
// [N, K], or [N, K, 1, 1] as a 1x1 convolution head produces them. Losses are tensors of shape
// [1], so autograd::backward(loss) applies. Kernels: the backend of the scores' device
// (ops/backend.hpp): kernels/normlab/cpu/loss.hpp or cuda/loss.cuh. Targets are host vectors,
// checked on the host and copied to the scores' device.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "normlab/autograd/tape.hpp"
#include "normlab/core/storage.hpp"
#include "normlab/ops/checks.hpp"
#include "normlab/ops/cpu_backend.hpp"

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
/// on `device`, for the kernels and the backward.
inline std::shared_ptr<Storage<int32_t>> checked_targets(const char* op, const Shape& scores,
                                                         const ClassScores& c,
                                                         const std::vector<int32_t>& targets,
                                                         Device device) {
  NORMLAB_CHECK(static_cast<int64_t>(targets.size()) == c.rows, op, ": ", targets.size(),
                " targets for input of shape ", scores.str(), " (expected ", c.rows, ")");
  for (size_t n = 0; n < targets.size(); ++n) {
    NORMLAB_CHECK(targets[n] >= 0 && targets[n] < c.classes, op, ": target at index ", n, " is ",
                  targets[n], ", outside [0, ", c.classes, ") for input of shape ", scores.str());
  }
  auto saved = std::make_shared<Storage<int32_t>>(targets.size(), device);
  copy_bytes(saved->data(), device, targets.data(), Device::cpu(), targets.size() * sizeof(int32_t));
  return saved;
}

}  // namespace detail

/// Requires: logits is [N, K] or [N, K, 1, 1]. Ensures: y is [N, K], y[n] = log_softmax(logits[n])
/// over the classes, computed with a max shift (no overflow for any finite logits); backward
/// adds dy - softmax * sum(dy) per row.
template <typename T>
Tensor<T> log_softmax(const Tensor<T>& logits) {
  const detail::ClassScores c = detail::class_scores("log_softmax", "logits", logits);
  Backend<T>& kernels = detail::backend_for<T>("log_softmax", logits.device());
  Tensor<T> y = Tensor<T>::empty({c.rows, c.classes}, logits.device());
  kernels.log_softmax_forward(logits.data(), y.data(), c.rows, c.classes);
  if (autograd::needs_grad(logits)) {
    autograd::record("log_softmax", y, [&kernels, logits, y = y.detach(), c](const Tensor<T>& dy) {
      kernels.log_softmax_backward(y.data(), dy.data(), autograd::gradient_out(logits), c.rows, c.classes);
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
  const Device device = log_probs.device();
  Backend<T>& kernels = detail::backend_for<T>("nll_loss", device);
  auto saved_targets = detail::checked_targets("nll_loss", log_probs.shape(), c, targets, device);
  Tensor<T> loss = Tensor<T>::empty({1}, device), row_loss = Tensor<T>::empty({c.rows}, device);
  kernels.nll_loss_forward(log_probs.data(), saved_targets->data(), row_loss.data(), loss.data(),
                           c.rows, c.classes);
  if (autograd::needs_grad(log_probs)) {
    autograd::record("nll_loss", loss, [&kernels, log_probs, saved_targets, c](const Tensor<T>& dloss) {
      kernels.nll_loss_backward(saved_targets->data(), dloss.data(), autograd::gradient_out(log_probs),
                                c.rows, c.classes);
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
  Backend<T>& kernels = detail::backend_for<T>("cross_entropy", logits.device());
  NORMLAB_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0,
                "cross_entropy: label_smoothing must be in [0, 1), got ", label_smoothing);
  auto saved_targets =
      detail::checked_targets("cross_entropy", logits.shape(), c, targets, logits.device());
  // Rows 0 and 1: each row's max and log-sum (saved for backward); row 2: each row's loss.
  Tensor<T> row_stats = Tensor<T>::empty({3, c.rows}, logits.device());
  T* max = row_stats.data();
  T* log_sum = max + c.rows;
  Tensor<T> loss = Tensor<T>::empty({1}, logits.device());
  kernels.cross_entropy_forward(logits.data(), saved_targets->data(), label_smoothing, max, log_sum,
                                log_sum + c.rows, loss.data(), c.rows, c.classes);
  if (autograd::needs_grad(logits)) {
    autograd::record(
        "cross_entropy", loss,
        [&kernels, logits, saved_targets, row_stats, label_smoothing, c](const Tensor<T>& dloss) {
          const T* max = row_stats.data();
          kernels.cross_entropy_backward(logits.data(), saved_targets->data(), label_smoothing, max,
                                         max + c.rows, dloss.data(), autograd::gradient_out(logits),
                                         c.rows, c.classes);
        });
  }
  return loss;
}

}  // namespace normlab::ops
