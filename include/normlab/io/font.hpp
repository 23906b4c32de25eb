// A small bitmap font of our own design for printable ASCII (32-126): 5x9 cells with a cap
// height of 7 rows, lowercase x-height of 5 rows (rows 2-6) and 2 rows for descenders. The glyphs
// below are the source of truth, drawn as text ('#' = ink), 16 per band; they are parsed once on
// first use. Text is proportional: each glyph advances by its inked width plus one column (digits
// keep the full 5 columns so numbers line up in tables), a space advances 3 columns.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab::io::font {

constexpr int kGlyphWidth = 5;
constexpr int kGlyphHeight = 9;  ///< rows per glyph, descenders included
constexpr int kCapHeight = 7;    ///< rows above the baseline
constexpr int kLineSpacing = 2;  ///< empty rows between lines of text
constexpr int kSpaceAdvance = 3;
constexpr char kFirst = 32, kLast = 126;

namespace detail {

// Each band: a label line, then 9 rows of 16 glyphs (5 columns each, separated by one space).
constexpr const char* kGlyphSource = R"(
//       !     "     #     $     %     &     '     (     )     *     +     ,     -     .     /
..... ..#.. .#.#. .#.#. ..#.. ##..# .##.. ..#.. ...#. .#... ..... ..... ..... ..... ..... ....#
..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#
..... ..#.. .#.#. ##### #.#.. ...#. #.#.. .#... .#... ...#. #.#.# ..#.. ..... ..... ..... ...#.
..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. ##### ..... .###. ..... ..#..
..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#.. ..... ..... ..... .#...
..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #....
..... ..#.. ..... .#.#. ..#.. #..## .##.# ..... ...#. .#... ..... ..... ..#.. ..... .##.. #....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

// 0     1     2     3     4     5     6     7     8     9     :     ;     <     =     >     ?
.###. ..#.. .###. .###. ...#. ##### ..##. ##### .###. .###. ..... ..... ...#. ..... .#... .###.
#...# .##.. #...# #...# ..##. #.... .#... ....# #...# #...# .##.. .##.. ..#.. ..... ..#.. #...#
#..## ..#.. ....# ....# .#.#. ####. #.... ...#. #...# #...# .##.. .##.. .#... ##### ...#. ....#
#.#.# ..#.. ...#. ..##. #..#. ....# ####. ..#.. .###. .#### ..... ..... #.... ..... ....# ...#.
##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# ..... ..... .#... ##### ...#. ..#..
#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. .##.. ..#.. ..... ..#.. .....
.###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. .##.. .##.. ...#. ..... .#... ..#..
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..#.. ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... .....

// @     A     B     C     D     E     F     G     H     I     J     K     L     M     N     O
.###. .###. ####. .###. ###.. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.
#...# #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#
#.### #...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#
#.#.# ##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#
#.### #...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#
#.... #...# #...# #...# #..#. #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#
.###. #...# ####. .###. ###.. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

// P     Q     R     S     T     U     V     W     X     Y     Z     [     \     ]     ^     _
####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. #.... .###. ..#.. .....
#...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#... #.... ...#. .#.#. .....
#...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#... .#... ...#. #...# .....
####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....
#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#... ...#. ...#. ..... .....
#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#... ....# ...#. ..... .....
#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###. ....# .###. ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... #####
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

// `     a     b     c     d     e     f     g     h     i     j     k     l     m     n     o
.#... ..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. ..... ..... .....
..#.. ..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#.. ..... ..... .....
..... .###. #.##. .###. .##.# .###. .#... .#### #.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###.
..... ....# ##..# #.... #..## #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...#
..... .#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#.. #.#.# #...# #...#
..... #...# #...# #...# #...# #.... .#... #...# #...# ..#.. ...#. #.#.. ..#.. #.#.# #...# #...#
..... .#### ####. .###. .#### .###. .#... .#### #...# .###. ...#. #..#. .###. #.#.# #...# .###.
..... ..... ..... ..... ..... ..... ..... ....# ..... ..... #..#. ..... ..... ..... ..... .....
..... ..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ..... ..... ..... .....

// p     q     r     s     t     u     v     w     x     y     z     {     |     }     ~
..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ...## ..#.. ##... .....
..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. .....
####. .#### #.##. .#### ###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#...
#...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.#
#...# #...# #.... .###. .#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#.
#...# #...# #.... ....# .#..# #..## .#.#. #.#.# .#.#. #...# .#... ..#.. ..#.. ..#.. .....
####. .#### #.... ####. ..##. .##.# ..#.. .#.#. #...# .#### ##### ...## ..#.. ##... .....
#.... ....# ..... ..... ..... ..... ..... ..... ..... ....# ..... ..... ..#.. ..... .....
#.... ....# ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... ..... ..... .....
)";

struct Glyph {
  std::array<uint8_t, kGlyphHeight> rows{};  ///< bit (4 - x) set = ink at column x
  int first_column = 0;                      ///< leftmost inked column (0 for blanks and digits)
  int width = 0;                             ///< inked columns drawn from first_column
};

using GlyphTable = std::array<Glyph, kLast - kFirst + 1>;

inline GlyphTable parse_glyphs() {
  GlyphTable table{};
  const std::string source = kGlyphSource;
  std::vector<std::string> rows;
  size_t start = 0;
  while (start < source.size()) {
    size_t end = source.find('\n', start);
    if (end == std::string::npos) end = source.size();
    const std::string line = source.substr(start, end - start);
    if (!line.empty() && line.rfind("//", 0) != 0) rows.push_back(line);
    start = end + 1;
  }
  int glyph = 0;
  for (size_t band = 0; band * kGlyphHeight < rows.size(); ++band) {
    const size_t in_band = (rows[band * kGlyphHeight].size() + 1) / (kGlyphWidth + 1);
    for (size_t k = 0; k < in_band; ++k, ++glyph) {
      NORMLAB_CHECK(glyph < static_cast<int>(table.size()),
                    "font: more glyphs than printable ASCII");
      Glyph& g = table[static_cast<size_t>(glyph)];
      int lo = kGlyphWidth, hi = -1;
      for (int y = 0; y < kGlyphHeight; ++y) {
        const std::string& row = rows[band * kGlyphHeight + static_cast<size_t>(y)];
        NORMLAB_CHECK(row.size() >= (k + 1) * (kGlyphWidth + 1) - 1, "font: short row in band ",
                      band);
        for (int x = 0; x < kGlyphWidth; ++x)
          if (row[k * (kGlyphWidth + 1) + static_cast<size_t>(x)] == '#') {
            g.rows[static_cast<size_t>(y)] |= static_cast<uint8_t>(1u << (kGlyphWidth - 1 - x));
            lo = std::min(lo, x);
            hi = std::max(hi, x);
          }
      }
      const char c = static_cast<char>(kFirst + glyph);
      if (hi < 0) {
        g.first_column = 0;
        g.width = kSpaceAdvance - 1;
      } else if (c >= '0' && c <= '9') {
        g.first_column = 0;
        g.width = kGlyphWidth;
      } else {
        g.first_column = lo;
        g.width = hi - lo + 1;
      }
    }
  }
  NORMLAB_CHECK(glyph == static_cast<int>(table.size()), "font: ", glyph, " glyphs, expected ",
                table.size());
  return table;
}

}  // namespace detail

/// Ensures: the glyph of `c`; characters outside 32-126 are drawn as '?'.
inline const detail::Glyph& glyph(char c) {
  static const detail::GlyphTable table = detail::parse_glyphs();
  if (c < kFirst || c > kLast) c = '?';
  return table[static_cast<size_t>(c - kFirst)];
}

/// Ensures: true when column x (0 = left, of the glyph's inked width) of row y of `c` is ink.
inline bool ink(char c, int x, int y) {
  const detail::Glyph& g = glyph(c);
  const int column = g.first_column + x;
  return column < kGlyphWidth &&
         ((g.rows[static_cast<size_t>(y)] >> (kGlyphWidth - 1 - column)) & 1u);
}

/// Requires: scale >= 1. Ensures: horizontal pixels taken by `c` followed by the next glyph.
inline int advance(char c, int scale) { return (glyph(c).width + 1) * scale; }

/// Requires: scale >= 1. Ensures: the width in pixels of `text` on one line (no trailing gap).
inline int text_width(const std::string& text, int scale) {
  int width = 0;
  for (char c : text) width += advance(c, scale);
  return text.empty() ? 0 : width - scale;
}

/// Ensures: the height of one line of text (cap height plus descenders).
inline int text_height(int scale) { return kGlyphHeight * scale; }

}  // namespace normlab::io::font
