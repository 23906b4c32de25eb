// Checkpoint files: round trip, atomic replacement, and clear errors for every kind of damage.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "normlab/io/module_state.hpp"
#include "normlab/nn/layers.hpp"
#include "normlab/nn/norm.hpp"
#include "normlab/nn/container.hpp"
#include "support/gradcheck.hpp"

using namespace normlab;
namespace fs = std::filesystem;

namespace {
fs::path scratch_dir() {
  fs::path dir = fs::temp_directory_path() / ("normlab_ckpt_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}
std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_all(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
}
}  // namespace

TEST_CASE("checkpoint round trip of tensors and text", "[checkpoint]") {
  const fs::path path = scratch_dir() / "a.ckpt";
  io::Checkpoint ckpt;
  Tensor<float> f = testing::random_tensor<float>({2, 3, 4}, 1);
  Tensor<double> d = testing::random_tensor<double>({5}, 2);
  ckpt.put_tensor("f", f);
  ckpt.put_tensor("d", d);
  ckpt.put_tensor("empty", Tensor<float>::empty({0, 3}));
  ckpt.put_text("epoch", "7");
  ckpt.save(path.string());
  const io::Checkpoint back = io::Checkpoint::load(path.string());
  CHECK(back.tensor<float>("f").to_vector() == f.to_vector());
  CHECK(back.tensor<double>("d").to_vector() == d.to_vector());
  CHECK(back.tensor<float>("empty").shape() == Shape{0, 3});
  CHECK(back.text("epoch") == "7");
  REQUIRE_THROWS_WITH(back.tensor<double>("f"), Catch::Contains("precision"));
  REQUIRE_THROWS_WITH(back.text("missing"), Catch::Contains("no entry 'missing'"));
  for (const auto& entry : fs::directory_iterator(path.parent_path()))
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("damaged checkpoints are rejected with the file name and the reason", "[checkpoint][errors]") {
  const fs::path dir = scratch_dir(), path = dir / "good.ckpt", bad = dir / "bad.ckpt";
  io::Checkpoint ckpt;
  ckpt.put_tensor("w", testing::random_tensor<float>({64}, 3));
  ckpt.save(path.string());
  const std::string good = read_all(path);

  write_all(bad, good.substr(0, good.size() / 2));
  REQUIRE_THROWS_WITH(io::Checkpoint::load(bad.string()), Catch::Contains("bad.ckpt") && Catch::Contains("checksum"));
  std::string flipped = good;
  flipped[good.size() / 2] ^= 1;
  write_all(bad, flipped);
  REQUIRE_THROWS_WITH(io::Checkpoint::load(bad.string()), Catch::Contains("checksum mismatch"));
  write_all(bad, "not a checkpoint at all, just some text");
  REQUIRE_THROWS_WITH(io::Checkpoint::load(bad.string()), Catch::Contains("not a normlab checkpoint"));
  REQUIRE_THROWS_WITH(io::Checkpoint::load((dir / "absent.ckpt").string()), Catch::Contains("absent.ckpt"));
  REQUIRE_THROWS_WITH(ckpt.save((dir / "no_such_dir" / "x.ckpt").string()), Catch::Contains("cannot write"));
  CHECK_FALSE(fs::exists(dir / "no_such_dir"));
}

TEST_CASE("module state round trip and shape validation", "[checkpoint][nn]") {
  auto make = [](uint64_t seed, int64_t channels) {
    Rng rng(seed);
    auto seq = std::make_shared<nn::Sequential<float>>();
    seq->add(std::make_shared<nn::Conv2d<float>>(3, channels, 3, nn::Conv2dOptions{1, 1, true}, rng));
    seq->emplace<nn::BatchNorm2d<float>>(channels);
    return seq;
  };
  auto a = make(1, 8), b = make(2, 8), c = make(3, 4);
  a->named_buffers()[0].second.fill_(0.25f);
  io::Checkpoint ckpt;
  io::save_module_state(ckpt, *a);
  io::load_module_state(ckpt, *b);
  for (size_t i = 0; i < a->parameters().size(); ++i)
    CHECK(a->parameters()[i].to_vector() == b->parameters()[i].to_vector());
  CHECK(b->named_buffers()[0].second.to_vector() == a->named_buffers()[0].second.to_vector());
  const auto before = c->parameters()[0].to_vector();
  REQUIRE_THROWS_WITH(io::load_module_state(ckpt, *c), Catch::Contains("model.0.weight") &&
                                                           Catch::Contains("[8, 3, 3, 3]") &&
                                                           Catch::Contains("[4, 3, 3, 3]"));
  CHECK(c->parameters()[0].to_vector() == before);  // nothing half-loaded
}
