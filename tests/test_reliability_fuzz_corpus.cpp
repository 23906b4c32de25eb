// Replays the fuzzers' committed inputs (tests/fuzz/corpus/<target>/ and the crash reproducers in
// tests/fuzz/regressions/<target>/) through the fuzz targets' bodies, so every CI run, with the
// project's compiler and in the sanitizer build, checks them without libFuzzer.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/targets.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kFuzzDir = fs::path(__FILE__).parent_path() / "fuzz";

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Runs every committed input of `target` through `body`; returns how many there were.
int replay(const std::string& target, int (*body)(const uint8_t*, size_t)) {
  int count = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = kFuzzDir / kind / target;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      INFO(entry.path().string());
      const std::string bytes = read_bytes(entry.path());
      CHECK(body(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
      ++count;
    }
  }
  return count;
}

}  // namespace

TEST_CASE("fuzz inputs of the CIFAR-10 reader replay cleanly", "[reliability][fuzz]") {
  CHECK(replay("cifar10", normlab::fuzz::cifar10_reader) >= 5);
}

TEST_CASE("fuzz inputs of the checkpoint reader replay cleanly", "[reliability][fuzz]") {
  CHECK(replay("checkpoint", normlab::fuzz::checkpoint_reader) >= 4);
  // The seed of the model state is a valid checkpoint (so the fuzzer starts from deep inputs).
  const std::string seed = read_bytes(kFuzzDir / "corpus" / "checkpoint" / "model_state");
  const auto ckpt = normlab::io::Checkpoint::from_bytes(seed.substr(1), "model_state");
  CHECK(ckpt.has("model.1.running_var"));
  CHECK(ckpt.has("optim.momentum.0.weight"));
}
