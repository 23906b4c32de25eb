// PNG output through stb_image_write (Debian libstb-dev), compiled into this header with
// STB_IMAGE_WRITE_STATIC so every translation unit that includes it gets its own private copy
// and nothing needs linking. (Include this header rather than <stb/stb_image_write.h> in a
// translation unit that uses both.) stb encodes into memory; the file is written atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/io/atomic_file.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#undef STBI_WRITE_NO_STDIO
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#undef STB_IMAGE_WRITE_STATIC
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace normlab::io {

/// Requires: width, height >= 1; channels 1 (gray), 3 (RGB) or 4 (RGBA); `pixels` holds
/// height rows of width * channels bytes, top row first, channels interleaved.
/// Ensures: the PNG file's bytes.
inline std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels) {
  NORMLAB_CHECK(width >= 1 && height >= 1, "encode_png: image size ", width, "x", height,
                " must be positive");
  NORMLAB_CHECK(channels == 1 || channels == 3 || channels == 4, "encode_png: ", channels,
                " channels, expected 1, 3 or 4");
  std::vector<uint8_t> bytes;
  const auto append = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(context);
    const auto* begin = static_cast<const uint8_t*>(data);
    out->insert(out->end(), begin, begin + size);
  };
  const int ok =
      stbi_write_png_to_func(append, &bytes, width, height, channels, pixels, width * channels);
  NORMLAB_CHECK(ok != 0, "encode_png: stb_image_write failed for a ", width, "x", height, "x",
                channels, " image");
  return bytes;
}

/// Requires: as encode_png; the directory of `path` exists.
/// Ensures: `path` is a PNG of the image, written atomically; on failure a normlab::Error names
/// the path and no file is left behind.
inline void write_png(const std::string& path, const uint8_t* pixels, int width, int height,
                      int channels) {
  const std::vector<uint8_t> bytes = encode_png(pixels, width, height, channels);
  write_file_atomic(path, bytes.data(), bytes.size(), "write_png");
}

}  // namespace normlab::io
