// The cifar10_norms binary on bad input: every case must end with a clear message and a non-zero
// exit code (2 for the command line, 1 for everything else), never with a crash or a signal.
// Data cases use a synthetic full-size CIFAR-10 directory (reliability/cifar_fixture.hpp) broken
// on purpose; divergence is provoked with --inject-nan and must keep the last good checkpoint.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "normlab/io/checkpoint.hpp"
#include "reliability/cifar_fixture.hpp"
#include "reliability/process.hpp"
#include "support/temp_dir.hpp"

using namespace normlab;
using normlab::testing::ProcessResult;
namespace fs = std::filesystem;

namespace {

const std::string kExe = CIFAR10_NORMS_EXE;

/// The tiny run every case starts from: 64 training and 32 test images, one or two epochs.
std::vector<std::string> tiny_run(const std::string& data, const std::string& out) {
  return {kExe, "--data",        data, "--out",        out,  "--norms",
          "gn", "--epochs",      "2",  "--batch",      "16", "--threads",
          "1",  "--limit-train", "64", "--limit-test", "32"};
}

ProcessResult run(std::vector<std::string> args, const testing::TempDir& dir,
                  const std::vector<std::string>& extra = {}) {
  args.insert(args.end(), extra.begin(), extra.end());
  static int count = 0;
  ProcessResult r = testing::run_process(args, dir.file("log" + std::to_string(count++)));
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.signal == 0);  // no crash, no abort
  return r;
}

/// Requires: the process failed with `code` and its error output contains every fragment.
void expect_failure(const ProcessResult& r, int code, const std::vector<std::string>& fragments) {
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.signal == 0);
  CHECK(r.exit_code == code);
  for (const std::string& f : fragments) CHECK_THAT(r.err, Catch::Contains(f));
}

void patch_byte(const std::string& path, int64_t offset, uint8_t value) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(offset);
  f.put(static_cast<char>(value));
}

}  // namespace

TEST_CASE("the synthetic data set trains (the fixture the error cases break)",
          "[reliability][cli]") {
  testing::TempDir dir("cli_ok");
  testing::write_synthetic_cifar10(dir.file("data"), 64);
  const ProcessResult r = run(tiny_run(dir.file("data"), dir.file("out")), dir);
  CHECK(r.exit_code == 0);
  CHECK(fs::exists(dir.file("out/gn.ckpt")));
  CHECK(fs::exists(dir.file("out/results.md")));
}

TEST_CASE("cifar10_norms --device cuda without a usable GPU says why and trains on the CPU", "[reliability][cli]") {
  testing::TempDir dir("cli_device");
  testing::write_synthetic_cifar10(dir.file("data"), 64);
  const ProcessResult r = run(tiny_run(dir.file("data"), dir.file("out")), dir, {"--device", "cuda"});
  if (r.err.find("--device cuda") == std::string::npos) {
    // A machine with a GPU and a build with nvcc: it trained on the GPU.
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("cuda:0"));
    return;
  }
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("cifar10_norms: --device cuda:0: ") &&
                        Catch::Contains("; training on the CPU instead"));
  CHECK_THAT(r.out, Catch::Contains(", cpu, 1 threads"));
  CHECK(fs::exists(dir.file("out/gn.ckpt")));
}

TEST_CASE("bad command lines exit with code 2 and name the flag", "[reliability][cli]") {
  testing::TempDir dir("cli_usage");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--epochs", "0"}, "--epochs expects an integer in [1, 1000], got '0'"},
      {{"--epochs", "3x"}, "--epochs expects an integer"},
      {{"--batch", "-5"}, "--batch expects an integer"},
      {{"--lr", "abc"}, "--lr expects a number"},
      {{"--lr", "nan"}, "--lr expects a number"},
      {{"--dropout", "1"}, "--dropout expects a number in [0"},
      {{"--weight-decay", "-1e-4"}, "--weight-decay expects a number in [0"},
      {{"--label-smoothing", "1"}, "--label-smoothing expects a number in [0"},
      {{"--device", "tpu"}, "--device expects 'cpu' or 'cuda', got 'tpu'"},
      {{"--groups", "3"}, "--groups must divide 16"},
      {{"--norms", "bn,xx"}, "unknown norm 'xx'"},
      {{"--norms", "gn,gn"}, "lists 'gn' twice"},
      {{"--recipe", "fast"}, "--recipe expects 'original' or 'tuned'"},
      {{"--limit-train", "0"}, "--limit-train expects an integer"},
      {{"--threads", "99999"}, "--threads expects an integer"},
      {{"--seed", "-1"}, "--seed expects an integer"},
      {{"--inject-nan", "2"}, "--inject-nan expects EPOCH:STEP"},
      {{"--inject-nan", "0:1"}, "--inject-nan (epoch) expects an integer"},
      {{"--data"}, "--data needs a value"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> command{kExe};
    command.insert(command.end(), args.begin(), args.end());
    INFO("arguments: " << Catch::Detail::stringify(args));
    expect_failure(run(command, dir), 2, {message});
  }
  const ProcessResult help = run({kExe, "--help"}, dir);
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("--resume"));
}

TEST_CASE("missing, truncated, oversized and corrupt data files are reported by name",
          "[reliability][cli][data]") {
  testing::TempDir dir("cli_data");
  const std::string data = dir.file("data"), out = dir.file("out");
  auto fresh = [&] {
    fs::remove_all(data);
    testing::write_synthetic_cifar10(data, 64);
  };
  const int64_t full = data::kCifarRecordsPerFile * data::kCifarRecordBytes;

  SECTION("empty data directory") {
    fs::create_directories(data);
    expect_failure(run(tiny_run(data, out), dir), 1, {"--data " + data, "no test_batch.bin"});
  }
  SECTION("data directory that does not exist") {
    expect_failure(run(tiny_run(dir.file("absent"), out), dir), 1, {"absent", "no test_batch.bin"});
  }
  SECTION("missing training file") {
    fresh();
    fs::remove(fs::path(data) / "data_batch_4.bin");
    expect_failure(run(tiny_run(data, out), dir), 1, {"missing file", "data_batch_4.bin"});
  }
  SECTION("truncated file") {
    fresh();
    fs::resize_file(fs::path(data) / "data_batch_2.bin", static_cast<uintmax_t>(full - 1));
    expect_failure(run(tiny_run(data, out), dir), 1,
                   {"data_batch_2.bin has " + std::to_string(full - 1) + " bytes, expected " +
                        std::to_string(full),
                    "truncated"});
  }
  SECTION("oversized file") {
    fresh();
    fs::resize_file(fs::path(data) / "test_batch.bin", static_cast<uintmax_t>(full + 3073));
    expect_failure(run(tiny_run(data, out), dir), 1,
                   {"test_batch.bin has " + std::to_string(full + 3073) + " bytes"});
  }
  SECTION("empty file") {
    fresh();
    fs::resize_file(fs::path(data) / "data_batch_1.bin", 0);
    expect_failure(run(tiny_run(data, out), dir), 1, {"data_batch_1.bin has 0 bytes"});
  }
  SECTION("training label outside 0-9") {
    fresh();
    patch_byte((fs::path(data) / "data_batch_1.bin").string(), 5 * 3073, 12);
    expect_failure(run(tiny_run(data, out), dir), 1,
                   {"data_batch_1.bin: record 5 (byte offset 15365) has label 12, expected 0-9"});
  }
  SECTION("test label outside 0-9") {
    fresh();
    patch_byte((fs::path(data) / "test_batch.bin").string(), 31 * 3073, 255);
    expect_failure(run(tiny_run(data, out), dir), 1,
                   {"test_batch.bin: record 31", "has label 255"});
  }
  SECTION("class names file with 9 names") {
    fresh();
    std::ofstream(fs::path(data) / "batches.meta.txt") << "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
    expect_failure(run(tiny_run(data, out), dir), 1,
                   {"batches.meta.txt has 9 class names, expected 10"});
  }
  SECTION("a data file that is a directory") {
    fresh();
    fs::remove(fs::path(data) / "data_batch_3.bin");
    fs::create_directories(fs::path(data) / "data_batch_3.bin");
    expect_failure(run(tiny_run(data, out), dir), 1, {"missing file", "data_batch_3.bin"});
  }
}

TEST_CASE("an output directory that cannot be created or written is reported before training",
          "[reliability][cli]") {
  testing::TempDir dir("cli_out");
  testing::write_synthetic_cifar10(dir.file("data"), 64);
  std::ofstream(dir.file("a_file")) << "x";
  expect_failure(run(tiny_run(dir.file("data"), dir.file("a_file/out")), dir), 1,
                 {"cannot create the output directory", "a_file/out"});
  // /proc is a directory nobody (root included) can create files in.
  expect_failure(run(tiny_run(dir.file("data"), "/proc"), dir), 1,
                 {"output directory '/proc' is not writable"});
}

TEST_CASE(
    "a loss that becomes NaN stops the run, names epoch and step, keeps the last good checkpoint",
    "[reliability][cli][divergence]") {
  testing::TempDir dir("cli_nan");
  const std::string data = dir.file("data"), out = dir.file("out");
  testing::write_synthetic_cifar10(data, 64);

  const ProcessResult r = run(tiny_run(data, out), dir, {"--epochs", "3", "--inject-nan", "2:3"});
  expect_failure(
      r, 1,
      {"training gn diverged at epoch 2, step 3: the training loss is NaN",
       "the last good checkpoint (after epoch 1) is kept in " + out + "/gn.ckpt"});
  const io::Checkpoint ckpt = io::Checkpoint::load(out + "/gn.ckpt");
  CHECK(ckpt.text("epochs") == "1");
  for (const std::string& name : ckpt.names())
    if (name.rfind("model.", 0) == 0)
      for (float v : ckpt.tensor<float>(name).to_vector()) REQUIRE(std::isfinite(v));
  const std::string csv = testing::read_text_file(out + "/gn.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 2);  // header + epoch 1

  // The kept checkpoint resumes: the run finishes without the injected NaN.
  const ProcessResult resumed = run(tiny_run(data, out), dir, {"--epochs", "3", "--resume"});
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.out, Catch::Contains("resuming GN after epoch 1 of 3"));

  // In the first epoch there is no checkpoint to keep.
  const ProcessResult first = run(tiny_run(data, dir.file("out1")), dir, {"--inject-nan", "1:1"});
  expect_failure(first, 1, {"diverged at epoch 1, step 1", "no checkpoint was written for it"});
  CHECK_FALSE(fs::exists(dir.file("out1/gn.ckpt")));
}

TEST_CASE("resuming rejects damaged checkpoints and checkpoints of other runs",
          "[reliability][cli][resume]") {
  testing::TempDir dir("cli_resume");
  const std::string data = dir.file("data"), out = dir.file("out"), ckpt_path = out + "/gn.ckpt";
  testing::write_synthetic_cifar10(data, 64);
  REQUIRE(run(tiny_run(data, out), dir, {"--epochs", "1"}).exit_code == 0);
  const std::string good = testing::read_text_file(ckpt_path);
  auto write = [&](const std::string& bytes) {
    std::ofstream(ckpt_path, std::ios::binary) << bytes;
  };
  const auto resume = [&](const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = extra;
    args.push_back("--resume");
    if (std::find(extra.begin(), extra.end(), "--epochs") == extra.end())
      args.insert(args.end(), {"--epochs", "1"});
    return run(tiny_run(data, out), dir, args);
  };

  SECTION("a flipped byte fails the checksum") {
    std::string bad = good;
    bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x10);
    write(bad);
    expect_failure(resume(), 1, {"gn.ckpt' is corrupt: checksum mismatch"});
  }
  SECTION("a truncated checkpoint") {
    write(good.substr(0, 100));
    expect_failure(resume(), 1, {"gn.ckpt", "checksum mismatch"});
  }
  SECTION("not a checkpoint") {
    write("hello");
    expect_failure(resume(), 1, {"is not a normlab checkpoint"});
  }
  SECTION("another format version") {
    io::Checkpoint ckpt = io::Checkpoint::load(ckpt_path);
    std::string bytes = ckpt.to_bytes();
    bytes[8] = 2;  // the u32 version after the 8-byte magic
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i + 8 < bytes.size(); ++i)
      h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ull;
    std::memcpy(&bytes[bytes.size() - 8], &h, 8);
    write(bytes);
    expect_failure(resume(), 1, {"has format version 2, this build reads version 1"});
  }
  SECTION("a checkpoint of a run with other settings") {
    expect_failure(resume({"--seed", "5"}), 1,
                   {"belongs to a run with other settings", "seed 1", "seed 5"});
    expect_failure(resume({"--epochs", "4"}), 1, {"epochs 1", "epochs 4"});
    expect_failure(resume({"--limit-train", "48"}), 1, {"train_images 64", "train_images 48"});
  }
  SECTION("a model tensor of the wrong shape") {
    io::Checkpoint ckpt = io::Checkpoint::load(ckpt_path);
    ckpt.put_tensor("model.0.weight", Tensor<float>::zeros({8, 3, 3, 3}));
    ckpt.save(ckpt_path);
    expect_failure(resume(), 1,
                   {"'model.0.weight' has shape [8, 3, 3, 3], the model expects [16, 3, 3, 3]"});
  }
  SECTION("an entry the model does not have (a BatchNorm checkpoint for GroupNorm)") {
    io::Checkpoint ckpt = io::Checkpoint::load(ckpt_path);
    ckpt.put_tensor("model.1.running_mean", Tensor<float>::zeros({16}));
    ckpt.save(ckpt_path);
    expect_failure(resume(), 1,
                   {"'model.1.running_mean' is not a parameter or buffer of the model"});
  }
  SECTION("a missing momentum buffer") {
    io::Checkpoint bad;
    const io::Checkpoint ckpt = io::Checkpoint::load(ckpt_path);
    for (const std::string& name : ckpt.names()) {
      if (name == "optim.momentum.0.weight") continue;
      if (name.rfind("model.", 0) == 0 || name.rfind("optim.momentum.", 0) == 0)
        bad.put_tensor(name, ckpt.tensor<float>(name));
      else if (name == "metrics" || name == "wall_seconds")
        bad.put_tensor(name, ckpt.tensor<double>(name));
      else
        bad.put_text(name, ckpt.text(name));
    }
    bad.save(ckpt_path);
    expect_failure(resume(), 1, {"no entry 'optim.momentum.0.weight'"});
  }
}
