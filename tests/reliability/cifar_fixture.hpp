// A synthetic CIFAR-10 directory in the official layout that cifar10_norms accepts: every batch
// file has the full 30,730,000 bytes, but only the first `records` records are written (sparse
// files: the rest read as zeros, i.e. black images of class 0), so it costs a few hundred KB of
// disk. The written records are learnable: class k brightens colour channel k % 3 in a
// k-dependent band of rows, plus seeded noise.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "normlab/core/rng.hpp"
#include "normlab/data/cifar10.hpp"

namespace normlab::testing {

inline void write_synthetic_cifar10(const std::string& dir, int64_t records, uint64_t seed = 7) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
  Rng rng(seed);
  std::vector<std::string> files = data::cifar10_files(data::Split::train);
  files.push_back("test_batch.bin");
  for (const std::string& name : files) {
    const fs::path path = fs::path(dir) / name;
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      std::vector<char> record(data::kCifarRecordBytes);
      for (int64_t r = 0; r < records; ++r) {
        const int label = static_cast<int>(rng.below(10));
        record[0] = static_cast<char>(label);
        for (int64_t i = 0; i < data::kCifarImageBytes; ++i) {
          const int64_t channel = i / 1024, row = (i % 1024) / 32;
          const bool band = channel == label % 3 && row / 4 == label % 8;
          record[static_cast<size_t>(1 + i)] = static_cast<char>((band ? 160 : 40) + rng.below(64));
        }
        out.write(record.data(), static_cast<std::streamsize>(record.size()));
      }
    }
    fs::resize_file(path,
                    static_cast<uintmax_t>(data::kCifarRecordsPerFile * data::kCifarRecordBytes));
  }
}

}  // namespace normlab::testing
