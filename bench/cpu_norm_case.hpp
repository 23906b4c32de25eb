// One norm at one shape on the CPU kernels (kernels/normlab/cpu), as the norm benchmarks time it:
// preallocated buffers and the fused forward / backward kernel calls (no tape, no allocation: the
// op layer adds a Tensor::empty from the caching allocator and one tape record per call).
#pragma once

#include "norm_cases.hpp"
#include "normlab/normlab.hpp"

namespace normlab::bench {

/// Training mode with a per-channel affine, optionally with the fused ReLU. BatchNorm (groups 0)
/// updates its running statistics; the backward writes (does not accumulate) dx, dgamma, dbeta.
class NormCase {
 public:
  NormCase(const NormKind& kind, const NormShape& s, bool relu, Rng& rng)
      : kind_(kind),
        s_(s),
        relu_(relu),
        x_(Tensor<float>::randn({s.n, s.c, s.h, s.w}, rng)),
        dy_(Tensor<float>::randn({s.n, s.c, s.h, s.w}, rng)),
        y_(Tensor<float>::empty({s.n, s.c, s.h, s.w})),
        dx_(Tensor<float>::empty({s.n, s.c, s.h, s.w})),
        gamma_(Tensor<float>::randn({s.c}, rng, 1.0f, 0.1f)),
        beta_(Tensor<float>::randn({s.c}, rng, 0.0f, 0.1f)),
        dgamma_(Tensor<float>::empty({s.c})),
        dbeta_(Tensor<float>::empty({s.c})),
        running_mean_(Tensor<float>::zeros({s.c})),
        running_var_(Tensor<float>::ones({s.c})),
        mean_(Tensor<double>::empty({statistics_count()})),
        rstd_(Tensor<double>::empty({statistics_count()})),
        workspace_(Tensor<double>::empty({cpu::group_norm_backward_workspace_size(s.n, s.c)})) {}

  void forward() {
    const int64_t hw = s_.h * s_.w;
    if (kind_.groups == 0) {
      cpu::batch_norm_forward(x_.data(), gamma_.data(), beta_.data(), running_mean_.data(),
                              running_var_.data(), y_.data(), mean_.data(), rstd_.data(), s_.n,
                              s_.c, hw, true, kMomentum, kEps, relu_);
    } else {
      cpu::group_norm_forward(x_.data(), gamma_.data(), beta_.data(), y_.data(), mean_.data(),
                              rstd_.data(), s_.n, s_.c, hw, kind_.groups, kEps, relu_);
    }
  }

  /// Requires: forward() ran (its y, mean and rstd are the backward's inputs).
  void backward() {
    const int64_t hw = s_.h * s_.w;
    const float* relu_output = relu_ ? y_.data() : nullptr;
    if (kind_.groups == 0) {
      cpu::batch_norm_backward(x_.data(), {relu_output}, dy_.data(), gamma_.data(), mean_.data(),
                               rstd_.data(), {dx_.data(), false}, {dgamma_.data(), false},
                               {dbeta_.data(), false}, s_.n, s_.c, hw, true);
    } else {
      cpu::group_norm_backward(x_.data(), {relu_output}, dy_.data(), gamma_.data(), mean_.data(),
                               rstd_.data(), {dx_.data(), false}, {dgamma_.data(), false},
                               {dbeta_.data(), false}, s_.n, s_.c, hw, kind_.groups,
                               workspace_.data());
    }
  }

 private:
  int64_t statistics_count() const { return kind_.groups == 0 ? s_.c : s_.n * kind_.groups; }

  NormKind kind_;
  NormShape s_;
  bool relu_;
  Tensor<float> x_, dy_, y_, dx_, gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
  Tensor<double> mean_, rstd_, workspace_;
};

}  // namespace normlab::bench
