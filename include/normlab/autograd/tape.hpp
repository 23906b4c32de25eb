// The autograd tape. Every differentiable op whose inputs require a gradient (while gradient
// recording is enabled) appends one node: a closure that holds what the op's backward needs and,
// given the gradient of the op's output, adds the gradients of its inputs. Because nodes are
// recorded in execution order the tape is already topologically sorted; backward(loss) seeds
// d loss / d loss = 1 and runs the nodes in reverse, then clears the tape, releasing the saved
// activations. Parameters are leaves: they persist across steps and only their grad() changes.
//
// The tape is per thread (thread_local), like PyTorch's grad mode.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "normlab/common/gradient_out.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab::autograd {

class Tape {
 public:
  struct Node {
    const char* op;
    std::function<void()> backward;
  };

  void record(const char* op, std::function<void()> backward) {
    nodes_.push_back(Node{op, std::move(backward)});
  }
  size_t size() const { return nodes_.size(); }
  /// Ensures: the tape is empty and holds no activations.
  void clear() { nodes_.clear(); }
  /// Runs every node in reverse order of recording, then clears the tape (even on error).
  void run_backward() {
    struct ClearOnExit {
      Tape& tape;
      ~ClearOnExit() { tape.clear(); }
    } clear_on_exit{*this};
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) it->backward();
  }

 private:
  std::vector<Node> nodes_;
};

inline Tape& tape() {
  thread_local Tape instance;
  return instance;
}

namespace detail {
inline bool& grad_mode() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

inline bool grad_enabled() { return detail::grad_mode(); }

/// While alive, ops record nothing (evaluation, optimizer updates). Restores the previous mode.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(detail::grad_mode()) { detail::grad_mode() = false; }
  ~NoGradGuard() { detail::grad_mode() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

/// True when an op with these inputs must record a node (and its output requires a gradient).
template <typename T, typename... Rest>
bool needs_grad(const Tensor<T>& first, const Rest&... rest) {
  if (!grad_enabled()) return false;
  return (first.requires_grad() || ... || rest.requires_grad());
}

/// Where a backward writes the gradient of `t`: `accumulate` is false the first time (write the
/// gradient, no need to zero the buffer first) and true once t already has one (add to it).
template <typename T>
struct GradientSink {
  T* data;
  bool accumulate;
};

/// Requires: t.requires_grad(). Ensures: t.has_grad(), with a buffer to write or add into.
template <typename T>
GradientSink<T> gradient_sink(const Tensor<T>& t) {
  if (t.has_grad()) return {t.grad().data(), true};
  t.set_grad(Tensor<T>::empty(t.shape(), t.device()));
  return {t.grad().data(), false};
}

/// Ensures: where a backward kernel puts t's gradient: nowhere unless t requires one, else
/// gradient_sink(t) as a GradientOut (kernels/normlab/common/gradient_out.hpp).
template <typename T>
GradientOut<T> gradient_out(const Tensor<T>& t) {
  if (!t.requires_grad()) return {};
  const GradientSink<T> sink = gradient_sink(t);
  return {sink.data, sink.accumulate};
}

/// Records the backward of an op with output `out`: `backward(grad_out)` runs only if `out`
/// received a gradient. Ensures: out.requires_grad().
template <typename T, typename Backward>
void record(const char* op, Tensor<T>& out, Backward backward) {
  out.set_requires_grad(true);
  tape().record(op, [out, backward = std::move(backward)]() {
    if (out.has_grad()) backward(out.grad());
  });
}

/// Requires: `loss` has one element and requires a gradient. Ensures: every tensor on the path
/// from a leaf that requires a gradient to `loss` has accumulated d loss / d tensor in grad();
/// the tape is empty.
template <typename T>
void backward(const Tensor<T>& loss) {
  NORMLAB_CHECK(loss.numel() == 1, "backward: the loss must have one element, got shape ",
                loss.shape().str());
  NORMLAB_CHECK(loss.requires_grad(),
                "backward: the loss does not require a gradient (was it computed under NoGradGuard, "
                "or from tensors that do not require gradients?)");
  loss.set_grad(Tensor<T>::ones(loss.shape(), loss.device()));
  NoGradGuard no_grad;
  tape().run_backward();
}

}  // namespace normlab::autograd
