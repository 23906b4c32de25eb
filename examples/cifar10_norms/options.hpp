// Command line of cifar10_norms: every flag, its default, and strict parsing (an unknown flag or
// a bad value is a UsageError, which main() reports with exit code 2).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "normlab/models/cifar_resnet.hpp"
#include "recipe.hpp"

namespace cifar10_norms {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string data_dir;                    // empty: search (see normlab::data::find_cifar10_dir)
  std::string out_dir = "runs/cifar10_norms";
  std::vector<normlab::models::NormKind> norms{normlab::models::NormKind::Batch,
                                               normlab::models::NormKind::Group,
                                               normlab::models::NormKind::Layer};
  std::string recipe = "original";         // original | tuned
  int64_t epochs = 20;
  int64_t batch = 64;
  RecipeOverrides recipe_overrides;        // --lr, --weight-decay, --label-smoothing (< 0: the recipe's)
  int64_t groups = 4;
  double dropout = 0.02;
  uint64_t seed = 1;
  int threads = 0;                         // 0: all cores
  normlab::Device device = normlab::Device::cpu();  // --device; run() falls back to the CPU without a GPU
  int64_t limit_train = -1;                // < 0: all 50,000
  int64_t limit_test = -1;                 // < 0: all 10,000
  bool augment = true;
  double randaugment = 0.25;               // probability of the RandAugment policy per image
  int64_t misclassified = 10;              // images in each misclassified grid
  bool resume = false;                     // continue from the checkpoints in out_dir
  int64_t nan_epoch = 0, nan_step = 0;     // testing: poison this (1-based) step's batch with a NaN
  bool help = false;
  std::string command_line;
};

inline const char* usage_text() {
  return R"(cifar10_norms: train the comparison's residual CNN (40,394 parameters) on CIFAR-10 with
BatchNorm, GroupNorm and LayerNorm, and write tables, curves and image grids.

Usage: cifar10_norms [options]
  --data DIR          CIFAR-10 binary directory (data_batch_1..5.bin, test_batch.bin); default:
                      $CIFAR10_DIR, ./data/cifar-10-batches-bin, ../shared/cifar10/cifar-10-batches-bin
  --out DIR           output directory (default runs/cifar10_norms)
  --norms LIST        comma-separated subset of bn,gn,ln (default bn,gn,ln)
  --recipe NAME       original (SGD lr 0.01 momentum 0.9, StepLR 8/0.1) or tuned (per-norm
                      warm-up + cosine, Nesterov, weight decay, label smoothing; see docs)
  --epochs N          epochs per norm (default 20)
  --batch N           training batch size (default 64)
  --lr X              peak learning rate (default: the recipe's)
  --weight-decay X    SGD weight decay (default: the recipe's, 0 original, 5e-4 tuned)
  --label-smoothing X label smoothing of the loss in [0, 1) (default: the recipe's, 0)
  --groups G          GroupNorm groups; must divide 16 (default 4)
  --dropout P         dropout probability after every norm (default 0.02)
  --seed S            seed of initialisation, shuffling, augmentation and dropout (default 1)
  --threads N         CPU threads (default: all cores)
  --device D          cpu (default) or cuda: train on the GPU (a build with nvcc; without a GPU,
                      or in a build without CUDA, it says why and trains on the CPU)
  --limit-train N     use the first N training images (default all 50,000)
  --limit-test N      use the first N test images (default all 10,000)
  --no-augment        no random crop, flip or RandAugment
  --randaugment P     probability of applying RandAugment to an image (default 0.25; 0 = off)
  --misclassified N   images in each misclassified_*.png grid (default 10)
  --resume            continue an interrupted run from the per-epoch checkpoints {norm}.ckpt in
                      --out (same options required; finished norms are not trained again). With
                      the same thread count the results are bit-identical to an uninterrupted run
  --help              this text

Testing:
  --inject-nan E:S    put a NaN into the first pixel of step S of epoch E (1-based), so the loss
                      becomes NaN there: checks that divergence stops the run with a clear error
)";
}

namespace detail {
inline int64_t parse_int(const std::string& flag, const std::string& text, int64_t low, int64_t high) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || v < low || v > high)
    throw UsageError(flag + " expects an integer in [" + std::to_string(low) + ", " + std::to_string(high) +
                     "], got '" + text + "'");
  return v;
}
inline double parse_real(const std::string& flag, const std::string& text, double low, double high, bool open_high) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || !(v >= low) || (open_high ? !(v < high) : !(v <= high)))
    throw UsageError(flag + " expects a number in [" + std::to_string(low) + ", " + std::to_string(high) +
                     (open_high ? ")" : "]") + ", got '" + text + "'");
  return v;
}
}  // namespace detail

/// Ensures: the options of argv, or a UsageError naming the flag and the value.
inline Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 0; i < argc; ++i) o.command_line += (i ? " " : "") + std::string(argv[i]);
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") o.help = true;
    else if (flag == "--data") o.data_dir = value();
    else if (flag == "--out") o.out_dir = value();
    else if (flag == "--norms") {
      o.norms.clear();
      std::string list = value(), item;
      for (size_t start = 0; start <= list.size();) {
        const size_t comma = std::min(list.find(',', start), list.size());
        item = list.substr(start, comma - start);
        try {
          const auto kind = normlab::models::parse_norm_kind(item);
          for (auto k : o.norms)
            if (k == kind) throw UsageError("--norms lists '" + item + "' twice");
          o.norms.push_back(kind);
        } catch (const normlab::Error& e) {
          throw UsageError(std::string("--norms: ") + e.what());
        }
        start = comma + 1;
      }
    } else if (flag == "--recipe") {
      o.recipe = value();
      if (o.recipe != "original" && o.recipe != "tuned")
        throw UsageError("--recipe expects 'original' or 'tuned', got '" + o.recipe + "'");
    } else if (flag == "--epochs") o.epochs = detail::parse_int(flag, value(), 1, 1000);
    else if (flag == "--batch") o.batch = detail::parse_int(flag, value(), 1, 65536);
    else if (flag == "--lr") o.recipe_overrides.lr = detail::parse_real(flag, value(), 0.0, 10.0, false);
    else if (flag == "--weight-decay")
      o.recipe_overrides.weight_decay = detail::parse_real(flag, value(), 0.0, 1.0, false);
    else if (flag == "--label-smoothing")
      o.recipe_overrides.label_smoothing = detail::parse_real(flag, value(), 0.0, 1.0, true);
    else if (flag == "--groups") o.groups = detail::parse_int(flag, value(), 1, 16);
    else if (flag == "--dropout") o.dropout = detail::parse_real(flag, value(), 0.0, 1.0, true);
    else if (flag == "--seed") o.seed = static_cast<uint64_t>(detail::parse_int(flag, value(), 0, INT64_MAX));
    else if (flag == "--threads") o.threads = static_cast<int>(detail::parse_int(flag, value(), 1, 1024));
    else if (flag == "--device") {
      const std::string d = value();
      if (d != "cpu" && d != "cuda") throw UsageError("--device expects 'cpu' or 'cuda', got '" + d + "'");
      o.device = d == "cuda" ? normlab::Device::cuda() : normlab::Device::cpu();
    }
    else if (flag == "--limit-train") o.limit_train = detail::parse_int(flag, value(), 1, 50000);
    else if (flag == "--limit-test") o.limit_test = detail::parse_int(flag, value(), 1, 10000);
    else if (flag == "--no-augment") o.augment = false;
    else if (flag == "--randaugment") o.randaugment = detail::parse_real(flag, value(), 0.0, 1.0, false);
    else if (flag == "--misclassified") o.misclassified = detail::parse_int(flag, value(), 1, 1000);
    else if (flag == "--resume") o.resume = true;
    else if (flag == "--inject-nan") {
      const std::string text = value();
      const size_t colon = text.find(':');
      if (colon == std::string::npos) throw UsageError("--inject-nan expects EPOCH:STEP, got '" + text + "'");
      o.nan_epoch = detail::parse_int(flag + " (epoch)", text.substr(0, colon), 1, 1000);
      o.nan_step = detail::parse_int(flag + " (step)", text.substr(colon + 1), 1, INT64_MAX);
    }
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  if (16 % o.groups != 0) throw UsageError("--groups must divide 16 and 32, got " + std::to_string(o.groups));
  return o;
}

inline std::string output_path(const Options& o, const std::string& file) { return o.out_dir + "/" + file; }

}  // namespace cifar10_norms
