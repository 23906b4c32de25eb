// bench_train: images/s of a full training step (forward, loss, backward, SGD update) at batch
// 64 and of inference (eval mode, no tape) at batch 256, for the comparison's model with each
// norm. Medians and min/max over repeats, on a fixed random batch (data loading not included).
//
//   bench_train [--threads 2] [--batch 64] [--infer-batch 256] [--repeats 20] [--csv]
#include <cstdio>

#include "bench_support.hpp"
#include "normlab/normlab.hpp"

using namespace normlab;

int main(int argc, char** argv) {
  const int threads = static_cast<int>(bench::option_int(argc, argv, "--threads", 2));
  const int64_t batch = bench::option_int(argc, argv, "--batch", 64);
  const int64_t infer_batch = bench::option_int(argc, argv, "--infer-batch", 256);
  const int repeats = static_cast<int>(bench::option_int(argc, argv, "--repeats", 20));
  const bool csv = bench::option_flag(argc, argv, "--csv");
  set_num_threads(threads);

  if (csv)
    std::printf("norm,mode,batch,threads,images_per_second_median,images_per_second_min,images_per_second_max\n");
  else
    std::printf("normlab bench_train: %d threads, train batch %lld, inference batch %lld, %d repeats\n", threads,
                static_cast<long long>(batch), static_cast<long long>(infer_batch), repeats);

  auto report = [&](const char* norm, const char* mode, int64_t images, const bench::Timing& t) {
    const double median = images / t.median, low = images / t.max, high = images / t.min;
    if (csv)
      std::printf("%s,%s,%lld,%d,%.1f,%.1f,%.1f\n", norm, mode, static_cast<long long>(images), threads, median, low, high);
    else
      std::printf("%s %-5s batch %4lld: %8.1f img/s (min %.1f, max %.1f), %.2f ms/step\n", norm, mode,
                  static_cast<long long>(images), median, low, high, 1e3 * t.median);
    std::fflush(stdout);
  };

  for (const char* norm : {"bn", "gn", "ln"}) {
    Rng init(1), dropout(2), data(3);
    models::CifarResNetOptions options;
    options.norm = models::parse_norm_kind(norm);
    auto net = models::cifar_resnet<float>(options, init, dropout);
    optim::Sgd<float> sgd(net->parameters(), optim::SgdOptions{0.01, 0.9});
    Tensor<float> x = Tensor<float>::randn({batch, 3, 32, 32}, data);
    std::vector<int32_t> labels(static_cast<size_t>(batch));
    for (auto& label : labels) label = static_cast<int32_t>(data.below(10));

    net->train();
    report(norm, "train", batch, bench::time_repeated(
                                     [&] {
                                       sgd.zero_grad();
                                       autograd::backward(ops::nll_loss((*net)(x), labels));
                                       sgd.step();
                                     },
                                     3, repeats));

    net->eval();
    Tensor<float> xi = Tensor<float>::randn({infer_batch, 3, 32, 32}, data);
    report(norm, "infer", infer_batch, bench::time_repeated(
                                           [&] {
                                             autograd::NoGradGuard no_grad;
                                             (*net)(xi);
                                           },
                                           2, repeats));
  }
  return 0;
}
