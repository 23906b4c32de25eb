// Font, canvas and plots: glyph metrics, the nice-tick function on known ranges, and the
// rendered pictures checked by size and by pixels (background, series colours, text, upscaled
// images, heat-map cells); every picture also round-trips through a PNG file.
#include <catch2/catch.hpp>
#include <map>

#include "normlab/io/plot.hpp"
#include "support/temp_dir.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

using namespace normlab;
using namespace normlab::io;

namespace {

int64_t count_color(const Canvas& canvas, Color color, int x0 = 0, int y0 = 0, int x1 = -1,
                    int y1 = -1) {
  if (x1 < 0) x1 = canvas.width();
  if (y1 < 0) y1 = canvas.height();
  int64_t n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) n += canvas.pixel(x, y) == color;
  return n;
}

/// Saves, decodes with stb_image and compares every pixel.
void check_png_round_trip(const Canvas& canvas, const std::string& name) {
  testing::TempDir dir("plot");
  const std::string path = dir.file(name);
  canvas.save_png(path);
  int w, h, n;
  stbi_uc* decoded = stbi_load(path.c_str(), &w, &h, &n, 3);
  REQUIRE(decoded != nullptr);
  CHECK(w == canvas.width());
  CHECK(h == canvas.height());
  CHECK(std::equal(canvas.pixels().begin(), canvas.pixels().end(), decoded));
  stbi_image_free(decoded);
}

LineChart sample_chart() {
  LineChart chart;
  chart.title = "test accuracy";
  chart.x_label = "epoch";
  chart.y_label = "accuracy (%)";
  for (int k = 0; k < 3; ++k) {
    Series s;
    s.name = k == 0 ? "BN" : k == 1 ? "GN" : "LN";
    for (int e = 1; e <= 20; ++e) {
      s.x.push_back(e);
      s.y.push_back(40 + 2 * e - 5 * k);
    }
    chart.series.push_back(s);
  }
  return chart;
}

}  // namespace

TEST_CASE("font: every printable glyph has ink, widths add up, others draw as '?'", "[font]") {
  for (char c = 33; c < 127; ++c) {
    bool any = false;
    for (int y = 0; y < font::kGlyphHeight; ++y)
      for (int x = 0; x < font::glyph(c).width; ++x) any = any || font::ink(c, x, y);
    INFO("glyph '" << c << "'");
    CHECK(any);
    CHECK(font::glyph(c).width >= 1);
  }
  CHECK(font::glyph('0').width == 5);  // digits keep full width
  CHECK(font::glyph('1').width == 5);
  CHECK(font::glyph('i').width < 5);  // letters are proportional
  CHECK(font::text_width("", 2) == 0);
  CHECK(font::text_width("10", 1) == 11);
  CHECK(font::text_width("10", 3) == 33);
  CHECK(font::text_width("a b", 1) ==
        font::advance('a', 1) + font::kSpaceAdvance + font::glyph('b').width);
  CHECK(&font::glyph('\t') == &font::glyph('?'));

  // The drawn text covers exactly the measured box.
  Canvas canvas(100, 30);
  const int width = canvas.draw_text(3, 4, "Ag|9", colors::black, 2);
  CHECK(width == font::text_width("Ag|9", 2));
  int min_x = 100, max_x = -1, min_y = 30, max_y = -1;
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 100; ++x)
      if (canvas.pixel(x, y) == colors::black) {
        min_x = std::min(min_x, x), max_x = std::max(max_x, x);
        min_y = std::min(min_y, y), max_y = std::max(max_y, y);
      }
  CHECK(min_x == 3);
  CHECK(max_x == 3 + width - 1);
  CHECK(min_y == 4);
  CHECK(max_y == 4 + font::text_height(2) - 1);  // 'g' reaches the bottom of the descender
}

TEST_CASE("canvas primitives: clipping, lines, blits", "[canvas]") {
  Canvas canvas(20, 10, colors::white);
  canvas.fill_rect(-5, -5, 10, 10, colors::black);  // clipped to the 5x5 corner
  CHECK(count_color(canvas, colors::black) == 25);
  canvas.fill(colors::white);
  canvas.draw_line(2, 5.5, 17, 5.5, colors::black, 1);  // horizontal, through row 5's centres
  for (int x = 3; x < 17; ++x) CHECK(canvas.pixel(x, 5) == colors::black);
  CHECK(canvas.pixel(10, 3) == colors::white);
  const uint8_t chw[3 * 2 * 1] = {10, 20, 30, 40, 50, 60};  // 2x1 image: R plane, G plane, B plane
  canvas.blit_planar_rgb(chw, 2, 1, 0, 0, 3);
  CHECK(canvas.pixel(2, 2) == Color{10, 30, 50});
  CHECK(canvas.pixel(3, 0) == Color{20, 40, 60});
  CHECK_THROWS_WITH(canvas.pixel(20, 0), Catch::Contains("(20, 0)"));
  CHECK_THROWS_WITH(Canvas(0, 5), Catch::Contains("0x5"));
}

TEST_CASE("nice_scale picks 1-2-5 steps that cover the range", "[plot][ticks]") {
  NiceScale s = nice_scale(0, 1, 6);
  CHECK(s.step == Approx(0.2));
  CHECK(s.ticks.size() == 6);
  CHECK(s.decimals == 1);
  s = nice_scale(0.37, 2.81, 6);
  CHECK(s.step == Approx(0.5));
  CHECK(s.low == 0.0);
  CHECK(s.high == Approx(3.0));
  CHECK(s.ticks.size() == 7);
  s = nice_scale(1, 20, 6);
  CHECK(s.step == 5);
  CHECK(s.ticks == std::vector<double>{0, 5, 10, 15, 20});
  CHECK(s.decimals == 0);
  s = nice_scale(-3, 7, 5);
  CHECK(s.step == 2);
  CHECK(s.low == -4);
  CHECK(s.high == 8);
  s = nice_scale(0.012, 0.049, 5);
  CHECK(s.step == Approx(0.01));
  CHECK(s.decimals == 2);
  CHECK(s.low == Approx(0.01));
  CHECK(s.high == Approx(0.05));
  s = nice_scale(5, 5, 6);  // an empty range is widened
  CHECK(s.low < 5);
  CHECK(s.high > 5);
  s = nice_scale(0, 0, 6);
  CHECK(s.low == -1);
  CHECK(s.high == 1);
  for (double low : {-123.4, 0.0, 0.001, 57.0})
    for (double span : {1e-3, 0.7, 13.0, 4e4}) {
      const NiceScale t = nice_scale(low, low + span, 6);
      INFO("low " << low << " span " << span);
      CHECK(t.low <= low);
      CHECK(t.high >= low + span);
      CHECK(t.ticks.size() >= 3);
      CHECK(t.ticks.size() <= 12);
    }
  CHECK_THROWS_WITH(nice_scale(2, 1), Catch::Contains("nice_scale"));
  CHECK(format_number(-0.0001, 1) == "0.0");
  CHECK(format_number(2.5, 1) == "2.5");
  CHECK(format_number(-3, 0) == "-3");
}

TEST_CASE("line chart: size, background, series colours, text and legend", "[plot][chart]") {
  LineChart chart = sample_chart();
  chart.series[2].color = Color{1, 2, 3};
  const Canvas canvas = render_line_chart(chart, 640, 400);
  CHECK(canvas.width() == 640);
  CHECK(canvas.height() == 400);
  CHECK(canvas.pixel(0, 0) == colors::white);
  CHECK(canvas.pixel(639, 399) == colors::white);
  CHECK(count_color(canvas, palette(0)) > 200);  // a line across the plot plus the legend swatch
  CHECK(count_color(canvas, palette(1)) > 200);
  CHECK(count_color(canvas, Color{1, 2, 3}) > 200);
  CHECK(count_color(canvas, palette(2)) == 0);                   // replaced by the override
  CHECK(count_color(canvas, colors::text, 0, 0, 640, 40) > 50);  // the title
  CHECK(count_color(canvas, colors::text, 0, 0, 40, 400) > 50);  // the vertical axis label
  check_png_round_trip(canvas, "chart.png");

  chart.series[1].y.pop_back();
  CHECK_THROWS_WITH(render_line_chart(chart),
                    Catch::Contains("'GN'") && Catch::Contains("19 y values"));
  chart.series[1].y.push_back(std::nan(""));
  CHECK_THROWS_WITH(render_line_chart(chart), Catch::Contains("not finite"));
  CHECK_THROWS_WITH(render_line_chart(sample_chart(), 120, 80), Catch::Contains("no room"));
}

TEST_CASE("line chart: the legend moves above the plot when every corner holds a line",
          "[plot][chart]") {
  LineChart chart;
  chart.title = "crossing";
  chart.series = {Series{"rising", {0, 1}, {0, 1}, std::nullopt},
                  Series{"falling", {0, 1}, {1, 0}, std::nullopt}};
  const Canvas canvas = render_line_chart(chart, 500, 300);
  // The frame's top edge: the first row that is mostly axis colour.
  int frame_top = -1;
  for (int y = 0; y < canvas.height() && frame_top < 0; ++y)
    if (count_color(canvas, colors::axis, 0, y, canvas.width(), y + 1) > canvas.width() / 2)
      frame_top = y;
  REQUIRE(frame_top > 0);
  CHECK(count_color(canvas, palette(0), 0, 0, canvas.width(), frame_top - 8) > 10);  // the swatches
  CHECK(count_color(canvas, palette(1), 0, 0, canvas.width(), frame_top - 8) > 10);

  // With one rising line the top-left corner is free: nothing of the series' colour above.
  chart.series.resize(1);
  const Canvas single = render_line_chart(chart, 500, 300);
  frame_top = -1;
  for (int y = 0; y < single.height() && frame_top < 0; ++y)
    if (count_color(single, colors::axis, 0, y, single.width(), y + 1) > single.width() / 2)
      frame_top = y;
  // (Rows just above the frame can hold the dot at the line's top end.)
  CHECK(count_color(single, palette(0), 0, 0, single.width(), frame_top - 8) == 0);
}

TEST_CASE("figure: panels in a grid under a title", "[plot][figure]") {
  std::vector<LineChart> panels(4, sample_chart());
  panels[3].series.resize(1);
  const Canvas figure = render_figure("curves", panels, 2, 500, 350);
  CHECK(figure.width() == 1000);
  CHECK(figure.height() > 700);
  const int title_h = figure.height() - 700;
  CHECK(count_color(figure, colors::text, 0, 0, 1000, title_h) > 30);
  for (int p = 0; p < 4; ++p) {
    const int x0 = (p % 2) * 500, y0 = title_h + (p / 2) * 350;
    INFO("panel " << p);
    CHECK(count_color(figure, palette(0), x0, y0, x0 + 500, y0 + 350) > 100);
    CHECK((count_color(figure, palette(2), x0, y0, x0 + 500, y0 + 350) > 100) == (p != 3));
  }
  check_png_round_trip(figure, "figure.png");
  CHECK_THROWS_WITH(render_figure("x", {}, 2, 10, 10), Catch::Contains("render_figure"));
}

TEST_CASE("image grid: upscaled images with captions that do not overlap", "[plot][grid]") {
  std::vector<uint8_t> red(3 * 32 * 32, 0), gradient(3 * 32 * 32);
  std::fill(red.begin(), red.begin() + 1024, 200);  // R plane 200, G and B 0
  for (size_t i = 0; i < gradient.size(); ++i) gradient[i] = static_cast<uint8_t>(i % 251);
  std::vector<GridImage> images;
  for (int i = 0; i < 7; ++i) {
    GridImage image;
    image.pixels = i == 0 ? red.data() : gradient.data();
    image.caption = i == 0 ? "automobile | airplane" : "cat | dog";
    images.push_back(image);
  }
  const int scale = 4;
  const Canvas grid = render_image_grid("misclassified", images, 5, scale, 2);
  CHECK(count_color(grid, Color{200, 0, 0}) == 32 * scale * 32 * scale);
  // Cells are as wide as the widest caption: 5 columns need at least 5 caption widths.
  CHECK(grid.width() >= 5 * font::text_width("automobile | airplane", 2));
  CHECK(grid.height() > 2 * (32 * scale + font::text_height(2)));
  // The gradient image's pixel (x=5, y=3) appears as a 4x4 block somewhere.
  const Color g{static_cast<uint8_t>((3 * 32 + 5) % 251),
                static_cast<uint8_t>((1024 + 3 * 32 + 5) % 251),
                static_cast<uint8_t>((2048 + 3 * 32 + 5) % 251)};
  CHECK(count_color(grid, g) % (scale * scale) == 0);
  CHECK(count_color(grid, g) >= 6 * scale * scale);
  // Caption text sits below the red image, inside its cell.
  int red_x = -1, red_y = -1;
  for (int y = 0; y < grid.height() && red_x < 0; ++y)
    for (int x = 0; x < grid.width() && red_x < 0; ++x)
      if (grid.pixel(x, y) == Color{200, 0, 0}) red_x = x, red_y = y;
  const int below = red_y + 32 * scale;
  CHECK(count_color(grid, colors::text, 0, below, grid.width() / 5,
                    below + font::text_height(2) + 8) > 40);
  check_png_round_trip(grid, "grid.png");

  images[3].width = 16;
  CHECK_THROWS_WITH(render_image_grid("", images, 5), Catch::Contains("16x32"));
}

TEST_CASE("confusion matrix: shaded cells, percentages, class names", "[plot][confusion]") {
  const std::vector<std::string> names = {"cat", "dog", "automobile"};
  const std::vector<int64_t> counts = {10, 0, 0,     // cat: all right
                                       5,  5, 0,     // dog: half confused with cat
                                       0,  1, 299};  // automobile: 1 of 300 wrong
  const Canvas canvas = render_confusion_matrix("confusion", counts, names, 2);
  const Color dark{8, 48, 107};
  const int cell_pixels_full = count_color(canvas, dark);
  CHECK(cell_pixels_full > 0);  // the cat/cat cell at 100%
  const Color half = mix(colors::white, dark, std::sqrt(0.5));
  CHECK(count_color(canvas, half) > 0);  // the two 50% cells
  CHECK(count_color(canvas, colors::white) > 0);
  CHECK(count_color(canvas, colors::text) > 200);  // names, labels, small percentages
  CHECK(canvas.width() > 3 * (font::text_width("100", 2)));
  check_png_round_trip(canvas, "confusion.png");

  CHECK_THROWS_WITH(render_confusion_matrix("", {1, 2, 3}, names),
                    Catch::Contains("3 counts for 3 classes"));
  CHECK_THROWS_WITH(render_confusion_matrix("", {1, 0, 0, 0, -1, 0, 0, 0, 1}, names),
                    Catch::Contains("negative count -1"));
}
