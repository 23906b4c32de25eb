// Plots drawn on a Canvas: line charts (named series, axes with "nice" tick values, title, axis
// labels, legend), figures of several chart panels, captioned grids of upscaled images, and
// confusion-matrix heat maps. Everything is measured from the bitmap font, so layouts adapt to
// the text they hold; sizes are in pixels and text scales are integer factors of the font.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/io/canvas.hpp"
#include "normlab/io/font.hpp"

namespace normlab::io {

/// Ensures: colour i of a 10-colour qualitative palette (Tableau 10), cycling.
inline Color palette(size_t i) {
  static const Color colors[10] = {
      {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
      {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  return colors[i % 10];
}

// ---- axis scales ------------------------------------------------------------------------------

/// An axis range extended to whole multiples of a 1, 2 or 5 x 10^k step, with its tick values.
struct NiceScale {
  double low = 0, high = 1, step = 1;
  std::vector<double> ticks;  ///< low, low + step, ..., high
  int decimals = 0;           ///< digits after the point that show every tick exactly
};

/// Requires: finite low <= high; target >= 2.
/// Ensures: about `target` ticks (the step is the 1-2-5 value nearest (high - low) / (target - 1)
/// on a log scale) and low' <= low, high' >= high. An empty range is widened around its value.
inline NiceScale nice_scale(double low, double high, int target = 6) {
  NORMLAB_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high && target >= 2,
                "nice_scale: need finite low <= high and target >= 2, got [", low, ", ", high,
                "], ", target);
  if (high - low <= 1e-12 * std::max(std::abs(low), std::abs(high))) {
    const double pad = low == 0 ? 1.0 : std::abs(low) * 0.1;
    low -= pad;
    high += pad;
  }
  const double raw = (high - low) / (target - 1);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / power;
  const double mantissa = fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10;
  NiceScale s;
  s.step = mantissa * power;
  const double first = std::floor(low / s.step + 1e-9), last = std::ceil(high / s.step - 1e-9);
  s.low = first * s.step;
  s.high = last * s.step;
  for (double k = first; k <= last + 0.5; ++k) s.ticks.push_back(k * s.step);
  s.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(s.step) + 1e-9)));
  return s;
}

/// Ensures: `value` with `decimals` digits after the point ("-0" printed as "0").
inline std::string format_number(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string text = buffer;
  if (text.find_first_not_of("-0.") == std::string::npos && text[0] == '-') text.erase(0, 1);
  return text;
}

// ---- line charts ------------------------------------------------------------------------------

struct Series {
  std::string name;
  std::vector<double> x, y;    ///< same length; points joined in this order
  std::optional<Color> color;  ///< default: palette(index of the series)
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  int text_scale = 2;    ///< font scale of every text in the chart
  int max_markers = 40;  ///< series with at most this many points get a dot at each point
};

namespace detail {

inline int line_height(int scale) { return font::text_height(scale) + font::kLineSpacing * scale; }

/// The legend's measurements: a swatch and the name per series; inside the plot as a boxed
/// column, or above it as centred rows when every corner of the plot holds data.
struct Legend {
  int scale = 1, swatch = 0, pad = 0, spacing = 0;
  std::vector<int> name_widths;

  Legend(const LineChart& chart)
      : scale(chart.text_scale), swatch(12 * scale), pad(5 * scale), spacing(12 * scale) {
    for (const Series& series : chart.series)
      name_widths.push_back(font::text_width(series.name, scale));
  }
  int item_width(size_t i) const { return swatch + 3 * scale + name_widths[i]; }
  int box_width() const {
    int w = 0;
    for (size_t i = 0; i < name_widths.size(); ++i) w = std::max(w, item_width(i));
    return pad + w + pad;
  }
  int box_height() const {
    return pad + static_cast<int>(name_widths.size()) * line_height(scale) -
           font::kLineSpacing * scale + pad;
  }
  /// Rows of series indices that fit in `width` when laid out side by side.
  std::vector<std::vector<size_t>> rows(int width) const {
    std::vector<std::vector<size_t>> out(1);
    int used = 0;
    for (size_t i = 0; i < name_widths.size(); ++i) {
      const int need = (out.back().empty() ? 0 : spacing) + item_width(i);
      if (!out.back().empty() && used + need > width) {
        out.emplace_back();
        used = 0;
      }
      used += out.back().empty() ? item_width(i) : need;
      out.back().push_back(i);
    }
    return out;
  }
  void draw_item(Canvas& canvas, const LineChart& chart, size_t i, int x, int y) const {
    const double mid = y + font::kCapHeight * scale / 2.0;
    canvas.draw_line(x, mid, x + swatch, mid, chart.series[i].color.value_or(palette(i)),
                     1.5 * scale);
    canvas.draw_text(x + swatch + 3 * scale, y, chart.series[i].name, colors::text, scale);
  }
};

/// The pixel rectangle of the plot area and the data-to-pixel maps.
struct PlotArea {
  int left = 0, top = 0, right = 0, bottom = 0;
  NiceScale xs, ys;
  double px(double v) const { return left + (v - xs.low) / (xs.high - xs.low) * (right - left); }
  double py(double v) const { return bottom - (v - ys.low) / (ys.high - ys.low) * (bottom - top); }
};

}  // namespace detail

/// Requires: each series has as many x as y values, all finite; w and h leave room for the
/// text (about 200 x 150 pixels at text_scale 2).
/// Ensures: the chart drawn into the rectangle (x, y, w, h) of `canvas`: white background, title
/// on top, a frame with grid lines and tick labels at nice values on both axes, the axis labels,
/// each series as an anti-aliased line in its colour (dots at the points of short series), and
/// a legend in a corner of the plot that no line passes through, or above the plot if there is
/// no such corner.
inline void draw_line_chart(Canvas& canvas, int x, int y, int w, int h, const LineChart& chart) {
  const int s = chart.text_scale;
  NORMLAB_CHECK(s >= 1, "draw_line_chart: text_scale ", s, " must be >= 1");
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min, y_min = x_min,
         y_max = -x_min;
  for (const Series& series : chart.series) {
    NORMLAB_CHECK(series.x.size() == series.y.size(), "draw_line_chart(", chart.title,
                  "): series '", series.name, "' has ", series.x.size(), " x values and ",
                  series.y.size(), " y values");
    for (size_t i = 0; i < series.x.size(); ++i) {
      NORMLAB_CHECK(std::isfinite(series.x[i]) && std::isfinite(series.y[i]), "draw_line_chart(",
                    chart.title, "): series '", series.name, "' point ", i, " is not finite (",
                    series.x[i], ", ", series.y[i], ")");
      x_min = std::min(x_min, series.x[i]);
      x_max = std::max(x_max, series.x[i]);
      y_min = std::min(y_min, series.y[i]);
      y_max = std::max(y_max, series.y[i]);
    }
  }
  if (!std::isfinite(x_min)) x_min = 0, x_max = 1, y_min = 0, y_max = 1;  // no data: empty axes

  detail::PlotArea area;
  area.xs = nice_scale(x_min, x_max, 6);
  area.ys = nice_scale(y_min, y_max, 6);
  const int pad = 8 * s, gap = 4 * s, tick = 3 * s, text_h = font::text_height(s);
  int label_w = 0;
  for (double v : area.ys.ticks)
    label_w = std::max(label_w, font::text_width(format_number(v, area.ys.decimals), s));
  area.left = x + pad + (chart.y_label.empty() ? 0 : text_h + gap) + label_w + gap + tick;
  area.right = x + w - pad - font::text_width(format_number(area.xs.high, area.xs.decimals), s) / 2;
  area.top = y + pad + (chart.title.empty() ? 0 : text_h + 2 * gap);
  area.bottom = y + h - pad - (chart.x_label.empty() ? 0 : text_h + gap) - text_h - gap - tick;

  // Legend: the first corner (top-right, top-left, bottom-right, bottom-left) whose box no line
  // or point passes through; otherwise rows above the plot, which then moves down.
  const detail::Legend legend(chart);
  const int margin = 6 * s, box_w = legend.box_width(), box_h = legend.box_height();
  const auto crosses_box = [&](int bx, int by) {
    const double x0 = bx - 2 * s, x1 = bx + box_w + 2 * s, y0 = by - 2 * s, y1 = by + box_h + 2 * s;
    for (const Series& series : chart.series)
      for (size_t k = 0; k < series.x.size(); ++k) {
        const double ax = area.px(series.x[k]), ay = area.py(series.y[k]);
        const double bx_ = k > 0 ? area.px(series.x[k - 1]) : ax,
                     by_ = k > 0 ? area.py(series.y[k - 1]) : ay;
        for (int t = 0; t <= 16; ++t) {  // sample the segment densely enough for a box >= 16 px
          const double px = bx_ + (ax - bx_) * t / 16.0, py = by_ + (ay - by_) * t / 16.0;
          if (px >= x0 && px <= x1 && py >= y0 && py <= y1) return true;
        }
      }
    return false;
  };
  bool inside = false;
  int legend_x = 0, legend_y = 0;
  for (int corner = 0; corner < 4 && !inside && !chart.series.empty(); ++corner) {
    legend_x = corner % 2 == 0 ? area.right - margin - box_w : area.left + margin;
    legend_y = corner < 2 ? area.top + margin : area.bottom - margin - box_h;
    inside = !crosses_box(legend_x, legend_y);
  }
  std::vector<std::vector<size_t>> legend_rows;
  if (!inside && !chart.series.empty()) {
    legend_rows = legend.rows(area.right - area.left);
    area.top += static_cast<int>(legend_rows.size()) * detail::line_height(s) + gap;
  }
  NORMLAB_CHECK(area.right - area.left >= 20 && area.bottom - area.top >= 20, "draw_line_chart(",
                chart.title, "): ", w, "x", h, " pixels leave no room for the plot at text_scale ",
                s);

  canvas.fill_rect(x, y, w, h, colors::white);
  if (!chart.title.empty())
    canvas.draw_text((area.left + area.right) / 2, y + pad, chart.title, colors::text, s,
                     Align::center);
  for (double v : area.xs.ticks) {
    const int px = static_cast<int>(std::lround(area.px(v)));
    canvas.fill_rect(px, area.top, 1, area.bottom - area.top, colors::grid);
    canvas.fill_rect(px, area.bottom, std::max(1, s / 2), tick, colors::axis);
    canvas.draw_text(px, area.bottom + tick + gap, format_number(v, area.xs.decimals), colors::text,
                     s, Align::center);
  }
  for (double v : area.ys.ticks) {
    const int py = static_cast<int>(std::lround(area.py(v)));
    canvas.fill_rect(area.left, py, area.right - area.left, 1, colors::grid);
    canvas.fill_rect(area.left - tick, py, tick, std::max(1, s / 2), colors::axis);
    canvas.draw_text(area.left - tick - gap, py - font::kCapHeight * s / 2,
                     format_number(v, area.ys.decimals), colors::text, s, Align::right);
  }
  canvas.draw_rect(area.left, area.top, area.right - area.left + 1, area.bottom - area.top + 1,
                   colors::axis, std::max(1, s / 2));
  if (!chart.x_label.empty())
    canvas.draw_text((area.left + area.right) / 2, area.bottom + tick + gap + text_h + gap,
                     chart.x_label, colors::text, s, Align::center);
  if (!chart.y_label.empty())
    canvas.draw_text_vertical(x + pad + text_h / 2, (area.top + area.bottom) / 2, chart.y_label,
                              colors::text, s);

  for (size_t i = 0; i < chart.series.size(); ++i) {
    const Series& series = chart.series[i];
    const Color color = series.color.value_or(palette(i));
    const bool markers = static_cast<int>(series.x.size()) <= chart.max_markers;
    for (size_t k = 0; k < series.x.size(); ++k) {
      const double px = area.px(series.x[k]), py = area.py(series.y[k]);
      if (k > 0)
        canvas.draw_line(area.px(series.x[k - 1]), area.py(series.y[k - 1]), px, py, color,
                         1.25 * s);
      if (markers) canvas.draw_line(px, py, px, py, color, 3.5 * s);
    }
  }

  if (inside) {
    canvas.fill_rect(legend_x, legend_y, box_w, box_h, colors::white);
    canvas.draw_rect(legend_x, legend_y, box_w, box_h, colors::grid, std::max(1, s / 2));
    for (size_t i = 0; i < chart.series.size(); ++i)
      legend.draw_item(canvas, chart, i, legend_x + legend.pad,
                       legend_y + legend.pad + static_cast<int>(i) * detail::line_height(s));
  }
  for (size_t r = 0; r < legend_rows.size(); ++r) {
    int row_w = 0;
    for (size_t i : legend_rows[r])
      row_w += (row_w > 0 ? legend.spacing : 0) + legend.item_width(i);
    int item_x = (area.left + area.right - row_w) / 2;
    const int row_y = area.top - gap -
                      static_cast<int>(legend_rows.size() - r) * detail::line_height(s) +
                      font::kLineSpacing * s;
    for (size_t i : legend_rows[r]) {
      legend.draw_item(canvas, chart, i, item_x, row_y);
      item_x += legend.item_width(i) + legend.spacing;
    }
  }
}

/// Ensures: a width x height canvas holding the chart.
inline Canvas render_line_chart(const LineChart& chart, int width = 800, int height = 500) {
  Canvas canvas(width, height);
  draw_line_chart(canvas, 0, 0, width, height, chart);
  return canvas;
}

/// Requires: columns >= 1; panels not empty.
/// Ensures: the panels in a grid, `columns` wide, each panel_width x panel_height, under `title`
/// (drawn at 1.5 times the panels' text scale, rounded up, when not empty).
inline Canvas render_figure(const std::string& title, const std::vector<LineChart>& panels,
                            int columns, int panel_width, int panel_height) {
  NORMLAB_CHECK(columns >= 1 && !panels.empty(),
                "render_figure: need columns >= 1 and at least one panel");
  const int rows = (static_cast<int>(panels.size()) + columns - 1) / columns;
  const int s = (panels.front().text_scale * 3 + 1) / 2;
  const int title_h = title.empty() ? 0 : font::text_height(s) + 12 * s;
  Canvas canvas(columns * panel_width, rows * panel_height + title_h);
  if (!title.empty())
    canvas.draw_text(canvas.width() / 2, 8 * s, title, colors::text, s, Align::center);
  for (size_t i = 0; i < panels.size(); ++i) {
    const int column = static_cast<int>(i) % columns, row = static_cast<int>(i) / columns;
    draw_line_chart(canvas, column * panel_width, title_h + row * panel_height, panel_width,
                    panel_height, panels[i]);
  }
  return canvas;
}

// ---- image grids ------------------------------------------------------------------------------

struct GridImage {
  const uint8_t* pixels = nullptr;  ///< RGB planes (CHW), height x width each
  int width = 32, height = 32;
  std::string caption;  ///< may hold several lines separated by '\n'
  Color caption_color = colors::text;
};

namespace detail {
inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines(1);
  for (char c : text) {
    if (c == '\n')
      lines.emplace_back();
    else
      lines.back() += c;
  }
  return lines;
}
}  // namespace detail

/// Requires: images not empty, all of the first image's size, pixels not null; columns,
/// scale, text_scale >= 1.
/// Ensures: `title` on top, then the images `columns` per row, each upscaled `scale` times
/// (nearest) with its caption centred below it; every cell is as wide as the widest image or
/// caption line, so nothing overlaps.
inline Canvas render_image_grid(const std::string& title, const std::vector<GridImage>& images,
                                int columns, int scale = 4, int text_scale = 2) {
  NORMLAB_CHECK(!images.empty() && columns >= 1 && scale >= 1 && text_scale >= 1,
                "render_image_grid: need images, columns >= 1, scale >= 1 and text_scale >= 1");
  const int s = text_scale, pad = 6 * s;
  const int image_w = images[0].width * scale, image_h = images[0].height * scale;
  int caption_w = 0;
  size_t caption_lines = 0;
  for (const GridImage& image : images) {
    NORMLAB_CHECK(image.pixels != nullptr && image.width == images[0].width &&
                      image.height == images[0].height,
                  "render_image_grid: every image needs pixels and the size ", images[0].width, "x",
                  images[0].height, ", got ", image.width, "x", image.height);
    const std::vector<std::string> lines = detail::split_lines(image.caption);
    caption_lines = std::max(caption_lines, lines.size());
    for (const std::string& line : lines)
      caption_w = std::max(caption_w, font::text_width(line, s));
  }
  const int cell_w = std::max(image_w, caption_w) + 2 * pad;
  const int cell_h =
      image_h + 2 * s + static_cast<int>(caption_lines) * detail::line_height(s) + pad;
  const int ts = (3 * s + 1) / 2;
  const int title_h = title.empty() ? 0 : font::text_height(ts) + 2 * pad;
  const int count = static_cast<int>(images.size());
  const int used_columns = std::min(columns, count), rows = (count + columns - 1) / columns;
  Canvas canvas(std::max(used_columns * cell_w + 2 * pad, font::text_width(title, ts) + 4 * pad),
                title_h + rows * cell_h + pad);
  if (!title.empty())
    canvas.draw_text(canvas.width() / 2, pad, title, colors::text, ts, Align::center);
  const int grid_left = (canvas.width() - used_columns * cell_w) / 2;
  for (int i = 0; i < count; ++i) {
    const GridImage& image = images[static_cast<size_t>(i)];
    const int cx = grid_left + (i % columns) * cell_w, cy = title_h + (i / columns) * cell_h;
    const int ix = cx + (cell_w - image_w) / 2;
    canvas.blit_planar_rgb(image.pixels, image.width, image.height, ix, cy, scale);
    canvas.draw_rect(ix - 1, cy - 1, image_w + 2, image_h + 2, colors::axis);
    const std::vector<std::string> lines = detail::split_lines(image.caption);
    for (size_t l = 0; l < lines.size(); ++l)
      canvas.draw_text(cx + cell_w / 2,
                       cy + image_h + 3 * s + static_cast<int>(l) * detail::line_height(s),
                       lines[l], image.caption_color, s, Align::center);
  }
  return canvas;
}

// ---- confusion matrix -------------------------------------------------------------------------

/// Requires: counts has n x n entries (row = true class, column = predicted class), n =
/// class_names.size() >= 1, all >= 0; text_scale >= 1.
/// Ensures: a heat map of each row normalised to sum 1 (shade sqrt(fraction): white = 0 to dark
/// blue = 1), every cell labelled with its percentage of the row (rounded, "<1" for a non-zero
/// count under 0.5%, empty for 0), class names
/// along both axes (predicted ones written vertically below), and the overall accuracy under
/// `title`.
inline Canvas render_confusion_matrix(const std::string& title, const std::vector<int64_t>& counts,
                                      const std::vector<std::string>& class_names,
                                      int text_scale = 2) {
  const size_t n = class_names.size();
  NORMLAB_CHECK(n >= 1 && counts.size() == n * n, "render_confusion_matrix: ", counts.size(),
                " counts for ", n, " classes (expected ", n * n, ")");
  NORMLAB_CHECK(text_scale >= 1, "render_confusion_matrix: text_scale ", text_scale,
                " must be >= 1");
  int64_t total = 0, correct = 0;
  for (size_t i = 0; i < n * n; ++i) {
    NORMLAB_CHECK(counts[i] >= 0, "render_confusion_matrix: negative count ", counts[i], " at (",
                  i / n, ", ", i % n, ")");
    total += counts[i];
    if (i / n == i % n) correct += counts[i];
  }
  const int s = text_scale, pad = 8 * s, text_h = font::text_height(s);
  const int cell = font::text_width("100", s) + 8 * s;
  int name_w = 0;
  for (const std::string& name : class_names) name_w = std::max(name_w, font::text_width(name, s));
  const int ts = (3 * s + 1) / 2;
  const std::string subtitle = total > 0 ? "accuracy " + format_number(100.0 * correct / total, 2) +
                                               "%, " + std::to_string(total - correct) + " of " +
                                               std::to_string(total) +
                                               " wrong; cells: % of the true class"
                                         : "no samples";
  const int header_h = pad + (title.empty() ? 0 : font::text_height(ts) + pad) + text_h + pad;
  const int grid_left = pad + text_h + pad + name_w + pad, grid_top = header_h;
  const int grid = static_cast<int>(n) * cell;
  const int width = std::max(grid_left + grid + pad, font::text_width(subtitle, s) + 2 * pad);
  const int height = grid_top + grid + pad + name_w + pad + text_h + pad;
  Canvas canvas(std::max(width, font::text_width(title, ts) + 2 * pad), height);

  int text_y = pad;
  if (!title.empty()) {
    canvas.draw_text(canvas.width() / 2, text_y, title, colors::text, ts, Align::center);
    text_y += font::text_height(ts) + pad;
  }
  canvas.draw_text(canvas.width() / 2, text_y, subtitle, colors::axis, s, Align::center);
  const Color dark{8, 48, 107};
  for (size_t r = 0; r < n; ++r) {
    int64_t row_total = 0;
    for (size_t c = 0; c < n; ++c) row_total += counts[r * n + c];
    for (size_t c = 0; c < n; ++c) {
      const int64_t count = counts[r * n + c];
      const double value = row_total > 0 ? static_cast<double>(count) / row_total : 0.0;
      const int x = grid_left + static_cast<int>(c) * cell,
                y = grid_top + static_cast<int>(r) * cell;
      const double shade = std::sqrt(value);  // so that confusions of a few percent show
      canvas.fill_rect(x, y, cell, cell, mix(colors::white, dark, shade));
      const long percent = std::lround(100 * value);
      if (count > 0)
        canvas.draw_text(x + cell / 2, y + (cell - font::kCapHeight * s) / 2,
                         percent == 0 ? "<1" : std::to_string(percent),
                         shade > 0.55 ? colors::white : colors::text, s, Align::center);
    }
    canvas.draw_text(grid_left - pad,
                     grid_top + static_cast<int>(r) * cell + (cell - font::kCapHeight * s) / 2,
                     class_names[r], colors::text, s, Align::right);
  }
  for (size_t c = 0; c <= n; ++c) {  // cell borders
    canvas.fill_rect(grid_left + static_cast<int>(c) * cell, grid_top, 1, grid + 1, colors::grid);
    canvas.fill_rect(grid_left, grid_top + static_cast<int>(c) * cell, grid + 1, 1, colors::grid);
  }
  canvas.draw_rect(grid_left, grid_top, grid + 1, grid + 1, colors::axis);
  for (size_t c = 0; c < n; ++c) {
    const int w = font::text_width(class_names[c], s);
    canvas.draw_text_vertical(grid_left + static_cast<int>(c) * cell + cell / 2,
                              grid_top + grid + pad + w / 2, class_names[c], colors::text, s);
  }
  canvas.draw_text(grid_left + grid / 2, grid_top + grid + pad + name_w + pad, "predicted class",
                   colors::text, s, Align::center);
  canvas.draw_text_vertical(pad + text_h / 2, grid_top + grid / 2, "true class", colors::text, s);
  return canvas;
}

}  // namespace normlab::io
