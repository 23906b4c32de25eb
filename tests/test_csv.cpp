// CsvTable: quoting per RFC 4180, number formatting, atomic saves.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "normlab/io/csv.hpp"
#include "support/temp_dir.hpp"

using namespace normlab;
using namespace normlab::io;

namespace {
std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("CSV fields are quoted when needed and numbers keep their digits", "[csv]") {
  CsvTable table({"epoch", "lr", "note"});
  table.add_row({1, 0.01, "plain"});
  table.add_row({int64_t{20}, 1.0 / 3.0, "a, \"quoted\"\nline"});
  table.add_row({3, CsvCell(2.5e-5, 3), std::string("")});
  CHECK(table.rows() == 3);
  CHECK(table.str() ==
        "epoch,lr,note\n"
        "1,0.01,plain\n"
        "20,0.3333333,\"a, \"\"quoted\"\"\nline\"\n"
        "3,2.5e-05,\n");
  CHECK_THROWS_WITH(table.add_row({1, 2}), Catch::Contains("2 cells for 3 columns"));
  CHECK_THROWS_WITH(CsvTable({}), Catch::Contains("at least one column"));
}

TEST_CASE("CSV saves replace the file atomically and failures name the path", "[csv][errors]") {
  testing::TempDir dir("csv");
  CsvTable table({"x"});
  const std::string path = dir.file("log.csv");
  table.save(path);
  CHECK(read_text(path) == "x\n");
  table.add_row({7});
  table.save(path);
  CHECK(read_text(path) == "x\n7\n");
  const std::string bad = dir.file("missing/log.csv");
  CHECK_THROWS_WITH(table.save(bad), Catch::Contains("CsvTable::save") && Catch::Contains(bad));
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 1);
}
