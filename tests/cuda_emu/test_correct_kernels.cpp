// Correct kernels give correct answers through the emulator, under every schedule.
#include <cmath>
#include <numeric>
#include <vector>

#include "cuda_emu/catch_schedules.hpp"
#include "emu_test_kernels.cuh"

namespace et = normlab::emu_test;

namespace {

// x[i] = (i % 7) - 3 + i / 1024: small integers, so float sums are exact.
std::vector<float> ramp(int n) {
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = float(i % 7 - 3 + i / 1024);
  return x;
}

float sum_range(const std::vector<float>& x, int begin, int end) {
  float total = 0.0f;
  for (int i = begin; i < end && i < static_cast<int>(x.size()); ++i) total += x[i];
  return total;
}

}  // namespace

TEST_CASE("block sum in static shared memory with __syncthreads", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int n = 1000;  // 4 blocks of 256, the last one partial
  const std::vector<float> x = ramp(n);
  std::vector<float> sums(4, -1.0f);
  et::launch_block_sum_shared<256>(x.data(), sums.data(), n);
  for (int b = 0; b < 4; ++b) CHECK(sums[b] == sum_range(x, b * 256, (b + 1) * 256));
}

TEST_CASE("warp sums with __shfl_down_sync, float and double", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int blocks = 3;
  const std::vector<float> x = ramp(64 * blocks);
  std::vector<float> sums(2 * blocks);
  et::launch_warp_sums_down(x.data(), sums.data(), blocks);
  const std::vector<double> xd(x.begin(), x.end());
  std::vector<double> sums_d(2 * blocks);
  et::launch_warp_sums_down(xd.data(), sums_d.data(), blocks);
  for (int w = 0; w < 2 * blocks; ++w) {
    CHECK(sums[w] == sum_range(x, 32 * w, 32 * (w + 1)));
    CHECK(sums_d[w] == double(sum_range(x, 32 * w, 32 * (w + 1))));
  }
}

TEST_CASE("segment all-reduce with __shfl_xor_sync of width 32, 16 and 8", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int width = GENERATE(32, 16, 8);
  CAPTURE(width);
  const std::vector<float> x = ramp(64);
  std::vector<float> sums(64);
  et::launch_segment_sums_xor(x.data(), sums.data(), width);
  for (int i = 0; i < 64; ++i) {
    const int segment = i - i % width;
    CHECK(sums[i] == sum_range(x, segment, segment + width));
  }
}

TEST_CASE("two-stage block sum: warp shuffles, then warp 0 reduces the warp sums", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int threads = GENERATE(32, 96, 256, 1024);
  CAPTURE(threads);
  const int n = 3001;
  const int blocks = 3;
  const std::vector<float> x = ramp(n);
  std::vector<float> sums(blocks);
  et::launch_block_sum_two_stage(x.data(), sums.data(), n, blocks, threads);
  for (int b = 0; b < blocks; ++b) {
    float expected = 0.0f;
    for (int i = b * threads; i < n; i += blocks * threads)
      expected += sum_range(x, i, i + threads);
    CHECK(sums[b] == expected);
  }
}

TEST_CASE("__ballot_sync, __any_sync and __all_sync, including a partial warp", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int threads = 80;  // warps of 32, 32 and 16 lanes
  std::vector<float> x(threads, 1.0f);
  for (int i = 0; i < 32; i += 3) x[i] = -1.0f;  // warp 0: every third lane not positive
  for (int i = 32; i < 64; ++i) x[i] = -1.0f;    // warp 1: none positive
  std::vector<unsigned> ballots(3);
  std::vector<int> any(3), all(3);
  et::launch_warp_votes(x.data(), ballots.data(), any.data(), all.data(), threads);
  unsigned expected_warp0 = 0;
  for (int lane = 0; lane < 32; ++lane) expected_warp0 |= (lane % 3 != 0 ? 1u : 0u) << lane;
  CHECK(ballots[0] == expected_warp0);
  CHECK(ballots[1] == 0u);
  CHECK(ballots[2] == 0x0000FFFFu);  // lanes 16..31 of the last warp do not exist
  CHECK(any == std::vector<int>{1, 0, 1});
  CHECK(all == std::vector<int>{0, 0, 1});
}

TEST_CASE("dynamic shared memory: reverse tiles", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int n = 203;
  const int threads = 64;
  const std::vector<float> x = ramp(n);
  std::vector<float> y(n, -100.0f);
  et::launch_reverse_tiles(x.data(), y.data(), n, threads);
  for (int i = 0; i < n; ++i) {
    const int start = i - i % threads;
    const int size = std::min(threads, n - start);
    CHECK(y[i] == x[start + size - 1 - (i - start)]);
  }
}

TEST_CASE("grid-stride loop over an odd size", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int n = 1001;
  const std::vector<float> x = ramp(n);
  std::vector<float> y(n + 1, -100.0f);  // y[n] must stay untouched
  et::launch_affine_grid_stride(x.data(), y.data(), 2.0f, 0.5f, n, 3, 64);
  for (int i = 0; i < n; ++i) CHECK(y[i] == 2.0f * x[i] + 0.5f);
  CHECK(y[n] == -100.0f);
}

TEST_CASE("3-D grid of 3-D blocks: index maths", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const dim3 grid(3, 2, 2);
  const dim3 block(4, 3, 2);
  const int width = 12, height = 6, depth = 4;
  std::vector<int> codes(width * height * depth, -1), visits(width * height * depth, 0);
  et::launch_global_coordinates(codes.data(), visits.data(), grid, block);
  for (int z = 0; z < depth; ++z) {
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const int position = (z * height + y) * width + x;
        CHECK(codes[position] == x + 100 * y + 10000 * z);
        CHECK(visits[position] == 1);
      }
    }
  }
}

TEST_CASE("atomics on int, unsigned, unsigned long long, float and double", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int blocks = 3, threads = 40, total = blocks * threads;  // t = 0 .. 119
  et::AtomicTotals totals{};
  totals.int_max = -1000;
  totals.int_min = 1000;
  totals.unsigned_min = ~0u;
  totals.wide_min = ~0ull;
  totals.cas_claimed_by = -1;
  et::launch_atomic_totals(&totals, blocks, threads);
  CHECK(totals.histogram[0] + totals.histogram[1] + totals.histogram[2] + totals.histogram[3] ==
        total);
  CHECK(totals.histogram[3] == total / 4);
  CHECK(totals.unsigned_sum == unsigned(total * (total - 1) / 2));
  CHECK(totals.wide_sum == (static_cast<unsigned long long>(total * (total - 1) / 2) << 32));
  CHECK(totals.float_sum == float(total));
  CHECK(totals.double_sum == 0.5 * total);
  CHECK(totals.int_max == total - 1 - 100);
  CHECK(totals.int_min == -100);
  CHECK(totals.unsigned_max == unsigned(total - 1));
  CHECK(totals.unsigned_min == 7u);
  CHECK(totals.wide_max == static_cast<unsigned long long>(total - 1) << 33);
  CHECK(totals.wide_min == 1ull);
  // Whoever ran first claimed the CAS slots; the last one to run holds the exchange slots.
  REQUIRE(totals.cas_claimed_by >= 0);
  REQUIRE(totals.cas_claimed_by < total);
  CHECK(totals.cas_unsigned == unsigned(totals.cas_claimed_by) + 1);
  CHECK(totals.cas_wide == static_cast<unsigned long long>(totals.cas_claimed_by) + 1);
  REQUIRE(totals.exchanged >= 0);
  CHECK(totals.exchanged_unsigned == unsigned(totals.exchanged));
  CHECK(totals.exchanged_wide == static_cast<unsigned long long>(totals.exchanged));
  CHECK(totals.exchanged_float == float(totals.exchanged));
}

TEST_CASE("shuffle source lanes follow PTX shfl.sync, with width segments", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  // expected source lane for op (0 idx, 1 up, 2 down, 3 xor), as the CUDA programming guide
  // describes them: a source outside the segment gives the lane its own value.
  const auto expected = [](int op, int lane, int operand, int width) {
    const int first = lane - lane % width;
    switch (op) {
      case 0:
        return first + operand % width;
      case 1:
        return lane - operand >= first ? lane - operand : lane;
      case 2:
        return lane + operand < first + width ? lane + operand : lane;
      default:
        return (lane ^ operand) < first + width ? (lane ^ operand) : lane;
    }
  };
  for (int op = 0; op < 4; ++op) {
    for (const int width : {32, 16, 8, 4, 1}) {
      for (const int operand : {0, 1, 3, 5, 8, 17}) {
        std::vector<int> sources(32, -1);
        et::launch_shuffle_sources(sources.data(), op, operand, width);
        for (int lane = 0; lane < 32; ++lane) {
          INFO("op " << op << " width " << width << " operand " << operand << " lane " << lane);
          CHECK(sources[lane] == expected(op, lane, operand, width));
        }
      }
    }
  }
}

TEST_CASE("exited lanes do not take part in a full-mask shuffle", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<int> values(32);
  std::iota(values.begin(), values.end(), 0);
  et::launch_swap_pairs_after_exit(values.data());
  for (int lane = 0; lane < 16; ++lane) CHECK(values[lane] == (lane ^ 1));
  for (int lane = 16; lane < 32; ++lane) CHECK(values[lane] == lane);
}

TEST_CASE("lanes meet at different call sites of the same shuffle and mask", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  std::vector<int> values(32, -1);
  et::launch_broadcast_from_two_branches(values.data());
  CHECK(values == std::vector<int>(32, 100));
}

TEST_CASE("maths with CUDA-only spellings, min and max", "[cuda_emu]") {
  NORMLAB_EMU_EACH_SCHEDULE();
  const int n = 6;
  const std::vector<float> x = {0.25f, 0.5f, 1.0f, 2.0f, 3.0f, 10.0f};
  std::vector<float> values(8 * n);
  std::vector<int> integers(2 * n);
  et::launch_cuda_maths(x.data(), values.data(), integers.data(), n);
  for (int i = 0; i < n; ++i) {
    const float v = x[i];
    const float* out = &values[8 * i];
    CHECK(out[0] == Approx(1.0f / std::sqrt(v)));
    CHECK(out[1] == Approx(v / 3.0f));
    CHECK(out[2] == Approx(std::exp(v)));
    CHECK(out[3] == Approx(std::log(v)));
    CHECK(out[4] == Approx(std::pow(v, 1.5f)));
    CHECK(out[5] == Approx(1.0f / v));
    CHECK(out[6] == std::max(v, 1.0f));
    CHECK(out[7] == std::min(v, 1.0f));
    CHECK(integers[2 * i] == std::min(i, 3));
    CHECK(integers[2 * i + 1] == std::max(i, 3));
  }
}

TEST_CASE("ScopedLaunchLog names the kernels launched while it is alive", "[cuda_emu]") {
  const std::vector<float> x = ramp(300);
  std::vector<float> sums(2, -1.0f);
  et::launch_block_sum_shared<256>(x.data(), sums.data(), 300);  // before: not recorded
  std::vector<std::string> names;
  {
    const normlab::cuda_emu::ScopedLaunchLog log;
    et::launch_block_sum_shared<256>(x.data(), sums.data(), 300);
    et::launch_block_sum_shared<256>(x.data(), sums.data(), 300);
    names = log.names();
  }
  et::launch_block_sum_shared<256>(x.data(), sums.data(), 300);  // after: not recorded
  REQUIRE(names.size() == 2);
  CHECK(names[0] == "block_sum_shared<BlockSize>");
  CHECK(names[1] == names[0]);
}
