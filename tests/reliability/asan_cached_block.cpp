// Built with ASan only (NORMLAB_SANITIZE): the caching allocator keeps freed tensor buffers for
// reuse, so it must poison them, and the 64-byte round-up beyond a tensor's bytes, or ASan would
// miss these bugs. `overrun` writes one float past a 13-float tensor (inside its 64-byte block);
// `use-after-free` reads a tensor's buffer after the tensor died (the block is in the cache).
// The ctest checks that ASan stops each with a use-after-poison report.
#include <cstdio>
#include <cstring>

#include "normlab/core/tensor.hpp"

int main(int argc, char** argv) {
  using normlab::Tensor;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s overrun|use-after-free\n", argv[0]);
    return 2;
  }
  volatile float sink = 0;
  if (std::strcmp(argv[1], "overrun") == 0) {
    Tensor<float> t = Tensor<float>::zeros({13});
    t.data()[13] = 1.0f;  // BUG: one past the end, inside the rounded block
  } else {
    const float* stale = nullptr;
    {
      Tensor<float> t = Tensor<float>::zeros({16});
      stale = t.data();
    }
    sink = stale[0];  // BUG: the tensor is gone, its block is cached
  }
  std::printf("ASan did not notice (%g)\n", static_cast<double>(sink));
  return 0;
}
