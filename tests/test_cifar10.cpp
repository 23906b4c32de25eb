// The CIFAR-10 reader: on the real data (sizes, labels, class balance, pixels against the raw
// bytes read independently here) and on small synthetic files that are broken on purpose.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "normlab/data/cifar10.hpp"
#include "support/temp_dir.hpp"

using namespace normlab;
using namespace normlab::data;
namespace fs = std::filesystem;

namespace {

bool real_data_present() {
  if (fs::is_regular_file(fs::path(NORMLAB_CIFAR10_DIR) / "test_batch.bin")) return true;
  WARN("CIFAR-10 data not found at " << NORMLAB_CIFAR10_DIR << ": real-data checks skipped");
  return false;
}

/// Record `r` of a file, read with plain stream calls (independent of the reader).
std::vector<uint8_t> raw_record(const std::string& path, int64_t r) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(r * 3073);
  std::vector<uint8_t> bytes(3073);
  in.read(reinterpret_cast<char*>(bytes.data()), 3073);
  REQUIRE(in.gcount() == 3073);
  return bytes;
}

void check_image_is_record(const Cifar10& data, int64_t i, const std::string& path, int64_t r) {
  const std::vector<uint8_t> raw = raw_record(path, r);
  CHECK(data.label(i) == raw[0]);
  // Red plane first, row-major: pixel (c, y, x) is byte 1 + c*1024 + y*32 + x of the record.
  for (int c = 0; c < 3; ++c)
    for (int y : {0, 1, 17, 31})
      for (int x : {0, 5, 31}) {
        const int offset = c * 1024 + y * 32 + x;
        INFO("image " << i << " c=" << c << " y=" << y << " x=" << x);
        CHECK(data.image(i)[offset] == raw[1 + offset]);
      }
  CHECK(std::equal(data.image(i), data.image(i) + 3072, raw.begin() + 1));
}

/// Writes `labels.size()` records; pixel bytes are a function of (record, offset).
void write_batch(const std::string& path, const std::vector<int>& labels, size_t extra_bytes = 0) {
  std::ofstream out(path, std::ios::binary);
  for (size_t r = 0; r < labels.size(); ++r) {
    out.put(static_cast<char>(labels[r]));
    for (int i = 0; i < 3072; ++i) out.put(static_cast<char>((r * 7 + i) & 0xFF));
  }
  for (size_t i = 0; i < extra_bytes; ++i) out.put('x');
}

void write_meta(const std::string& dir) {
  std::ofstream(fs::path(dir) / "batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
}

/// A complete synthetic data set with `n` records per file.
void write_dataset(const testing::TempDir& dir, int n) {
  write_meta(dir.str());
  std::vector<int> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = i % 10;
  for (const std::string& name : cifar10_files(Split::train)) write_batch(dir.file(name), labels);
  write_batch(dir.file("test_batch.bin"), labels);
}

Cifar10Options any_size() {
  Cifar10Options o;
  o.records_per_file = 0;
  return o;
}

}  // namespace

TEST_CASE("real CIFAR-10: sizes, labels, class balance and pixels against the raw bytes",
          "[cifar10][real]") {
  if (!real_data_present()) return;
  const std::string dir = NORMLAB_CIFAR10_DIR;
  const Cifar10 test = Cifar10::load(dir, Split::test);
  REQUIRE(test.size() == 10000);
  REQUIRE(test.images().size() == 10000u * 3072u);
  CHECK(test.class_names() == std::vector<std::string>{"airplane", "automobile", "bird", "cat",
                                                       "deer", "dog", "frog", "horse", "ship",
                                                       "truck"});
  std::vector<int> per_class(10, 0);
  for (int32_t label : test.labels()) {
    REQUIRE(label >= 0);
    REQUIRE(label <= 9);
    ++per_class[label];
  }
  CHECK(per_class == std::vector<int>(10, 1000));
  check_image_is_record(test, 0, dir + "/test_batch.bin", 0);
  check_image_is_record(test, 9999, dir + "/test_batch.bin", 9999);

  const Cifar10 train = Cifar10::load(dir, Split::train);
  REQUIRE(train.size() == 50000);
  for (int32_t label : train.labels()) REQUIRE((label >= 0 && label <= 9));
  check_image_is_record(train, 0, dir + "/data_batch_1.bin", 0);
  check_image_is_record(train, 10000, dir + "/data_batch_2.bin", 0);
  check_image_is_record(train, 49999, dir + "/data_batch_5.bin", 9999);
  // The images are not all alike (the data really was read).
  CHECK(!std::equal(train.image(0), train.image(0) + 3072, train.image(1)));
}

TEST_CASE("real CIFAR-10: a limit keeps the first records across files", "[cifar10][real]") {
  if (!real_data_present()) return;
  const std::string dir = NORMLAB_CIFAR10_DIR;
  Cifar10Options options;
  options.limit = 12345;
  const Cifar10 train = Cifar10::load(dir, Split::train, options);
  REQUIRE(train.size() == 12345);
  check_image_is_record(train, 12344, dir + "/data_batch_2.bin", 2344);
  options.limit = 0;
  CHECK(Cifar10::load(dir, Split::test, options).size() == 0);
}

TEST_CASE("synthetic files: records land in order with their labels", "[cifar10]") {
  testing::TempDir dir("cifar10_ok");
  write_dataset(dir, 3);
  const Cifar10 train = Cifar10::load(dir.str(), Split::train, any_size());
  REQUIRE(train.size() == 15);
  CHECK(train.label(4) == 1);  // record 1 of data_batch_2
  CHECK(train.image(4)[10] == ((1 * 7 + 10) & 0xFF));
  CHECK(train.class_names()[9] == "truck");
}

TEST_CASE("broken files give errors naming the file and the numbers", "[cifar10][errors]") {
  testing::TempDir dir("cifar10_bad");
  write_dataset(dir, 2);

  SECTION("truncated: not a whole number of records") {
    write_batch(dir.file("data_batch_3.bin"), {1, 2}, 100);
    REQUIRE_THROWS_WITH(Cifar10::load(dir.str(), Split::train, any_size()),
                        Catch::Contains("data_batch_3.bin") && Catch::Contains("6246 bytes") &&
                            Catch::Contains("multiple of the 3073"));
  }
  SECTION("wrong size for the official layout") {
    REQUIRE_THROWS_WITH(Cifar10::load(dir.str(), Split::test),
                        Catch::Contains("test_batch.bin") && Catch::Contains("has 6146 bytes") &&
                            Catch::Contains("expected 30730000"));
  }
  SECTION("bad label") {
    write_batch(dir.file("test_batch.bin"), {3, 12, 4});
    REQUIRE_THROWS_WITH(Cifar10::load(dir.str(), Split::test, any_size()),
                        Catch::Contains("test_batch.bin") && Catch::Contains("record 1") &&
                            Catch::Contains("label 12"));
  }
  SECTION("empty file") {
    write_batch(dir.file("data_batch_1.bin"), {});
    REQUIRE_THROWS_WITH(Cifar10::load(dir.str(), Split::train, any_size()),
                        Catch::Contains("data_batch_1.bin") && Catch::Contains("has 0 bytes"));
  }
  SECTION("missing file") {
    fs::remove(dir.file("data_batch_4.bin"));
    REQUIRE_THROWS_WITH(Cifar10::load(dir.str(), Split::train, any_size()),
                        Catch::Contains("missing file") && Catch::Contains("data_batch_4.bin"));
    // The test split does not need it.
    CHECK(Cifar10::load(dir.str(), Split::test, any_size()).size() == 2);
  }
  SECTION("missing class names") {
    fs::remove(dir.file("batches.meta.txt"));
    REQUIRE_THROWS_WITH(Cifar10::load(dir.str(), Split::test, any_size()),
                        Catch::Contains("batches.meta.txt"));
  }
  SECTION("empty directory") {
    testing::TempDir empty("cifar10_empty");
    REQUIRE_THROWS_WITH(Cifar10::load(empty.str(), Split::train, any_size()),
                        Catch::Contains("missing file") && Catch::Contains("data_batch_1.bin"));
  }
  SECTION("no such directory") {
    REQUIRE_THROWS_WITH(Cifar10::load(dir.file("nope"), Split::test),
                        Catch::Contains(dir.file("nope")) && Catch::Contains("does not exist"));
  }
}

TEST_CASE("find_cifar10_dir follows --data, $CIFAR10_DIR, then the defaults", "[cifar10][search]") {
  testing::TempDir data("cifar10_search");
  write_dataset(data, 1);
  testing::TempDir elsewhere("cifar10_cwd");
  const fs::path old_cwd = fs::current_path();
  const char* old_env = std::getenv("CIFAR10_DIR");
  const std::string saved_env = old_env ? old_env : "";
  fs::current_path(elsewhere.path());  // no ./data or ../shared here
  ::unsetenv("CIFAR10_DIR");

  CHECK(find_cifar10_dir(data.str()) == data.str());
  CHECK_THROWS_WITH(
      find_cifar10_dir(elsewhere.str()),
      Catch::Contains("--data " + elsewhere.str()) && Catch::Contains("download_cifar10.sh"));
  CHECK_THROWS_WITH(find_cifar10_dir(),
                    Catch::Contains("./data/cifar-10-batches-bin") &&
                        Catch::Contains("../shared/cifar10/cifar-10-batches-bin") &&
                        Catch::Contains("CIFAR10_DIR") && Catch::Contains("download_cifar10.sh"));
  ::setenv("CIFAR10_DIR", data.str().c_str(), 1);
  CHECK(find_cifar10_dir() == data.str());
  CHECK(find_cifar10_dir(data.str()) == data.str());
  ::setenv("CIFAR10_DIR", elsewhere.str().c_str(), 1);
  CHECK_THROWS_WITH(find_cifar10_dir(), Catch::Contains("CIFAR10_DIR=" + elsewhere.str()));
  ::unsetenv("CIFAR10_DIR");
  fs::create_directories(elsewhere.path() / "data");
  fs::create_directory_symlink(data.path(), elsewhere.path() / "data" / "cifar-10-batches-bin");
  CHECK(find_cifar10_dir() == "./data/cifar-10-batches-bin");

  fs::current_path(old_cwd);
  if (old_env) ::setenv("CIFAR10_DIR", saved_env.c_str(), 1);
}
