// Builds the comparison's model from the installed headers and runs one training step.
#include <cstdio>

#include <normlab/normlab.hpp>

int main() {
  using namespace normlab;
  manual_seed(1);
  auto net = models::cifar_resnet<float>();
  optim::Sgd<float> sgd(net->parameters(), optim::SgdOptions{0.01, 0.9});
  Tensor<float> x = Tensor<float>::randn({2, 3, 32, 32}, default_rng());
  Tensor<float> loss = ops::nll_loss((*net)(x), {1, 2});
  autograd::backward(loss);
  sgd.step();
  std::printf("parameters %lld, loss %.4f\n", static_cast<long long>(net->parameter_count()), loss.item());
  return net->parameter_count() == 40394 ? 0 : 1;
}
