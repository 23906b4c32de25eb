// PNG writer: files carry the PNG signature and the right IHDR, decode back (with stb_image, an
// independent decoder) to exactly the pixels written, and failures leave no file behind.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "normlab/io/png.hpp"
#include "support/temp_dir.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

using namespace normlab;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

uint32_t big_endian(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
         b[at + 3];
}

std::vector<uint8_t> pattern(int width, int height, int channels) {
  std::vector<uint8_t> pixels(static_cast<size_t>(width) * height * channels);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<uint8_t>((i * 37 + i / 7) & 0xFF);
  return pixels;
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE("PNG files have the signature, the IHDR and decode to the same pixels", "[png]") {
  testing::TempDir dir("png");
  const int sizes[][2] = {{1, 1}, {7, 5}, {257, 3}, {32, 32}};
  for (int channels : {1, 3, 4})
    for (const auto& size : sizes) {
      const int width = size[0], height = size[1];
      INFO(width << "x" << height << "x" << channels);
      const std::vector<uint8_t> pixels = pattern(width, height, channels);
      const std::string path = dir.file("image.png");
      io::write_png(path, pixels.data(), width, height, channels);
      const std::vector<uint8_t> bytes = read_bytes(path);
      REQUIRE(bytes.size() > 33);
      const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
      CHECK(std::equal(signature, signature + 8, bytes.begin()));
      CHECK(big_endian(bytes, 8) == 13);  // IHDR chunk length
      CHECK(std::string(bytes.begin() + 12, bytes.begin() + 16) == "IHDR");
      CHECK(big_endian(bytes, 16) == static_cast<uint32_t>(width));
      CHECK(big_endian(bytes, 20) == static_cast<uint32_t>(height));
      CHECK(bytes[24] == 8);                                            // bit depth
      CHECK(bytes[25] == (channels == 1 ? 0 : channels == 3 ? 2 : 6));  // colour type

      int w = 0, h = 0, n = 0;
      stbi_uc* decoded =
          stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n, 0);
      REQUIRE(decoded != nullptr);
      CHECK(w == width);
      CHECK(h == height);
      CHECK(n == channels);
      CHECK(std::equal(pixels.begin(), pixels.end(), decoded));
      stbi_image_free(decoded);
      CHECK(listing(dir.path()) == std::vector<std::string>{"image.png"});  // no temporary left
    }
}

TEST_CASE("write_png replaces an existing file", "[png]") {
  testing::TempDir dir("png_replace");
  const std::string path = dir.file("a.png");
  const std::vector<uint8_t> first = pattern(4, 4, 3), second(4 * 4 * 3, 200);
  io::write_png(path, first.data(), 4, 4, 3);
  io::write_png(path, second.data(), 4, 4, 3);
  int w, h, n;
  stbi_uc* decoded = stbi_load(path.c_str(), &w, &h, &n, 0);
  REQUIRE(decoded != nullptr);
  CHECK(std::equal(second.begin(), second.end(), decoded));
  stbi_image_free(decoded);
}

TEST_CASE("write_png failures name the path and leave no file", "[png][errors]") {
  testing::TempDir dir("png_fail");
  const std::vector<uint8_t> pixels = pattern(3, 3, 3);

  const std::string missing_dir = dir.file("no/such/dir/out.png");
  CHECK_THROWS_WITH(io::write_png(missing_dir, pixels.data(), 3, 3, 3),
                    Catch::Contains("write_png") && Catch::Contains(missing_dir));

  std::ofstream(dir.file("plain_file")) << "x";
  const std::string under_file = dir.file("plain_file/out.png");
  CHECK_THROWS_WITH(io::write_png(under_file, pixels.data(), 3, 3, 3), Catch::Contains(under_file));

  // The temporary file is written, then the rename onto a directory fails: it must be removed.
  fs::create_directory(dir.file("taken.png"));
  CHECK_THROWS_WITH(io::write_png(dir.file("taken.png"), pixels.data(), 3, 3, 3),
                    Catch::Contains(dir.file("taken.png")) && Catch::Contains("renaming"));
  std::vector<std::string> names = listing(dir.path());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"plain_file", "taken.png"});

  CHECK_THROWS_WITH(io::write_png(dir.file("x.png"), pixels.data(), 3, 3, 2),
                    Catch::Contains("2 channels"));
  CHECK_THROWS_WITH(io::write_png(dir.file("x.png"), pixels.data(), 0, 3, 3),
                    Catch::Contains("0x3"));
  CHECK(!fs::exists(dir.file("x.png")));
}
