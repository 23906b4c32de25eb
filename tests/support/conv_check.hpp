// The oracle comparison shared by the conv2d tests (test_conv2d for the CPU kernels,
// cuda/test_cuda_conv2d for the CUDA kernels): each float result within the rounding bound of a
// float sum of its exact terms, the bound taken from the number of terms and their magnitude.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace normlab::testing {

/// Ensures: |v| elementwise (run the oracle on absolute inputs to get the magnitude of the terms
/// behind each result).
inline std::vector<double> absolute(std::vector<double> v) {
  for (double& e : v) e = std::abs(e);
  return v;
}

/// Every element of `got` within the rounding bound of a `terms`-long float sum of the exact
/// result: |got - exact| <= 8 eps sqrt(terms) * magnitude, magnitude being the sum of the terms'
/// absolute values (the oracle run on absolute inputs). A missed or misplaced term is far outside.
inline void check_close(const std::string& what, const std::vector<float>& got,
                        const std::vector<double>& exact, const std::vector<double>& magnitude,
                        int64_t terms) {
  REQUIRE(got.size() == exact.size());
  REQUIRE(magnitude.size() == exact.size());
  const double scale =
      8.0 * std::numeric_limits<float>::epsilon() * std::sqrt(static_cast<double>(terms));
  int64_t failures = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    const double bound = scale * magnitude[i] + std::numeric_limits<float>::min();
    if (!(std::abs(got[i] - exact[i]) <= bound)) {
      if (failures < 5)
        UNSCOPED_INFO(what << "[" << i << "] = " << got[i] << ", expected " << exact[i]
                           << " (bound " << bound << ")");
      ++failures;
    }
  }
  INFO(what << ": " << failures << " of " << exact.size() << " elements outside the bound");
  CHECK(failures == 0);
}

}  // namespace normlab::testing
