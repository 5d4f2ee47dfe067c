// .npy files: strings as NumPy unicode arrays (`<U`, UTF-32), read back by numpy without pickle and by
// load_npy; and hostile files that must fail with an Error naming the file, never crash.
#include <gtest/gtest.h>

#include "tests/importer/file_format_helpers.h"
#include "tunnx/io.h"

namespace tunnx::formats {
namespace {

using e2e::contains;
using e2e::TempFolder;

// ASCII, accents, CJK, an emoji (4 UTF-8 bytes), an inner NUL and the empty string.
const std::vector<std::string> kTexts = {"plain", "h\xc3\xa9llo", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                         "\xf0\x9f\x99\x82!", std::string("a\0b", 3), ""};

TEST(NpyStrings, RoundTripThroughLoadNpy) {
  TempFolder temp;
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{2, 3}, {6}}) {
    const Tensor strings = Tensor::from_vector<std::string>(dims, kTexts);
    save_npy(temp.root() / "s.npy", strings);
    const Tensor back = load_npy(temp.root() / "s.npy");
    EXPECT_TRUE(back.equals(strings)) << dims_to_string(dims);
  }
  const Tensor scalar = Tensor::from_vector<std::string>({}, {"\xc3\xa9t\xc3\xa9"});
  save_npy(temp.root() / "scalar.npy", scalar);
  EXPECT_TRUE(load_npy(temp.root() / "scalar.npy").equals(scalar));
  const Tensor empty(DataType::kString, {0, 4});
  save_npy(temp.root() / "empty.npy", empty);
  EXPECT_TRUE(load_npy(temp.root() / "empty.npy").equals(empty));
}

// The width is the longest string in code points (not bytes), and at least 1.
TEST(NpyStrings, WidthIsTheLongestStringInCodePoints) {
  TempFolder temp;
  save_npy(temp.root() / "s.npy", Tensor::from_vector<std::string>({3}, {"\xe6\x97\xa5\xe6\x9c\xac", "abc", ""}));
  EXPECT_TRUE(contains(read_bytes(temp.root() / "s.npy"), "'descr': '<U3'"));
  save_npy(temp.root() / "e.npy", Tensor::from_vector<std::string>({2}, {"", ""}));
  EXPECT_TRUE(contains(read_bytes(temp.root() / "e.npy"), "'descr': '<U1'"));
}

TEST(NpyStrings, NumpyReadsThemWithoutPickleAndWritesThemForUs) {
  if (!venv_python_has("numpy")) GTEST_SKIP() << "no .venv with numpy (scripts/setup_venv.sh)";
  TempFolder temp;
  save_npy(temp.root() / "ours.npy", Tensor::from_vector<std::string>({2, 3}, kTexts));
  const std::string script =
      "import sys, numpy as np\n"
      "a = np.load(sys.argv[1], allow_pickle=False)\n"
      "expected = ['plain', 'h\\u00e9llo', '\\u65e5\\u672c\\u8a9e', '\\U0001F642!', 'a\\x00b', '']\n"
      "assert a.dtype.str == '<U5', a.dtype.str\n"
      "assert a.shape == (2, 3), a.shape\n"
      "assert a.ravel().tolist() == expected, a.ravel().tolist()\n"
      "np.save(sys.argv[2], np.array([['x', '\\u00fcber'], ['\\u4e2d', '\\U0001F600\\U0001F600']]))\n"
      "print('ok')\n";
  const e2e::ProcessResult r =
      run_python(temp.root(), script, {(temp.root() / "ours.npy").string(), (temp.root() / "theirs.npy").string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const Tensor theirs = load_npy(temp.root() / "theirs.npy");
  EXPECT_TRUE(theirs.equals(Tensor::from_vector<std::string>(
      {2, 2}, {"x", "\xc3\xbc" "ber", "\xe4\xb8\xad", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"})));
}

TEST(NpyStrings, InvalidUtf8IsRefusedNamingTheElement) {
  TempFolder temp;
  const fs::path file = temp.root() / "bad.npy";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\xff", "byte 0xFF at offset 0"},
      {"ok\xc0\xaf", "byte 0xC0 at offset 2"},           // overlong '/'
      {"\xed\xa0\x80", "byte 0xED at offset 0"},          // a UTF-16 surrogate
      {"\xe6\x97", "byte 0xE6 at offset 0"},              // cut short
      {"\xf4\x90\x80\x80", "byte 0xF4 at offset 0"},      // past U+10FFFF
      {"a\xe6" "bc", "byte 0x62 at offset 2"},            // a continuation byte missing
  };
  for (const auto& [text, where] : cases) {
    const std::string message =
        error_of([&] { save_npy(file, Tensor::from_vector<std::string>({2}, {"fine", text})); });
    EXPECT_TRUE(contains(message, file.string() + ": string at flat index 1 is not valid UTF-8 (" + where + ")"))
        << message;
  }
  EXPECT_TRUE(contains(error_of([&] { save_npy(file, Tensor::from_vector<std::string>({1}, {std::string("a\0", 2)})); }),
                       "string at flat index 0 ends with NUL"));
  EXPECT_FALSE(fs::exists(file));
}

// A .npy file with the header dict `dict` and then `data`, as a hostile writer might make it.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(NpyHostile, BadHeadersAndDataFailNamingTheFile) {
  TempFolder temp;
  const fs::path file = temp.root() / "h.npy";
  const std::string big_descr(200'000, 'x');  // std::regex would overflow the stack on this
  std::string v2_header = "{'descr': '" + big_descr + "', 'fortran_order': False, 'shape': (1,), }\n";
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
  for (int b = 0; b < 4; ++b) v2 += static_cast<char>(v2_header.size() >> (8 * b) & 0xFF);
  v2 += v2_header;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""),
       "too large for int64"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", ""),
       "element count overflows int64"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693952, 2), }", ""),
       "needs more than 2^64"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", "abcd"),
       ".npy data has 4 bytes, shape [1000000000000] of float32 needs 4000000000000"},
      {npy_bytes("{'descr': '<U1', 'fortran_order': False, 'shape': (1000000000000000,), }", ""), "needs"},
      {npy_bytes("{'descr': '<U0', 'fortran_order': False, 'shape': (1000000000000000,), }", ""),
       "dtype '<U0' is not supported"},
      {npy_bytes("{'descr': '<U1', 'fortran_order': False, 'shape': (1,), }", std::string("\x00\x00\x11\x00", 4)),
       "string at flat index 0 holds 1114112, which is not a Unicode scalar value"},
      {npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", std::string("\x01\x02", 2)),
       "bool at flat index 1 is 2, not 0 or 1"},
      {npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "12345678"), "dtype '|O' is not supported"},
      {npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "1234"), "dtype '>f4' is not supported"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", "1234"), "Fortran-ordered"},
      {npy_bytes("{'descr': '<f4', 'shape': (1,), }", "1234"), "has no fortran_order"},
      {npy_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "1234"), "twice"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "1234"), "unexpected key"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", ""), "not a tuple of integers"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "1234"), "is not a Python dict"},
      {npy_bytes("{'descr': '<f4", ""), "unterminated string"},
      {v2, "dtype '" + big_descr.substr(0, 20)},
      {std::string("\x93NUMPY\x09\x00\x00\x00", 10), ".npy version 9 is not supported"},
      {"garbage!!!!!", "not a .npy file"},
  };
  for (const auto& [bytes, expected] : cases) {
    write_bytes(file, bytes);
    const std::string message = error_of([&] { load_npy(file); });
    EXPECT_EQ(message.rfind(file.string() + ": ", 0), 0u) << message;
    EXPECT_TRUE(contains(message, expected)) << message;
  }
}

TEST(NpyHostile, RandomDamageNeverCrashes) {
  TempFolder temp;
  const fs::path file = temp.root() / "d.npy";
  for (DataType dtype : {DataType::kString, DataType::kBool, DataType::kFloat64}) {
    save_npy(file, sample(dtype, {2, 2}));
    load_damaged_copies(read_bytes(file), file, [&] { load_npy(file); });
  }
}

TEST(NpyHostile, EveryTruncationFails) {
  TempFolder temp;
  const fs::path whole = temp.root() / "whole.npy", cut = temp.root() / "cut.npy";
  save_npy(whole, Tensor::from_vector<std::string>({2}, {"ab", "\xc3\xa9"}));
  const std::string bytes = read_bytes(whole);
  for (size_t size = 0; size < bytes.size(); ++size) {
    write_bytes(cut, bytes.substr(0, size));
    EXPECT_TRUE(contains(error_of([&] { load_npy(cut); }), cut.string())) << "cut at " << size;
  }
}

}  // namespace
}  // namespace tunnx::formats
