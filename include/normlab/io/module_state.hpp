// Saving and restoring training state through a Checkpoint: a module's parameters and buffers
// (BatchNorm's running statistics), an SGD optimizer's momentum buffers and hyper-parameters, and
// Rng states. Every load validates before it modifies anything: a missing entry, an entry the
// model does not have, a shape or precision mismatch or a malformed value is a normlab::Error
// naming the entry, and the objects are left as they were.
#pragma once

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "normlab/core/rng.hpp"
#include "normlab/io/checkpoint.hpp"
#include "normlab/nn/module.hpp"
#include "normlab/optim/sgd.hpp"

namespace normlab::io {

/// Ensures: every parameter and buffer of `module` is stored under prefix + its dotted path.
template <typename T>
void save_module_state(Checkpoint& ckpt, const nn::Module<T>& module,
                       const std::string& prefix = "model.") {
  for (const auto& [name, t] : module.named_parameters()) ckpt.put_tensor(prefix + name, t);
  for (const auto& [name, t] : module.named_buffers()) ckpt.put_tensor(prefix + name, t);
}

/// Requires: `ckpt` holds every parameter and buffer of `module` with matching shapes, and no
/// other entry under `prefix` (a checkpoint of another architecture is rejected even when the
/// shapes it shares happen to match).
/// Ensures: they are copied into the module; on any mismatch an Error naming the entry (and the
/// shapes) is thrown before anything is modified.
template <typename T>
void load_module_state(const Checkpoint& ckpt, nn::Module<T>& module,
                       const std::string& prefix = "model.") {
  auto named = module.named_parameters();
  for (auto& buffer : module.named_buffers()) named.push_back(buffer);
  std::set<std::string> expected;
  std::vector<Tensor<T>> loaded;
  for (const auto& [name, t] : named) {
    expected.insert(prefix + name);
    loaded.push_back(ckpt.tensor<T>(prefix + name, &t.shape()));
  }
  for (const std::string& name : ckpt.names())
    NORMLAB_CHECK(
        name.compare(0, prefix.size(), prefix) != 0 || expected.count(name) != 0,
        "checkpoint entry '", name,
        "' is not a parameter or buffer of the model (a checkpoint of another architecture?)");
  for (size_t i = 0; i < named.size(); ++i) named[i].second.copy_(loaded[i]);
}

namespace detail {
inline std::string exact(double v) {
  char text[40];
  std::snprintf(text, sizeof text, "%a", v);  // hexadecimal: round-trips every bit
  return text;
}
inline std::string sgd_hyperparameters(const optim::SgdOptions& o) {
  return "momentum " + exact(o.momentum) + " dampening " + exact(o.dampening) + " weight_decay " +
         exact(o.weight_decay) + " nesterov " + (o.nesterov ? "1" : "0");
}
}  // namespace detail

/// Requires: sgd.params() are module.parameters(), in order.
/// Ensures: the momentum buffers that exist are stored under prefix + "momentum." + the name of
/// their parameter, which ones exist under prefix + "momentum_defined" (a 0/1 string), and the
/// hyper-parameters other than the learning rate (which a schedule sets) under prefix + "sgd".
template <typename T>
void save_sgd_state(Checkpoint& ckpt, const optim::Sgd<T>& sgd, const nn::Module<T>& module,
                    const std::string& prefix = "optim.") {
  const auto named = module.named_parameters();
  NORMLAB_CHECK(named.size() == sgd.params().size(), "save_sgd_state: the optimizer has ",
                sgd.params().size(), " parameters, the module ", named.size());
  std::string defined;
  for (size_t i = 0; i < named.size(); ++i) {
    NORMLAB_CHECK(sgd.params()[i].same(named[i].second), "save_sgd_state: optimizer parameter ", i,
                  " is not the module's '", named[i].first, "'");
    const Tensor<T>& buffer = sgd.momentum_buffers()[i];
    defined += buffer.defined() ? '1' : '0';
    if (buffer.defined()) ckpt.put_tensor(prefix + "momentum." + named[i].first, buffer);
  }
  ckpt.put_text(prefix + "momentum_defined", defined);
  ckpt.put_text(prefix + "sgd", detail::sgd_hyperparameters(sgd.options()));
}

/// Requires: as save_sgd_state, with a checkpoint written by it for the same model and the same
/// hyper-parameters (momentum, dampening, weight decay, Nesterov).
/// Ensures: the optimizer continues from the stored momentum buffers (copies), or an Error naming
/// the problem is thrown and the optimizer is unchanged.
template <typename T>
void load_sgd_state(const Checkpoint& ckpt, optim::Sgd<T>& sgd, const nn::Module<T>& module,
                    const std::string& prefix = "optim.") {
  const auto named = module.named_parameters();
  NORMLAB_CHECK(named.size() == sgd.params().size(), "load_sgd_state: the optimizer has ",
                sgd.params().size(), " parameters, the module ", named.size());
  const std::string stored = ckpt.text(prefix + "sgd"),
                    current = detail::sgd_hyperparameters(sgd.options());
  NORMLAB_CHECK(stored == current, "checkpoint optimizer hyper-parameters '", stored,
                "' differ from the run's '", current, "'");
  const std::string defined = ckpt.text(prefix + "momentum_defined");
  NORMLAB_CHECK(
      defined.size() == named.size() && defined.find_first_not_of("01") == std::string::npos,
      "checkpoint entry '", prefix, "momentum_defined' is '", defined, "', expected ", named.size(),
      " characters 0/1");
  std::vector<Tensor<T>> buffers(named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    NORMLAB_CHECK(sgd.params()[i].same(named[i].second), "load_sgd_state: optimizer parameter ", i,
                  " is not the module's '", named[i].first, "'");
    if (defined[i] == '1')
      buffers[i] = ckpt.tensor<T>(prefix + "momentum." + named[i].first, &named[i].second.shape())
                       .to(named[i].second.device());
  }
  sgd.set_momentum_buffers(std::move(buffers));
}

/// Ensures: `rng`'s whole state (seed, counter, position in the block) is stored as text.
inline void save_rng_state(Checkpoint& ckpt, const std::string& name, const Rng& rng) {
  const Rng::State s = rng.state();
  ckpt.put_text(name, std::to_string(s.seed) + " " + std::to_string(s.counter) + " " +
                          std::to_string(s.used));
}

/// Requires: `name` was written by save_rng_state. Ensures: the stored state, or an Error.
inline Rng::State load_rng_state(const Checkpoint& ckpt, const std::string& name) {
  const std::string text = ckpt.text(name);
  unsigned long long seed = 0, counter = 0;
  unsigned used = 0;
  int consumed = 0;
  const bool ok =
      std::sscanf(text.c_str(), "%llu %llu %u%n", &seed, &counter, &used, &consumed) == 3 &&
      static_cast<size_t>(consumed) == text.size() && used <= 4;
  NORMLAB_CHECK(ok, "checkpoint entry '", name, "' is not an Rng state: '", text, "'");
  return Rng::State{seed, counter, used};
}

}  // namespace normlab::io
