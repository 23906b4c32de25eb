// CsvTable: rows of a CSV file (RFC 4180: comma-separated, fields holding a comma, a quote or a
// line break are quoted, quotes doubled, lines end with \n) kept in memory and saved atomically,
// so a training log can be rewritten after every epoch and a reader never sees half a file.
#pragma once

#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/io/atomic_file.hpp"

namespace normlab::io {

/// One field: text as given, integers in full, floating-point values with `significant` digits
/// (printf's %.*g, so 0.1 stays "0.1" and 1e-05 keeps its exponent).
struct CsvCell {
  std::string text;
  CsvCell(std::string s) : text(std::move(s)) {}
  CsvCell(const char* s) : text(s) {}
  template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
  CsvCell(T value) : text(std::to_string(value)) {}
  CsvCell(double value, int significant = 7) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*g", significant, value);
    text = buffer;
  }
};

class CsvTable {
 public:
  /// Requires: at least one column.
  explicit CsvTable(std::vector<std::string> header) : header_(std::move(header)) {
    NORMLAB_CHECK(!header_.empty(), "CsvTable: the header needs at least one column");
  }

  /// Requires: one cell per column. Ensures: the row is appended.
  void add_row(const std::vector<CsvCell>& cells) {
    NORMLAB_CHECK(cells.size() == header_.size(), "CsvTable::add_row: ", cells.size(),
                  " cells for ", header_.size(), " columns");
    std::vector<std::string> row;
    row.reserve(cells.size());
    for (const CsvCell& cell : cells) row.push_back(cell.text);
    rows_.push_back(std::move(row));
  }

  size_t rows() const { return rows_.size(); }
  const std::vector<std::string>& header() const { return header_; }

  /// Ensures: the whole table as CSV text, header first.
  std::string str() const {
    std::string out;
    append_line(out, header_);
    for (const auto& row : rows_) append_line(out, row);
    return out;
  }

  /// Requires: the directory of `path` exists. Ensures: `path` holds str(), written atomically;
  /// on failure a normlab::Error names the path and the old file (if any) is untouched.
  void save(const std::string& path) const { write_file_atomic(path, str(), "CsvTable::save"); }

 private:
  static void append_line(std::string& out, const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += ',';
      const std::string& f = fields[i];
      if (f.find_first_of(",\"\r\n") == std::string::npos) {
        out += f;
        continue;
      }
      out += '"';
      for (char c : f) {
        if (c == '"') out += '"';
        out += c;
      }
      out += '"';
    }
    out += '\n';
  }

  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace normlab::io
