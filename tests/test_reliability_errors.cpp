// Shape mismatches: every op rejects bad shapes with a normlab::Error naming the op and the shapes
// involved, before writing anything; the same errors surface through the model (a wrong input
// image shape names the first op that cannot take it).
#include <catch2/catch.hpp>
#include <functional>

#include "normlab/models/cifar_resnet.hpp"
#include "normlab/ops/conv.hpp"
#include "normlab/ops/elementwise.hpp"
#include "normlab/ops/loss.hpp"
#include "normlab/ops/norm.hpp"
#include "normlab/ops/pool.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
using testing::random_tensor;

namespace {

struct Case {
  const char* what;
  std::function<void()> call;
  std::vector<std::string> fragments;  // the op's name and the shapes
};

}  // namespace

TEST_CASE("ops name themselves and the shapes on a shape mismatch", "[reliability][errors]") {
  const auto x = random_tensor<float>({2, 4, 5, 5}, 1);
  const auto c4 = random_tensor<float>({4}, 2), c3 = random_tensor<float>({3}, 3);
  const auto mean = Tensor<float>::zeros({4}), var = Tensor<float>::ones({4});
  const std::vector<Case> cases = {
      {"conv2d: channels of x and weight differ",
       [&] {
         ops::conv2d(x, random_tensor<float>({8, 3, 3, 3}, 4), random_tensor<float>({8}, 5), 1, 1);
       },
       {"conv2d", "[2, 4, 5, 5]", "[8, 3, 3, 3]"}},
      {"conv2d: bias of the wrong length",
       [&] {
         ops::conv2d(x, random_tensor<float>({8, 4, 3, 3}, 4), random_tensor<float>({7}, 5), 1, 1);
       },
       {"conv2d", "[7]"}},
      {"conv2d: x of rank 3",
       [&] {
         ops::conv2d(random_tensor<float>({4, 5, 5}, 6), random_tensor<float>({8, 4, 3, 3}, 4), c4,
                     1, 1);
       },
       {"conv2d", "[4, 5, 5]"}},
      {"add: shapes differ",
       [&] {
         ops::add(x, random_tensor<float>({2, 4, 5, 4}, 7));
       },
       {"add", "[2, 4, 5, 5]", "[2, 4, 5, 4]"}},
      {"group_norm: groups do not divide channels",
       [&] { ops::group_norm(x, 3, c4, c4); },
       {"group_norm", "3", "[2, 4, 5, 5]"}},
      {"group_norm: gamma of the wrong length",
       [&] { ops::group_norm(x, 2, c3, c4); },
       {"group_norm", "[3]"}},
      {"layer_norm: beta of the wrong length",
       [&] { ops::layer_norm(x, c4, c3); },
       {"layer_norm", "[3]"}},
      {"batch_norm2d: running mean of the wrong length",
       [&] { ops::batch_norm2d(x, c4, c4, Tensor<float>::zeros({3}), var, true); },
       {"batch_norm2d", "[3]"}},
      {"batch_norm2d: x of rank 2",
       [&] {
         ops::batch_norm2d(random_tensor<float>({2, 4}, 8), c4, c4, mean, var, true);
       },
       {"batch_norm2d", "[2, 4]"}},
      {"max_pool2d: x of rank 3",
       [&] {
         ops::max_pool2d(random_tensor<float>({4, 5, 5}, 9), 2, 2);
       },
       {"max_pool2d", "[4, 5, 5]"}},
      {"nll_loss: one target too few",
       [&] {
         ops::nll_loss(random_tensor<float>({3, 10}, 10), {1, 2});
       },
       {"nll_loss", "[3, 10]", "2"}},
      {"nll_loss: target outside the classes",
       [&] {
         ops::nll_loss(random_tensor<float>({2, 10}, 10), {1, 10});
       },
       {"nll_loss", "10"}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    bool threw = false;
    try {
      c.call();
    } catch (const Error& e) {
      threw = true;
      for (const std::string& f : c.fragments) CHECK_THAT(e.what(), Catch::Contains(f));
    }
    CHECK(threw);
  }
}

TEST_CASE("the model rejects a wrong input shape with the op and the shapes",
          "[reliability][errors]") {
  Rng init(1), dropout(2);
  auto net = models::cifar_resnet<float>({}, init, dropout);
  REQUIRE_THROWS_WITH((*net)(random_tensor<float>({2, 1, 32, 32}, 3)),
                      Catch::Contains("conv2d") && Catch::Contains("[2, 1, 32, 32]") &&
                          Catch::Contains("[16, 3, 3, 3]"));
  REQUIRE_THROWS_WITH((*net)(random_tensor<float>({3, 32, 32}, 3)),
                      Catch::Contains("conv2d") && Catch::Contains("[3, 32, 32]"));
  CHECK(autograd::tape().size() == 0);
}
