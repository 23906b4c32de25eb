// Helpers of the tests of the CUDA elementwise, pooling, loss and SGD kernels: device copies of
// host values (float/double through Tensor, int32 through Storage), and the check every backward
// launcher gets: the gradient written into a buffer poisoned with NaN (so a launcher that reads
// the buffer it should only write fails), and added onto a random prior.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "normlab/common/gradient_out.hpp"
#include "normlab/core/rng.hpp"
#include "normlab/core/storage.hpp"
#include "normlab/cuda/allocator.hpp"
#include "support/gradcheck.hpp"

namespace normlab::testing {

/// Ensures: a device tensor [values.size()] holding values.
template <typename T>
Tensor<T> to_device(const std::vector<T>& values) {
  return Tensor<T>::from_data({static_cast<int64_t>(values.size())}, values).to(Device::cuda());
}

template <typename T>
std::vector<T> to_host(const Tensor<T>& t) {
  return t.to(Device::cpu()).to_vector();
}

/// int32 values in device memory (targets, argmax).
class DeviceInts {
 public:
  explicit DeviceInts(size_t n)
      : storage_(std::make_shared<Storage<int32_t>>(n == 0 ? 1 : n, Device::cuda())), size_(n) {}
  explicit DeviceInts(const std::vector<int32_t>& values) : DeviceInts(values.size()) {
    copy_bytes(data(), Device::cuda(), values.data(), Device::cpu(), sizeof(int32_t) * size_);
  }
  int32_t* data() const { return storage_->data(); }
  std::vector<int32_t> to_host() const {
    std::vector<int32_t> values(size_);
    copy_bytes(values.data(), Device::cpu(), data(), Device::cuda(), sizeof(int32_t) * size_);
    return values;
  }

 private:
  std::shared_ptr<Storage<int32_t>> storage_;
  size_t size_;
};

/// n values offset + scale * N(0, 1) in precision T.
template <typename T>
std::vector<T> random_values(int64_t n, uint64_t seed, double offset = 0.0, double scale = 1.0) {
  return random_tensor<T>({n}, seed, offset, scale).to_vector();
}

/// Ensures: a Catch2 failure unless `launch` (a backward launcher given where to put its gradient
/// of n elements) writes `expected` into a buffer of NaNs and adds it to a random prior, within
/// |got - want| <= atol + rtol * |want|.
template <typename T>
void check_gradient(const char* what, int64_t n,
                    const std::function<void(normlab::GradientOut<T>)>& launch,
                    const std::vector<double>& expected, double atol, double rtol) {
  REQUIRE(static_cast<int64_t>(expected.size()) == n);
  {
    INFO(what << ", written");
    const Tensor<T> dx =
        to_device(std::vector<T>(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN()));
    launch({dx.data(), false});
    require_close(what, to_host(dx).data(), expected.data(), n, atol, rtol);
  }
  {
    INFO(what << ", accumulated");
    const std::vector<T> prior = random_values<T>(n, 1234);
    const Tensor<T> dx = to_device(prior);
    launch({dx.data(), true});
    std::vector<double> sum(expected.size());
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = static_cast<double>(prior[i]) + expected[i];
    require_close(what, to_host(dx).data(), sum.data(), n, atol, rtol);
  }
}

}  // namespace normlab::testing
