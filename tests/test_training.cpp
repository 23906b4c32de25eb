// End to end: the comparison's model learns on a small real CIFAR-10 subset with every norm.
#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>

#include "normlab/data/cifar10.hpp"
#include "normlab/data/loader.hpp"
#include "normlab/models/cifar_resnet.hpp"
#include "normlab/ops/loss.hpp"
#include "normlab/optim/sgd.hpp"

using namespace normlab;

TEST_CASE("training loss clearly decreases on 1,024 real CIFAR-10 images in 8 epochs", "[training][data]") {
  const char* dir = NORMLAB_CIFAR10_DIR;
  if (!std::filesystem::is_directory(dir)) {
    WARN("SKIPPED: CIFAR-10 not found at " << dir << " (set -DNORMLAB_CIFAR10_DIR)");
    return;
  }
  data::Cifar10Options subset;
  subset.limit = 1024;
  const auto train = data::Cifar10::load(dir, data::Split::train, subset);
  data::LoaderOptions loader_options;
  loader_options.batch_size = 64;
  loader_options.augment = false;

  for (const char* norm : {"bn", "gn", "ln"}) {
    Rng init(1), dropout(2);
    models::CifarResNetOptions options;
    options.norm = models::parse_norm_kind(norm);
    auto net = models::cifar_resnet<float>(options, init, dropout);
    optim::Sgd<float> sgd(net->parameters(), optim::SgdOptions{0.05, 0.9});
    data::Loader loader(train, loader_options);
    std::vector<double> epoch_loss;
    for (int64_t epoch = 0; epoch < 8; ++epoch) {
      loader.start_epoch(epoch);
      double sum = 0;
      int64_t seen = 0;
      while (const data::Batch* batch = loader.next()) {
        sgd.zero_grad();
        Tensor<float> loss = ops::nll_loss((*net)(batch->images), batch->labels);
        autograd::backward(loss);
        sgd.step();
        sum += loss.item() * batch->size();
        seen += batch->size();
      }
      epoch_loss.push_back(sum / seen);
    }
    std::ostringstream losses;
    for (double l : epoch_loss) losses << " " << l;
    INFO(norm << " epoch losses" << losses.str());
    CHECK(epoch_loss[0] > 2.0);                    // starts near ln(10) = 2.30
    CHECK(epoch_loss[7] < epoch_loss[0] - 0.2);  // and clearly learns: ~0.25 for GN and LN,
    if (options.norm == models::NormKind::Batch) CHECK(epoch_loss[7] < epoch_loss[0] - 0.5);  // ~0.6 for BN
  }
}
