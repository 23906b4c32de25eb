// Transforms: normalisation against the formula in double; crop and flip against a naive padded
// reference; each RandAugment operation on images whose answer is known; the augmentation's
// determinism and probabilities.
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <vector>

#include "normlab/data/transforms.hpp"

using namespace normlab;
using namespace normlab::data;

namespace {

using Image = std::vector<uint8_t>;

Image random_image(uint64_t seed) {
  Rng rng(seed);
  Image img(3072);
  for (uint8_t& p : img) p = static_cast<uint8_t>(rng.below(256));
  return img;
}

uint8_t& px(Image& img, int c, int y, int x) { return img[c * 1024 + y * 32 + x]; }
uint8_t px(const Image& img, int c, int y, int x) { return img[c * 1024 + y * 32 + x]; }

/// Naive crop: build the (32+2p)^2 padded image explicitly, then slice it.
Image reference_crop(const Image& in, int pad, int top, int left) {
  const int side = 32 + 2 * pad;
  std::vector<uint8_t> padded(3 * side * side, 0);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) padded[(c * side + y + pad) * side + x + pad] = px(in, c, y, x);
  Image out(3072);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        px(out, c, y, x) = padded[(c * side + y + top) * side + x + left];
  return out;
}

Image apply(AugmentOp op, double value, const Image& in) {
  Image out(3072);
  apply_augment_op(op, value, in.data(), out.data());
  return out;
}

}  // namespace

TEST_CASE("normalisation is (p/255 - mean)/std per channel, correctly rounded",
          "[transforms][normalize]") {
  const Normalization n;
  const Normalizer normalize(n);
  const Image img = random_image(1);
  std::vector<float> out(3072);
  normalize(img.data(), out.data());
  for (int i = 0; i < 3072; ++i) {
    const int c = i / 1024;
    const float expected =
        static_cast<float>((img[i] / 255.0 - double(n.mean[c])) / double(n.std[c]));
    REQUIRE(out[i] == expected);
  }
  // Known values with the CIFAR-10 statistics.
  CHECK(normalize.value(0, 0) == Approx(-0.4914 / 0.2470).epsilon(1e-6));
  CHECK(normalize.value(1, 255) == Approx((1 - 0.4822) / 0.2435).epsilon(1e-6));
  CHECK(normalize.value(2, 128) == Approx((128 / 255.0 - 0.4465) / 0.2616).epsilon(1e-6));
  Normalization custom;
  custom.mean = {0.5f, 0.5f, 0.5f};
  custom.std = {0.5f, 0.25f, 1.0f};
  const Normalizer half(custom);
  CHECK(half.value(0, 255) == 1.0f);
  CHECK(half.value(1, 0) == -2.0f);
  CHECK(half.value(2, 51) == Approx(0.2 - 0.5));
  custom.std[1] = 0;
  CHECK_THROWS_WITH(Normalizer(custom), Catch::Contains("std[1]"));
}

TEST_CASE("crop of the zero-padded image matches the naive reference at every offset",
          "[transforms][crop]") {
  const Image img = random_image(2);
  Image out(3072);
  for (int pad : {0, 1, 4}) {
    for (int top = 0; top <= 2 * pad; ++top)
      for (int left = 0; left <= 2 * pad; ++left) {
        crop_padded(img.data(), out.data(), pad, top, left);
        INFO("pad " << pad << " top " << top << " left " << left);
        REQUIRE(out == reference_crop(img, pad, top, left));
      }
    crop_padded(img.data(), out.data(), pad, pad, pad);
    CHECK(out == img);
  }
  // Offset (0, 0) with padding 4: a 4-pixel black band on the top and the left.
  crop_padded(img.data(), out.data(), 4, 0, 0);
  CHECK(px(out, 1, 3, 20) == 0);
  CHECK(px(out, 2, 20, 3) == 0);
  CHECK(px(out, 0, 4, 4) == px(img, 0, 0, 0));
  CHECK_THROWS_WITH(crop_padded(img.data(), out.data(), 4, 9, 0), Catch::Contains("crop_padded"));
}

TEST_CASE("horizontal flip mirrors each row and twice is the identity", "[transforms][flip]") {
  const Image img = random_image(3);
  Image once(3072), twice(3072);
  horizontal_flip(img.data(), once.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) REQUIRE(px(once, c, y, x) == px(img, c, y, 31 - x));
  horizontal_flip(once.data(), twice.data());
  CHECK(twice == img);
}

TEST_CASE("RandAugment magnitudes follow torchvision's scales at M=9 of 31 bins",
          "[transforms][randaugment]") {
  CHECK(augment_op_value(AugmentOp::shear_x, 9, 31, false) == Approx(0.09));
  CHECK(augment_op_value(AugmentOp::shear_y, 9, 31, true) == Approx(-0.09));
  CHECK(augment_op_value(AugmentOp::translate_x, 9, 31, false) == 4.0);  // trunc(4.35)
  CHECK(augment_op_value(AugmentOp::translate_y, 9, 31, true) == -4.0);
  CHECK(augment_op_value(AugmentOp::rotate, 9, 31, true) == Approx(-9.0));
  CHECK(augment_op_value(AugmentOp::brightness, 9, 31, false) == Approx(1.27));
  CHECK(augment_op_value(AugmentOp::contrast, 9, 31, true) == Approx(0.73));
  CHECK(augment_op_value(AugmentOp::posterize, 9, 31, false) == 7.0);
  CHECK(augment_op_value(AugmentOp::posterize, 30, 31, false) == 4.0);
  CHECK(augment_op_value(AugmentOp::solarize, 9, 31, false) == Approx(178.5));
  CHECK(augment_op_value(AugmentOp::equalize, 9, 31, true) == 0.0);
  CHECK_THROWS_WITH(augment_op_value(AugmentOp::rotate, 31, 31, false),
                    Catch::Contains("magnitude 31"));
}

TEST_CASE("geometric RandAugment operations move pixels where their definitions say",
          "[transforms][randaugment]") {
  const Image img = random_image(4);
  CHECK(apply(AugmentOp::identity, 0, img) == img);
  CHECK(apply(AugmentOp::rotate, 0, img) == img);
  CHECK(apply(AugmentOp::shear_x, 0, img) == img);
  const Image right = apply(AugmentOp::translate_x, 4, img);
  const Image up = apply(AugmentOp::translate_y, -3, img);
  const Image ccw = apply(AugmentOp::rotate, 90, img);
  const Image sheared = apply(AugmentOp::shear_x, 0.09, img);
  const Image sheared_y = apply(AugmentOp::shear_y, -0.09, img);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        INFO("c " << c << " y " << y << " x " << x);
        REQUIRE(px(right, c, y, x) == (x >= 4 ? px(img, c, y, x - 4) : 0));
        REQUIRE(px(up, c, y, x) == (y < 29 ? px(img, c, y + 3, x) : 0));
        // Counter-clockwise by 90 degrees on screen: the top row becomes the left column.
        REQUIRE(px(ccw, c, y, x) == px(img, c, x, 31 - y));
        const int sx = static_cast<int>(std::floor(x + 0.09 * y + 0.5));
        REQUIRE(px(sheared, c, y, x) == (sx < 32 ? px(img, c, y, sx) : 0));
        const int sy = static_cast<int>(std::floor(y - 0.09 * x + 0.5));
        REQUIRE(px(sheared_y, c, y, x) == (sy >= 0 ? px(img, c, sy, x) : 0));
      }
}

TEST_CASE("colour RandAugment operations give the PIL results on known images",
          "[transforms][randaugment]") {
  const Image img = random_image(5);
  CHECK(apply(AugmentOp::brightness, 1.0, img) == img);
  CHECK(apply(AugmentOp::color, 1.0, img) == img);
  CHECK(apply(AugmentOp::contrast, 1.0, img) == img);
  CHECK(apply(AugmentOp::sharpness, 1.0, img) == img);
  CHECK(apply(AugmentOp::brightness, 0.0, img) == Image(3072, 0));

  const Image bright = apply(AugmentOp::brightness, 1.27, img);
  const Image gray = apply(AugmentOp::color, 0.0, img);
  const Image posterized = apply(AugmentOp::posterize, 7, img);
  const Image solarized = apply(AugmentOp::solarize, 178.5, img);
  for (int i = 0; i < 1024; ++i) {
    const int r = img[i], g = img[1024 + i], b = img[2048 + i];
    const int luma = static_cast<int>(std::lround(0.299 * r + 0.587 * g + 0.114 * b));
    REQUIRE(std::abs(gray[i] - luma) <= 1);
    REQUIRE((gray[i] == gray[1024 + i] && gray[i] == gray[2048 + i]));
  }
  for (int i = 0; i < 3072; ++i) {
    REQUIRE(bright[i] == std::min(255L, std::lround(img[i] * 1.27)));
    REQUIRE(posterized[i] == (img[i] & 0xFE));
    REQUIRE(solarized[i] == (img[i] >= 179 ? 255 - img[i] : img[i]));
  }
  // Contrast 0: every pixel becomes the mean luma.
  const Image flat = apply(AugmentOp::contrast, 0.0, img);
  CHECK(std::set<uint8_t>(flat.begin(), flat.end()).size() == 1);

  // Sharpness leaves a constant image alone and leaves the border of any image alone.
  const Image constant(3072, 77);
  CHECK(apply(AugmentOp::sharpness, 1.9, constant) == constant);
  const Image sharp = apply(AugmentOp::sharpness, 1.9, img);
  for (int x = 0; x < 32; ++x) CHECK(px(sharp, 1, 0, x) == px(img, 1, 0, x));
  CHECK(sharp != img);

  // Autocontrast stretches each channel's range to [0, 255].
  Image narrow(3072);
  for (int i = 0; i < 3072; ++i) narrow[i] = static_cast<uint8_t>(50 + (i * 13) % 51);  // 50..100
  const Image stretched = apply(AugmentOp::autocontrast, 0, narrow);
  for (int i = 0; i < 3072; ++i)
    REQUIRE(stretched[i] == static_cast<uint8_t>(std::lround((narrow[i] - 50) * 255.0 / 50)));
  CHECK(apply(AugmentOp::autocontrast, 0, constant) == constant);

  // Equalize (PIL): four equally common values 0..3 spread to 0, 85, 171, 255.
  Image four(3072);
  for (int i = 0; i < 3072; ++i) four[i] = static_cast<uint8_t>((i % 1024) / 256);
  const Image equalized = apply(AugmentOp::equalize, 0, four);
  const uint8_t expected[4] = {0, 85, 171, 255};
  for (int i = 0; i < 3072; ++i) REQUIRE(equalized[i] == expected[four[i]]);
  CHECK(apply(AugmentOp::equalize, 0, constant) == constant);
}

TEST_CASE("augment: deterministic per Rng state, and each stage fires as configured",
          "[transforms][augment]") {
  const Image img = random_image(6);
  Image out(3072), again(3072), scratch(3072);
  const AugmentConfig full;  // crop 4, flip, RandAugment p = 0.25, N = 2, M = 9
  int differ_between_seeds = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Rng a(seed), b(seed), c(seed + 1000);
    augment(img.data(), out.data(), scratch.data(), full, a);
    augment(img.data(), again.data(), scratch.data(), full, b);
    REQUIRE(out == again);
    augment(img.data(), again.data(), scratch.data(), full, c);
    differ_between_seeds += out != again;
  }
  CHECK(differ_between_seeds >= 45);

  AugmentConfig off;
  off.crop_padding = 0;
  off.horizontal_flip = false;
  off.randaugment_probability = 0;
  Rng rng(7);
  augment(img.data(), out.data(), scratch.data(), off, rng);
  CHECK(out == img);

  // Crop only: every output is one of the 81 crops, and all 81 offsets occur.
  AugmentConfig crop_only = off;
  crop_only.crop_padding = 4;
  std::set<std::pair<int, int>> offsets;
  for (int k = 0; k < 2000; ++k) {
    augment(img.data(), out.data(), scratch.data(), crop_only, rng);
    bool found = false;
    for (int top = 0; top <= 8 && !found; ++top)
      for (int left = 0; left <= 8 && !found; ++left)
        if (out == reference_crop(img, 4, top, left)) {
          offsets.insert({top, left});
          found = true;
        }
    REQUIRE(found);
  }
  CHECK(offsets.size() == 81);

  // Flip only: half of the images are mirrored (binomial, 5 standard deviations).
  AugmentConfig flip_only = off;
  flip_only.horizontal_flip = true;
  Image mirrored(3072);
  horizontal_flip(img.data(), mirrored.data());
  int flips = 0;
  const int n = 4000;
  for (int k = 0; k < n; ++k) {
    augment(img.data(), out.data(), scratch.data(), flip_only, rng);
    REQUIRE((out == img || out == mirrored));
    flips += out == mirrored;
  }
  CHECK(std::abs(flips - n / 2) < 5 * std::sqrt(n * 0.25));

  // RandAugment only, p = 0.25: about a quarter of the images change (an application changes
  // the image unless both ops are no-ops, which is rare), never more than 0.25 + 5 sd.
  AugmentConfig ra_only = off;
  ra_only.randaugment_probability = 0.25;
  int changed = 0;
  for (int k = 0; k < n; ++k) {
    augment(img.data(), out.data(), scratch.data(), ra_only, rng);
    changed += out != img;
  }
  const double sd = std::sqrt(0.25 * 0.75 / n);
  CHECK(static_cast<double>(changed) / n < 0.25 + 5 * sd);
  CHECK(static_cast<double>(changed) / n > 0.25 * 0.85 - 5 * sd);

  AugmentConfig bad = full;
  bad.randaugment_probability = 1.5;
  CHECK_THROWS_WITH(augment(img.data(), out.data(), scratch.data(), bad, rng),
                    Catch::Contains("randaugment_probability"));
  bad = full;
  bad.randaugment_magnitude = 31;  // checked up front, not only when the policy fires
  CHECK_THROWS_WITH(augment(img.data(), out.data(), scratch.data(), bad, rng),
                    Catch::Contains("randaugment_magnitude 31"));
}
