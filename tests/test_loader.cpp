// Loader: epochs cover every image once, batches are a pure function of (seed, epoch) whatever
// the prefetch setting or batch size, the last partial batch, errors from the worker thread,
// and shutdown in the middle of an epoch.
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <map>
#include <thread>

#include "normlab/data/loader.hpp"

using namespace normlab;
using namespace normlab::data;

namespace {

/// n images with random pixels and labels i % 10.
Cifar10 synthetic(int64_t n, uint64_t seed = 3) {
  Rng rng(seed);
  std::vector<uint8_t> images(static_cast<size_t>(n * 3072));
  for (uint8_t& p : images) p = static_cast<uint8_t>(rng.below(256));
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>(i % 10);
  return Cifar10(std::move(images), std::move(labels), {});
}

struct Copy {
  std::vector<float> images;
  std::vector<int32_t> labels;
  std::vector<int64_t> indices;
  bool operator==(const Copy& o) const {
    return images == o.images && labels == o.labels && indices == o.indices;
  }
};

std::vector<Copy> run_epoch(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Copy> out;
  while (const Batch* batch = loader.next()) {
    REQUIRE(batch->epoch == epoch);
    REQUIRE(batch->number == static_cast<int64_t>(out.size()));
    REQUIRE(batch->images.shape() == Shape{batch->size(), 3, 32, 32});
    out.push_back({batch->images.to_vector(), batch->labels, batch->indices});
  }
  return out;
}

LoaderOptions training(int64_t batch_size, bool prefetch, uint64_t seed = 11) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.prefetch = prefetch;
  o.seed = seed;
  o.augmentation.randaugment_probability = 0.5;  // exercise the policy often
  return o;
}

}  // namespace

TEST_CASE("an epoch holds every image once, labels follow their images, last batch partial",
          "[loader]") {
  const Cifar10 data = synthetic(203);
  Loader loader(data, training(64, true));
  CHECK(loader.batches_per_epoch() == 4);
  for (int64_t epoch : {0, 1}) {
    const std::vector<Copy> batches = run_epoch(loader, epoch);
    REQUIRE(batches.size() == 4);
    CHECK(batches[3].labels.size() == 203 - 3 * 64);
    std::vector<int> seen(203, 0);
    for (const Copy& b : batches)
      for (size_t k = 0; k < b.indices.size(); ++k) {
        ++seen[static_cast<size_t>(b.indices[k])];
        REQUIRE(b.labels[k] == data.label(b.indices[k]));
      }
    CHECK(seen == std::vector<int>(203, 1));
  }
  // Calling next() after the end keeps returning nullptr.
  CHECK(loader.next() == nullptr);

  LoaderOptions drop = training(64, true);
  drop.drop_last = true;
  Loader dropping(data, drop);
  const std::vector<Copy> full = run_epoch(dropping, 0);
  REQUIRE(full.size() == 3);
  for (const Copy& b : full) CHECK(b.labels.size() == 64);
}

TEST_CASE("batches are a function of the seed and epoch only", "[loader][determinism]") {
  const Cifar10 data = synthetic(150);
  Loader prefetching(data, training(32, true));
  Loader synchronous(data, training(32, false));
  const std::vector<Copy> e0 = run_epoch(prefetching, 0);
  const std::vector<Copy> e1 = run_epoch(prefetching, 1);
  CHECK(run_epoch(synchronous, 1) == e1);  // any epoch order, with or without the worker
  CHECK(run_epoch(synchronous, 0) == e0);
  CHECK(run_epoch(prefetching, 0) == e0);  // an epoch can be replayed
  CHECK(e0[0].indices != e1[0].indices);   // a new order each epoch
  Loader other_seed(data, training(32, true, 12));
  CHECK(run_epoch(other_seed, 0)[0].indices != e0[0].indices);

  // Each image's augmentation depends on (seed, epoch, index), not on its batch.
  Loader small_batches(data, training(7, true));
  std::map<int64_t, std::vector<float>> by_index;
  for (const Copy& b : run_epoch(small_batches, 1))
    for (size_t k = 0; k < b.indices.size(); ++k)
      by_index[b.indices[k]] =
          std::vector<float>(b.images.begin() + k * 3072, b.images.begin() + (k + 1) * 3072);
  for (const Copy& b : e1)
    for (size_t k = 0; k < b.indices.size(); ++k)
      REQUIRE(by_index[b.indices[k]] ==
              std::vector<float>(b.images.begin() + k * 3072, b.images.begin() + (k + 1) * 3072));
}

TEST_CASE("the evaluation loader gives the stored images in order, normalised", "[loader]") {
  const Cifar10 data = synthetic(70);
  Loader loader(data, LoaderOptions::evaluation(32));
  const std::vector<Copy> batches = run_epoch(loader, 5);
  REQUIRE(batches.size() == 3);
  const Normalizer normalize{Normalization{}};
  std::vector<float> expected(3072);
  int64_t i = 0;
  for (const Copy& b : batches)
    for (size_t k = 0; k < b.indices.size(); ++k, ++i) {
      REQUIRE(b.indices[k] == i);
      normalize(data.image(i), expected.data());
      REQUIRE(std::equal(expected.begin(), expected.end(), b.images.begin() + k * 3072));
    }
  CHECK(i == 70);
  CHECK(run_epoch(loader, 6) == batches);
}

TEST_CASE("a failure on the worker thread reaches the caller at its batch", "[loader][errors]") {
  Cifar10 good = synthetic(200);
  std::vector<int32_t> labels = good.labels();
  labels[150] = 12;
  const Cifar10 data(good.images(), labels, {});
  for (bool prefetch : {true, false}) {
    LoaderOptions o = LoaderOptions::evaluation(64);
    o.prefetch = prefetch;
    Loader loader(data, o);
    loader.start_epoch(0);
    REQUIRE(loader.next() != nullptr);
    REQUIRE(loader.next() != nullptr);
    CHECK_THROWS_WITH(loader.next(), Catch::Contains("image 150") && Catch::Contains("label 12"));
    const Batch* last = loader.next();
    REQUIRE(last != nullptr);
    CHECK(last->size() == 200 - 192);
    CHECK(loader.next() == nullptr);
  }
}

TEST_CASE("misuse is reported", "[loader][errors]") {
  const Cifar10 data = synthetic(10);
  LoaderOptions zero;
  zero.batch_size = 0;
  CHECK_THROWS_WITH(Loader(data, zero), Catch::Contains("batch_size"));
  LoaderOptions bad_augmentation;
  bad_augmentation.augmentation.crop_padding = -1;
  CHECK_THROWS_WITH(Loader(data, bad_augmentation), Catch::Contains("crop_padding -1"));
  Loader loader(data, LoaderOptions::evaluation(4));
  CHECK_THROWS_WITH(loader.next(), Catch::Contains("start_epoch"));
}

TEST_CASE("restarting or destroying a loader in the middle of an epoch does not hang",
          "[loader][shutdown]") {
  const Cifar10 data = synthetic(2000);
  std::promise<void> done;
  std::future<void> finished = done.get_future();
  std::thread([&data, &done] {
    try {
      {
        Loader loader(data, training(64, true));
        loader.start_epoch(0);
        loader.next();
        loader.start_epoch(1);  // restart while the worker prepares epoch 0's next batch
        const Batch* first = loader.next();
        if (first->epoch != 1 || first->number != 0)
          throw std::logic_error("restart gave a stale batch");
        loader.next();
      }                                           // destroyed mid-epoch, worker busy or waiting
      { Loader idle(data, training(64, true)); }  // destroyed before any epoch
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  }).detach();
  REQUIRE(finished.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  finished.get();
}
