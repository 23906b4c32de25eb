// Canvas: an RGB8 image (rows top to bottom, pixels interleaved R,G,B) with the few drawing
// primitives the plots need: fills, rectangles, anti-aliased thick lines, integer-scaled blits of
// planar (CHW) images such as CIFAR-10's, and text in the embedded bitmap font. Every primitive
// clips to the canvas, so callers may draw partly outside it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/io/font.hpp"
#include "normlab/io/png.hpp"

namespace normlab::io {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Color& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Color& o) const { return !(*this == o); }
};

/// Ensures: a + t * (b - a) per channel, rounded; t in [0, 1].
inline Color mix(Color a, Color b, double t) {
  const auto lerp = [t](uint8_t x, uint8_t y) {
    return static_cast<uint8_t>(std::lround(x + t * (static_cast<double>(y) - x)));
  };
  return {lerp(a.r, b.r), lerp(a.g, b.g), lerp(a.b, b.b)};
}

namespace colors {
constexpr Color white{255, 255, 255};
constexpr Color black{0, 0, 0};
constexpr Color text{34, 34, 34};
constexpr Color axis{90, 90, 90};
constexpr Color grid{228, 228, 228};
}  // namespace colors

enum class Align { left, center, right };

class Canvas {
 public:
  Canvas() = default;
  /// Requires: width, height >= 1.
  Canvas(int width, int height, Color background = colors::white) : width_(width), height_(height) {
    NORMLAB_CHECK(width >= 1 && height >= 1, "Canvas: size ", width, "x", height,
                  " must be positive");
    pixels_.resize(static_cast<size_t>(width) * height * 3);
    fill(background);
  }

  int width() const { return width_; }
  int height() const { return height_; }
  /// The pixels, height rows of width * 3 bytes (R, G, B).
  const std::vector<uint8_t>& pixels() const { return pixels_; }

  /// Requires: (x, y) inside the canvas.
  Color pixel(int x, int y) const {
    NORMLAB_CHECK(inside(x, y), "Canvas::pixel: (", x, ", ", y, ") outside ", width_, "x", height_);
    const uint8_t* p = &pixels_[offset(x, y)];
    return {p[0], p[1], p[2]};
  }
  bool inside(int x, int y) const { return x >= 0 && y >= 0 && x < width_ && y < height_; }

  void set_pixel(int x, int y, Color c) {
    if (!inside(x, y)) return;
    uint8_t* p = &pixels_[offset(x, y)];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  /// Ensures: the pixel becomes mix(old, c, alpha) (alpha clamped to [0, 1]).
  void blend_pixel(int x, int y, Color c, double alpha) {
    if (!inside(x, y) || alpha <= 0) return;
    set_pixel(x, y, alpha >= 1 ? c : mix(pixel(x, y), c, alpha));
  }

  void fill(Color c) { fill_rect(0, 0, width_, height_, c); }
  void fill_rect(int x, int y, int w, int h, Color c) {
    const int x0 = std::max(x, 0), y0 = std::max(y, 0);
    const int x1 = std::min(x + w, width_), y1 = std::min(y + h, height_);
    for (int yy = y0; yy < y1; ++yy)
      for (int xx = x0; xx < x1; ++xx) set_pixel(xx, yy, c);
  }
  /// Ensures: an outline of `thickness` pixels drawn inside the rectangle (x, y, w, h).
  void draw_rect(int x, int y, int w, int h, Color c, int thickness = 1) {
    fill_rect(x, y, w, thickness, c);
    fill_rect(x, y + h - thickness, w, thickness, c);
    fill_rect(x, y, thickness, h, c);
    fill_rect(x + w - thickness, y, thickness, h, c);
  }

  /// Ensures: an anti-aliased segment of `thickness` pixels with round ends, from (x0, y0) to
  /// (x1, y1) in pixel coordinates (pixel (i, j) covers [i, i+1) x [j, j+1)). Each pixel is
  /// blended with coverage clamp(thickness/2 + 0.5 - distance from its centre to the segment).
  void draw_line(double x0, double y0, double x1, double y1, Color c, double thickness = 1) {
    const double r = thickness / 2;
    const int left = static_cast<int>(std::floor(std::min(x0, x1) - r - 1));
    const int right = static_cast<int>(std::ceil(std::max(x0, x1) + r + 1));
    const int top = static_cast<int>(std::floor(std::min(y0, y1) - r - 1));
    const int bottom = static_cast<int>(std::ceil(std::max(y0, y1) + r + 1));
    const double dx = x1 - x0, dy = y1 - y0, length2 = dx * dx + dy * dy;
    for (int y = std::max(top, 0); y <= std::min(bottom, height_ - 1); ++y)
      for (int x = std::max(left, 0); x <= std::min(right, width_ - 1); ++x) {
        const double px = x + 0.5 - x0, py = y + 0.5 - y0;
        const double t = length2 > 0 ? std::clamp((px * dx + py * dy) / length2, 0.0, 1.0) : 0.0;
        const double distance = std::hypot(px - t * dx, py - t * dy);
        blend_pixel(x, y, c, std::clamp(r + 0.5 - distance, 0.0, 1.0));
      }
  }

  /// Requires: `chw` holds 3 planes (R, G, B) of h x w bytes; scale >= 1.
  /// Ensures: the image drawn with its top-left at (x, y), each pixel as a scale x scale block.
  void blit_planar_rgb(const uint8_t* chw, int w, int h, int x, int y, int scale) {
    NORMLAB_CHECK(scale >= 1, "Canvas::blit_planar_rgb: scale ", scale, " must be >= 1");
    const size_t plane = static_cast<size_t>(w) * h;
    for (int sy = 0; sy < h; ++sy)
      for (int sx = 0; sx < w; ++sx) {
        const size_t i = static_cast<size_t>(sy) * w + sx;
        fill_rect(x + sx * scale, y + sy * scale, scale, scale,
                  {chw[i], chw[plane + i], chw[2 * plane + i]});
      }
  }

  /// Ensures: `src` copied with its top-left at (x, y).
  void blit(const Canvas& src, int x, int y) {
    for (int sy = 0; sy < src.height(); ++sy)
      for (int sx = 0; sx < src.width(); ++sx) set_pixel(x + sx, y + sy, src.pixel(sx, sy));
  }

  /// Requires: scale >= 1. Ensures: `text` drawn on one line with the top of its capitals at y;
  /// x is its left end, centre or right end per `align`. Returns the text's width in pixels.
  int draw_text(int x, int y, const std::string& text, Color c, int scale = 1,
                Align align = Align::left) {
    const int width = font::text_width(text, scale);
    int pen = align == Align::left ? x : align == Align::center ? x - width / 2 : x - width;
    for (char ch : text) {
      const int w = font::glyph(ch).width;
      for (int gy = 0; gy < font::kGlyphHeight; ++gy)
        for (int gx = 0; gx < w; ++gx)
          if (font::ink(ch, gx, gy)) fill_rect(pen + gx * scale, y + gy * scale, scale, scale, c);
      pen += font::advance(ch, scale);
    }
    return width;
  }

  /// Ensures: `text` drawn rotated a quarter turn counter-clockwise (reading bottom to top),
  /// centred on (cx, cy). Used for vertical axis labels.
  void draw_text_vertical(int cx, int cy, const std::string& text, Color c, int scale = 1) {
    const int width = font::text_width(text, scale), height = font::text_height(scale);
    Canvas strip(std::max(width, 1), height, colors::white);
    strip.draw_text(0, 0, text, colors::black, scale);
    const int left = cx - height / 2, top = cy - width / 2;
    for (int sy = 0; sy < height; ++sy)
      for (int sx = 0; sx < width; ++sx)
        if (strip.pixel(sx, sy) == colors::black) set_pixel(left + sy, top + (width - 1 - sx), c);
  }

  /// Ensures: the canvas saved as an RGB PNG, atomically (see write_png).
  void save_png(const std::string& path) const {
    write_png(path, pixels_.data(), width_, height_, 3);
  }

 private:
  size_t offset(int x, int y) const { return (static_cast<size_t>(y) * width_ + x) * 3; }

  int width_ = 0, height_ = 0;
  std::vector<uint8_t> pixels_;
};

}  // namespace normlab::io
