// libFuzzer target: the CIFAR-10 reader and the loader over what it reads (see targets.hpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return normlab::fuzz::cifar10_reader(data, size);
}
