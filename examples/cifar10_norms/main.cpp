// cifar10_norms: the BatchNorm / GroupNorm / LayerNorm comparison on CIFAR-10 (see
// docs/cifar10_norms.md). Trains the same 40,394-parameter residual CNN once per norm from the
// same seed and writes the tables, curves and image grids listed in report.hpp to --out.
//
// Exit codes: 0 success, 1 runtime error (data, files, divergence), 2 bad command line.
#include <cstdio>
#include <filesystem>

#include "experiment.hpp"
#include "normlab/core/parallel.hpp"
#include "normlab/nn/summary.hpp"
#include "options.hpp"
#include "report.hpp"

using namespace cifar10_norms;

namespace {

int run(const Options& o) {
  if (o.threads > 0) normlab::set_num_threads(o.threads);
  const std::string data_dir = normlab::data::find_cifar10_dir(o.data_dir);
  normlab::data::Cifar10Options train_options, test_options;
  train_options.limit = o.limit_train;
  test_options.limit = o.limit_test;
  const auto train = normlab::data::Cifar10::load(data_dir, normlab::data::Split::train, train_options);
  const auto test = normlab::data::Cifar10::load(data_dir, normlab::data::Split::test, test_options);
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  NORMLAB_CHECK(std::filesystem::is_directory(o.out_dir), "cannot create the output directory '", o.out_dir,
                "'", ec ? ": " + ec.message() : "");
  std::printf("cifar10_norms: data %s (%lld train, %lld test images), output %s, %d threads\n", data_dir.c_str(),
              static_cast<long long>(train.size()), static_cast<long long>(test.size()), o.out_dir.c_str(),
              normlab::num_threads());

  std::vector<NormRun> runs;
  for (const auto kind : o.norms) {
    normlab::Rng init_rng(o.seed), dropout_rng(o.seed ^ 0x9E3779B97F4A7C15ull);
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
    std::printf("== %s: %s\n", norm_label(kind).c_str(), make_recipe(o.recipe, kind, o.lr).describe().c_str());
    NormRun result = train_norm(kind, *net, o, train, test, [&](const NormRun& r) { write_epoch_csv(o, r); });
    write_checkpoint(o, result, *net);
    write_pictures(o, result, test);
    runs.push_back(std::move(result));
    write_results(o, runs, net->parameter_count(), train.size(), test.size(), normlab::num_threads());
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
