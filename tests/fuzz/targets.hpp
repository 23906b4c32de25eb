// The fuzz targets' bodies, shared by the libFuzzer programs (fuzz_cifar10.cpp,
// fuzz_checkpoint.cpp, built with clang by run_fuzzers.sh) and by the corpus replay test
// (tests/test_reliability_fuzz_corpus.cpp, built with the project's compiler in every CI run).
// A normlab::Error is the expected answer to bad bytes; any other exception, a crash, a sanitizer
// report or a broken invariant (__builtin_trap) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "normlab/data/cifar10.hpp"
#include "normlab/data/loader.hpp"
#include "normlab/io/module_state.hpp"
#include "normlab/nn/container.hpp"
#include "normlab/nn/layers.hpp"
#include "normlab/nn/norm.hpp"

namespace normlab::fuzz {

/// Input: byte 0 = options (bits 0-1: records_per_file 0/1/2/10000; bit 2: cut the batch file
/// down to whole records, so that most inputs reach the loader; bits 3-7: seed), byte 1 =
/// limit + 1 (0 = all), byte 2 = length L of batches.meta.txt, L bytes of it, the rest is
/// test_batch.bin. Loads the test split from those two files and, when that succeeds, runs a
/// training epoch (every augmentation, RandAugment always) and an evaluation pass over it.
inline int cifar10_reader(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const size_t meta_length = std::min<size_t>(data[2], size - 3);
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    const std::filesystem::path d = base / ("normlab_fuzz_cifar10_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  std::ofstream(dir / "batches.meta.txt", std::ios::binary)
      .write(reinterpret_cast<const char*>(data + 3), static_cast<std::streamsize>(meta_length));
  size_t batch_length = size - 3 - meta_length;
  if ((flags & 4) && batch_length >= data::kCifarRecordBytes)
    batch_length -= batch_length % data::kCifarRecordBytes;
  std::ofstream(dir / "test_batch.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(data + 3 + meta_length),
             static_cast<std::streamsize>(batch_length));
  data::Cifar10Options options;
  const int64_t records_per_file[4] = {0, 1, 2, data::kCifarRecordsPerFile};
  options.records_per_file = records_per_file[flags & 3];
  options.limit = static_cast<int64_t>(data[1]) - 1;
  try {
    const data::Cifar10 set = data::Cifar10::load(dir.string(), data::Split::test, options);
    if (set.class_names().size() != 10 || (options.limit >= 0 && set.size() > options.limit))
      __builtin_trap();
    for (int64_t i = 0; i < set.size(); ++i)
      if (set.label(i) < 0 || set.label(i) > 9) __builtin_trap();
    data::LoaderOptions train;
    train.batch_size = 3;
    train.prefetch = false;
    train.seed = flags >> 3;
    train.augmentation.randaugment_probability = 1.0;
    for (const data::LoaderOptions& o : {train, data::LoaderOptions::evaluation(2)}) {
      data::LoaderOptions single = o;
      single.prefetch = false;
      data::Loader loader(set, single);
      loader.start_epoch(1);
      int64_t seen = 0;
      while (const data::Batch* batch = loader.next()) {
        const float* x = batch->images.data();
        for (int64_t i = 0; i < batch->images.numel(); ++i)
          if (!(x[i] > -3.0f && x[i] < 3.0f))
            __builtin_trap();  // normalised pixels are within +-2.1
        seen += batch->size();
      }
      if (seen != set.size()) __builtin_trap();
    }
  } catch (const Error&) {
  }
  return 0;
}

/// Input: byte 0 = mode (bit 0: replace the last 8 bytes by the right checksum, so that the
/// parser's later checks are reached), the rest is a checkpoint file. Parses it, reads every
/// entry, checks that it serialises back to a file that parses to the same bytes, and loads it as
/// the state of a small model (Conv2d + BatchNorm2d), of its SGD optimizer and of an Rng.
inline int checkpoint_reader(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) && bytes.size() >= 8) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i + 8 < bytes.size(); ++i)
      h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ull;
    std::memcpy(&bytes[bytes.size() - 8], &h, 8);
  }
  io::Checkpoint ckpt;
  try {
    ckpt = io::Checkpoint::from_bytes(bytes, "fuzz input");
  } catch (const Error&) {
    return 0;
  }
  for (const std::string& name : ckpt.names()) {
    int kinds = 0;  // every entry must read as exactly one of: f32 tensor, f64 tensor, text
    const auto count = [&](auto read) {
      try {
        read();
        ++kinds;
      } catch (const Error&) {
      }
    };
    count([&] { ckpt.tensor<float>(name); });
    count([&] { ckpt.tensor<double>(name); });
    count([&] { ckpt.text(name); });
    if (kinds != 1) __builtin_trap();
  }
  const std::string again = ckpt.to_bytes();
  if (io::Checkpoint::from_bytes(again, "round trip").to_bytes() != again) __builtin_trap();

  static Rng init(1), dropout(2);
  static const auto model = [] {
    auto seq = std::make_shared<nn::Sequential<float>>();
    seq->add(std::make_shared<nn::Conv2d<float>>(3, 4, 3, nn::Conv2dOptions{1, 1, true}, init));
    seq->emplace<nn::BatchNorm2d<float>>(4);
    return seq;
  }();
  try {
    io::load_module_state(ckpt, *model);
  } catch (const Error&) {
  }
  try {
    optim::Sgd<float> sgd(model->parameters(), optim::SgdOptions{0.1, 0.9});
    io::load_sgd_state(ckpt, sgd, *model);
  } catch (const Error&) {
  }
  try {
    dropout.set_state(io::load_rng_state(ckpt, "rng"));
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace normlab::fuzz
