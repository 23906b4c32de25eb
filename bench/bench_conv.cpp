// bench_conv: every convolution of the comparison's model (batch 64, float32) in its three
// passes: forward (with bias), dgrad (dx, written) and wgrad (dweight and dbias, written). The
// kernels of kernels/normlab/cpu/conv2d.hpp are called directly on preallocated buffers and
// workspace, as ops::conv2d calls them.
//
// Reported per row: microseconds (median, min, max over repeats), GFLOP/s of the median under
// the convention 2 * multiply-adds of the mathematical convolution (N * Cout * OH * OW * Cin * KH
// * KW; bias, padding columns and copies not counted), and that as % of the fp32 FMA peak
// measured in this run on the same threads.
//
//   bench_conv [--threads 2] [--repeats 20] [--warmup 3] [--batch 64] [--csv]
#include <cstdio>
#include <vector>

#include "bench_support.hpp"
#include "normlab/normlab.hpp"

using namespace normlab;

namespace {

struct ConvLayer {
  const char* name;  // position in cifar_resnet
  // Square kernel and input, stride 1, "same" padding (kernel / 2).
  int64_t in_channels, out_channels, kernel, size;
};

/// The convolutions of cifar_resnet in model order: 11.14 M multiply-adds per image in all, 42%
/// of them in stem.conv2. Each shape occurs once.
const ConvLayer kLayers[] = {
    {"stem.conv1", 3, 16, 3, 32},       {"stem.conv2", 16, 32, 3, 32},
    {"stem.conv3", 32, 16, 1, 32},      {"block1.conv1", 16, 16, 3, 16},
    {"block1.conv2", 16, 32, 3, 16},    {"block1.conv3", 32, 32, 3, 16},
    {"block1.shortcut", 16, 32, 1, 16}, {"transition.conv", 32, 16, 1, 16},
    {"block2.conv1", 16, 16, 3, 8},     {"block2.conv2", 16, 32, 3, 8},
    {"block2.conv3", 32, 32, 3, 8},     {"block2.shortcut", 16, 32, 1, 8},
    {"head.conv", 32, 10, 1, 1},
};

const char* kConvention =
    "FLOPs counted: 2 * N * Cout * OH * OW * Cin * KH * KW for each pass (forward, dgrad = dx, "
    "wgrad = dweight + dbias); bias and padding work not counted. GFLOP/s = FLOPs / median time. "
    "peak = fp32 FMA peak measured in this run on the same threads (register-resident FMA "
    "chains). stem.conv1's dgrad is not needed in training (the images need no gradient).";

}  // namespace

int main(int argc, char** argv) {
  const int threads = static_cast<int>(bench::option_int(argc, argv, "--threads", 2));
  const int repeats = static_cast<int>(bench::option_int(argc, argv, "--repeats", 20));
  const int warmup = static_cast<int>(bench::option_int(argc, argv, "--warmup", 3));
  const int64_t batch = bench::option_int(argc, argv, "--batch", 64);
  const bool csv = bench::option_flag(argc, argv, "--csv");
  set_num_threads(threads);
  const double peak = bench::fma_peak_gflops();

  if (csv) {
    std::printf(
        "layer,N,Cin,Cout,H,W,kernel,pass,threads,microseconds_median,microseconds_min,"
        "microseconds_max,flops,gflop_per_s,peak_gflop_per_s,percent_of_peak\n");
  } else {
    std::printf(
        "normlab bench_conv: %d threads, %d repeats (+%d warm-up), batch %lld, float32; "
        "measured fp32 FMA peak %.1f GFLOP/s\n%s\n",
        threads, repeats, warmup, static_cast<long long>(batch), peak, kConvention);
  }

  Rng rng(1);
  for (const ConvLayer& layer : kLayers) {
    const cpu::Conv2dGeometry g{
        batch,        layer.in_channels, layer.size, layer.size,      layer.out_channels,
        layer.kernel, layer.kernel,      1,          layer.kernel / 2};
    Tensor<float> x = Tensor<float>::randn({batch, g.in_channels, g.height, g.width}, rng);
    Tensor<float> weight =
        Tensor<float>::randn({g.out_channels, g.in_channels, g.kernel_h, g.kernel_w}, rng);
    Tensor<float> bias = Tensor<float>::randn({g.out_channels}, rng);
    Tensor<float> dy =
        Tensor<float>::randn({batch, g.out_channels, g.out_height(), g.out_width()}, rng);
    Tensor<float> y = Tensor<float>::empty(dy.shape()), dx = Tensor<float>::empty(x.shape());
    Tensor<float> dweight = Tensor<float>::empty(weight.shape()),
                  dbias = Tensor<float>::empty(bias.shape());
    Tensor<float> workspace = Tensor<float>::empty({cpu::conv2d_workspace_size<float>(g, threads)});

    const struct {
      const char* name;
      bench::Timing time;
    } passes[] = {
        {"forward", bench::time_repeated(
                        [&] {
                          cpu::conv2d_forward(x.data(), weight.data(), bias.data(), y.data(), g,
                                              workspace.data(), threads);
                        },
                        warmup, repeats)},
        {"dgrad", bench::time_repeated(
                      [&] {
                        cpu::conv2d_backward_data(dy.data(), weight.data(), dx.data(), g, false,
                                                  workspace.data(), threads);
                      },
                      warmup, repeats)},
        {"wgrad", bench::time_repeated(
                      [&] {
                        cpu::conv2d_backward_weights(x.data(), dy.data(), dweight.data(),
                                                     dbias.data(), g, false, false,
                                                     workspace.data(), threads);
                      },
                      warmup, repeats)},
    };
    const double flops = 2.0 * batch * g.out_channels * g.out_pixels() * g.patch_size();
    for (const auto& pass : passes) {
      const double gflops = flops / pass.time.median / 1e9;
      if (csv) {
        std::printf("%s,%lld,%lld,%lld,%lld,%lld,%lld,%s,%d,%.2f,%.2f,%.2f,%.0f,%.2f,%.2f,%.1f\n",
                    layer.name, static_cast<long long>(batch),
                    static_cast<long long>(g.in_channels), static_cast<long long>(g.out_channels),
                    static_cast<long long>(g.height), static_cast<long long>(g.width),
                    static_cast<long long>(layer.kernel), pass.name, threads,
                    1e6 * pass.time.median, 1e6 * pass.time.min, 1e6 * pass.time.max, flops, gflops,
                    peak, 100 * gflops / peak);
      } else {
        std::printf(
            "%-16s %2lld->%-2lld %lldx%lld @%2lldx%-2lld %-7s %9.1f us (min %.1f, max %.1f) "
            "%7.1f GFLOP/s %5.1f%% of peak\n",
            layer.name, static_cast<long long>(g.in_channels),
            static_cast<long long>(g.out_channels), static_cast<long long>(layer.kernel),
            static_cast<long long>(layer.kernel), static_cast<long long>(g.height),
            static_cast<long long>(g.width), pass.name, 1e6 * pass.time.median, 1e6 * pass.time.min,
            1e6 * pass.time.max, gflops, 100 * gflops / peak);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
