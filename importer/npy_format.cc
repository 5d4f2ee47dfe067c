// NumPy's .npy format (numpy/lib/format.py) on bytes in memory.
#include "importer/npy_format.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

namespace tunnx {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kMaxRank = 64;  // NumPy 2's NPY_MAXDIMS

struct NpyType {
  const char* descr;
  DataType dtype;
};
// Little-endian descriptors; one-byte types use '|'.
constexpr NpyType kNpyTypes[] = {
    {"|b1", DataType::kBool},    {"|i1", DataType::kInt8},    {"<i2", DataType::kInt16},
    {"<i4", DataType::kInt32},   {"<i8", DataType::kInt64},   {"|u1", DataType::kUInt8},
    {"<u2", DataType::kUInt16},  {"<u4", DataType::kUInt32},  {"<u8", DataType::kUInt64},
    {"<f2", DataType::kFloat16}, {"<f4", DataType::kFloat32}, {"<f8", DataType::kFloat64},
};

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> dims;
};

// The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
// It is read by hand because std::regex recurses once per character, so a long hostile header
// would overflow the stack.
class HeaderReader {
 public:
  HeaderReader(std::string_view text, const ErrorContext& where) : text_(text), where_(where) {}

  Header read() {
    Header h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    auto first_time = [this](bool& seen, const std::string& key) {
      if (seen) throw bad("names '" + key + "' twice");
      seen = true;
    };
    if (!eat('{')) throw bad("is not a Python dict");
    while (!eat('}')) {
      const std::string key = quoted();
      if (!eat(':')) throw bad("has no ':' after '" + key + "'");
      if (key == "descr") {
        first_time(seen_descr, key);
        h.descr = quoted();
      } else if (key == "fortran_order") {
        first_time(seen_order, key);
        if (eat_word("True")) h.fortran_order = true;
        else if (!eat_word("False")) throw bad("has a fortran_order that is neither True nor False");
      } else if (key == "shape") {
        first_time(seen_shape, key);
        h.dims = shape();
      } else {
        throw bad("has an unexpected key '" + key + "'");
      }
      if (!eat(',')) {
        if (!eat('}')) throw bad("is not a Python dict (expected ',' or '}')");
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) throw bad("has text after the dict");
    if (!seen_descr) throw bad("has no descr");
    if (!seen_order) throw bad("has no fortran_order");
    if (!seen_shape) throw bad("has no shape");
    return h;
  }

 private:
  Error bad(const std::string& why) const { return Error(ErrorCode::kInvalidArgument, ".npy header " + why, where_); }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool eat_word(std::string_view word) {
    skip_space();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::string quoted() {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) throw bad("has a key or value that is not a string");
    const char quote = text_[pos_++];
    const size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) throw bad("has an unterminated string");
    std::string s(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  // A tuple of non-negative integers: (), (5,), (2, 3).
  std::vector<int64_t> shape() {
    std::vector<int64_t> dims;
    if (!eat('(')) throw bad("has a shape that is not a tuple");
    while (!eat(')')) {
      if (dims.size() == kMaxRank) throw bad("has a shape of more than " + std::to_string(kMaxRank) + " dims");
      dims.push_back(integer());
      if (eat(')')) break;
      if (!eat(',')) throw bad("has a shape that is not a tuple of integers");
    }
    return dims;
  }
  int64_t integer() {
    skip_space();
    const size_t start = pos_;
    int64_t value = 0;
    for (; pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; ++pos_) {
      const int digit = text_[pos_] - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) throw bad("has a dimension too large for int64");
      value = value * 10 + digit;
    }
    if (pos_ == start) throw bad("has a shape that is not a tuple of integers");
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2's long literal, in old files
    return value;
  }

  std::string_view text_;
  size_t pos_ = 0;
  const ErrorContext& where_;
};

// What a descr names: a numeric dtype, or strings of `width` UTF-32 code units each ("<U5").
struct Element {
  DataType dtype = DataType::kUndefined;
  uint64_t width = 0;
  uint64_t bytes() const { return dtype == DataType::kString ? 4 * width : element_size(dtype); }
};

Element element_of(std::string descr, const ErrorContext& where) {
  auto unsupported = [&] {
    return Error(ErrorCode::kUnsupported, ".npy dtype '" + descr + "' is not supported", where);
  };
  if (descr.size() >= 2 && descr[0] == '=') descr[0] = '<';  // native order; tunnx runs little-endian only
  if (descr == "<b1" || descr == "<i1" || descr == "<u1") descr[0] = '|';
  for (const auto& t : kNpyTypes)
    if (descr == t.descr) return {t.dtype, 0};
  if (descr.size() < 3 || descr.compare(0, 2, "<U") != 0) throw unsupported();
  uint64_t width = 0;
  for (size_t i = 2; i < descr.size(); ++i) {
    if (descr[i] < '0' || descr[i] > '9') throw unsupported();
    width = width * 10 + static_cast<uint64_t>(descr[i] - '0');
    if (width > std::numeric_limits<uint32_t>::max()) throw unsupported();
  }
  if (width == 0) throw unsupported();
  return {DataType::kString, width};
}

uint32_t read_u32le(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 | static_cast<uint32_t>(b[2]) << 16 |
         static_cast<uint32_t>(b[3]) << 24;
}

bool is_scalar_value(uint32_t c) { return c <= 0x10FFFF && (c < 0xD800 || c > 0xDFFF); }

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | c >> 6);
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | c >> 12);
    out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | c >> 18);
    out += static_cast<char>(0x80 | (c >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
std::u32string decode_utf8(std::string_view s, int64_t index) {
  auto invalid = [&](size_t at) {
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(s[at]));
    return Error(ErrorCode::kInvalidArgument, "string at flat index " + std::to_string(index) +
                                                  " is not valid UTF-8 (byte " + byte + " at offset " +
                                                  std::to_string(at) + ")");
  };
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto lead = static_cast<unsigned char>(s[i]);
    size_t extra;
    uint32_t c, smallest;
    if (lead < 0x80) {
      extra = 0, c = lead, smallest = 0;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1, c = lead & 0x1F, smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2, c = lead & 0x0F, smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3, c = lead & 0x07, smallest = 0x10000;
    } else {
      throw invalid(i);
    }
    if (s.size() - i <= extra) throw invalid(i);
    for (size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) throw invalid(i + k);
      c = c << 6 | (next & 0x3F);
    }
    if (c < smallest || !is_scalar_value(c)) throw invalid(i);
    out += static_cast<char32_t>(c);
    i += extra + 1;
  }
  return out;
}

// Strings as `<U{width}`: each element `width` UTF-32LE code units, NUL-padded.
std::string encode_strings(const Tensor& tensor, uint64_t& width) {
  std::vector<std::u32string> decoded;
  decoded.reserve(static_cast<size_t>(tensor.numel()));
  width = 1;  // NumPy has no zero-width unicode arrays
  const auto* strings = tensor.data_as<std::string>();
  for (int64_t i = 0; i < tensor.numel(); ++i) {
    decoded.push_back(decode_utf8(strings[i], i));
    if (!decoded.back().empty() && decoded.back().back() == 0)
      throw Error(ErrorCode::kInvalidArgument, "string at flat index " + std::to_string(i) +
                                                   " ends with NUL, which NumPy's unicode arrays drop");
    width = std::max<uint64_t>(width, decoded.back().size());
  }
  std::string out(decoded.size() * width * 4, '\0');
  char* p = out.data();
  for (const auto& s : decoded) {
    for (size_t k = 0; k < s.size(); ++k) {
      const auto c = static_cast<uint32_t>(s[k]);
      for (int b = 0; b < 4; ++b) p[4 * k + b] = static_cast<char>(c >> (8 * b) & 0xFF);
    }
    p += width * 4;
  }
  return out;
}

std::string shape_literal(const std::vector<int64_t>& dims) {
  std::string shape = "(";
  for (size_t i = 0; i < dims.size(); ++i) shape += (i ? ", " : "") + std::to_string(dims[i]);
  return shape + (dims.size() == 1 ? ",)" : ")");
}

}  // namespace

Tensor parse_npy(std::string_view bytes, const ErrorContext& where) {
  auto bad = [&where](const std::string& why) { return Error(ErrorCode::kInvalidArgument, why, where); };
  if (bytes.size() < 10 || bytes.substr(0, kMagic.size()) != kMagic) throw bad("not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated .npy header");
    header_len = read_u32le(bytes.data() + 8);
    header_start = 12;
  } else {
    throw bad(".npy version " + std::to_string(major) + " is not supported");
  }
  if (header_len > bytes.size() - header_start) throw bad("truncated .npy header");
  const Header header = HeaderReader(bytes.substr(header_start, header_len), where).read();
  const Element element = element_of(header.descr, where);
  if (header.fortran_order) throw bad("Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");

  int64_t numel = 0;
  try {
    numel = checked_element_count(header.dims);
  } catch (const Error& e) {
    throw e.with_context(where);
  }
  const std::string_view data = bytes.substr(header_start + header_len);
  uint64_t needed = 0;
  const bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(numel), element.bytes(), &needed);
  if (overflow || needed != data.size()) {
    const std::string type = element.dtype == DataType::kString ? "'" + header.descr + "'" : to_string(element.dtype);
    throw bad(".npy data has " + std::to_string(data.size()) + " bytes, shape " + dims_to_string(header.dims) +
              " of " + type + " needs " + (overflow ? "more than 2^64" : std::to_string(needed)));
  }

  Tensor t(element.dtype, header.dims);
  if (element.dtype == DataType::kString) {
    auto* out = t.mutable_data_as<std::string>();
    for (int64_t i = 0; i < numel; ++i) {
      const char* item = data.data() + static_cast<uint64_t>(i) * element.bytes();
      uint64_t length = element.width;
      while (length > 0 && read_u32le(item + 4 * (length - 1)) == 0) --length;  // NumPy drops trailing NULs
      for (uint64_t k = 0; k < length; ++k) {
        const uint32_t c = read_u32le(item + 4 * k);
        if (!is_scalar_value(c))
          throw bad("string at flat index " + std::to_string(i) + " holds " + std::to_string(c) +
                    ", which is not a Unicode scalar value");
        append_utf8(out[i], c);
      }
    }
  } else if (!data.empty()) {
    if (element.dtype == DataType::kBool)
      for (size_t i = 0; i < data.size(); ++i)
        if (static_cast<unsigned char>(data[i]) > 1)
          throw bad("bool at flat index " + std::to_string(i) + " is " +
                    std::to_string(static_cast<unsigned char>(data[i])) + ", not 0 or 1");
    std::memcpy(t.mutable_data(), data.data(), data.size());
  }
  return t;
}

bool npy_writes(DataType dtype) {
  for (const auto& t : kNpyTypes)
    if (t.dtype == dtype) return true;
  return dtype == DataType::kString;
}

NpyBytes encode_npy(const Tensor& tensor) {
  std::string descr;
  std::string strings;
  for (const auto& t : kNpyTypes)
    if (t.dtype == tensor.dtype()) descr = t.descr;
  if (tensor.dtype() == DataType::kString) {
    uint64_t width = 0;
    strings = encode_strings(tensor, width);
    descr = "<U" + std::to_string(width);
  }
  if (descr.empty())
    throw Error(ErrorCode::kUnsupported, std::string(to_string(tensor.dtype())) + " tensors cannot be written as .npy");
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_literal(tensor.dims()) + ", }";
  // Version 1.0 unless the header outgrows its 2-byte length; NumPy pads with spaces so that magic,
  // version, length, header and '\n' are a multiple of 64 bytes.
  const bool v1 = header.size() + 64 <= 0xFFFF;
  const size_t prefix = v1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';

  NpyBytes out;
  out.head.reserve(prefix + header.size() + strings.size());
  out.head.append(kMagic);
  out.head += static_cast<char>(v1 ? 1 : 2);
  out.head += '\0';
  for (size_t b = 0; b < prefix - 8; ++b) out.head += static_cast<char>(header.size() >> (8 * b) & 0xFF);
  out.head += header;
  out.head += strings;
  if (tensor.dtype() != DataType::kString && tensor.nbytes())
    out.tail = std::string_view(static_cast<const char*>(tensor.data()), tensor.nbytes());
  return out;
}

}  // namespace tunnx
