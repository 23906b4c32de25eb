// Saving and restoring a module's state (parameters and buffers) through a Checkpoint.
#pragma once

#include <string>

#include "normlab/io/checkpoint.hpp"
#include "normlab/nn/module.hpp"

namespace normlab::io {

/// Ensures: every parameter and buffer of `module` is stored under prefix + its dotted path.
template <typename T>
void save_module_state(Checkpoint& ckpt, const nn::Module<T>& module, const std::string& prefix = "model.") {
  for (const auto& [name, t] : module.named_parameters()) ckpt.put_tensor(prefix + name, t);
  for (const auto& [name, t] : module.named_buffers()) ckpt.put_tensor(prefix + name, t);
}

/// Requires: `ckpt` holds every parameter and buffer of `module` with matching shapes.
/// Ensures: they are copied into the module; on a missing entry or a shape mismatch an Error is
/// thrown before anything is modified.
template <typename T>
void load_module_state(const Checkpoint& ckpt, nn::Module<T>& module, const std::string& prefix = "model.") {
  auto named = module.named_parameters();
  for (auto& buffer : module.named_buffers()) named.push_back(buffer);
  std::vector<Tensor<T>> loaded;
  for (const auto& [name, t] : named) loaded.push_back(ckpt.tensor<T>(prefix + name, &t.shape()));
  for (size_t i = 0; i < named.size(); ++i) named[i].second.copy_(loaded[i]);
}

}  // namespace normlab::io
