// Image transforms for CIFAR-10 training: per-channel normalisation to float, random crop from
// the zero-padded image, horizontal flip, and a RandAugment policy (Cubuk et al. 2019) with the
// 14 operations and magnitude scales of torchvision's RandAugment. Images are uint8 CHW
// [3][32][32] (the reader's layout); every transform reads `in` and writes caller-provided
// `out` (distinct buffers unless a function says otherwise), so nothing is allocated per image.
// Randomness comes from a caller-provided Rng, drawn in a fixed documented order, so the same
// Rng state always gives the same image.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "normlab/core/error.hpp"
#include "normlab/core/rng.hpp"
#include "normlab/data/cifar10.hpp"

namespace normlab::data {

constexpr int kPlane = kCifarSide * kCifarSide;

// ---- normalisation --------------------------------------------------------------------------

/// Per-channel statistics on the [0, 1] scale; the defaults are CIFAR-10's training-set values.
struct Normalization {
  std::array<float, 3> mean{0.4914f, 0.4822f, 0.4465f};
  std::array<float, 3> std{0.2470f, 0.2435f, 0.2616f};
};

/// Maps uint8 pixels to (p / 255 - mean[c]) / std[c] in float through a 256-entry table per
/// channel computed in double, so each output is the correctly rounded value of the formula.
class Normalizer {
 public:
  /// Requires: every std[c] > 0.
  explicit Normalizer(const Normalization& n = {}) {
    for (int c = 0; c < kCifarChannels; ++c) {
      NORMLAB_CHECK(n.std[c] > 0, "Normalizer: std[", c, "] must be positive, got ", n.std[c]);
      for (int p = 0; p < 256; ++p)
        table_[c][p] = static_cast<float>((p / 255.0 - static_cast<double>(n.mean[c])) /
                                          static_cast<double>(n.std[c]));
    }
  }
  /// Requires: `image` is [3][32][32] uint8, `out` has room for 3,072 floats.
  void operator()(const uint8_t* image, float* out) const {
    for (int c = 0; c < kCifarChannels; ++c) {
      const float* table = table_[c].data();
      for (int i = 0; i < kPlane; ++i) out[c * kPlane + i] = table[image[c * kPlane + i]];
    }
  }
  float value(int channel, uint8_t pixel) const { return table_[channel][pixel]; }

 private:
  std::array<std::array<float, 256>, kCifarChannels> table_{};
};

// ---- crop and flip --------------------------------------------------------------------------

/// Requires: pad >= 0, 0 <= top, left <= 2 * pad.
/// Ensures: `out` is the 32x32 window at (top, left) of `in` zero-padded by `pad` pixels on every
/// side (pixel value 0, i.e. black, before any normalisation); top = left = pad is the identity.
inline void crop_padded(const uint8_t* in, uint8_t* out, int pad, int top, int left) {
  NORMLAB_CHECK(pad >= 0 && top >= 0 && left >= 0 && top <= 2 * pad && left <= 2 * pad,
                "crop_padded: offset (", top, ", ", left, ") outside [0, ", 2 * pad,
                "] for padding ", pad);
  const int dy = top - pad, dx = left - pad;  // source = destination + (dy, dx)
  const int x_begin = std::max(0, -dx), x_end = std::min(kCifarSide, kCifarSide - dx);
  for (int c = 0; c < kCifarChannels; ++c) {
    for (int y = 0; y < kCifarSide; ++y) {
      uint8_t* row = out + c * kPlane + y * kCifarSide;
      const int sy = y + dy;
      if (sy < 0 || sy >= kCifarSide || x_begin >= x_end) {
        std::memset(row, 0, kCifarSide);
        continue;
      }
      std::memset(row, 0, static_cast<size_t>(x_begin));
      std::memcpy(row + x_begin, in + c * kPlane + sy * kCifarSide + x_begin + dx,
                  static_cast<size_t>(x_end - x_begin));
      std::memset(row + x_end, 0, static_cast<size_t>(kCifarSide - x_end));
    }
  }
}

/// Ensures: `out` is `in` mirrored left-right.
inline void horizontal_flip(const uint8_t* in, uint8_t* out) {
  for (int row = 0; row < kCifarChannels * kCifarSide; ++row)
    std::reverse_copy(in + row * kCifarSide, in + (row + 1) * kCifarSide, out + row * kCifarSide);
}

// ---- RandAugment operations -----------------------------------------------------------------

/// torchvision's RandAugment operation list, in its order.
enum class AugmentOp {
  identity,
  shear_x,
  shear_y,
  translate_x,
  translate_y,
  rotate,
  brightness,
  color,
  contrast,
  sharpness,
  posterize,
  solarize,
  autocontrast,
  equalize
};
constexpr int kAugmentOps = 14;

inline const char* augment_op_name(AugmentOp op) {
  static const char* const names[kAugmentOps] = {
      "identity",  "shear_x",    "shear_y",      "translate_x", "translate_y",
      "rotate",    "brightness", "color",        "contrast",    "sharpness",
      "posterize", "solarize",   "autocontrast", "equalize"};
  return names[static_cast<int>(op)];
}

/// Requires: 0 <= magnitude < bins, bins >= 2.
/// Ensures: the operation's parameter at `magnitude` on torchvision's scale (bins levels from 0
/// to the maximum), negated when `negative` for the signed operations:
///   shear_x/y: shear factor 0.3 * f;  translate_x/y: trunc(150/331 * 32 * f) pixels;
///   rotate: 30 * f degrees;  brightness/color/contrast/sharpness: enhance factor 1 + 0.9 * f;
///   posterize: 8 - round(4 * f) bits kept;  solarize: threshold 255 * (1 - f);
///   identity/autocontrast/equalize: 0 (no parameter);  where f = magnitude / (bins - 1).
inline double augment_op_value(AugmentOp op, int magnitude, int bins, bool negative) {
  NORMLAB_CHECK(bins >= 2 && magnitude >= 0 && magnitude < bins, "augment_op_value: magnitude ",
                magnitude, " outside [0, ", bins - 1, "]");
  const double f = static_cast<double>(magnitude) / (bins - 1);
  const double sign = negative ? -1.0 : 1.0;
  switch (op) {
    case AugmentOp::shear_x:
    case AugmentOp::shear_y:
      return sign * 0.3 * f;
    case AugmentOp::translate_x:
    case AugmentOp::translate_y:
      return sign * std::trunc(150.0 / 331.0 * kCifarSide * f);
    case AugmentOp::rotate:
      return sign * 30.0 * f;
    case AugmentOp::brightness:
    case AugmentOp::color:
    case AugmentOp::contrast:
    case AugmentOp::sharpness:
      return 1.0 + sign * 0.9 * f;
    case AugmentOp::posterize:
      return 8.0 - std::round(4.0 * f);
    case AugmentOp::solarize:
      return 255.0 * (1.0 - f);
    case AugmentOp::identity:
    case AugmentOp::autocontrast:
    case AugmentOp::equalize:
      return 0.0;
  }
  return 0.0;
}

namespace detail {

inline uint8_t clamp_round(double v) {
  return static_cast<uint8_t>(std::clamp(std::floor(v + 0.5), 0.0, 255.0));
}

/// Geometric warp with nearest sampling: out(x, y) = in(round(a*x + b*y + c), round(d*x + e*y + f))
/// in pixel-centre coordinates, 0 (black) where the source falls outside the image.
inline void warp_nearest(const uint8_t* in, uint8_t* out, double a, double b, double c, double d,
                         double e, double f) {
  for (int y = 0; y < kCifarSide; ++y)
    for (int x = 0; x < kCifarSide; ++x) {
      const int sx = static_cast<int>(std::floor(a * x + b * y + c + 0.5));
      const int sy = static_cast<int>(std::floor(d * x + e * y + f + 0.5));
      const bool inside = sx >= 0 && sx < kCifarSide && sy >= 0 && sy < kCifarSide;
      for (int ch = 0; ch < kCifarChannels; ++ch)
        out[ch * kPlane + y * kCifarSide + x] = inside ? in[ch * kPlane + sy * kCifarSide + sx] : 0;
    }
}

/// PIL's luma: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (ITU-R 601-2, 0.299/0.587/0.114).
inline uint8_t luma(const uint8_t* in, int i) {
  return static_cast<uint8_t>(
      (19595u * in[i] + 38470u * in[kPlane + i] + 7471u * in[2 * kPlane + i] + 32768u) >> 16);
}

/// out = degenerate + factor * (in - degenerate), rounded and clamped (PIL's ImageEnhance blend).
template <typename Degenerate>
void blend_with(const uint8_t* in, uint8_t* out, double factor, Degenerate degenerate) {
  for (int i = 0; i < kCifarChannels * kPlane; ++i) {
    const double d = degenerate(i);
    out[i] = clamp_round(d + factor * (in[i] - d));
  }
}

inline void apply_lut_per_channel(const uint8_t* in, uint8_t* out,
                                  const std::array<std::array<uint8_t, 256>, kCifarChannels>& lut) {
  for (int c = 0; c < kCifarChannels; ++c)
    for (int i = 0; i < kPlane; ++i) out[c * kPlane + i] = lut[c][in[c * kPlane + i]];
}

}  // namespace detail

/// Requires: `in` and `out` distinct [3][32][32] buffers; `value` from augment_op_value.
/// Ensures: `out` is `in` transformed by `op` (see docs/data-and-io.md for each definition):
///   shear_x: out(x, y) = in(x + s*y, y); shear_y: out(x, y) = in(x, y + s*x) (origin top-left);
///   translate_x/y: shift by `value` pixels; rotate: `value` degrees counter-clockwise about the
///   centre; geometric ops sample the nearest pixel and fill with black.
///   brightness/color/contrast/sharpness: PIL ImageEnhance blends of `in` with black / its
///   grayscale / its mean gray / its 3x3-smoothed copy, by factor `value`;
///   posterize: keep the top `value` bits; solarize: p >= value -> 255 - p;
///   autocontrast: stretch each channel's [min, max] to [0, 255]; equalize: PIL's per-channel
///   histogram equalisation.
inline void apply_augment_op(AugmentOp op, double value, const uint8_t* in, uint8_t* out) {
  NORMLAB_CHECK(in != out, "apply_augment_op(", augment_op_name(op), "): in and out must differ");
  constexpr double center = (kCifarSide - 1) / 2.0;
  switch (op) {
    case AugmentOp::identity:
      std::memcpy(out, in, kCifarImageBytes);
      return;
    case AugmentOp::shear_x:
      detail::warp_nearest(in, out, 1, value, 0, 0, 1, 0);
      return;
    case AugmentOp::shear_y:
      detail::warp_nearest(in, out, 1, 0, 0, value, 1, 0);
      return;
    case AugmentOp::translate_x:
      detail::warp_nearest(in, out, 1, 0, -value, 0, 1, 0);
      return;
    case AugmentOp::translate_y:
      detail::warp_nearest(in, out, 1, 0, 0, 0, 1, -value);
      return;
    case AugmentOp::rotate: {
      // Inverse map of a counter-clockwise rotation on screen (y grows downwards).
      const double t = value * 3.14159265358979323846 / 180.0, cs = std::cos(t), sn = std::sin(t);
      detail::warp_nearest(in, out, cs, -sn, center - cs * center + sn * center, sn, cs,
                           center - sn * center - cs * center);
      return;
    }
    case AugmentOp::brightness:
      detail::blend_with(in, out, value, [](int) { return 0.0; });
      return;
    case AugmentOp::color:
      detail::blend_with(in, out, value,
                         [in](int i) { return double(detail::luma(in, i % kPlane)); });
      return;
    case AugmentOp::contrast: {
      uint64_t sum = 0;
      for (int i = 0; i < kPlane; ++i) sum += detail::luma(in, i);
      const double mean = std::floor(static_cast<double>(sum) / kPlane + 0.5);
      detail::blend_with(in, out, value, [mean](int) { return mean; });
      return;
    }
    case AugmentOp::sharpness: {
      // Degenerate image: PIL's SMOOTH filter (1 1 1 / 1 5 1 / 1 1 1, /13, rounded) inside, the
      // original pixel on the 1-pixel border.
      detail::blend_with(in, out, value, [in](int i) {
        const int y = (i % kPlane) / kCifarSide, x = i % kCifarSide;
        if (y == 0 || x == 0 || y == kCifarSide - 1 || x == kCifarSide - 1) return double(in[i]);
        int acc = 4 * in[i];
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) acc += in[i + dy * kCifarSide + dx];
        return std::floor(acc / 13.0 + 0.5);
      });
      return;
    }
    case AugmentOp::posterize: {
      const int bits = static_cast<int>(value);
      NORMLAB_CHECK(bits >= 1 && bits <= 8, "apply_augment_op(posterize): bits ", value,
                    " outside [1, 8]");
      const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - bits));
      for (int i = 0; i < kCifarImageBytes; ++i) out[i] = in[i] & mask;
      return;
    }
    case AugmentOp::solarize:
      for (int i = 0; i < kCifarImageBytes; ++i) out[i] = in[i] >= value ? 255 - in[i] : in[i];
      return;
    case AugmentOp::autocontrast: {
      std::array<std::array<uint8_t, 256>, kCifarChannels> lut;
      for (int c = 0; c < kCifarChannels; ++c) {
        const auto [lo, hi] = std::minmax_element(in + c * kPlane, in + (c + 1) * kPlane);
        for (int p = 0; p < 256; ++p)
          lut[c][p] = *hi > *lo ? detail::clamp_round((p - *lo) * 255.0 / (*hi - *lo)) : uint8_t(p);
      }
      detail::apply_lut_per_channel(in, out, lut);
      return;
    }
    case AugmentOp::equalize: {
      // PIL ImageOps.equalize: step = (pixels - count of the last non-empty bin) / 255; a bin's
      // new value is (pixels below it + step / 2) / step; identity when step is 0.
      std::array<std::array<uint8_t, 256>, kCifarChannels> lut;
      for (int c = 0; c < kCifarChannels; ++c) {
        std::array<int, 256> hist{};
        for (int i = 0; i < kPlane; ++i) ++hist[in[c * kPlane + i]];
        int last = 255;
        while (hist[last] == 0) --last;
        const int step = (kPlane - hist[last]) / 255;
        int below = 0;
        for (int p = 0; p < 256; ++p) {
          lut[c][p] = step == 0 ? uint8_t(p)
                                : static_cast<uint8_t>(std::min(255, (below + step / 2) / step));
          below += hist[p];
        }
      }
      detail::apply_lut_per_channel(in, out, lut);
      return;
    }
  }
}

// ---- the training augmentation --------------------------------------------------------------

struct AugmentConfig {
  int crop_padding = 4;         ///< random 32x32 crop of the image zero-padded by this; 0 = off
  bool horizontal_flip = true;  ///< mirror with probability 0.5
  double randaugment_probability = 0.25;  ///< apply the RandAugment policy with this probability
  int randaugment_ops = 2;                ///< operations per application (torchvision's num_ops)
  int randaugment_magnitude = 9;          ///< level in [0, randaugment_bins)
  int randaugment_bins = 31;              ///< torchvision's num_magnitude_bins
};

/// Ensures: returns normally when every field of `config` is in range, else throws a
/// normlab::Error naming the field and its value.
inline void check_augment_config(const AugmentConfig& config) {
  NORMLAB_CHECK(config.crop_padding >= 0 && config.crop_padding <= kCifarSide,
                "augment: crop_padding ", config.crop_padding, " outside [0, ", kCifarSide, "]");
  NORMLAB_CHECK(config.randaugment_probability >= 0 && config.randaugment_probability <= 1,
                "augment: randaugment_probability ", config.randaugment_probability,
                " outside [0, 1]");
  NORMLAB_CHECK(config.randaugment_ops >= 0, "augment: randaugment_ops ", config.randaugment_ops,
                " < 0");
  NORMLAB_CHECK(config.randaugment_bins >= 2, "augment: randaugment_bins ", config.randaugment_bins,
                " < 2");
  NORMLAB_CHECK(
      config.randaugment_magnitude >= 0 && config.randaugment_magnitude < config.randaugment_bins,
      "augment: randaugment_magnitude ", config.randaugment_magnitude, " outside [0, ",
      config.randaugment_bins - 1, "]");
}

/// Requires: `in`, `out`, `scratch` are distinct [3][32][32] buffers; check_augment_config passes.
/// Ensures: `out` = RandAugment?(flip?(crop(in))), drawing from `rng` in this fixed order:
///   crop top = below(2p+1), crop left = below(2p+1) (when crop_padding p > 0);
///   flip if uniform() < 0.5 (when horizontal_flip);
///   apply the policy if uniform() < randaugment_probability (when it is > 0), then per
///   operation: op = below(14), negative = uniform() < 0.5 (drawn for every op).
/// `scratch` is overwritten.
inline void augment(const uint8_t* in, uint8_t* out, uint8_t* scratch, const AugmentConfig& config,
                    Rng& rng) {
  check_augment_config(config);
  uint8_t* current = out;
  uint8_t* other = scratch;
  if (config.crop_padding > 0) {
    const int span = 2 * config.crop_padding + 1;
    const int top = static_cast<int>(rng.below(span));
    const int left = static_cast<int>(rng.below(span));
    crop_padded(in, current, config.crop_padding, top, left);
  } else {
    std::memcpy(current, in, kCifarImageBytes);
  }
  if (config.horizontal_flip && rng.uniform() < 0.5f) {
    horizontal_flip(current, other);
    std::swap(current, other);
  }
  if (config.randaugment_probability > 0 && rng.uniform() < config.randaugment_probability) {
    for (int k = 0; k < config.randaugment_ops; ++k) {
      const auto op = static_cast<AugmentOp>(rng.below(kAugmentOps));
      const bool negative = rng.uniform() < 0.5f;
      apply_augment_op(
          op, augment_op_value(op, config.randaugment_magnitude, config.randaugment_bins, negative),
          current, other);
      std::swap(current, other);
    }
  }
  if (current != out) std::memcpy(out, current, kCifarImageBytes);
}

}  // namespace normlab::data
