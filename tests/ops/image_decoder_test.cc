// ImageDecoder on images small enough to check by hand: PNM and BMP written here, a 2x2 PNG; and
// streams that must not decode (an empty image, as the spec says) or must be refused (an error).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "tests/ops/node_runner.h"

namespace tunnx_test {
namespace {

using namespace tunnx;
using ops::attr;
using namespace std::string_literals;  // "..."s keeps the NUL bytes of binary headers

struct Decoded {
  std::vector<int64_t> dims;
  std::vector<uint8_t> pixels;
};

Decoded decode(const std::vector<uint8_t>& bytes, const std::string& pixel_format = "RGB") {
  std::vector<Value> out = run_one_node({.domain = "", .opset = 20, .op_type = "ImageDecoder",
                                         .inputs = {Tensor::from_vector<uint8_t>({static_cast<int64_t>(bytes.size())}, bytes)},
                                         .attributes = {attr("pixel_format", pixel_format)}});
  const Tensor& t = out[0].tensor();
  return {t.dims(), std::vector<uint8_t>(t.data_as<uint8_t>(), t.data_as<uint8_t>() + t.numel())};
}

std::vector<uint8_t> bytes_of(const std::string& header, std::vector<uint8_t> raster = {}) {
  std::vector<uint8_t> b(header.begin(), header.end());
  b.insert(b.end(), raster.begin(), raster.end());
  return b;
}

TEST(ImageDecoder, BinaryPixmapInEveryPixelFormat) {
  const std::vector<uint8_t> ppm = bytes_of("P6\n# red, blue\n2 1\n255\n", {255, 0, 0, 0, 0, 255});
  Decoded rgb = decode(ppm);
  EXPECT_EQ(rgb.dims, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{255, 0, 0, 0, 0, 255}));
  EXPECT_EQ(decode(ppm, "BGR").pixels, (std::vector<uint8_t>{0, 0, 255, 255, 0, 0}));
  // Pillow's luma: (R * 19595 + G * 38470 + B * 7471 + 2^15) >> 16.
  Decoded gray = decode(ppm, "Grayscale");
  EXPECT_EQ(gray.dims, (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(gray.pixels, (std::vector<uint8_t>{76, 29}));
}

TEST(ImageDecoder, PlainGraymapAndBitmap) {
  // maxval 15 scales by round(v / 15 * 255).
  Decoded g = decode(bytes_of("P2 2 2 15\n0 15 # comment\n7 15\n"), "Grayscale");
  EXPECT_EQ(g.dims, (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(g.pixels, (std::vector<uint8_t>{0, 255, 119, 255}));
  Decoded b = decode(bytes_of("P1\n3 1\n101\n"));  // 1 is black; plain bitmap digits need no spaces
  EXPECT_EQ(b.pixels, (std::vector<uint8_t>{0, 0, 0, 255, 255, 255, 0, 0, 0}));
}

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// A BMP with a 40-byte header: `palette` (BGRX entries), then `rows` as stored.
std::vector<uint8_t> bmp(int32_t width, int32_t height, uint16_t bpp, const std::vector<uint8_t>& palette,
                         const std::vector<uint8_t>& rows) {
  std::vector<uint8_t> b(54 + palette.size() + rows.size(), 0);
  b[0] = 'B', b[1] = 'M';
  put32(b, 2, static_cast<uint32_t>(54 + palette.size() + rows.size()));
  put32(b, 10, static_cast<uint32_t>(54 + palette.size()));
  put32(b, 14, 40);
  put32(b, 18, static_cast<uint32_t>(width));
  put32(b, 22, static_cast<uint32_t>(height));
  b[26] = 1, b[28] = static_cast<uint8_t>(bpp);
  std::copy(palette.begin(), palette.end(), b.begin() + 54);
  std::copy(rows.begin(), rows.end(), b.begin() + 54 + static_cast<std::ptrdiff_t>(palette.size()));
  return b;
}

TEST(ImageDecoder, BitmapFiles) {
  // 24 bits, bottom-up, rows padded to 4 bytes: the first stored row is the image's last.
  Decoded d = decode(bmp(1, 2, 24, {}, {1, 2, 3, 0, 4, 5, 6, 0}));
  EXPECT_EQ(d.dims, (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(d.pixels, (std::vector<uint8_t>{6, 5, 4, 3, 2, 1}));
  // 8-bit palette, top-down (negative height).
  d = decode(bmp(3, -1, 8, {0, 0, 255, 0, 0, 255, 0, 0}, {1, 0, 1, 0}));
  EXPECT_EQ(d.pixels, (std::vector<uint8_t>{0, 255, 0, 255, 0, 0, 0, 255, 0}));
}

TEST(ImageDecoder, Png) {
  const std::vector<uint8_t> png = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
      0x02, 0x00, 0x00, 0x00, 0x02, 0x08, 0x02, 0x00, 0x00, 0x00, 0xfd, 0xd4, 0x9a, 0x73, 0x00, 0x00, 0x00, 0x13, 0x49,
      0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xc0, 0x00, 0xc2, 0x0c, 0xff, 0xb9, 0x44, 0xe4, 0x00, 0x1a,
      0x58, 0x03, 0x3a, 0x56, 0x63, 0xa2, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  Decoded d = decode(png);
  EXPECT_EQ(d.dims, (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(d.pixels, (std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30}));
  // Cut short, it does not decode: an empty image of the format's channels.
  d = decode(std::vector<uint8_t>(png.begin(), png.begin() + 50), "Grayscale");
  EXPECT_EQ(d.dims, (std::vector<int64_t>{0, 0, 1}));
}

TEST(ImageDecoder, CorruptStreamsGiveEmptyImages) {
  const std::vector<std::vector<uint8_t>> corrupt = {
      {},                                                   // nothing
      {1, 2, 3, 4, 5, 6, 7, 8},                             // no known signature
      {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I'},  // a JPEG cut inside its first segment
      bytes_of("P6\n2 1\n255\n", {255, 0, 0}),              // a pixmap one pixel short
      bmp(4, 4, 24, {}, {1, 2, 3}),                         // a bitmap with 3 of its 64 bytes
      bytes_of("II*\0\x08\0\0\0"s, {0xFF, 0xFF}),            // a TIFF whose first directory is cut
      bytes_of("RIFF\x10\0\0\0WEBPVP8 "s),                   // a WebP with no frame
      {0, 0, 0, 12, 'j', 'P', ' ', ' ', '\r', '\n', 0x87, '\n', 0, 0},  // a JPEG 2000 signature only
  };
  for (const auto& bytes : corrupt) EXPECT_EQ(decode(bytes).dims, (std::vector<int64_t>{0, 0, 3}));
}

TEST(ImageDecoder, RefusesHugeImagesAndBadInputs) {
  std::string why = error_of([] { decode(bytes_of("P5\n100000 100000\n255\n", {0})); });
  EXPECT_NE(why.find("node 'node' (ImageDecoder)"), std::string::npos) << why;
  EXPECT_NE(why.find("the image is 100000 x 100000, more than the 268435456-pixel limit"), std::string::npos) << why;
  why = error_of([] { decode(bytes_of("P6\n1 1\n255\n", {0, 0, 0}), "HSV"); });
  EXPECT_NE(why.find("pixel_format must be RGB, BGR or Grayscale, got 'HSV'"), std::string::npos) << why;
  why = error_of([] {
    run_one_node({.domain = "", .opset = 20, .op_type = "ImageDecoder",
                  .inputs = {Tensor::from_vector<uint8_t>({1, 2}, {0, 0})}});
  });
  EXPECT_NE(why.find("encoded_stream must be 1-D (the bytes of one image), got"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
