// Normalisation layers: BatchNorm2d, GroupNorm and the comparison's LayerNorm (normalisation over
// (C, H, W) per sample with a per-channel affine, i.e. exactly GroupNorm with one group; note
// that torch.nn.LayerNorm([C, H, W]) would instead have a per-element affine of C*H*W values).
// Each can fuse the ReLU that follows it, and a dropout after that, into its output pass
// (fuse_relu, dropout), which saves a full read and write of the activation per fused layer in
// both directions.
#pragma once

#include <string>

#include "normlab/nn/module.hpp"
#include "normlab/ops/norm.hpp"

namespace normlab::nn {

struct NormOptions {
  double eps = 1e-5;
  bool affine = true;           // learnable per-channel gamma (init 1) and beta (init 0)
  bool fuse_relu = false;       // output relu(norm(x))
  double dropout = 0;           // in training, output dropout(relu(norm(x)), p); needs fuse_relu
  Rng* dropout_rng = nullptr;   // the dropout's generator (default_rng() when null)
};

namespace detail {
inline std::string norm_suffix(const NormOptions& o) {
  std::string p = std::to_string(o.dropout);
  p.erase(p.find_last_not_of('0') + 1);
  if (p.back() == '.') p.pop_back();
  return std::string(o.affine ? "" : ", affine=false") + ")" + (o.fuse_relu ? " + ReLU" : "") +
         (o.dropout > 0 ? " + Dropout(p=" + p + ")" : "");
}
}  // namespace detail

/// Shared by the three norms: the per-channel affine parameters.
template <typename T>
class ChannelNorm : public Module<T> {
 public:
  int64_t channels() const { return channels_; }
  const NormOptions& options() const { return options_; }
  const Tensor<T>& weight() const { return gamma_; }
  const Tensor<T>& bias() const { return beta_; }

 protected:
  ChannelNorm(const char* type, int64_t channels, NormOptions options) : channels_(channels), options_(options) {
    NORMLAB_CHECK(channels > 0, type, ": number of channels must be positive, got ", channels);
    NORMLAB_CHECK(options.eps > 0, type, ": eps must be positive, got ", options.eps);
    NORMLAB_CHECK(options.dropout >= 0 && options.dropout < 1, type,
                  ": dropout probability must be in [0, 1), got ", options.dropout);
    NORMLAB_CHECK(options.dropout == 0 || options.fuse_relu, type,
                  ": a fused dropout needs fuse_relu (its backward reads the mask from y > 0)");
    if (options.affine) {
      gamma_ = this->register_parameter("weight", Tensor<T>::ones({channels}));
      beta_ = this->register_parameter("bias", Tensor<T>::zeros({channels}));
    }
  }
  /// The fused dropout of this forward: options' p in training, none in evaluation.
  ops::FusedDropout fused_dropout() const {
    return {this->is_training() ? options_.dropout : 0.0, options_.dropout_rng};
  }
  int64_t channels_;
  NormOptions options_;
  Tensor<T> gamma_, beta_;
};

/// Batch statistics over (N, H, W) in training, running statistics (momentum 0.1, unbiased
/// variance) in evaluation, as torch.nn.BatchNorm2d.
template <typename T>
class BatchNorm2d : public ChannelNorm<T> {
 public:
  explicit BatchNorm2d(int64_t channels, NormOptions options = {}, double momentum = 0.1)
      : ChannelNorm<T>("BatchNorm2d", channels, options), momentum_(momentum) {
    NORMLAB_CHECK(momentum >= 0 && momentum <= 1, "BatchNorm2d: momentum must be in [0, 1], got ", momentum);
    running_mean_ = this->register_buffer("running_mean", Tensor<T>::zeros({channels}));
    running_var_ = this->register_buffer("running_var", Tensor<T>::ones({channels}));
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return ops::batch_norm2d(x, this->gamma_, this->beta_, running_mean_, running_var_, this->is_training(),
                             momentum_, this->options_.eps, this->options_.fuse_relu, this->fused_dropout());
  }
  std::string describe() const override {
    return "BatchNorm2d(" + std::to_string(this->channels_) + detail::norm_suffix(this->options_);
  }
  const Tensor<T>& running_mean() const { return running_mean_; }
  const Tensor<T>& running_var() const { return running_var_; }

 private:
  double momentum_;
  Tensor<T> running_mean_, running_var_;
};

/// Statistics per (sample, group of channels/groups channels); same in training and evaluation.
template <typename T>
class GroupNorm : public ChannelNorm<T> {
 public:
  /// Requires: groups > 0 divides channels.
  GroupNorm(int64_t groups, int64_t channels, NormOptions options = {})
      : ChannelNorm<T>("GroupNorm", channels, options), groups_(groups) {
    NORMLAB_CHECK(groups > 0 && channels % groups == 0, "GroupNorm: ", groups,
                  " groups do not divide ", channels, " channels");
  }
  Tensor<T> forward(const Tensor<T>& x) override {
    return ops::group_norm(x, groups_, this->gamma_, this->beta_, this->options_.eps, this->options_.fuse_relu,
                           this->fused_dropout());
  }
  std::string describe() const override {
    return "GroupNorm(" + std::to_string(groups_) + ", " + std::to_string(this->channels_) +
           detail::norm_suffix(this->options_);
  }
  int64_t groups() const { return groups_; }

 private:
  int64_t groups_;
};

/// The comparison's LayerNorm: over (C, H, W) per sample, per-channel affine (= GroupNorm(1, C)).
template <typename T>
class LayerNorm : public ChannelNorm<T> {
 public:
  explicit LayerNorm(int64_t channels, NormOptions options = {}) : ChannelNorm<T>("LayerNorm", channels, options) {}
  Tensor<T> forward(const Tensor<T>& x) override {
    return ops::layer_norm(x, this->gamma_, this->beta_, this->options_.eps, this->options_.fuse_relu,
                           this->fused_dropout());
  }
  std::string describe() const override {
    return "LayerNorm(" + std::to_string(this->channels_) + detail::norm_suffix(this->options_);
  }
};

}  // namespace normlab::nn
