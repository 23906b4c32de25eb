// Loader: epochs of batches from an in-memory Cifar10 split, as float NCHW tensors ready for the
// model. Per epoch it shuffles with a permutation drawn from (seed, epoch) and, for training,
// augments each image with an Rng drawn from (seed, epoch, dataset index): every random choice is
// a pure function of those numbers, so the batches are the same whatever the thread timing, the
// prefetch setting or the order batches are consumed in.
//
// Prefetch is double buffering: two batch slots; while the caller trains on one, a background
// std::thread fills the other with the next batch. The worker takes a free slot, fills it outside
// the lock (one image at a time: augment into the slot's uint8 scratch, normalise into the
// slot's float tensor), then marks it ready; next() hands the caller the ready slot and gives the
// previous one back. A failure on the worker is stored in the slot and re-thrown by the next()
// that reaches that batch. start_epoch() and the destructor wait for the batch being filled
// (milliseconds), so they never hang.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "normlab/common/philox.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/rng.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/data/cifar10.hpp"
#include "normlab/data/transforms.hpp"

namespace normlab::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;     ///< a new permutation each epoch; false = dataset order
  bool augment = true;     ///< apply `augmentation`; false = images as stored
  bool drop_last = false;  ///< false keeps the last partial batch (PyTorch's default)
  bool prefetch = true;    ///< prepare the next batch on a background thread
  uint64_t seed = 1;
  AugmentConfig augmentation;
  Normalization normalization;

  /// The evaluation setting: dataset order, no augmentation, every image.
  static LoaderOptions evaluation(int64_t batch_size) {
    LoaderOptions o;
    o.batch_size = batch_size;
    o.shuffle = false;
    o.augment = false;
    return o;
  }
};

/// One batch. `images` is [B, 3, 32, 32] float (normalised), `labels[b]` and `indices[b]` (the
/// dataset index) belong to image b. B = batch_size except possibly for the last batch.
struct Batch {
  Tensor<float> images;
  std::vector<int32_t> labels;
  std::vector<int64_t> indices;
  int64_t epoch = 0;
  int64_t number = 0;  ///< position of this batch in its epoch, from 0
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

class Loader {
 public:
  /// Requires: `data` outlives the loader and is not modified while it exists; batch_size >= 1.
  Loader(const Cifar10& data, const LoaderOptions& options)
      : data_(data), options_(options), normalizer_(options.normalization) {
    NORMLAB_CHECK(options.batch_size >= 1, "Loader: batch_size must be >= 1, got ",
                  options.batch_size);
    NORMLAB_CHECK(data.size() > 0, "Loader: the dataset is empty");
    if (options.augment) check_augment_config(options.augmentation);
    order_.resize(static_cast<size_t>(data.size()));
    for (Slot& slot : slots_) {
      slot.pixels.resize(kCifarImageBytes);
      slot.scratch.resize(kCifarImageBytes);
    }
    if (options_.prefetch) worker_ = std::thread([this] { worker_loop(); });
  }

  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// Ensures: the worker (if any) has finished its current batch and exited.
  ~Loader() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  int64_t size() const { return data_.size(); }
  const LoaderOptions& options() const { return options_; }
  int64_t batches_per_epoch() const {
    const int64_t n = data_.size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }

  /// Requires: epoch >= 0. Ensures: the following next() calls return epoch `epoch`'s batches
  /// from the first; a batch still being prepared for an earlier epoch is discarded.
  void start_epoch(int64_t epoch) {
    NORMLAB_CHECK(epoch >= 0, "Loader::start_epoch: epoch must be >= 0, got ", epoch);
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !worker_busy_; });
    std::iota(order_.begin(), order_.end(), int64_t{0});
    if (options_.shuffle) {
      const Philox4 key = philox4x32(options_.seed, static_cast<uint64_t>(epoch), kShuffleStream);
      Rng rng((static_cast<uint64_t>(key.v[0]) << 32) | key.v[1]);
      for (size_t i = order_.size() - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);
    }
    epoch_ = epoch;
    epoch_started_ = true;
    next_to_fill_ = 0;
    next_to_hand_out_ = 0;
    held_ = -1;
    for (Slot& slot : slots_) slot.state = SlotState::free;
    lock.unlock();
    changed_.notify_all();
  }

  /// Requires: start_epoch() was called.
  /// Ensures: the epoch's next batch, or nullptr after its last one. The batch stays valid until
  /// the next call of next() or start_epoch(): its buffers are then reused, so clone what you
  /// keep. Re-throws the exception met while preparing this batch, if any.
  const Batch* next() {
    NORMLAB_CHECK(epoch_started_, "Loader::next: call start_epoch(epoch) first");
    std::unique_lock<std::mutex> lock(mutex_);
    if (held_ >= 0) {
      slots_[held_].state = SlotState::free;
      held_ = -1;
      changed_.notify_all();
    }
    if (next_to_hand_out_ >= batches_per_epoch()) return nullptr;
    const int64_t number = next_to_hand_out_++;
    Slot& slot = slots_[number % 2];
    if (options_.prefetch) {
      changed_.wait(lock,
                    [&] { return slot.state == SlotState::ready && slot.batch.number == number; });
    } else {
      lock.unlock();
      fill(slot, number);
      lock.lock();
    }
    held_ = static_cast<int>(number % 2);
    slot.state = SlotState::held;
    if (slot.error) {
      std::exception_ptr error = slot.error;
      slot.error = nullptr;
      std::rethrow_exception(error);
    }
    return &slot.batch;
  }

 private:
  static constexpr uint64_t kShuffleStream = 0;
  static constexpr uint64_t kAugmentStream = 1;
  enum class SlotState { free, filling, ready, held };
  struct Slot {
    Batch batch;
    std::vector<uint8_t> pixels, scratch;  // one augmented image and the augmentation's scratch
    std::exception_ptr error;
    SlotState state = SlotState::free;
  };

  /// Fills `slot` with batch `number` of the current epoch; a failure is stored in slot.error.
  void fill(Slot& slot, int64_t number) {
    slot.error = nullptr;
    try {
      const int64_t begin = number * options_.batch_size;
      const int64_t count = std::min(options_.batch_size, data_.size() - begin);
      Batch& batch = slot.batch;
      batch.epoch = epoch_;
      batch.number = number;
      if (!batch.images.defined() || batch.images.size(0) != count)
        batch.images = Tensor<float>::empty({count, kCifarChannels, kCifarSide, kCifarSide});
      batch.labels.resize(static_cast<size_t>(count));
      batch.indices.resize(static_cast<size_t>(count));
      float* out = batch.images.data();
      for (int64_t b = 0; b < count; ++b) {
        const int64_t index = order_[static_cast<size_t>(begin + b)];
        const int32_t label = data_.label(index);
        NORMLAB_CHECK(label >= 0 && label < kCifarClasses, "Loader: image ", index, " has label ",
                      label, ", expected 0-", kCifarClasses - 1);
        batch.labels[static_cast<size_t>(b)] = label;
        batch.indices[static_cast<size_t>(b)] = index;
        const uint8_t* image = data_.image(index);
        if (options_.augment) {
          Rng rng = image_rng(index);
          augment(image, slot.pixels.data(), slot.scratch.data(), options_.augmentation, rng);
          image = slot.pixels.data();
        }
        normalizer_(image, out + b * kCifarImageBytes);
      }
    } catch (...) {
      slot.error = std::current_exception();
    }
  }

  /// The augmentation generator of dataset image `index` in the current epoch.
  Rng image_rng(int64_t index) const {
    const Philox4 key = philox4x32(options_.seed, static_cast<uint64_t>(index),
                                   (static_cast<uint64_t>(epoch_) << 1) | kAugmentStream);
    return Rng((static_cast<uint64_t>(key.v[0]) << 32) | key.v[1]);
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] {
        return stopping_ || (epoch_started_ && next_to_fill_ < batches_per_epoch() &&
                             slots_[next_to_fill_ % 2].state == SlotState::free);
      });
      if (stopping_) return;
      const int64_t number = next_to_fill_++;
      Slot& slot = slots_[number % 2];
      slot.state = SlotState::filling;
      worker_busy_ = true;
      lock.unlock();
      fill(slot, number);
      lock.lock();
      worker_busy_ = false;
      slot.state = SlotState::ready;
      changed_.notify_all();
    }
  }

  const Cifar10& data_;
  const LoaderOptions options_;
  const Normalizer normalizer_;
  std::vector<int64_t> order_;  // dataset indices in this epoch's order
  Slot slots_[2];

  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread worker_;
  bool stopping_ = false;
  bool worker_busy_ = false;
  bool epoch_started_ = false;
  int64_t epoch_ = 0;
  int64_t next_to_fill_ = 0;      // batch number the worker prepares next
  int64_t next_to_hand_out_ = 0;  // batch number next() returns next
  int held_ = -1;                 // slot the caller holds, or -1
};

}  // namespace normlab::data
