// The residual CNN of the CIFAR-10 normalisation comparison (docs/cifar10_norms.md; the layer
// table is in the project's seed-model note): 40,394 parameters for every norm kind, 11.14 M
// multiply-adds per 3x32x32 image. "norm" is BatchNorm2d, GroupNorm(groups) or the comparison's
// LayerNorm (= GroupNorm(1)); every norm is followed by ReLU and dropout.
#pragma once

#include <memory>
#include <string>

#include "normlab/nn/container.hpp"
#include "normlab/nn/layers.hpp"
#include "normlab/nn/norm.hpp"

namespace normlab::models {

enum class NormKind { Batch, Group, Layer };

/// Requires: "bn", "gn" or "ln".
inline NormKind parse_norm_kind(const std::string& name) {
  if (name == "bn") return NormKind::Batch;
  if (name == "gn") return NormKind::Group;
  if (name == "ln") return NormKind::Layer;
  throw Error("unknown norm '" + name + "' (expected bn, gn or ln)");
}
inline std::string norm_kind_name(NormKind kind) {
  return kind == NormKind::Batch ? "bn" : kind == NormKind::Group ? "gn" : "ln";
}

struct CifarResNetOptions {
  NormKind norm = NormKind::Group;
  int64_t groups = 4;     // GroupNorm only; must divide 16 and 32
  double dropout = 0.02;
  bool fuse_epilogues = true;  // fold each ReLU and dropout into the norm before them (same numbers, fewer passes)
};

namespace detail {

template <typename T>
class CifarResNetBuilder {
 public:
  CifarResNetBuilder(const CifarResNetOptions& options, Rng& init_rng, Rng& dropout_rng)
      : options_(options), init_rng_(init_rng), dropout_rng_(dropout_rng) {}

  std::shared_ptr<nn::Sequential<T>> build() {
    auto net = std::make_shared<nn::Sequential<T>>();
    net->add(conv(3, 16, 3));
    norm_relu_dropout(*net, 16);
    net->add(conv(16, 32, 3));
    norm_relu_dropout(*net, 32);
    net->add(conv(32, 16, 1));
    net->template emplace<nn::MaxPool2d<T>>(2);
    net->add(residual_block(), "block1");
    norm_relu_dropout(*net, 32);
    net->add(conv(32, 16, 1));
    net->template emplace<nn::MaxPool2d<T>>(2);
    net->add(residual_block(), "block2");
    norm_relu_dropout(*net, 32);
    net->template emplace<nn::AdaptiveAvgPool2d<T>>();
    net->add(conv(32, 10, 1));
    net->template emplace<nn::Flatten<T>>();
    net->template emplace<nn::LogSoftmax<T>>();
    return net;
  }

 private:
  std::shared_ptr<nn::Conv2d<T>> conv(int64_t in, int64_t out, int64_t kernel) {
    return std::make_shared<nn::Conv2d<T>>(in, out, kernel, nn::Conv2dOptions{1, kernel / 2, true}, init_rng_);
  }

  void norm_relu_dropout(nn::Sequential<T>& seq, int64_t channels) {
    nn::NormOptions norm_options;
    norm_options.fuse_relu = options_.fuse_epilogues;
    if (options_.fuse_epilogues) {
      norm_options.dropout = options_.dropout;
      norm_options.dropout_rng = &dropout_rng_;
    }
    switch (options_.norm) {
      case NormKind::Batch: seq.template emplace<nn::BatchNorm2d<T>>(channels, norm_options); break;
      case NormKind::Group: seq.template emplace<nn::GroupNorm<T>>(options_.groups, channels, norm_options); break;
      case NormKind::Layer: seq.template emplace<nn::LayerNorm<T>>(channels, norm_options); break;
    }
    if (options_.fuse_epilogues) return;
    seq.template emplace<nn::ReLU<T>>();
    seq.template emplace<nn::Dropout<T>>(options_.dropout, dropout_rng_);
  }

  // conv 16->16 3x3, norm, ReLU, dropout, conv 16->32 3x3, norm, ReLU, dropout, conv 32->32 3x3,
  // plus a 1x1 conv 16->32 shortcut.
  std::shared_ptr<nn::Residual<T>> residual_block() {
    auto body = std::make_shared<nn::Sequential<T>>();
    body->add(conv(16, 16, 3));
    norm_relu_dropout(*body, 16);
    body->add(conv(16, 32, 3));
    norm_relu_dropout(*body, 32);
    body->add(conv(32, 32, 3));
    auto shortcut = conv(16, 32, 1);
    return std::make_shared<nn::Residual<T>>(body, shortcut);
  }

  CifarResNetOptions options_;
  Rng& init_rng_;
  Rng& dropout_rng_;
};

}  // namespace detail

/// Requires: options.groups divides 16 and 32 when options.norm is Group; 0 <= dropout < 1.
/// Ensures: the comparison's model, parameters drawn from `init_rng` in construction order (as
/// PyTorch draws them), dropout masks from `dropout_rng` (both must outlive the model).
/// Input [N, 3, 32, 32] -> log-probabilities [N, 10].
template <typename T>
std::shared_ptr<nn::Sequential<T>> cifar_resnet(const CifarResNetOptions& options = {},
                                                Rng& init_rng = default_rng(),
                                                Rng& dropout_rng = default_rng()) {
  NORMLAB_CHECK(options.norm != NormKind::Group || (options.groups > 0 && 16 % options.groups == 0),
                "cifar_resnet: GroupNorm groups must divide 16 and 32, got ", options.groups);
  return detail::CifarResNetBuilder<T>(options, init_rng, dropout_rng).build();
}

}  // namespace normlab::models
