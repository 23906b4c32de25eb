// Outputs of cifar10_norms (all written atomically, so an interrupted run leaves only complete
// files): {norm}.ckpt (training_state.hpp) and {norm}.csv after every epoch,
// misclassified_{norm}.png and confusion_{norm}.png after each norm, and results.md + curves.png
// after every norm (so they always describe the norms finished so far).
#pragma once

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "experiment.hpp"
#include "normlab/data/cifar10.hpp"
#include "normlab/io/csv.hpp"
#include "normlab/io/plot.hpp"

namespace cifar10_norms {

inline std::string norm_label(normlab::models::NormKind kind) {
  switch (kind) {
    case normlab::models::NormKind::Batch: return "BN";
    case normlab::models::NormKind::Group: return "GN";
    default: return "LN";
  }
}

inline void write_epoch_csv(const Options& o, const NormRun& run) {
  normlab::io::CsvTable table(
      {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_second"});
  for (const EpochMetrics& m : run.epochs)
    table.add_row({m.epoch, m.lr, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.seconds, m.images_per_second});
  table.save(output_path(o, normlab::models::norm_kind_name(run.norm) + ".csv"));
}

inline void write_pictures(const Options& o, const NormRun& run, const normlab::data::Cifar10& test) {
  const std::string name = normlab::models::norm_kind_name(run.norm);
  const auto& classes = test.class_names();
  std::vector<normlab::io::GridImage> images;
  for (int64_t i = 0; i < test.size() && static_cast<int64_t>(images.size()) < o.misclassified; ++i) {
    const int32_t predicted = run.final_test.predictions[static_cast<size_t>(i)];
    if (predicted == test.label(i)) continue;
    normlab::io::GridImage image;
    image.pixels = test.image(i);
    image.caption = classes[static_cast<size_t>(test.label(i))] + " | " + classes[static_cast<size_t>(predicted)];
    images.push_back(image);
  }
  if (!images.empty())
    normlab::io::render_image_grid(norm_label(run.norm) + ": first misclassified test images (target | predicted)",
                                   images, 5)
        .save_png(output_path(o, "misclassified_" + name + ".png"));
  normlab::io::render_confusion_matrix(norm_label(run.norm) + " confusion matrix (test set, rows = target)",
                                       run.final_test.confusion, classes)
      .save_png(output_path(o, "confusion_" + name + ".png"));
}

inline void write_curves(const Options& o, const std::vector<NormRun>& runs) {
  struct Panel {
    const char* title;
    const char* y_label;
    double EpochMetrics::*value;
  };
  const Panel panels[] = {{"Train loss", "NLL loss", &EpochMetrics::train_loss},
                          {"Test loss", "NLL loss", &EpochMetrics::test_loss},
                          {"Train accuracy", "accuracy (%)", &EpochMetrics::train_acc},
                          {"Test accuracy", "accuracy (%)", &EpochMetrics::test_acc}};
  std::vector<normlab::io::LineChart> charts;
  for (const Panel& panel : panels) {
    normlab::io::LineChart chart;
    chart.title = panel.title;
    chart.x_label = "epoch";
    chart.y_label = panel.y_label;
    for (const NormRun& run : runs) {
      normlab::io::Series series;
      series.name = norm_label(run.norm);
      for (const EpochMetrics& m : run.epochs) {
        series.x.push_back(static_cast<double>(m.epoch));
        series.y.push_back(m.*panel.value);
      }
      chart.series.push_back(series);
    }
    charts.push_back(chart);
  }
  normlab::io::render_figure("CIFAR-10: BatchNorm vs GroupNorm vs LayerNorm (" + o.recipe + " recipe)", charts, 2,
                             800, 500)
      .save_png(output_path(o, "curves.png"));
}

inline void write_results(const Options& o, const std::vector<NormRun>& runs, int64_t parameters,
                          int64_t train_images, int64_t test_images, int threads) {
  std::ostringstream md;
  char line[512];
  md << "# cifar10_norms results (" << o.recipe << " recipe)\n\n";
  md << "Final epoch, as in the original comparison's table:\n\n";
  md << "| | Train Acc | Test Acc | Train Loss | Test Loss |\n|---|---|---|---|---|\n";
  for (const NormRun& r : runs) {
    const EpochMetrics& m = r.epochs.back();
    std::snprintf(line, sizeof line, "| %s | %.2f | %.2f | %.4f | %.4f |\n", norm_label(r.norm).c_str(), m.train_acc,
                  m.test_acc, m.train_loss, m.test_loss);
    md << line;
  }
  md << "\n| | Best Test Acc (epoch) | Incorrect test predictions | Parameters | Wall time | Train img/s (median epoch) |\n"
        "|---|---|---|---|---|---|\n";
  for (const NormRun& r : runs) {
    const EpochMetrics* best = &r.epochs.front();
    std::vector<double> ips;
    for (const EpochMetrics& m : r.epochs) {
      if (m.test_acc > best->test_acc) best = &m;
      ips.push_back(m.images_per_second);
    }
    std::sort(ips.begin(), ips.end());
    int64_t incorrect = 0;
    for (int i = 0; i < 10; ++i)
      for (int j = 0; j < 10; ++j)
        if (i != j) incorrect += r.final_test.confusion[static_cast<size_t>(i * 10 + j)];
    std::snprintf(line, sizeof line, "| %s | %.2f (%lld) | %lld | %s | %.0f s | %.0f |\n", norm_label(r.norm).c_str(),
                  best->test_acc, static_cast<long long>(best->epoch), static_cast<long long>(incorrect),
                  normlab::nn::detail::with_thousands(parameters).c_str(), r.wall_seconds, ips[ips.size() / 2]);
    md << line;
  }
  md << "\nLosses are mean NLL (train: running over the epoch, in training mode; test: evaluation mode).\n\n";
  md << "- Command: `" << o.command_line << "`\n";
  md << "- Seed " << o.seed << ", " << o.device.str() << ", " << threads << " threads, batch " << o.batch << ", " << o.epochs
     << " epochs, dropout " << o.dropout << ", GroupNorm groups " << o.groups << "\n";
  md << "- Data: " << train_images << " training and " << test_images << " test images"
     << (!o.augment              ? "; no augmentation"
         : o.randaugment == 0.0 ? "; augmentation: random crop (pad 4), horizontal flip, no RandAugment"
                                : "; augmentation: random crop (pad 4), horizontal flip, RandAugment (N=2, M=9) with p = " +
                                      std::to_string(o.randaugment).substr(0, 4))
     << "\n";
  for (const NormRun& r : runs) md << "- " << norm_label(r.norm) << " recipe: " << r.recipe.describe() << "\n";
  normlab::io::write_file_atomic(output_path(o, "results.md"), md.str(), "results.md");
}

}  // namespace cifar10_norms
