// Determinism and resume of the cifar10_norms binary, byte for byte: two runs with the same seed
// and thread count give identical outputs, and a run killed with SIGKILL in the middle of an
// epoch and continued with --resume ends with exactly the outputs of the uninterrupted run (CSV
// columns other than the timings, every checkpoint tensor and value other than timings and the
// command line, and the pictures).
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include "normlab/io/checkpoint.hpp"
#include "reliability/cifar_fixture.hpp"
#include "reliability/process.hpp"
#include "support/temp_dir.hpp"

using namespace normlab;
using normlab::testing::ProcessResult;
namespace fs = std::filesystem;

namespace {

const std::string kExe = CIFAR10_NORMS_EXE;

// GroupNorm first, then BatchNorm: the kill lands in BatchNorm's second epoch, so the resumed run
// skips a finished norm and restores a half-trained one with running statistics.
std::vector<std::string> run_args(const std::string& data, const std::string& out) {
  return {kExe,    "--data",        data,  "--out",        out,  "--norms",
          "gn,bn", "--epochs",      "3",   "--batch",      "32", "--threads",
          "2",     "--limit-train", "256", "--limit-test", "128"};
}

/// The CSV without its timing columns (seconds, images_per_second: the last two).
std::string csv_without_timings(const std::string& path) {
  std::istringstream in(testing::read_text_file(path));
  std::string line, out;
  while (std::getline(in, line)) {
    size_t cut = line.rfind(',');
    cut = line.rfind(',', cut - 1);
    out += line.substr(0, cut) + "\n";
  }
  return out;
}

/// Every entry of two checkpoints must be byte-identical, except the command line and the
/// timings (wall time; the last two metrics columns).
void require_same_checkpoint(const std::string& a_path, const std::string& b_path) {
  const io::Checkpoint a = io::Checkpoint::load(a_path), b = io::Checkpoint::load(b_path);
  REQUIRE(a.names() == b.names());
  int compared = 0;
  for (const std::string& name : a.names()) {
    INFO("checkpoint entry " << name);
    if (name == "command" || name == "wall_seconds") continue;
    if (name == "metrics") {
      const Tensor<double> x = a.tensor<double>(name), y = b.tensor<double>(name);
      REQUIRE(x.shape() == y.shape());
      for (int64_t e = 0; e < x.size(0); ++e)
        CHECK(std::memcmp(x.data() + e * 8, y.data() + e * 8, 6 * sizeof(double)) == 0);
    } else if (name.rfind("model.", 0) == 0 || name.rfind("optim.momentum.", 0) == 0) {
      const Tensor<float> x = a.tensor<float>(name), y = b.tensor<float>(name);
      REQUIRE(x.shape() == y.shape());
      CHECK(std::memcmp(x.data(), y.data(), static_cast<size_t>(x.numel()) * sizeof(float)) == 0);
      ++compared;
    } else {
      CHECK(a.text(name) == b.text(name));
    }
  }
  CHECK(compared > 20);
}

void require_same_outputs(const std::string& a, const std::string& b) {
  for (const std::string norm : {"gn", "bn"}) {
    INFO("norm " << norm);
    const std::string csv = csv_without_timings(a + "/" + norm + ".csv");
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 4);
    CHECK(csv == csv_without_timings(b + "/" + norm + ".csv"));
    require_same_checkpoint(a + "/" + norm + ".ckpt", b + "/" + norm + ".ckpt");
    for (const std::string picture : {"confusion_", "misclassified_"})
      CHECK(testing::read_text_file(a + "/" + picture + norm + ".png") ==
            testing::read_text_file(b + "/" + picture + norm + ".png"));
  }
  CHECK(testing::read_text_file(a + "/curves.png") == testing::read_text_file(b + "/curves.png"));
}

/// The number of epochs in a checkpoint, 0 when there is none yet.
int64_t checkpoint_epochs(const std::string& path) {
  if (!fs::exists(path)) return 0;
  return std::stoll(io::Checkpoint::load(path).text("epochs"));
}

}  // namespace

// No ';' in the name: CTest would split it into two names that match no test.
TEST_CASE("runs with the same seed and thread count are bit-identical, and so is a run killed and resumed",
          "[reliability][resume][determinism]") {
  testing::TempDir dir("resume");
  const std::string data = dir.file("data");
  testing::write_synthetic_cifar10(data, 256);

  const ProcessResult first =
      testing::run_process(run_args(data, dir.file("first")), dir.file("first"));
  INFO("first run:\n" << first.out << first.err);
  REQUIRE(first.exit_code == 0);
  const ProcessResult second =
      testing::run_process(run_args(data, dir.file("second")), dir.file("second"));
  REQUIRE(second.exit_code == 0);
  require_same_outputs(dir.file("first"), dir.file("second"));

  // Kill the third run while it trains BatchNorm's second epoch: once bn.ckpt holds epoch 1,
  // wait a quarter of the time an epoch took the first run, then SIGKILL.
  const std::string killed = dir.file("killed");
  int64_t epochs_at_kill = 0;
  {
    testing::Process process(run_args(data, killed), dir.file("killed_run"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (process.running() && checkpoint_epochs(killed + "/bn.ckpt") < 1 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    process.kill(SIGKILL);
    const ProcessResult r = process.wait();
    INFO("killed run:\n" << r.out << r.err);
    REQUIRE(r.signal == SIGKILL);  // it was still running: the kill interrupted it
    epochs_at_kill = checkpoint_epochs(killed + "/bn.ckpt");
  }
  INFO("BatchNorm epochs checkpointed when killed: " << epochs_at_kill);
  REQUIRE(epochs_at_kill >= 1);
  REQUIRE(epochs_at_kill < 3);
  CHECK(checkpoint_epochs(killed + "/gn.ckpt") == 3);

  std::vector<std::string> resume_args = run_args(data, killed);
  resume_args.push_back("--resume");
  const ProcessResult resumed = testing::run_process(resume_args, dir.file("resumed_run"));
  INFO("resumed run:\n" << resumed.out << resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.out, Catch::Contains("resuming GN after epoch 3 of 3"));
  CHECK_THAT(resumed.out, Catch::Contains("resuming BN after epoch " +
                                          std::to_string(epochs_at_kill) + " of 3"));
  require_same_outputs(dir.file("first"), killed);
  for (const auto& entry : fs::directory_iterator(killed))
    CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
}
