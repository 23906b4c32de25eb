// Training state through checkpoints (io/module_state.hpp): an SGD run saved after k steps and
// continued in a fresh optimizer and model is bit-identical to one never interrupted; Rng states
// round-trip mid-block; and every kind of bad state (another version, duplicate entries, shapes
// too large, entries of another model, malformed values, other hyper-parameters) is rejected by
// name.
#include <catch2/catch.hpp>
#include <cstring>

#include "normlab/autograd/tape.hpp"
#include "normlab/io/module_state.hpp"
#include "normlab/models/cifar_resnet.hpp"
#include "normlab/ops/loss.hpp"
#include "support/gradcheck.hpp"
#include "support/temp_dir.hpp"

using namespace normlab;

namespace {

std::shared_ptr<nn::Sequential<float>> small_model(Rng& init, Rng& dropout, models::NormKind norm) {
  models::CifarResNetOptions o;
  o.norm = norm;
  o.dropout = 0.1;
  return models::cifar_resnet<float>(o, init, dropout);
}

optim::Sgd<float> make_sgd(const nn::Module<float>& net) {
  optim::SgdOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 5e-4;
  return optim::Sgd<float>(net.parameters(), o);
}

void train_steps(nn::Module<float>& net, optim::Sgd<float>& sgd, int first, int last) {
  net.train();
  for (int step = first; step < last; ++step) {
    const Tensor<float> x = testing::random_tensor<float>({4, 3, 32, 32}, 100 + step);
    sgd.zero_grad();
    const Tensor<float> loss = ops::nll_loss(net(x), {step % 10, 1, 2, 3});
    autograd::backward(loss);
    sgd.step();
  }
}

bool bit_equal(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

/// A checkpoint's bytes with the version field replaced and the checksum recomputed.
std::string with_version(std::string bytes, uint32_t version) {
  std::memcpy(&bytes[8], &version, 4);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i + 8 < bytes.size(); ++i)
    h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ull;
  std::memcpy(&bytes[bytes.size() - 8], &h, 8);
  return bytes;
}

}  // namespace

TEST_CASE("SGD training saved after k steps and continued elsewhere is bit-identical",
          "[reliability][checkpoint]") {
  for (const auto norm : {models::NormKind::Batch, models::NormKind::Group}) {
    INFO("norm " << models::norm_kind_name(norm));
    Rng init_a(1), dropout_a(2);
    auto a = small_model(init_a, dropout_a, norm);
    auto sgd_a = make_sgd(*a);
    train_steps(*a, sgd_a, 0, 3);

    io::Checkpoint ckpt;
    io::save_module_state(ckpt, *a);
    io::save_sgd_state(ckpt, sgd_a, *a);
    io::save_rng_state(ckpt, "rng.dropout", dropout_a);
    const io::Checkpoint back = io::Checkpoint::from_bytes(ckpt.to_bytes(), "memory");

    Rng init_b(99), dropout_b(98);  // other seeds: everything must come from the checkpoint
    auto b = small_model(init_b, dropout_b, norm);
    auto sgd_b = make_sgd(*b);
    io::load_module_state(back, *b);
    io::load_sgd_state(back, sgd_b, *b);
    dropout_b.set_state(io::load_rng_state(back, "rng.dropout"));

    train_steps(*a, sgd_a, 3, 6);
    train_steps(*b, sgd_b, 3, 6);
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      INFO(pa[i].first);
      CHECK(bit_equal(pa[i].second, pb[i].second));
      CHECK(bit_equal(sgd_a.momentum_buffers()[i], sgd_b.momentum_buffers()[i]));
    }
    const auto ba = a->named_buffers(), bb = b->named_buffers();
    CHECK(ba.size() ==
          (norm == models::NormKind::Batch ? 16u : 0u));  // running mean and var of 8 BNs
    for (size_t i = 0; i < ba.size(); ++i) CHECK(bit_equal(ba[i].second, bb[i].second));
  }
}

TEST_CASE("an optimizer saved before its first step restores no momentum buffers",
          "[reliability][checkpoint]") {
  Rng init(1), dropout(2);
  auto net = small_model(init, dropout, models::NormKind::Group);
  auto sgd = make_sgd(*net);
  io::Checkpoint ckpt;
  io::save_sgd_state(ckpt, sgd, *net);
  CHECK(ckpt.text("optim.momentum_defined") == std::string(net->parameters().size(), '0'));
  auto other = make_sgd(*net);
  train_steps(*net, other, 0, 1);
  io::load_sgd_state(ckpt, other, *net);
  for (const auto& buffer : other.momentum_buffers()) CHECK_FALSE(buffer.defined());
}

TEST_CASE("Rng state round-trips in the middle of a Philox block", "[reliability][checkpoint]") {
  Rng a(12345);
  a.next_u32();
  a.next_u32();  // 2 of the block's 4 values used
  io::Checkpoint ckpt;
  io::save_rng_state(ckpt, "rng", a);
  Rng b(0);
  b.set_state(io::load_rng_state(ckpt, "rng"));
  for (int i = 0; i < 10; ++i) CHECK(a.next_u32() == b.next_u32());
  for (const std::string bad : {"", "1 2", "1 2 5", "1 2 3 4", "x 2 3", "1 2 3 "}) {
    ckpt.put_text("rng", bad);
    REQUIRE_THROWS_WITH(io::load_rng_state(ckpt, "rng"),
                        Catch::Contains("'rng' is not an Rng state"));
  }
}

TEST_CASE("bad training state is rejected by name and changes nothing",
          "[reliability][checkpoint][errors]") {
  Rng init(1), dropout(2);
  auto gn = small_model(init, dropout, models::NormKind::Group);
  auto bn = small_model(init, dropout, models::NormKind::Batch);
  auto sgd = make_sgd(*gn);
  train_steps(*gn, sgd, 0, 1);
  io::Checkpoint ckpt;
  io::save_module_state(ckpt, *bn);
  const auto before = gn->parameters()[0].to_vector();
  REQUIRE_THROWS_WITH(io::load_module_state(ckpt, *gn),
                      Catch::Contains("running_mean' is not a parameter or buffer of the model"));
  CHECK(gn->parameters()[0].to_vector() == before);

  io::Checkpoint state;
  io::save_sgd_state(state, sgd, *gn);
  auto plain = optim::Sgd<float>(gn->parameters(), optim::SgdOptions{0.05, 0.9});
  REQUIRE_THROWS_WITH(io::load_sgd_state(state, plain, *gn),
                      Catch::Contains("optimizer hyper-parameters") && Catch::Contains("differ"));
  state.put_text("optim.momentum_defined", "10");
  auto again = make_sgd(*gn);
  REQUIRE_THROWS_WITH(io::load_sgd_state(state, again, *gn),
                      Catch::Contains("momentum_defined' is '10'"));
}

TEST_CASE("checkpoint reader: other versions and duplicate names are rejected",
          "[reliability][checkpoint][errors]") {
  io::Checkpoint ckpt;
  ckpt.put_text("a", "1");
  ckpt.put_tensor("b", testing::random_tensor<float>({3}, 1));
  const std::string bytes = ckpt.to_bytes();
  CHECK(io::Checkpoint::from_bytes(bytes, "x").text("a") == "1");
  REQUIRE_THROWS_WITH(
      io::Checkpoint::from_bytes(with_version(bytes, 0), "v0.ckpt"),
      Catch::Contains("'v0.ckpt' has format version 0, this build reads version 1"));
  REQUIRE_THROWS_WITH(io::Checkpoint::from_bytes(with_version(bytes, 7), "v7.ckpt"),
                      Catch::Contains("format version 7"));

  // Two entries named "a": rename "b" to "a" (same length) and fix the checksum.
  std::string twice = bytes;
  const size_t b_at =
      twice.find(std::string("\x01\x00\x00\x00"
                             "b",
                             5));
  REQUIRE(b_at != std::string::npos);
  twice[b_at + 4] = 'a';
  REQUIRE_THROWS_WITH(io::Checkpoint::from_bytes(with_version(twice, 1), "dup.ckpt"),
                      Catch::Contains("entry 'a' appears twice"));
  // Extents whose product overflows (found by fuzzing: with a zero extent the payload is empty,
  // but Shape::numel still multiplies the others): patch the dims of a [0, 4, 4] entry.
  io::Checkpoint shaped;
  shaped.put_tensor("e", Tensor<float>::empty({0, 4, 4}));
  const std::string shaped_bytes = shaped.to_bytes();
  const size_t dims_at = shaped_bytes.find(std::string("e\x00\x03\x00\x00\x00", 6)) + 6;
  for (const std::vector<int64_t>& dims :
       {std::vector<int64_t>{0, int64_t(1) << 38, int64_t(1) << 30},
        std::vector<int64_t>{int64_t(1) << 30, int64_t(1) << 34, 1}}) {
    std::string patched = shaped_bytes;
    std::memcpy(&patched[dims_at], dims.data(), 3 * sizeof(int64_t));
    REQUIRE_THROWS_WITH(io::Checkpoint::from_bytes(with_version(patched, 1), "huge.ckpt"),
                        Catch::Contains("entry 'e' is too large"));
  }
  // Nothing but a checksum: too short for a header.
  REQUIRE_THROWS_WITH(io::Checkpoint::from_bytes(bytes.substr(0, 20), "short.ckpt"),
                      Catch::Contains("not a normlab checkpoint"));
}
