// safetensors files: round trips of every dtype with metadata, files Python's `safetensors` package
// reads and writes, and hostile files that must fail with an Error naming the file and the tensor.
#include <algorithm>
#include <map>

#include <gtest/gtest.h>

#include "tests/importer/file_format_helpers.h"
#include "tunnx/io.h"

namespace tunnx::formats {
namespace {

using e2e::contains;
using e2e::TempFolder;
using Metadata = std::vector<std::pair<std::string, std::string>>;

// Every dtype safetensors holds, named by tunnx's dtype name; then a scalar, an empty tensor, and a
// 3-byte BOOL that leaves the next tensor misaligned.
StateDict every_dtype() {
  StateDict tensors;
  const DataType dtypes[] = {DataType::kFloat64, DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16,
                             DataType::kInt64,   DataType::kInt32,   DataType::kInt16,   DataType::kInt8,
                             DataType::kUInt64,  DataType::kUInt32,  DataType::kUInt16,  DataType::kUInt8,
                             DataType::kBool};
  int seed = 0;
  for (DataType dtype : dtypes) tensors.emplace_back(to_string(dtype), sample(dtype, {2, 3}, seed++));
  tensors.emplace_back("scalar", sample(DataType::kFloat32, {}, 3));
  tensors.emplace_back("empty", Tensor(DataType::kFloat32, {0, 4}));
  tensors.emplace_back("flags", sample(DataType::kBool, {3}, 1));
  tensors.emplace_back("misaligned", sample(DataType::kFloat32, {5}, 4));
  return tensors;
}

std::map<std::string, Tensor> by_name(const StateDict& tensors) { return {tensors.begin(), tensors.end()}; }

void expect_same(const StateDict& actual, const StateDict& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  const auto got = by_name(actual);
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(got.at(name).equals(tensor)) << name;
  }
}

// A safetensors file from a header's text and data, as a hostile writer might make it.
std::string file_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int b = 0; b < 8; ++b) out[b] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * b) & 0xFF);
  return out + header + data;
}

TEST(SafetensorsRoundTrip, EveryDtypeWithMetadataInOrder) {
  TempFolder temp;
  const fs::path file = temp.root() / "t.safetensors";
  const StateDict tensors = every_dtype();
  const Metadata metadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo"}, {"a", ""}};
  save_safetensors(file, tensors, metadata);
  const SafetensorsFile back = load_safetensors(file);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {  // data in the given order, read in offset order
    EXPECT_EQ(back.tensors[i].first, tensors[i].first);
    EXPECT_TRUE(back.tensors[i].second.equals(tensors[i].second)) << tensors[i].first;
  }
  EXPECT_EQ(back.metadata, metadata);
  // Aligned tensors are views on the mapped file; the misaligned one was copied.
  const auto got = by_name(back.tensors);
  EXPECT_TRUE(got.at("float64").is_view());
  EXPECT_FALSE(got.at("misaligned").is_view());

  save_safetensors(file, {{"x", sample(DataType::kInt8, {3})}});
  const std::string bytes = read_bytes(file);
  const std::string header = R"({"x":{"dtype":"I8","shape":[3],"data_offsets":[0,3]}})";
  EXPECT_EQ(bytes.substr(8, header.size()), header) << "no __metadata__ when there is none";
  EXPECT_EQ(bytes.size(), 8 + 56 + 3u) << "header padded with spaces to a multiple of 8";
  EXPECT_EQ(bytes.substr(8 + header.size(), 56 - header.size()), std::string(56 - header.size(), ' '));
  EXPECT_TRUE(load_safetensors(file).metadata.empty());

  save_safetensors(file, {});
  EXPECT_TRUE(load_safetensors(file).tensors.empty());
}

TEST(SafetensorsRoundTrip, RefusalsNameTheTensorAndLeaveTheFileAlone) {
  TempFolder temp;
  const fs::path file = temp.root() / "t.safetensors";
  const Tensor x = sample(DataType::kFloat32, {2});
  save_safetensors(file, {{"x", x}});
  const std::string before = read_bytes(file);
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { save_safetensors(file, {{"x", x}, {"s", Tensor::from_vector<std::string>({1}, {"a"})}}); },
       "tensor 's': is string; safetensors holds only F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL"},
      {[&] { save_safetensors(file, {{"x", x}, {"x", x}}); }, "tensor 'x': is named twice"},
      {[&] { save_safetensors(file, {{"__metadata__", x}}); }, "tensor '__metadata__': is the name safetensors keeps"},
      {[&] { save_safetensors(file, {{"x", x}}, {{"k", "1"}, {"k", "2"}}); }, "metadata key 'k' is given twice"},
      {[&] { save_safetensors(file, {{"\xff", x}}); }, "a name or metadata string is not valid UTF-8"},
  };
  for (const auto& [call, expected] : cases) {
    const std::string message = error_of(call);
    EXPECT_TRUE(contains(message, file.string() + ": " + expected)) << message;
  }
  EXPECT_EQ(read_bytes(file), before);
  EXPECT_EQ(std::distance(fs::directory_iterator(temp.root()), fs::directory_iterator()), 2) << "a temp file was left";
}

// Python's `safetensors` reads what we write (BF16 included: its header check accepts the file) and
// writes, from those arrays, a file we read back to the same tensors and metadata.
TEST(SafetensorsPython, ReadsOursAndWritesFilesWeRead) {
  if (!venv_python_has("numpy, safetensors")) GTEST_SKIP() << "no .venv with safetensors (scripts/setup_venv.sh)";
  TempFolder temp;
  const fs::path ours = temp.root() / "ours.safetensors", theirs = temp.root() / "theirs.safetensors";
  StateDict tensors = every_dtype();
  const Metadata metadata = {{"format", "np"}, {"note", "h\xc3\xa9llo"}};
  save_safetensors(ours, tensors, metadata);
  const std::string script =
      "import sys, numpy as np\n"
      "from safetensors import safe_open\n"
      "from safetensors.numpy import save_file\n"
      "arrays = {}\n"
      "with safe_open(sys.argv[1], framework='numpy') as f:\n"
      "    meta = f.metadata()\n"
      "    keys = list(f.keys())\n"
      "    arrays = {k: f.get_tensor(k) for k in keys if k != 'bfloat16'}\n"
      "assert meta == {'format': 'np', 'note': 'h\\u00e9llo'}, meta\n"
      "assert len(keys) == 17, keys\n"
      "assert arrays['uint64'].dtype == np.uint64 and arrays['uint64'][0, 0] >= 2**63\n"
      "assert arrays['bool'].dtype == np.bool_ and arrays['float16'].dtype == np.float16\n"
      "assert arrays['scalar'].shape == () and arrays['empty'].shape == (0, 4)\n"
      "save_file(arrays, sys.argv[2], metadata=meta)\n"
      "print('ok')\n";
  const e2e::ProcessResult r = run_python(temp.root(), script, {ours.string(), theirs.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  tensors.erase(std::find_if(tensors.begin(), tensors.end(), [](const auto& t) { return t.first == "bfloat16"; }));
  const SafetensorsFile back = load_safetensors(theirs);
  expect_same(back.tensors, tensors);
  Metadata got = back.metadata;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, metadata);
}

class SafetensorsHostile : public ::testing::Test {
 protected:
  // The message of load_safetensors(`bytes`), which must start with the file's name.
  std::string load_error(const std::string& bytes) {
    write_bytes(file_, bytes);
    const std::string message = error_of([&] { load_safetensors(file_); });
    EXPECT_EQ(message.rfind(file_.string() + ": ", 0), 0u) << message;
    return message;
  }

  TempFolder temp_;
  fs::path file_ = temp_.root() / "bad.safetensors";
};

TEST_F(SafetensorsHostile, EveryTruncationFails) {
  const fs::path good = temp_.root() / "good.safetensors";
  save_safetensors(good, {{"w", sample(DataType::kFloat32, {3})}, {"b", sample(DataType::kInt8, {2})}}, {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  for (size_t size = 0; size < bytes.size(); ++size) load_error(bytes.substr(0, size));
}

TEST_F(SafetensorsHostile, RandomDamageNeverCrashes) {
  const fs::path good = temp_.root() / "good.safetensors";
  save_safetensors(good, {{"w", sample(DataType::kFloat32, {5})}, {"b", sample(DataType::kBool, {3})}}, {{"k", "v"}});
  load_damaged_copies(read_bytes(good), file_, [&] { load_safetensors(file_); });
}

TEST_F(SafetensorsHostile, BadHeaderLengths) {
  std::string noise(4096, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  EXPECT_TRUE(contains(load_error(noise), "-byte limit (not a safetensors file?)"));
  EXPECT_TRUE(contains(load_error("abc"), "not a safetensors file: 3 bytes, too short for the header length"));
  std::string past = file_bytes("{}", "");
  past[0] = 100;
  EXPECT_TRUE(contains(load_error(past), "header length 100 runs past the end of the 10-byte file"));
  std::string big = file_bytes("{}", "");
  big[3] = 0x10;  // 268 MB
  EXPECT_TRUE(contains(load_error(big), "header length 268435458 is over the 100000000-byte limit"));
  EXPECT_TRUE(contains(error_of([&] { load_safetensors(temp_.root() / "missing.safetensors"); }), "no such file"));
}

TEST_F(SafetensorsHostile, BadHeaders) {
  const std::string f32x2 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      // header, data, expected in the message
      {"{\"a\":", "", "header is not valid JSON"},
      {"[1, 2]", "", "header is not a JSON object"},
      {R"({"a":)" + f32x2 + R"(,"a":)" + f32x2 + "}", eight, "tensor 'a': is named twice in the header"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, '\0'), "tensor 'b': data_offsets [4, 12) overlap the tensor before, which ends at 8"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       std::string(12, '\0'), "tensor 'b': data_offsets [8, 12) leave a gap after byte 4"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight,
       "tensor 'a': data_offsets [0, 8) hold 8 bytes, shape [3] of F32 needs 12"},
      {R"({"a":{"dtype":"F32","shape":[2305843009213693952,2],"data_offsets":[0,0]}})", "",
       "tensor 'a': data_offsets [0, 0) hold 0 bytes, shape [2305843009213693952,2] of F32 needs more than 2^64"},
      {R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", "",
       "tensor 'a': element count overflows int64"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight,
       "tensor 'a': data_offsets [0, 16) run past the end of the 8-byte data section"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight,
       "the data section holds 8 bytes but the tensors cover 4"},
      {R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", eight,
       "tensor 'a': dtype 'F8_E4M3' is not supported (F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight, "tensor 'a': shape holds a negative number"},
      {R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", eight,
       "tensor 'a': shape holds something other than integers"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight, "tensor 'a': data_offsets [8, 0) end before they begin"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", eight,
       "tensor 'a': data_offsets holds 18446744073709551615, too large"},
      {R"({"a":{"shape":[2],"data_offsets":[0,8]}})", eight, "tensor 'a': has no dtype string"},
      {R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", eight, "tensor 'a': has no shape list"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight, "tensor 'a': has no data_offsets [begin, end]"},
      {R"({"a":7})", "", "tensor 'a': is not an object with dtype, shape and data_offsets"},
      {R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2),
       "tensor 'a': BOOL at flat index 1 is 2, not 0 or 1"},
      {R"({"__metadata__":{"k":1}})", "", "__metadata__ 'k' is not a string"},
      {R"({"__metadata__":[]})", "", "__metadata__ is not an object of strings"},
      {R"({"a":{"dtype":"F32","shape":[[[2]]],"data_offsets":[0,8]}})", eight, "nested too deeply"},
      {std::string(100000, '[') + std::string(100000, ']'), "", "nested too deeply"},
  };
  for (const auto& [header, data, expected] : cases) {
    const std::string message = load_error(file_bytes(header, data));
    EXPECT_TRUE(contains(message, expected)) << message;
  }
}

}  // namespace
}  // namespace tunnx::formats
