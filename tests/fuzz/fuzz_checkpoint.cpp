// libFuzzer target: the checkpoint reader and the training-state loaders (see targets.hpp).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return normlab::fuzz::checkpoint_reader(data, size);
}
