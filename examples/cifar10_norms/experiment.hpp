// One norm's run of the comparison: train for the recipe's epochs, evaluate on the test set after
// each epoch, keep the per-epoch metrics, and at the end the confusion matrix and the
// misclassified test images.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "normlab/autograd/tape.hpp"
#include "normlab/data/loader.hpp"
#include "normlab/models/cifar_resnet.hpp"
#include "normlab/ops/loss.hpp"
#include "normlab/optim/sgd.hpp"
#include "options.hpp"
#include "recipe.hpp"

namespace cifar10_norms {

using normlab::Tensor;

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double lr = 0;      // learning rate at the epoch's last iteration
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0;  // accuracies in percent
  double seconds = 0;                                                 // training + evaluation
  double images_per_second = 0;                                       // training throughput
};

struct Evaluation {
  double loss = 0, accuracy = 0;
  std::vector<int64_t> confusion;     // 10 x 10, row = target, column = prediction
  std::vector<int32_t> predictions;   // per test image
};

struct NormRun {
  normlab::models::NormKind norm;
  Recipe recipe;
  std::vector<EpochMetrics> epochs;
  Evaluation final_test;
  double wall_seconds = 0;
};

inline int32_t argmax_row(const float* row, int64_t k) {
  int32_t best = 0;
  for (int32_t j = 1; j < k; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

/// Ensures: the mean NLL loss and accuracy of `net` (evaluation mode, no tape) on `test`, with the
/// images moved to `device` (where net's parameters are).
inline Evaluation evaluate(normlab::nn::Module<float>& net, const normlab::data::Cifar10& test,
                           normlab::Device device) {
  net.eval();
  normlab::autograd::NoGradGuard no_grad;
  normlab::data::Loader loader(test, normlab::data::LoaderOptions::evaluation(250));
  loader.start_epoch(0);
  Evaluation ev;
  ev.confusion.assign(100, 0);
  ev.predictions.assign(static_cast<size_t>(test.size()), -1);
  double loss_sum = 0;
  int64_t correct = 0;
  while (const normlab::data::Batch* batch = loader.next()) {
    const Tensor<float> log_probs = net(batch->images.to(device));
    loss_sum += normlab::ops::nll_loss(log_probs, batch->labels).item() * batch->size();
    const std::vector<float> scores = log_probs.to_vector();
    for (int64_t b = 0; b < batch->size(); ++b) {
      const int32_t predicted = argmax_row(scores.data() + b * 10, 10), target = batch->labels[b];
      ev.predictions[static_cast<size_t>(batch->indices[b])] = predicted;
      ev.confusion[static_cast<size_t>(target * 10 + predicted)] += 1;
      correct += predicted == target;
    }
  }
  ev.loss = loss_sum / test.size();
  ev.accuracy = 100.0 * correct / test.size();
  return ev;
}

/// Progress of an epoch: a redrawn bar on a terminal, nothing in between epochs otherwise.
class Progress {
 public:
  Progress() : tty_(::isatty(STDOUT_FILENO) != 0) {}
  void update(const std::string& label, int64_t done, int64_t total, double loss, double acc, double ips) {
    if (!tty_) return;
    const int width = 30, filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
    const double eta = ips > 0 ? (total - done) / ips : 0;
    std::printf("\r%s [%s%s] %3d%% loss %.4f acc %5.2f%% %6.0f img/s ETA %2d:%02d ", label.c_str(),
                std::string(static_cast<size_t>(filled), '=').c_str(),
                std::string(static_cast<size_t>(width - filled), ' ').c_str(), static_cast<int>(100 * done / total), loss,
                acc, ips, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
    std::fflush(stdout);
  }
  void finish_line() {
    if (tty_) std::printf("\r\033[K");
  }

 private:
  bool tty_;
};

/// Ensures: the name of the first parameter of `net` whose gradient holds a NaN or an infinity,
/// or "" when every gradient is finite.
inline std::string first_non_finite_gradient(const normlab::nn::Module<float>& net) {
  for (const auto& [name, p] : net.named_parameters()) {
    if (!p.has_grad()) continue;
    for (const float g : p.grad().to_vector())  // a copy to the host (cheap: 40,394 values)
      if (!std::isfinite(g)) return name;
  }
  return "";
}

/// Ensures: the recipe's SGD optimizer over net's parameters (train_norm sets the learning rate of
/// every iteration).
inline normlab::optim::Sgd<float> make_sgd(const Recipe& recipe, const normlab::nn::Module<float>& net) {
  normlab::optim::SgdOptions sgd_options;
  sgd_options.lr = recipe.lr;
  sgd_options.momentum = recipe.momentum;
  sgd_options.nesterov = recipe.nesterov;
  sgd_options.weight_decay = recipe.weight_decay;
  return normlab::optim::Sgd<float>(net.parameters(), sgd_options);
}

/// Requires: `net` built for run.norm and `sgd` = make_sgd(run.recipe, net), both as after the
/// run.epochs.size() epochs already done (fresh, or restored from a checkpoint); the data outlive
/// the call. Ensures: training has gone on to options.epochs; after every epoch `after_epoch(run)`
/// is called with the metrics so far (outputs are written as the run goes, so an interrupted run
/// keeps its finished epochs); run.final_test evaluates the final weights. A loss, gradient or
/// test loss that is not finite stops the run with an Error naming the epoch and step, before the
/// optimizer step or the epoch's checkpoint, so the last checkpoint written stays the last good one.
template <typename AfterEpoch>
void train_norm(NormRun& run, normlab::nn::Module<float>& net, normlab::optim::Sgd<float>& sgd, const Options& options,
                const normlab::data::Cifar10& train, const normlab::data::Cifar10& test, AfterEpoch after_epoch) {
  using clock = std::chrono::steady_clock;
  const Recipe& recipe = run.recipe;
  normlab::data::LoaderOptions loader_options;
  loader_options.batch_size = options.batch;
  loader_options.seed = options.seed;
  loader_options.augment = options.augment;
  loader_options.augmentation.randaugment_probability = options.randaugment;
  normlab::data::Loader loader(train, loader_options);
  const int64_t iterations = (train.size() + options.batch - 1) / options.batch;
  const std::string name = normlab::models::norm_kind_name(run.norm);
  const auto diverged = [&](int64_t epoch, const std::string& where, const std::string& what) {
    normlab::autograd::tape().clear();
    const std::string kept =
        run.epochs.empty() ? "no checkpoint was written for it"
                           : "the last good checkpoint (after epoch " + std::to_string(run.epochs.size()) +
                                 ") is kept in " + output_path(options, name + ".ckpt");
    return normlab::Error("training " + name + " diverged at epoch " + std::to_string(epoch + 1) + where + ": " +
                          what + " (lower --lr?); " + kept);
  };
  Progress progress;
  const auto run_start = clock::now();
  const double wall_before = run.wall_seconds;

  for (int64_t epoch = static_cast<int64_t>(run.epochs.size()); epoch < options.epochs; ++epoch) {
    const auto epoch_start = clock::now();
    net.train();
    loader.start_epoch(epoch);
    double loss_sum = 0, lr = recipe.lr;
    int64_t seen = 0, correct = 0;
    while (const normlab::data::Batch* batch = loader.next()) {
      lr = recipe.lr_at(epoch, batch->number, iterations, options.epochs);
      sgd.set_lr(lr);
      sgd.zero_grad();
      if (options.nan_epoch == epoch + 1 && options.nan_step == batch->number + 1)
        batch->images.data()[0] = std::numeric_limits<float>::quiet_NaN();
      const Tensor<float> log_probs = net(batch->images.to(options.device));
      const Tensor<float> loss = recipe.label_smoothing > 0
                                     ? normlab::ops::cross_entropy(log_probs, batch->labels, recipe.label_smoothing)
                                     : normlab::ops::nll_loss(log_probs, batch->labels);
      const double value = loss.item();
      const std::string step = ", step " + std::to_string(batch->number + 1);
      if (!std::isfinite(value))
        throw diverged(epoch, step, std::string("the training loss is ") + (std::isnan(value) ? "NaN" : "infinite"));
      normlab::autograd::backward(loss);
      // A finite loss can still come with non-finite gradients (e.g. an overflow in a backward).
      const std::string bad = first_non_finite_gradient(net);
      if (!bad.empty()) throw diverged(epoch, step, "the gradient of '" + bad + "' is not finite");
      sgd.step();
      loss_sum += value * batch->size();
      const std::vector<float> scores = log_probs.to_vector();
      for (int64_t b = 0; b < batch->size(); ++b) correct += argmax_row(scores.data() + b * 10, 10) == batch->labels[b];
      seen += batch->size();
      const double elapsed = std::chrono::duration<double>(clock::now() - epoch_start).count();
      progress.update(name + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                      seen, train.size(), loss_sum / seen, 100.0 * correct / seen, seen / elapsed);
    }
    const double train_seconds = std::chrono::duration<double>(clock::now() - epoch_start).count();
    run.final_test = evaluate(net, test, options.device);
    if (!std::isfinite(run.final_test.loss))
      throw diverged(epoch, " (after its last step)", "the test loss is " + std::to_string(run.final_test.loss));
    EpochMetrics m;
    m.epoch = epoch + 1;
    m.lr = lr;
    m.train_loss = loss_sum / seen;
    m.train_acc = 100.0 * correct / seen;
    m.test_loss = run.final_test.loss;
    m.test_acc = run.final_test.accuracy;
    m.seconds = std::chrono::duration<double>(clock::now() - epoch_start).count();
    m.images_per_second = seen / train_seconds;
    run.epochs.push_back(m);
    progress.finish_line();
    std::printf("%s epoch %2lld/%lld  lr %.5f  train loss %.4f acc %6.2f%%  test loss %.4f acc %6.2f%%  %6.1f s  %6.0f img/s\n",
                name.c_str(), static_cast<long long>(m.epoch), static_cast<long long>(options.epochs), m.lr,
                m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.seconds, m.images_per_second);
    std::fflush(stdout);
    run.wall_seconds = wall_before + std::chrono::duration<double>(clock::now() - run_start).count();
    after_epoch(run);
  }
  if (run.final_test.confusion.empty()) run.final_test = evaluate(net, test, options.device);  // resumed after the last epoch
}

}  // namespace cifar10_norms
