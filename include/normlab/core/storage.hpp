// Storage: one contiguous, 64-byte aligned buffer on a device, shared by the tensors that view
// it. Buffers come from a per-device caching allocator: a freed block is kept in a free list
// keyed by its size and handed out again, so steady-state training (the same shapes every step)
// allocates nothing from the system after the first step. Under AddressSanitizer, host blocks
// are poisoned while they sit in the cache and beyond the requested size while in use, so ASan
// still reports a use after free and an overrun into the 64-byte round-up (docs/reliability.md).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "normlab/core/device.hpp"
#include "normlab/core/error.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define NORMLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NORMLAB_ASAN 1
#endif
#endif
#if defined(NORMLAB_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace normlab {

/// Which side of a copy is a backend's device memory (the other side is host memory).
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };

/// Raw memory of one device type. The CPU one is built in; the CUDA backend registers its own.
class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  /// Ensures: a block of at least `bytes` bytes (64-byte aligned), or throws normlab::Error.
  virtual void* allocate(size_t bytes, int device_index) = 0;
  virtual void deallocate(void* ptr, size_t bytes, int device_index) = 0;
  /// Ensures: `bytes` bytes copied from `source` to `destination`, complete when it returns;
  /// `kind` says which of them is this backend's memory. Throws normlab::Error on failure.
  virtual void copy(void* destination, const void* source, size_t bytes, CopyKind kind) = 0;
  /// Whether the host may address the blocks (then ASan builds poison the cached ones).
  virtual bool host_addressable() const { return false; }
};

/// Keeps freed blocks for reuse, keyed by exact (rounded) size. Thread-safe.
class CachingAllocator {
 public:
  explicit CachingAllocator(DeviceAllocator& backend) : backend_(backend) {}

  static size_t round_up(size_t bytes) { return (bytes + 63) / 64 * 64; }

  /// Ensures: a 64-byte aligned block of at least `bytes` bytes, reused from the cache when one
  /// of the same rounded size is there.
  void* allocate(size_t bytes, int device_index) {
    const size_t block = round_up(bytes == 0 ? 1 : bytes);
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& list = free_[{device_index, block}];
      if (!list.empty()) {
        ptr = list.back();
        list.pop_back();
        cached_bytes_ -= block;
      }
    }
    if (ptr == nullptr) ptr = backend_.allocate(block, device_index);
    poison(static_cast<char*>(ptr) + bytes, block - bytes);
    unpoison(ptr, bytes);
    return ptr;
  }

  /// Requires: `ptr` came from allocate(bytes, device_index) and is no longer used.
  void deallocate(void* ptr, size_t bytes, int device_index) {
    const size_t block = round_up(bytes == 0 ? 1 : bytes);
    poison(ptr, block);
    std::lock_guard<std::mutex> lock(mutex_);
    free_[{device_index, block}].push_back(ptr);
    cached_bytes_ += block;
  }

  /// Ensures: every cached block is returned to the backend.
  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [key, list] : free_)
      for (void* ptr : list) {
        unpoison(ptr, key.second);
        backend_.deallocate(ptr, key.second, key.first);
      }
    free_.clear();
    cached_bytes_ = 0;
  }

  size_t cached_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

  DeviceAllocator& backend() const { return backend_; }

 private:
  void poison([[maybe_unused]] void* ptr, [[maybe_unused]] size_t bytes) const {
#if defined(NORMLAB_ASAN)
    if (backend_.host_addressable()) ASAN_POISON_MEMORY_REGION(ptr, bytes);
#endif
  }
  void unpoison([[maybe_unused]] void* ptr, [[maybe_unused]] size_t bytes) const {
#if defined(NORMLAB_ASAN)
    if (backend_.host_addressable()) ASAN_UNPOISON_MEMORY_REGION(ptr, bytes);
#endif
  }

  DeviceAllocator& backend_;
  mutable std::mutex mutex_;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

namespace detail {

class HostAllocator final : public DeviceAllocator {
 public:
  void* allocate(size_t bytes, int) override {
    void* ptr = std::aligned_alloc(64, bytes);
    NORMLAB_CHECK(ptr != nullptr, "host allocation of ", bytes, " bytes failed");
    return ptr;
  }
  void deallocate(void* ptr, size_t, int) override { std::free(ptr); }
  void copy(void* destination, const void* source, size_t bytes, CopyKind) override {
    if (bytes != 0) std::memcpy(destination, source, bytes);
  }
  bool host_addressable() const override { return true; }
};

struct AllocatorRegistry {
  CachingAllocator* caching[2] = {nullptr, nullptr};
};

// Never destroyed: storages released during static destruction still find their allocator.
inline AllocatorRegistry& allocator_registry() {
  static AllocatorRegistry* registry = [] {
    auto* r = new AllocatorRegistry;
    r->caching[static_cast<int>(DeviceType::CPU)] = new CachingAllocator(*new HostAllocator);
    return r;
  }();
  return *registry;
}

}  // namespace detail

/// Requires: the backend outlives every storage of that device type.
inline void register_device_allocator(DeviceType type, DeviceAllocator& backend) {
  detail::allocator_registry().caching[static_cast<int>(type)] = new CachingAllocator(backend);
}

/// Requires: a backend for `type` is registered (CPU always is).
inline CachingAllocator& caching_allocator(DeviceType type) {
  CachingAllocator* allocator = detail::allocator_registry().caching[static_cast<int>(type)];
  NORMLAB_CHECK(allocator != nullptr, "no allocator for device type ",
                type == DeviceType::CUDA ? "cuda" : "cpu",
                " (is the CUDA backend compiled in?)");
  return *allocator;
}

/// Requires: `destination` and `source` hold `bytes` bytes on devices `to` and `from`, and at most
/// one device type other than the CPU is involved. Ensures: the bytes copied, by the backend of
/// that device type (CPU to CPU: memcpy); complete when it returns.
inline void copy_bytes(void* destination, Device to, const void* source, Device from,
                       size_t bytes) {
  NORMLAB_CHECK(to.is_cpu() || from.is_cpu() || to.type == from.type, "copy from ", from.str(),
                " to ", to.str(), ": no backend copies between these devices");
  const DeviceType backend = to.is_cpu() ? from.type : to.type;
  const CopyKind kind = from.is_cpu() && !to.is_cpu()   ? CopyKind::HostToDevice
                        : !from.is_cpu() && to.is_cpu() ? CopyKind::DeviceToHost
                                                        : CopyKind::DeviceToDevice;
  caching_allocator(backend).backend().copy(destination, source, bytes, kind);
}

/// A buffer of `size` elements of T. Its contents are uninitialised after construction.
template <typename T>
class Storage {
 public:
  Storage(size_t size, Device device)
      : size_(size),
        device_(device),
        data_(static_cast<T*>(caching_allocator(device.type).allocate(size * sizeof(T), device.index))) {}
  ~Storage() { caching_allocator(device_.type).deallocate(data_, size_ * sizeof(T), device_.index); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  Device device() const { return device_; }

 private:
  size_t size_;
  Device device_;
  T* data_;
};

}  // namespace normlab
