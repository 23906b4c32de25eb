// cifar10_norms: the BatchNorm / GroupNorm / LayerNorm comparison on CIFAR-10 (see
// docs/cifar10_norms.md). Trains the same 40,394-parameter residual CNN once per norm from the
// same seed and writes the tables, curves and image grids listed in report.hpp to --out, and a
// checkpoint per norm after every epoch (training_state.hpp) from which --resume continues.
//
// Exit codes: 0 success, 1 runtime error (data, files, divergence), 2 bad command line.
#include <cstdio>
#include <filesystem>

#include "experiment.hpp"
#include "normlab/core/parallel.hpp"
#include "normlab/nn/summary.hpp"
#include "normlab/ops/backend.hpp"
#include "options.hpp"
#include "report.hpp"
#include "training_state.hpp"

using namespace cifar10_norms;

namespace {

/// Requires: nothing. Ensures: `dir` exists and a file can be written in it, or an Error saying
/// why not (checked before the data are read, so a bad --out fails at once).
void prepare_output_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  NORMLAB_CHECK(fs::is_directory(dir), "cannot create the output directory '", dir, "'",
                ec ? ": " + ec.message() : "");
  const std::string probe = dir + "/.cifar10_norms_write_test";
  try {
    normlab::io::write_file_atomic(probe, "", "output directory check");
  } catch (const normlab::Error& e) {
    throw normlab::Error("the output directory '" + dir + "' is not writable (" + e.what() + ")");
  }
  fs::remove(probe, ec);
}

/// Ensures: temporary files that an interrupted atomic write of one of our outputs left in the
/// output directory ("<output>.tmp-<pid>-<n>") are removed; nothing else is touched.
void remove_stale_temporaries(const Options& o) {
  namespace fs = std::filesystem;
  std::vector<std::string> outputs{"summary.txt", "results.md", "curves.png"};
  for (const auto kind : {normlab::models::NormKind::Batch, normlab::models::NormKind::Group,
                          normlab::models::NormKind::Layer}) {
    const std::string name = normlab::models::norm_kind_name(kind);
    for (const std::string& file : {name + ".ckpt", name + ".csv", "misclassified_" + name + ".png",
                                    "confusion_" + name + ".png"})
      outputs.push_back(file);
  }
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(o.out_dir, ec)) {
    const std::string file = entry.path().filename().string();
    for (const std::string& output : outputs)
      if (file.compare(0, output.size() + 5, output + ".tmp-") == 0) stale.push_back(entry.path());
  }
  for (const fs::path& path : stale) fs::remove(path, ec);
}

/// Ensures: the device to train on: the requested one, or the CPU (saying why on stderr) when
/// this program or machine cannot run CUDA tensors.
normlab::Device usable_device(normlab::Device requested) {
  const std::string reason = normlab::ops::device_unavailable_reason(requested.type);
  if (reason.empty()) return requested;
  std::fprintf(stderr, "cifar10_norms: --device %s: %s; training on the CPU instead\n", requested.str().c_str(),
               reason.c_str());
  return normlab::Device::cpu();
}

int run(Options o) {
  if (o.threads > 0) normlab::set_num_threads(o.threads);
  o.device = usable_device(o.device);
  prepare_output_dir(o.out_dir);
  remove_stale_temporaries(o);
  const std::string data_dir = normlab::data::find_cifar10_dir(o.data_dir);
  normlab::data::Cifar10Options train_options, test_options;
  train_options.limit = o.limit_train;
  test_options.limit = o.limit_test;
  const auto train = normlab::data::Cifar10::load(data_dir, normlab::data::Split::train, train_options);
  const auto test = normlab::data::Cifar10::load(data_dir, normlab::data::Split::test, test_options);
  const int threads = normlab::num_threads();
  std::printf("cifar10_norms: data %s (%lld train, %lld test images), output %s, %s, %d threads\n",
              data_dir.c_str(), static_cast<long long>(train.size()), static_cast<long long>(test.size()),
              o.out_dir.c_str(), o.device.str().c_str(), threads);

  std::vector<NormRun> runs;
  for (const auto kind : o.norms) {
    normlab::Rng init_rng(o.seed), dropout_rng(o.seed ^ 0x9E3779B97F4A7C15ull);
    const RunRngs rngs{init_rng, dropout_rng};
    normlab::models::CifarResNetOptions model_options;
    model_options.norm = kind;
    model_options.groups = o.groups;
    model_options.dropout = o.dropout;
    auto net = normlab::models::cifar_resnet<float>(model_options, init_rng, dropout_rng);
    const std::string table = normlab::nn::summary(*net, normlab::Shape{1, 3, 32, 32});
    if (runs.empty()) {
      std::printf("%s", table.c_str());
      normlab::io::write_file_atomic(output_path(o, "summary.txt"), table, "summary.txt");
    }
    net->to(o.device);
    NormRun run;
    run.norm = kind;
    run.recipe = make_recipe(o.recipe, kind, o.recipe_overrides);
    auto sgd = make_sgd(run.recipe, *net);
    const std::string ckpt_path = output_path(o, normlab::models::norm_kind_name(kind) + ".ckpt");
    std::printf("== %s: %s\n", norm_label(kind).c_str(), run.recipe.describe().c_str());
    if (o.resume && std::filesystem::exists(ckpt_path)) {
      restore_training_state(normlab::io::Checkpoint::load(ckpt_path), ckpt_path, o, run, *net, sgd, rngs,
                             train.size(), test.size(), threads);
      std::printf("resuming %s after epoch %zu of %lld (%s)\n", norm_label(kind).c_str(), run.epochs.size(),
                  static_cast<long long>(o.epochs), ckpt_path.c_str());
      write_epoch_csv(o, run);
    }
    train_norm(run, *net, sgd, o, train, test, [&](const NormRun& r) {
      save_training_state(ckpt_path, o, r, *net, sgd, rngs, train.size(), test.size(), threads);
      write_epoch_csv(o, r);
    });
    write_pictures(o, run, test);
    runs.push_back(std::move(run));
    write_results(o, runs, net->parameter_count(), train.size(), test.size(), threads);
    write_curves(o, runs);
  }
  std::printf("\n| | Train Acc | Test Acc | Train Loss | Test Loss |\n|---|---|---|---|---|\n");
  for (const NormRun& r : runs) {
    const EpochMetrics& m = r.epochs.back();
    std::printf("| %s | %.2f | %.2f | %.4f | %.4f |\n", norm_label(r.norm).c_str(), m.train_acc, m.test_acc,
                m.train_loss, m.test_loss);
  }
  std::printf("\nWrote %s/results.md, curves.png, and per norm .csv, .ckpt, misclassified_*.png, confusion_*.png\n",
              o.out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse_options(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "cifar10_norms: %s\n", e.what());
    return 2;
  }
  if (options.help) {
    std::printf("%s", usage_text());
    return 0;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cifar10_norms: error: %s\n", e.what());
    return 1;
  }
}
