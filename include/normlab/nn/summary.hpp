// nn::summary(): a torchsummary-like table of a model: one row per layer call in execution order
// (type and configuration, output shape, parameters owned by that layer), then the totals. It runs
// one forward pass on zeros of the given input shape, in evaluation mode and without recording.
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

#include "normlab/autograd/tape.hpp"
#include "normlab/nn/module.hpp"

namespace normlab::nn {

namespace detail {
inline std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}
}  // namespace detail

/// Requires: `input_shape` is a valid input of `model` (the batch axis may be 1).
/// Ensures: the table as text; the model's mode is unchanged and the tape untouched.
template <typename T>
std::string summary(Module<T>& model, const Shape& input_shape) {
  detail::SummaryRecorder<T> recorder;
  const bool was_training = model.is_training();
  model.eval();
  {
    autograd::NoGradGuard no_grad;
    detail::active_summary<T>() = &recorder;
    struct Reset {
      bool training;
      Module<T>& model;
      ~Reset() {
        detail::active_summary<T>() = nullptr;
        model.train(training);
      }
    } reset{was_training, model};
    model(Tensor<T>::zeros(input_shape));
  }

  auto shape_text = [](const Shape& s) {
    std::string text = "[-1";
    for (int64_t i = 1; i < s.rank(); ++i) text += ", " + std::to_string(s[i]);
    return text + "]";
  };
  size_t type_width = 12;
  for (const auto& row : recorder.rows) type_width = std::max(type_width, row.type.size() + 6);
  const int width = static_cast<int>(type_width + 4 + 20 + 14);
  std::ostringstream out;
  const std::string rule(width, '-'), double_rule(width, '=');
  char line[512];
  out << rule << '\n';
  std::snprintf(line, sizeof line, "%-*s    %-20s%14s\n", static_cast<int>(type_width), "Layer (type)",
                "Output Shape", "Param #");
  out << line << double_rule << '\n';
  int64_t index = 0, activations = 0;
  for (const auto& row : recorder.rows) {
    const std::string name = row.type + "-" + std::to_string(++index);
    std::snprintf(line, sizeof line, "%-*s    %-20s%14s\n", static_cast<int>(type_width), name.c_str(),
                  shape_text(row.output).c_str(), detail::with_thousands(row.params).c_str());
    out << line;
    activations += row.output.numel() / std::max<int64_t>(row.output[0], 1);
  }
  int64_t trainable = 0, frozen = 0;
  for (const auto& p : model.parameters()) (p.requires_grad() ? trainable : frozen) += p.numel();
  out << double_rule << '\n';
  out << "Total params: " << detail::with_thousands(trainable + frozen) << '\n';
  out << "Trainable params: " << detail::with_thousands(trainable) << '\n';
  out << "Non-trainable params: " << detail::with_thousands(frozen) << '\n';
  out << rule << '\n';
  std::snprintf(line, sizeof line, "Input size (MB): %.2f\nForward pass size per sample (MB): %.2f\n",
                input_shape.numel() / std::max<int64_t>(input_shape[0], 1) * sizeof(T) / 1048576.0,
                activations * sizeof(T) / 1048576.0);
  out << line << rule << '\n';
  return out.str();
}

}  // namespace normlab::nn
