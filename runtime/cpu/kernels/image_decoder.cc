// ImageDecoder (opset 20): encoded_stream uint8 [L], the bytes of one image file, -> image uint8
// [H, W, C], C = 3 for pixel_format RGB and BGR, 1 for Grayscale.
//
// BMP and PNM (PBM, PGM, PPM) are parsed here; JPEG (libjpeg), PNG (libpng), TIFF (libtiff), WebP
// (libwebp) and JPEG 2000 (OpenJPEG) by their libraries. The bytes are untrusted: every read is
// bounds-checked, the libraries report errors to us instead of stderr, and an image over
// kMaxPixels is refused before anything is allocated. As the spec says, a stream that cannot be
// decoded (corrupt, truncated, unknown format) gives an empty image [0, 0, C], not an error.
//
// Every decoder yields RGB; Grayscale is then computed as Pillow's convert("L") does, which is what
// the ONNX reference implementation calls, and an alpha channel is dropped as convert("RGB") does.
#include <algorithm>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <span>

#include <jpeglib.h>
#include <jerror.h>
#include <openjpeg.h>
#include <png.h>
#include <tiffio.h>
#include <webp/decode.h>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

using Bytes = std::span<const uint8_t>;

// 2^28 pixels (16384 x 16384): 768 MiB of RGB, far past any image a model is fed.
constexpr int64_t kMaxPixels = int64_t{1} << 28;

struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3]
};

// Thrown (from our own code, never through a library's frames) when the header asks for more
// pixels than kMaxPixels: a limit of ours, reported as an error rather than as an empty image.
struct TooLarge {
  std::string message;
};

void check_size(int64_t width, int64_t height) {
  if (width <= 0 || height <= 0) return;  // the decoders reject these themselves
  if (width > kMaxPixels / height)
    throw TooLarge{"the image is " + std::to_string(width) + " x " + std::to_string(height) + ", more than the " +
                   std::to_string(kMaxPixels) + "-pixel limit"};
}

void allocate(RgbImage& out, int64_t width, int64_t height) {
  check_size(width, height);
  out.width = width;
  out.height = height;
  out.pixels.assign(static_cast<size_t>(width * height * 3), 0);
}

// Runs `fn` when the scope ends: library handles are released on every way out, including a
// longjmp back to a setjmp in the same function (which skips no destructor of that frame).
template <typename Fn> struct Cleanup {
  Fn fn;
  ~Cleanup() { fn(); }
};
template <typename Fn> Cleanup(Fn) -> Cleanup<Fn>;

bool starts_with(Bytes in, std::initializer_list<uint8_t> magic) {
  return in.size() >= magic.size() && std::equal(magic.begin(), magic.end(), in.begin());
}

// ---- PNG (libpng's simplified API, which catches libpng's errors itself) ----------------------

bool decode_png(Bytes in, RgbImage& out) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, in.data(), in.size())) return false;
  Cleanup release{[&] { png_image_free(&image); }};
  check_size(image.width, image.height);
  // Read the alpha channel, if any, and drop it: asking for RGB would composite onto black.
  const bool alpha = (image.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  image.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  std::vector<uint8_t> buffer(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, buffer.data(), 0, nullptr)) return false;
  allocate(out, image.width, image.height);
  const size_t channels = alpha ? 4 : 3;
  for (size_t p = 0; p < out.pixels.size() / 3; ++p)
    std::copy_n(buffer.data() + p * channels, 3, out.pixels.data() + p * 3);
  return true;
}

// ---- JPEG (libjpeg; its errors longjmp back here) ----------------------------------------------

struct JpegErrors {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  bool truncated = false;
};

void jpeg_fail(j_common_ptr info) { std::longjmp(reinterpret_cast<JpegErrors*>(info->err)->jump, 1); }

// Warnings stay off stderr; a truncated stream (which libjpeg pads with gray) counts as corrupt,
// as it does for Pillow.
void jpeg_message(j_common_ptr info, int level) {
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) reinterpret_cast<JpegErrors*>(info->err)->truncated = true;
}

bool decode_jpeg(Bytes in, RgbImage& out) {
  jpeg_decompress_struct info{};
  JpegErrors errors{};
  info.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jpeg_fail;
  errors.manager.emit_message = jpeg_message;
  jpeg_create_decompress(&info);
  Cleanup release{[&] { jpeg_destroy_decompress(&info); }};
  if (setjmp(errors.jump)) return false;
  jpeg_mem_src(&info, in.data(), static_cast<unsigned long>(in.size()));
  jpeg_read_header(&info, TRUE);
  // CMYK and YCCK need Adobe's inversion conventions that libjpeg leaves to the caller.
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) return false;
  check_size(info.image_width, info.image_height);
  info.out_color_space = JCS_RGB;  // grayscale is replicated; Pillow's defaults otherwise (ISLOW, fancy upsampling)
  jpeg_start_decompress(&info);
  if (info.output_components != 3) return false;
  allocate(out, info.output_width, info.output_height);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = out.pixels.data() + static_cast<size_t>(info.output_scanline) * info.output_width * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  return !errors.truncated;
}

// ---- TIFF (libtiff over the bytes in memory) ---------------------------------------------------

struct MemoryStream {
  Bytes bytes;
  uint64_t at = 0;
};

tmsize_t tiff_read(thandle_t handle, void* buffer, tmsize_t size) {
  auto* s = static_cast<MemoryStream*>(handle);
  if (size <= 0 || s->at >= s->bytes.size()) return 0;
  const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(size), s->bytes.size() - s->at);
  std::memcpy(buffer, s->bytes.data() + s->at, n);
  s->at += n;
  return static_cast<tmsize_t>(n);
}
tmsize_t tiff_write(thandle_t, void*, tmsize_t) { return -1; }
toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
  auto* s = static_cast<MemoryStream*>(handle);
  const uint64_t base = whence == SEEK_CUR ? s->at : whence == SEEK_END ? s->bytes.size() : 0;
  if (offset > UINT64_MAX - base) return static_cast<toff_t>(-1);
  s->at = base + offset;  // past the end is allowed; reads there return nothing
  return s->at;
}
int tiff_close(thandle_t) { return 0; }
toff_t tiff_size(thandle_t handle) { return static_cast<MemoryStream*>(handle)->bytes.size(); }
int tiff_map(thandle_t, void**, toff_t*) { return 0; }
void tiff_unmap(thandle_t, void*, toff_t) {}
// Returning 1 keeps libtiff's process-wide handlers (stderr) out of it.
int tiff_quiet(TIFF*, void*, const char*, const char*, va_list) { return 1; }

bool decode_tiff(Bytes in, RgbImage& out) {
  MemoryStream stream{in};
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_quiet, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_quiet, nullptr);
  TIFFOpenOptionsSetMaxSingleMemAlloc(options, kMaxPixels * 4);
  // "m": no memory mapping, every byte comes through tiff_read.
  TIFF* tiff = TIFFClientOpenExt("ImageDecoder", "rm", &stream, tiff_read, tiff_write, tiff_seek, tiff_close,
                                 tiff_size, tiff_map, tiff_unmap, options);
  TIFFOpenOptionsFree(options);
  if (!tiff) return false;
  Cleanup release{[&] { TIFFClose(tiff); }};
  uint32_t width = 0, height = 0;
  if (!TIFFGetField(tiff, TIFFTAG_IMAGEWIDTH, &width) || !TIFFGetField(tiff, TIFFTAG_IMAGELENGTH, &height) ||
      width == 0 || height == 0)
    return false;
  char why[1024];
  if (!TIFFRGBAImageOK(tiff, why)) return false;
  check_size(width, height);
  // ABGR words (R in the low byte), rows from the top.
  std::vector<uint32_t> raster(static_cast<size_t>(width) * height);
  if (!TIFFReadRGBAImageOriented(tiff, width, height, raster.data(), ORIENTATION_TOPLEFT, 0)) return false;
  allocate(out, width, height);
  for (size_t p = 0; p < raster.size(); ++p) {
    out.pixels[p * 3] = static_cast<uint8_t>(TIFFGetR(raster[p]));
    out.pixels[p * 3 + 1] = static_cast<uint8_t>(TIFFGetG(raster[p]));
    out.pixels[p * 3 + 2] = static_cast<uint8_t>(TIFFGetB(raster[p]));
  }
  return true;
}

// ---- WebP --------------------------------------------------------------------------------------

bool decode_webp(Bytes in, RgbImage& out) {
  int width = 0, height = 0;
  if (!WebPGetInfo(in.data(), in.size(), &width, &height) || width <= 0 || height <= 0) return false;
  allocate(out, width, height);
  return WebPDecodeRGBInto(in.data(), in.size(), out.pixels.data(), out.pixels.size(), width * 3) != nullptr;
}

// ---- JPEG 2000 (OpenJPEG; a JP2 file or a bare codestream) ---------------------------------------

OPJ_SIZE_T opj_read(void* buffer, OPJ_SIZE_T size, void* user) {
  auto* s = static_cast<MemoryStream*>(user);
  if (s->at >= s->bytes.size()) return static_cast<OPJ_SIZE_T>(-1);  // OpenJPEG's end of stream
  const uint64_t n = std::min<uint64_t>(size, s->bytes.size() - s->at);
  std::memcpy(buffer, s->bytes.data() + s->at, n);
  s->at += n;
  return n;
}
OPJ_OFF_T opj_skip(OPJ_OFF_T size, void* user) {
  auto* s = static_cast<MemoryStream*>(user);
  if (size < 0) return -1;
  const uint64_t left = s->bytes.size() - std::min<uint64_t>(s->at, s->bytes.size());
  const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(size), left);
  s->at += n;
  return static_cast<OPJ_OFF_T>(n);
}
OPJ_BOOL opj_seek(OPJ_OFF_T offset, void* user) {
  auto* s = static_cast<MemoryStream*>(user);
  if (offset < 0 || static_cast<uint64_t>(offset) > s->bytes.size()) return OPJ_FALSE;
  s->at = static_cast<uint64_t>(offset);
  return OPJ_TRUE;
}
void opj_quiet(const char*, void*) {}

// Pillow's reading of a component sample: shifted to 8 bits, signed samples offset to unsigned.
uint8_t j2k_sample(const opj_image_comp_t& c, int64_t i) {
  const int shift = 8 - static_cast<int>(c.prec);
  int64_t v = c.data[i] + (c.sgnd ? int64_t{1} << (c.prec - 1) : 0);
  v = shift < 0 ? v >> -shift : v << shift;
  return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

bool decode_jpeg2000(Bytes in, RgbImage& out, bool codestream) {
  MemoryStream stream{in};
  opj_stream_t* s = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
  if (!s) return false;
  Cleanup release_stream{[&] { opj_stream_destroy(s); }};
  opj_stream_set_user_data(s, &stream, nullptr);
  opj_stream_set_user_data_length(s, in.size());
  opj_stream_set_read_function(s, opj_read);
  opj_stream_set_skip_function(s, opj_skip);
  opj_stream_set_seek_function(s, opj_seek);
  opj_codec_t* codec = opj_create_decompress(codestream ? OPJ_CODEC_J2K : OPJ_CODEC_JP2);
  if (!codec) return false;
  Cleanup release_codec{[&] { opj_destroy_codec(codec); }};
  opj_set_error_handler(codec, opj_quiet, nullptr);
  opj_set_warning_handler(codec, opj_quiet, nullptr);
  opj_set_info_handler(codec, opj_quiet, nullptr);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(codec, &parameters)) return false;
  opj_image_t* image = nullptr;
  Cleanup release_image{[&] {
    if (image) opj_image_destroy(image);
  }};
  if (!opj_read_header(s, codec, &image) || !image || image->numcomps == 0) return false;
  check_size(int64_t{image->x1} - image->x0, int64_t{image->y1} - image->y0);
  if (!opj_decode(codec, s, image) || !opj_end_decompress(codec, s)) return false;
  // Full-resolution components only (no chroma subsampling), in RGB or gray: sYCC would need a
  // conversion Pillow does and we do not.
  const opj_image_comp_t* c = image->comps;
  const uint32_t n = image->numcomps;
  if (image->color_space == OPJ_CLRSPC_SYCC || image->color_space == OPJ_CLRSPC_EYCC ||
      image->color_space == OPJ_CLRSPC_CMYK)
    return false;
  for (uint32_t k = 0; k < n; ++k)
    if (!c[k].data || c[k].w != c[0].w || c[k].h != c[0].h || c[k].prec < 1 || c[k].prec > 31) return false;
  allocate(out, c[0].w, c[0].h);
  const bool gray = n < 3;  // gray, or gray and alpha
  for (int64_t p = 0; p < out.width * out.height; ++p)
    for (int ch = 0; ch < 3; ++ch) out.pixels[static_cast<size_t>(p * 3 + ch)] = j2k_sample(c[gray ? 0 : ch], p);
  return true;
}

// ---- BMP (parsed here) -------------------------------------------------------------------------

uint32_t le32(Bytes in, size_t at) {
  return uint32_t{in[at]} | uint32_t{in[at + 1]} << 8 | uint32_t{in[at + 2]} << 16 | uint32_t{in[at + 3]} << 24;
}
uint16_t le16(Bytes in, size_t at) { return static_cast<uint16_t>(in[at] | in[at + 1] << 8); }

// One channel of a bit-field pixel (16 and 32 bits per pixel), scaled to 8 bits as Pillow's
// unpackers do (v * 255 / max, truncated).
struct BitField {
  uint32_t mask = 0;
  int shift = 0;
  uint32_t max = 0;
  uint8_t of(uint32_t pixel) const {
    if (max == 0) return 0;
    const uint32_t v = (pixel & mask) >> shift;
    return static_cast<uint8_t>(max == 255 ? v : uint64_t{v} * 255 / max);
  }
};

bool bit_field(uint32_t mask, BitField& f) {
  f.mask = mask;
  if (mask == 0) return true;
  f.shift = std::countr_zero(mask);
  const uint32_t bits = mask >> f.shift;
  if ((bits & (bits + 1)) != 0) return false;  // not contiguous
  f.max = bits;
  return true;
}

bool decode_bmp(Bytes in, RgbImage& out) {
  if (in.size() < 26) return false;
  const uint32_t pixel_offset = le32(in, 10), header = le32(in, 14);
  int64_t width = 0, height = 0;
  uint32_t bpp = 0, compression = 0, colors = 0;
  size_t palette_entry = 4;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER
    width = le16(in, 18);
    height = le16(in, 20);
    bpp = le16(in, 24);
    palette_entry = 3;
  } else if (header >= 40 && header <= 124) {
    if (in.size() < 14 + size_t{header}) return false;
    width = static_cast<int32_t>(le32(in, 18));
    height = static_cast<int32_t>(le32(in, 22));
    bpp = le16(in, 28);
    compression = le32(in, 30);
    colors = le32(in, 46);
  } else {
    return false;
  }
  const bool top_down = height < 0;
  height = std::abs(height);
  if (width <= 0 || height == 0) return false;
  // 0 plain, 3 and 6 bit fields; the run-length encodings (1, 2) and embedded JPEG/PNG (4, 5) are not read.
  const bool fields = compression == 3 || compression == 6;
  if (compression != 0 && !fields) return false;
  if (!(bpp == 1 || bpp == 2 || bpp == 4 || bpp == 8 || bpp == 16 || bpp == 24 || bpp == 32)) return false;
  if (fields && bpp != 16 && bpp != 32) return false;
  check_size(width, height);

  // Channel masks: in the header from V2 (52 bytes) on, else right after a 40-byte header.
  BitField r, g, b;
  if (fields) {
    const size_t at = 14 + 40;
    if (in.size() < at + 12) return false;
    if (!bit_field(le32(in, at), r) || !bit_field(le32(in, at + 4), g) || !bit_field(le32(in, at + 8), b)) return false;
  } else if (bpp == 16) {
    bit_field(0x7C00, r), bit_field(0x03E0, g), bit_field(0x001F, b);
  } else if (bpp == 32) {
    bit_field(0xFF0000, r), bit_field(0xFF00, g), bit_field(0xFF, b);
  }

  // The palette follows the header (and the masks of a 40-byte header with bit fields).
  std::vector<uint8_t> palette;  // RGB triples
  if (bpp <= 8) {
    const size_t start = 14 + size_t{header} + (header == 40 && fields ? 12 : 0);
    size_t count = colors == 0 || colors > (1u << bpp) ? (size_t{1} << bpp) : colors;
    // Files that end their palette early (before the pixels) keep the entries they have.
    const size_t end = std::min<size_t>(pixel_offset, in.size());
    if (start > end) return false;
    count = std::min(count, (end - start) / palette_entry);
    palette.assign((size_t{1} << bpp) * 3, 0);  // indices past the palette read black
    for (size_t i = 0; i < count; ++i)
      for (int ch = 0; ch < 3; ++ch) palette[i * 3 + ch] = in[start + i * palette_entry + 2 - ch];
  }

  const int64_t stride = (width * bpp + 31) / 32 * 4;
  if (pixel_offset > in.size() || static_cast<uint64_t>(stride) * height > in.size() - pixel_offset) return false;
  allocate(out, width, height);
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* row = in.data() + pixel_offset + stride * (top_down ? y : height - 1 - y);
    uint8_t* dst = out.pixels.data() + y * width * 3;
    for (int64_t x = 0; x < width; ++x, dst += 3) {
      if (bpp <= 8) {
        const int64_t bit = x * bpp;
        const uint32_t index = (row[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
        std::copy_n(palette.data() + index * 3, 3, dst);
      } else if (bpp == 24) {
        dst[0] = row[x * 3 + 2], dst[1] = row[x * 3 + 1], dst[2] = row[x * 3];
      } else {
        const uint32_t pixel = bpp == 16 ? le16(Bytes(row, static_cast<size_t>(stride)), static_cast<size_t>(x * 2))
                                         : le32(Bytes(row, static_cast<size_t>(stride)), static_cast<size_t>(x * 4));
        dst[0] = r.of(pixel), dst[1] = g.of(pixel), dst[2] = b.of(pixel);
      }
    }
  }
  return true;
}

// ---- PNM: P1-P3 (plain text) and P4-P6 (binary) bitmaps, graymaps and pixmaps -------------------

struct PnmReader {
  Bytes in;
  size_t at = 0;

  static bool space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
  void skip_space_and_comments() {
    while (at < in.size()) {
      if (space(in[at])) {
        ++at;
      } else if (in[at] == '#') {
        while (at < in.size() && in[at] != '\n' && in[at] != '\r') ++at;
      } else {
        break;
      }
    }
  }
  // A decimal number up to `limit`; false at the end, on a non-digit or past the limit.
  bool number(uint32_t limit, uint32_t& v, size_t max_digits = 10) {
    skip_space_and_comments();
    uint64_t value = 0;
    size_t digits = 0;
    while (at < in.size() && in[at] >= '0' && in[at] <= '9' && digits < max_digits) {
      value = value * 10 + (in[at++] - '0');
      if (value > limit) return false;
      ++digits;
    }
    v = static_cast<uint32_t>(value);
    return digits > 0;
  }
};

bool decode_pnm(Bytes in, RgbImage& out) {
  const int kind = in[1] - '0';  // 1-6, checked by the caller
  PnmReader r{in, 2};
  const bool bitmap = kind == 1 || kind == 4, color = kind == 3 || kind == 6, plain = kind <= 3;
  uint32_t width = 0, height = 0, maxval = 1;
  if (!r.number(INT32_MAX, width) || !r.number(INT32_MAX, height) || width == 0 || height == 0) return false;
  if (!bitmap && (!r.number(65535, maxval) || maxval == 0)) return false;
  check_size(width, height);
  const int64_t samples = int64_t{width} * height * (color ? 3 : 1);
  auto scaled = [maxval](uint32_t v) {  // Pillow: round(v / maxval * 255), half to even
    if (maxval == 255) return static_cast<uint8_t>(v);
    return static_cast<uint8_t>(std::min(255.0, std::nearbyint(static_cast<double>(v) / maxval * 255)));
  };
  // Refuse a raster longer than the stream before allocating it (a plain sample takes a byte or more).
  const size_t sample_bytes = plain || maxval <= 255 ? 1 : 2;
  const size_t row_bits = (size_t{width} + 7) / 8;
  if (!plain && (r.at >= in.size() || !PnmReader::space(in[r.at]))) return false;
  const size_t left = in.size() - r.at - (plain ? 0 : 1);  // the one whitespace byte before a binary raster
  if (bitmap && !plain ? row_bits * height > left : static_cast<uint64_t>(samples) * sample_bytes > left) return false;
  std::vector<uint8_t> values(static_cast<size_t>(samples));
  if (plain) {
    for (int64_t i = 0; i < samples; ++i) {
      uint32_t v = 0;
      if (bitmap) {  // P1 digits need no separators
        if (!r.number(1, v, 1)) return false;
        values[static_cast<size_t>(i)] = v ? 0 : 255;  // 1 is black
      } else {
        if (!r.number(maxval, v)) return false;
        values[static_cast<size_t>(i)] = scaled(v);
      }
    }
  } else if (bitmap) {
    const uint8_t* p = in.data() + r.at + 1;
    for (uint32_t y = 0; y < height; ++y)
      for (uint32_t x = 0; x < width; ++x)
        values[size_t{y} * width + x] = (p[y * row_bits + x / 8] >> (7 - x % 8)) & 1 ? 0 : 255;
  } else {
    const uint8_t* p = in.data() + r.at + 1;
    for (int64_t i = 0; i < samples; ++i) {
      const uint32_t v = sample_bytes == 2 ? uint32_t{p[i * 2]} << 8 | p[i * 2 + 1] : p[i];
      values[static_cast<size_t>(i)] = scaled(std::min(v, maxval));
    }
  }
  allocate(out, width, height);
  for (int64_t p = 0; p < int64_t{width} * height; ++p)
    for (int ch = 0; ch < 3; ++ch)
      out.pixels[static_cast<size_t>(p * 3 + ch)] = values[static_cast<size_t>(color ? p * 3 + ch : p)];
  return true;
}

// ---- The op ------------------------------------------------------------------------------------

// Decodes by the stream's signature; false when no decoder knows it or the decoder fails.
bool decode_image(Bytes in, RgbImage& out) {
  if (starts_with(in, {0xFF, 0xD8, 0xFF})) return decode_jpeg(in, out);
  if (starts_with(in, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})) return decode_png(in, out);
  if (starts_with(in, {'B', 'M'})) return decode_bmp(in, out);
  if (starts_with(in, {'I', 'I', 42, 0}) || starts_with(in, {'M', 'M', 0, 42})) return decode_tiff(in, out);
  if (in.size() >= 12 && starts_with(in, {'R', 'I', 'F', 'F'}) && std::equal(in.begin() + 8, in.begin() + 12, "WEBP"))
    return decode_webp(in, out);
  if (starts_with(in, {0, 0, 0, 12, 'j', 'P', ' ', ' ', '\r', '\n', 0x87, '\n'}))
    return decode_jpeg2000(in, out, false);
  if (starts_with(in, {0xFF, 0x4F, 0xFF, 0x51})) return decode_jpeg2000(in, out, true);
  if (in.size() >= 3 && in[0] == 'P' && in[1] >= '1' && in[1] <= '6' && PnmReader::space(in[2]))
    return decode_pnm(in, out);
  return false;
}

enum class PixelFormat { kRgb, kBgr, kGray };

void run_image_decoder(KernelContext& ctx, PixelFormat format) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::kUInt8)
    throw ctx.error(std::string("encoded_stream must be uint8, got ") + to_string(x.dtype()));
  if (x.dims().size() != 1)
    throw ctx.error("encoded_stream must be 1-D (the bytes of one image), got " + dims_to_string(x.dims()));
  const int64_t channels = format == PixelFormat::kGray ? 1 : 3;
  RgbImage image;
  bool ok = false;
  try {
    ok = decode_image(Bytes(data<uint8_t>(x), static_cast<size_t>(x.numel())), image);
  } catch (const TooLarge& e) {
    throw ctx.error(e.message);
  }
  if (!ok) {
    ctx.allocate_output(0, DataType::kUInt8, {0, 0, channels});
    return;
  }
  Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kUInt8, {image.height, image.width, channels});
  uint8_t* out = mutable_data<uint8_t>(y);
  const uint8_t* rgb = image.pixels.data();
  const int64_t pixels = image.height * image.width;
  for (int64_t p = 0; p < pixels; ++p, rgb += 3) {
    switch (format) {
      case PixelFormat::kRgb: std::copy_n(rgb, 3, out + p * 3); break;
      case PixelFormat::kBgr: out[p * 3] = rgb[2], out[p * 3 + 1] = rgb[1], out[p * 3 + 2] = rgb[0]; break;
      case PixelFormat::kGray:  // Pillow's ITU-R 601-2 luma in 16-bit fixed point, rounded
        out[p] = static_cast<uint8_t>((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
        break;
    }
  }
}

std::unique_ptr<Kernel> make_image_decoder(const KernelInit& init) {
  const std::string name = init.attr_string("pixel_format", "RGB");
  PixelFormat format;
  if (name == "RGB") format = PixelFormat::kRgb;
  else if (name == "BGR") format = PixelFormat::kBgr;
  else if (name == "Grayscale") format = PixelFormat::kGray;
  else throw init.error("pixel_format must be RGB, BGR or Grayscale, got '" + name + "'");
  return make_kernel([format](KernelContext& ctx) { run_image_decoder(ctx, format); });
}

}  // namespace

void register_image_decoder_kernels(KernelRegistry& registry) {
  add_kernel(registry, "ImageDecoder", 20, INT_MAX, {DataType::kUInt8}, make_image_decoder);
}

}  // namespace tunnx::cpu
