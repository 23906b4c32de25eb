// CIFAR-10 reader for the official "binary version" layout: data_batch_1.bin .. data_batch_5.bin
// (training, 50,000 images), test_batch.bin (10,000 images) and batches.meta.txt (the 10 class
// names, one per line). A record is 3,073 bytes: the label byte (0-9), then the 32x32 red, green
// and blue planes, each row-major; so a record's pixels are already in CHW order and are copied
// as they are. Every file is checked before anything is read (it exists, its size is a whole
// number of records, and by default exactly 10,000 of them), every label is checked while
// reading, and each failure is a normlab::Error naming the file and the values involved.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab::data {

constexpr int kCifarChannels = 3;
constexpr int kCifarSide = 32;
constexpr int64_t kCifarImageBytes = kCifarChannels * kCifarSide * kCifarSide;  // 3,072
constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;                     // 3,073
constexpr int kCifarClasses = 10;
constexpr int64_t kCifarRecordsPerFile = 10000;

enum class Split { train, test };

inline const char* split_name(Split split) { return split == Split::train ? "train" : "test"; }

/// Ensures: the file names of a split in reading order.
inline std::vector<std::string> cifar10_files(Split split) {
  if (split == Split::test) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
          "data_batch_5.bin"};
}

struct Cifar10Options {
  /// Read at most this many records (the first ones, in file order); negative = all.
  int64_t limit = -1;
  /// Records each file must hold: 10,000 for the official files; 0 accepts any positive whole
  /// number of records (for subsets and for tests).
  int64_t records_per_file = kCifarRecordsPerFile;
};

/// One split of CIFAR-10 in memory: images as uint8 [N][3][32][32] (CHW, the file's order) and
/// labels as int32 in 0-9.
class Cifar10 {
 public:
  Cifar10() = default;
  /// Requires: images.size() == 3,072 * labels.size(). For data built in memory (subsets, tests);
  /// labels are checked by whoever consumes them (the Loader does).
  Cifar10(std::vector<uint8_t> images, std::vector<int32_t> labels,
          std::vector<std::string> class_names)
      : images_(std::move(images)),
        labels_(std::move(labels)),
        class_names_(std::move(class_names)) {
    NORMLAB_CHECK(images_.size() == labels_.size() * static_cast<size_t>(kCifarImageBytes),
                  "Cifar10: ", images_.size(), " image bytes for ", labels_.size(),
                  " labels (expected ", labels_.size() * kCifarImageBytes, ")");
  }

  /// Requires: `dir` holds the split's files (see the file comment).
  /// Ensures: the first min(limit, total) records of the split, in file order; every label in
  /// 0-9; class_names() has the 10 names of batches.meta.txt. Throws normlab::Error naming the
  /// file otherwise, and nothing is returned.
  static Cifar10 load(const std::string& dir, Split split, const Cifar10Options& options = {});

  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  /// Requires: 0 <= i < size(). Ensures: the 3,072 bytes of image i, CHW.
  const uint8_t* image(int64_t i) const { return images_.data() + i * kCifarImageBytes; }
  int32_t label(int64_t i) const { return labels_[static_cast<size_t>(i)]; }
  const std::vector<uint8_t>& images() const { return images_; }
  const std::vector<int32_t>& labels() const { return labels_; }
  const std::vector<std::string>& class_names() const { return class_names_; }

 private:
  std::vector<uint8_t> images_;
  std::vector<int32_t> labels_;
  std::vector<std::string> class_names_;
};

/// Requires: `dir` holds batches.meta.txt. Ensures: its 10 non-empty lines (trailing blank lines
/// and '\r' ignored), or a normlab::Error naming the file.
inline std::vector<std::string> read_cifar10_class_names(const std::string& dir) {
  const std::filesystem::path path = std::filesystem::path(dir) / "batches.meta.txt";
  std::ifstream in(path);
  NORMLAB_CHECK(in.good(), "CIFAR-10: cannot open ", path.string(), " (the class names file)");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  NORMLAB_CHECK(names.size() == kCifarClasses, "CIFAR-10: ", path.string(), " has ", names.size(),
                " class names, expected ", kCifarClasses);
  return names;
}

inline Cifar10 Cifar10::load(const std::string& dir, Split split, const Cifar10Options& options) {
  namespace fs = std::filesystem;
  NORMLAB_CHECK(options.records_per_file >= 0, "CIFAR-10: records_per_file must be >= 0, got ",
                options.records_per_file);
  std::error_code ec;
  NORMLAB_CHECK(fs::is_directory(dir, ec), "CIFAR-10: data directory ", dir, " does not exist");

  // Check every file of the split before reading any, so a bad download fails at once.
  const std::vector<std::string> names = cifar10_files(split);
  std::vector<int64_t> records(names.size());
  int64_t total = 0;
  for (size_t f = 0; f < names.size(); ++f) {
    const fs::path path = fs::path(dir) / names[f];
    NORMLAB_CHECK(fs::is_regular_file(path, ec), "CIFAR-10: missing file ", path.string(), " (the ",
                  split_name(split), " split needs ",
                  names.size() == 1 ? names[0] : "data_batch_1..5.bin", ")");
    const int64_t bytes = static_cast<int64_t>(fs::file_size(path, ec));
    NORMLAB_CHECK(!ec, "CIFAR-10: cannot read the size of ", path.string(), ": ", ec.message());
    if (options.records_per_file > 0) {
      const int64_t expected = options.records_per_file * kCifarRecordBytes;
      NORMLAB_CHECK(bytes == expected, "CIFAR-10: ", path.string(), " has ", bytes,
                    " bytes, expected ", expected, " (", options.records_per_file, " records of ",
                    kCifarRecordBytes,
                    " bytes); the file is truncated or not a CIFAR-10 binary batch");
    } else {
      NORMLAB_CHECK(bytes > 0 && bytes % kCifarRecordBytes == 0, "CIFAR-10: ", path.string(),
                    " has ", bytes, " bytes, expected a positive multiple of the ",
                    kCifarRecordBytes, "-byte record (", bytes / kCifarRecordBytes,
                    " whole records and ", bytes % kCifarRecordBytes, " bytes left over)");
    }
    records[f] = bytes / kCifarRecordBytes;
    total += records[f];
  }
  const std::vector<std::string> class_names = read_cifar10_class_names(dir);

  const int64_t wanted = options.limit < 0 ? total : std::min(options.limit, total);
  std::vector<uint8_t> images(static_cast<size_t>(wanted * kCifarImageBytes));
  std::vector<int32_t> labels(static_cast<size_t>(wanted));
  std::vector<uint8_t> chunk;
  int64_t done = 0;
  for (size_t f = 0; f < names.size() && done < wanted; ++f) {
    const fs::path path = fs::path(dir) / names[f];
    const int64_t count = std::min(records[f], wanted - done);
    chunk.resize(static_cast<size_t>(count * kCifarRecordBytes));
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(chunk.data()), static_cast<std::streamsize>(chunk.size()));
    NORMLAB_CHECK(in.gcount() == static_cast<std::streamsize>(chunk.size()), "CIFAR-10: reading ",
                  path.string(), ": got ", in.gcount(), " bytes, expected ", chunk.size());
    for (int64_t r = 0; r < count; ++r) {
      const uint8_t* record = chunk.data() + r * kCifarRecordBytes;
      NORMLAB_CHECK(record[0] < kCifarClasses, "CIFAR-10: ", path.string(), ": record ", r,
                    " (byte offset ", r * kCifarRecordBytes, ") has label ", int(record[0]),
                    ", expected 0-", kCifarClasses - 1);
      labels[static_cast<size_t>(done + r)] = record[0];
      std::copy(record + 1, record + kCifarRecordBytes,
                images.data() + (done + r) * kCifarImageBytes);
    }
    done += count;
  }
  return Cifar10(std::move(images), std::move(labels), class_names);
}

/// The data directory per the search order of the cifar10_norms example:
///   1. `cli_dir` (the --data value) when not empty;
///   2. the environment variable CIFAR10_DIR when set and not empty;
///   3. ./data/cifar-10-batches-bin;
///   4. ../shared/cifar10/cifar-10-batches-bin.
/// A directory qualifies when it holds test_batch.bin. An explicit choice (1 or 2) that does
/// not qualify is an error of its own (it is never silently replaced by a default).
/// Ensures: the first qualifying directory, or a normlab::Error listing every place looked at and
/// how to get the data.
inline std::string find_cifar10_dir(const std::string& cli_dir = "") {
  namespace fs = std::filesystem;
  const auto qualifies = [](const std::string& dir) {
    std::error_code ec;
    return fs::is_regular_file(fs::path(dir) / "test_batch.bin", ec);
  };
  const std::string how_to_get =
      "Get the data with scripts/download_cifar10.sh (downloads the official CIFAR-10 binary "
      "version into ./data/cifar-10-batches-bin), or pass --data DIR / set CIFAR10_DIR to a "
      "directory holding data_batch_1..5.bin, test_batch.bin and batches.meta.txt.";
  if (!cli_dir.empty()) {
    NORMLAB_CHECK(qualifies(cli_dir), "CIFAR-10: --data ", cli_dir,
                  " does not hold the CIFAR-10 binary files (no test_batch.bin there). ",
                  how_to_get);
    return cli_dir;
  }
  const char* env = std::getenv("CIFAR10_DIR");
  if (env != nullptr && env[0] != '\0') {
    NORMLAB_CHECK(qualifies(env), "CIFAR-10: CIFAR10_DIR=", env,
                  " does not hold the CIFAR-10 binary files (no test_batch.bin there). ",
                  how_to_get);
    return env;
  }
  const std::array<std::string, 2> defaults = {"./data/cifar-10-batches-bin",
                                               "../shared/cifar10/cifar-10-batches-bin"};
  for (const std::string& dir : defaults)
    if (qualifies(dir)) return dir;
  std::error_code ec;
  throw Error(detail::concat(
      "CIFAR-10 data not found. Looked in: --data (not given), $CIFAR10_DIR (not set), ",
      defaults[0], ", ", defaults[1], " (relative to ", fs::current_path(ec).string(), "). ",
      how_to_get));
}

}  // namespace normlab::data
