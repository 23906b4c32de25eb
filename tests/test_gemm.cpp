// cpu::gemm (and so the blocked driver and micro-kernels conv2d runs on) against a naive triple
// loop in double: every transpose combination, alpha/beta, leading dimensions wider than the
// matrices, and sizes that are 1, prime, not multiples of the register tile or cache blocks,
// K = 1 and K larger than one cache slice.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "normlab/core/rng.hpp"
#include "normlab/cpu/gemm.hpp"

using namespace normlab;

namespace {

struct GemmCase {
  int64_t M, N, K;
};

std::vector<double> random_values(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = rng.normal();
  return v;
}

/// Runs cpu::gemm<T> (or, with a row bias, the blocked driver with a biased output) on the given
/// layout and checks every element against the double reference, with the error bound of a
/// K-term dot product: |err| <= 4 (K + 2) eps_T (sum_k |alpha a b| + |beta c| + |bias|).
template <typename T>
void check_gemm(const GemmCase& s, bool trans_a, bool trans_b, double alpha, double beta,
                uint64_t seed, bool with_bias = false) {
  const int64_t pad = 3;  // leading dimensions wider than the rows
  const int64_t a_rows = trans_a ? s.K : s.M, a_cols = trans_a ? s.M : s.K;
  const int64_t b_rows = trans_b ? s.N : s.K, b_cols = trans_b ? s.K : s.N;
  const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = s.N + pad;
  const std::vector<double> a = random_values(a_rows * lda, seed);
  const std::vector<double> b = random_values(b_rows * ldb, seed + 1);
  std::vector<double> c = random_values(s.M * ldc, seed + 2);
  if (beta == 0.0)  // beta == 0 must not read C: poison it
    for (double& x : c) x = std::numeric_limits<double>::quiet_NaN();

  const std::vector<double> bias = with_bias ? random_values(s.M, seed + 3) : std::vector<double>();

  std::vector<T> a_t(a.begin(), a.end()), b_t(b.begin(), b.end()), c_t(c.begin(), c.end());
  std::vector<T> bias_t(bias.begin(), bias.end());
  std::vector<T> workspace(static_cast<size_t>(cpu::gemm_workspace_size<T>()));
  if (with_bias) {
    const cpu::StridedA<T> a_op{a_t.data(), trans_a ? 1 : lda, trans_a ? lda : 1};
    const cpu::StridedB<T> b_op{b_t.data(), trans_b ? 1 : ldb, trans_b ? ldb : 1};
    const cpu::StridedC<T> c_op{c_t.data(), ldc, static_cast<T>(alpha), static_cast<T>(beta), bias_t.data()};
    cpu::gemm_blocked(s.M, s.N, s.K, a_op, b_op, c_op, workspace.data());
  } else {
    cpu::gemm<T>(trans_a, trans_b, s.M, s.N, s.K, static_cast<T>(alpha), a_t.data(), lda,
                 b_t.data(), ldb, static_cast<T>(beta), c_t.data(), ldc, workspace.data());
  }

  INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " trans_a=" << trans_a << " trans_b="
            << trans_b << " alpha=" << alpha << " beta=" << beta << " bias=" << with_bias);
  const double eps = std::numeric_limits<T>::epsilon();
  int64_t failures = 0;
  for (int64_t i = 0; i < s.M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const double before = c[i * ldc + j];
      const double got = c_t[i * ldc + j];
      if (j >= s.N) {  // padding columns of C are untouched
        if (!(got == static_cast<T>(before) || (std::isnan(got) && std::isnan(before)))) ++failures;
        continue;
      }
      double exact = 0, magnitude = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        const double av = trans_a ? a[k * lda + i] : a[i * lda + k];
        const double bv = trans_b ? b[j * ldb + k] : b[k * ldb + j];
        exact += alpha * av * bv;
        magnitude += std::abs(alpha * av * bv);
      }
      if (beta != 0.0) {
        exact += beta * before;
        magnitude += std::abs(beta * before);
      }
      if (with_bias) {
        exact += bias[i];
        magnitude += std::abs(bias[i]);
      }
      const double bound = 4.0 * (s.K + 2) * eps * magnitude + std::numeric_limits<T>::min();
      if (!(std::abs(got - exact) <= bound)) {
        if (failures < 5) UNSCOPED_INFO("C(" << i << ", " << j << ") = " << got << ", expected " << exact);
        ++failures;
      }
    }
  }
  CHECK(failures == 0);
}

const std::vector<GemmCase> kAwkwardSizes = {
    {1, 1, 1},     {7, 13, 29},  {1, 40, 5},    {9, 1, 17},     {8, 32, 1},
    {6, 16, 3},    {17, 47, 64}, {33, 31, 257}, {145, 529, 300}, {5, 19, 1031},
};

}  // namespace

TEMPLATE_TEST_CASE("gemm matches a naive triple loop for every transpose, alpha, beta and awkward sizes",
                   "[gemm]", float, double) {
  uint64_t seed = 100;
  for (const GemmCase& s : kAwkwardSizes)
    for (bool trans_a : {false, true})
      for (bool trans_b : {false, true})
        for (auto [alpha, beta] : {std::pair{1.0, 0.0}, std::pair{-0.5, 1.0}, std::pair{2.0, 0.75}})
          check_gemm<TestType>(s, trans_a, trans_b, alpha, beta, seed++);
}

TEMPLATE_TEST_CASE("the blocked driver adds a row bias once, after beta, over several K slices",
                   "[gemm]", float, double) {
  uint64_t seed = 300;
  for (const GemmCase& s : kAwkwardSizes)
    for (auto [alpha, beta] : {std::pair{1.0, 0.0}, std::pair{-0.5, 1.0}, std::pair{2.0, 0.75}})
      check_gemm<TestType>(s, false, false, alpha, beta, seed++, /*with_bias=*/true);
}

TEMPLATE_TEST_CASE("gemm with K = 0 scales C by beta", "[gemm]", float, double) {
  std::vector<TestType> c = {1, 2, 3, 4, 5, 6};
  std::vector<TestType> workspace(static_cast<size_t>(cpu::gemm_workspace_size<TestType>()));
  const TestType unused = 0;
  cpu::gemm<TestType>(false, false, 2, 3, 0, 1, &unused, 1, &unused, 3, TestType(0.5), c.data(), 3,
                      workspace.data());
  CHECK(c == std::vector<TestType>{0.5, 1, 1.5, 2, 2.5, 3});
}

TEMPLATE_TEST_CASE("gemm at the convolution's shapes (tiles exactly full, half and ragged)", "[gemm]",
                   float, double) {
  // forward 16->32 3x3 @32x32, dgrad of it, wgrad of it, and the 8x8 block's 32->32 3x3.
  const std::vector<GemmCase> shapes = {{32, 1024, 144}, {144, 1024, 32}, {32, 144, 1024}, {32, 64, 288}};
  uint64_t seed = 900;
  for (const GemmCase& s : shapes) check_gemm<TestType>(s, false, false, 1.0, 0.0, seed++);
  check_gemm<TestType>(shapes[1], true, false, 1.0, 1.0, seed++);
  check_gemm<TestType>(shapes[2], false, true, 1.0, 1.0, seed++);
}
