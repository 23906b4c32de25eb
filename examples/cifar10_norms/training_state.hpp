// The per-norm training checkpoint {norm}.ckpt in --out, rewritten atomically after every epoch
// (so after the last one it holds the final weights). It holds everything the rest of the run
// depends on, so that `--resume` continues bit-identically to a run that was never interrupted:
//
//   model.*                     parameters and buffers (BatchNorm running statistics)
//   optim.momentum.*, optim.*   SGD momentum buffers, which exist, and the hyper-parameters
//   scheduler                   the learning-rate schedule and its position (epochs done); the
//                               rate of every iteration is a pure function of that position
//   rng.init, rng.dropout       the Philox states of initialisation and of the dropout masks
//   rng.loader                  seed and next epoch of the loader: the shuffle permutation and
//                               every image's augmentation draws are pure functions of
//                               (seed, epoch, image index), so these two numbers are its state
//   metrics, wall_seconds       the per-epoch metrics so far (f64, bit-exact) and the time spent
//   configuration               every option the results depend on; a resume must match it
//   threads                     the thread count (another one still resumes, not bit-identically)
//   norm, recipe, epochs, command   human-readable run description
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

#include "experiment.hpp"
#include "normlab/io/checkpoint.hpp"
#include "normlab/io/module_state.hpp"

namespace cifar10_norms {

constexpr const char* kStateFormat = "cifar10_norms training state 1";
constexpr int64_t kMetricColumns = 8;  // the columns of EpochMetrics, in CSV order

/// Ensures: one "key value" line per option the run's numbers depend on (reals in hexadecimal,
/// exact), for `norm`'s run on `train_images` / `test_images` images.
inline std::string run_configuration(const Options& o, const NormRun& run, int64_t train_images,
                                     int64_t test_images) {
  using normlab::io::detail::exact;
  std::ostringstream c;
  c << "norm " << normlab::models::norm_kind_name(run.norm) << "\n"
    << "recipe " << run.recipe.name << ": " << run.recipe.describe() << "\n"
    << "lr " << exact(run.recipe.lr) << "\n"
    << "epochs " << o.epochs << "\nbatch " << o.batch << "\ngroups " << o.groups << "\n"
    << "dropout " << exact(o.dropout) << "\nseed " << o.seed << "\n"
    << "train_images " << train_images << "\ntest_images " << test_images << "\n"
    << "augment " << (o.augment ? 1 : 0) << "\nrandaugment " << exact(o.randaugment) << "\n";
  return c.str();
}

/// Everything of a run that lives outside the model and the optimizer.
struct RunRngs {
  normlab::Rng& init;
  normlab::Rng& dropout;
};

/// Ensures: `path` holds the state after run.epochs.size() epochs (see the file comment),
/// replaced atomically.
inline void save_training_state(const std::string& path, const Options& o, const NormRun& run,
                                const normlab::nn::Module<float>& net,
                                const normlab::optim::Sgd<float>& sgd, const RunRngs& rngs,
                                int64_t train_images, int64_t test_images, int threads) {
  namespace io = normlab::io;
  io::Checkpoint ckpt;
  io::save_module_state(ckpt, net);
  io::save_sgd_state(ckpt, sgd, net);
  const int64_t done = static_cast<int64_t>(run.epochs.size());
  ckpt.put_text("format", kStateFormat);
  ckpt.put_text("configuration", run_configuration(o, run, train_images, test_images));
  ckpt.put_text("threads", std::to_string(threads));
  ckpt.put_text("scheduler", run.recipe.describe() + "; epochs done " + std::to_string(done));
  io::save_rng_state(ckpt, "rng.init", rngs.init);
  io::save_rng_state(ckpt, "rng.dropout", rngs.dropout);
  ckpt.put_text("rng.loader",
                "seed " + std::to_string(o.seed) + " next_epoch " + std::to_string(done));
  normlab::Tensor<double> metrics = normlab::Tensor<double>::empty({done, kMetricColumns});
  for (int64_t e = 0; e < done; ++e) {
    const EpochMetrics& m = run.epochs[static_cast<size_t>(e)];
    const double row[kMetricColumns] = {static_cast<double>(m.epoch),
                                        m.lr,
                                        m.train_loss,
                                        m.train_acc,
                                        m.test_loss,
                                        m.test_acc,
                                        m.seconds,
                                        m.images_per_second};
    std::copy(row, row + kMetricColumns, metrics.data() + e * kMetricColumns);
  }
  ckpt.put_tensor("metrics", metrics);
  normlab::Tensor<double> wall = normlab::Tensor<double>::empty({1});
  wall.data()[0] = run.wall_seconds;
  ckpt.put_tensor("wall_seconds", wall);
  ckpt.put_text("norm", normlab::models::norm_kind_name(run.norm));
  ckpt.put_text("recipe", run.recipe.describe());
  ckpt.put_text("epochs", std::to_string(done));
  ckpt.put_text("command", o.command_line);
  ckpt.save(path);
}

/// Requires: `net`, `sgd` and `rngs` freshly built for this run (as the first epoch finds them).
/// Ensures: they, run.epochs and run.wall_seconds are as after the checkpoint's last epoch; or an
/// Error naming `path` and the problem (another format, another configuration, another model,
/// damaged values), and the run must not go on.
inline void restore_training_state(const normlab::io::Checkpoint& ckpt, const std::string& path,
                                   const Options& o, NormRun& run, normlab::nn::Module<float>& net,
                                   normlab::optim::Sgd<float>& sgd, const RunRngs& rngs,
                                   int64_t train_images, int64_t test_images, int threads) {
  namespace io = normlab::io;
  NORMLAB_CHECK(ckpt.has("format") && ckpt.text("format") == kStateFormat, "--resume: ", path,
                " is not a cifar10_norms training checkpoint of this version (expected format '",
                kStateFormat, "')");
  const std::string stored = ckpt.text("configuration");
  const std::string current = run_configuration(o, run, train_images, test_images);
  if (stored != current) {
    std::istringstream a(stored), b(current);
    std::string line_a, line_b, differences;
    while (std::getline(a, line_a) && std::getline(b, line_b))
      if (line_a != line_b)
        differences += "\n  checkpoint: " + line_a + "\n  this run:   " + line_b;
    throw normlab::Error(
        "--resume: " + path + " belongs to a run with other settings; resume with the same " +
        "options or use another --out:" + (differences.empty() ? " (format)" : differences));
  }
  const auto metrics = ckpt.tensor<double>("metrics");
  NORMLAB_CHECK(
      metrics.rank() == 2 && metrics.size(1) == kMetricColumns && metrics.size(0) <= o.epochs,
      "--resume: ", path, ": metrics have shape ", metrics.shape().str(),
      ", expected [<= ", o.epochs, ", ", kMetricColumns, "]");
  const int64_t done = metrics.size(0);
  std::vector<EpochMetrics> epochs(static_cast<size_t>(done));
  for (int64_t e = 0; e < done; ++e) {
    const double* row = metrics.data() + e * kMetricColumns;
    NORMLAB_CHECK(row[0] == static_cast<double>(e + 1), "--resume: ", path, ": metrics row ", e,
                  " is epoch ", row[0]);
    EpochMetrics& m = epochs[static_cast<size_t>(e)];
    m.epoch = e + 1;
    m.lr = row[1], m.train_loss = row[2], m.train_acc = row[3], m.test_loss = row[4],
    m.test_acc = row[5];
    m.seconds = row[6], m.images_per_second = row[7];
  }
  const std::string loader = ckpt.text("rng.loader");
  NORMLAB_CHECK(loader == "seed " + std::to_string(o.seed) + " next_epoch " + std::to_string(done),
                "--resume: ", path, ": loader state '", loader, "' does not match ", done,
                " epochs with seed ", o.seed);
  const normlab::Rng::State init = io::load_rng_state(ckpt, "rng.init");
  const normlab::Rng::State dropout = io::load_rng_state(ckpt, "rng.dropout");
  const double wall = ckpt.tensor<double>("wall_seconds").item();
  const std::string stored_threads = ckpt.text("threads");
  io::load_module_state(ckpt, net);
  io::load_sgd_state(ckpt, sgd, net);
  rngs.init.set_state(init);
  rngs.dropout.set_state(dropout);
  run.epochs = std::move(epochs);
  run.wall_seconds = wall;
  if (stored_threads != std::to_string(threads))
    std::fprintf(stderr,
                 "cifar10_norms: warning: %s was written with %s threads, this run uses %d: the "
                 "resumed run is "
                 "valid but not bit-identical to an uninterrupted one\n",
                 path.c_str(), stored_threads.c_str(), threads);
}

}  // namespace cifar10_norms
