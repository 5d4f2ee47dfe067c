// .npz archives: round trips of every dtype (stored and deflated), archives NumPy writes and reads,
// and hostile archives that must fail with an Error naming the file and the member, never crash.
#include <zip.h>

#include <gtest/gtest.h>

#include "tests/importer/file_format_helpers.h"
#include "tunnx/io.h"

namespace tunnx::formats {
namespace {

using e2e::contains;
using e2e::TempFolder;

// Every dtype .npy holds, plus a scalar, an empty tensor and names with dots and slashes.
StateDict every_dtype() {
  StateDict arrays;
  const DataType dtypes[] = {DataType::kBool,   DataType::kInt8,    DataType::kInt16,   DataType::kInt32,
                             DataType::kInt64,  DataType::kUInt8,   DataType::kUInt16,  DataType::kUInt32,
                             DataType::kUInt64, DataType::kFloat16, DataType::kFloat32, DataType::kFloat64,
                             DataType::kString};
  int seed = 0;
  for (DataType dtype : dtypes) arrays.emplace_back(to_string(dtype), sample(dtype, {2, 3}, seed++));
  arrays.emplace_back("scalar", sample(DataType::kFloat64, {}, 5));
  arrays.emplace_back("empty", Tensor(DataType::kFloat32, {0, 4}));
  arrays.emplace_back("fc1.weight", sample(DataType::kFloat32, {4, 2}, 7));
  arrays.emplace_back("dir/x", sample(DataType::kInt64, {3}, 8));
  return arrays;
}

void expect_same(const StateDict& actual, const StateDict& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].first, expected[i].first);
    EXPECT_TRUE(actual[i].second.equals(expected[i].second)) << expected[i].first;
  }
}

// The compression method of every member, read with libzip.
std::vector<int> methods_of(const fs::path& path) {
  int code = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_RDONLY, &code);
  if (!zip) return {};
  std::vector<int> methods;
  for (zip_int64_t i = 0; i < zip_get_num_entries(zip, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(zip, static_cast<zip_uint64_t>(i), 0, &st);
    methods.push_back(st.comp_method);
  }
  zip_discard(zip);
  return methods;
}

// An archive with exactly these members, for the cases save_npz never makes.
void write_zip(const fs::path& path, const std::vector<std::pair<std::string, std::string>>& members) {
  int code = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  ASSERT_NE(zip, nullptr);
  for (const auto& [name, bytes] : members) {
    zip_source_t* source = zip_source_buffer(zip, bytes.data(), bytes.size(), 0);
    ASSERT_GE(zip_file_add(zip, name.c_str(), source, 0), 0) << zip_strerror(zip);
  }
  ASSERT_EQ(zip_close(zip), 0);
}

uint32_t u32_at(const std::string& bytes, size_t at) {
  uint32_t v = 0;
  for (int b = 3; b >= 0; --b) v = v << 8 | static_cast<unsigned char>(bytes[at + b]);
  return v;
}
void set_u32(std::string& bytes, size_t at, uint32_t v) {
  for (int b = 0; b < 4; ++b) bytes[at + b] = static_cast<char>(v >> (8 * b) & 0xFF);
}
void replace_all(std::string& bytes, const std::string& from, const std::string& to) {
  for (size_t at = bytes.find(from); at != std::string::npos; at = bytes.find(from, at + to.size()))
    bytes.replace(at, from.size(), to);
}
// Where the first member's data starts: after its 30-byte local header, name and extra field.
size_t first_data_offset(const std::string& bytes) {
  auto u16 = [&](size_t at) { return static_cast<size_t>(static_cast<unsigned char>(bytes[at]) | static_cast<unsigned char>(bytes[at + 1]) << 8); };
  return 30 + u16(26) + u16(28);
}

TEST(NpzRoundTrip, EveryDtypeStoredAndCompressed) {
  TempFolder temp;
  const StateDict arrays = every_dtype();
  for (bool compressed : {false, true}) {
    const fs::path file = temp.root() / (compressed ? "c.npz" : "s.npz");
    save_npz(file, arrays, compressed);
    expect_same(load_npz(file), arrays);
    EXPECT_EQ(methods_of(file), std::vector<int>(arrays.size(), compressed ? ZIP_CM_DEFLATE : ZIP_CM_STORE));
  }
  save_npz(temp.root() / "none.npz", {});
  EXPECT_TRUE(load_npz(temp.root() / "none.npz").empty());
}

TEST(NpzRoundTrip, RefusalsNameTheArrayAndWriteNothing) {
  TempFolder temp;
  const fs::path file = temp.root() / "x.npz";
  const Tensor x = sample(DataType::kFloat32, {2});
  EXPECT_TRUE(contains(error_of([&] { save_npz(file, {{"a", x}, {"a", x}}); }), file.string() + ": tensor 'a': is named twice"));
  EXPECT_TRUE(contains(error_of([&] { save_npz(file, {{"", x}}); }), "an array has an empty name"));
  EXPECT_TRUE(contains(error_of([&] { save_npz(file, {{"a", x}, {"b", sample(DataType::kBFloat16, {2})}}); }),
                       file.string() + ": tensor 'b': bfloat16 tensors cannot be written as .npy"));
  EXPECT_TRUE(contains(error_of([&] { save_npz(file, {{"s", Tensor::from_vector<std::string>({1}, {"\xff"})}}); }),
                       file.string() + ": tensor 's': string at flat index 0 is not valid UTF-8"));
  EXPECT_FALSE(fs::exists(file));
  EXPECT_EQ(std::distance(fs::directory_iterator(temp.root()), fs::directory_iterator()), 1) << "a temp file was left";
  // An existing archive stays as it was when a later save fails.
  save_npz(file, {{"a", x}});
  error_of([&] { save_npz(file, {{"a", x}, {"a", x}}); });
  expect_same(load_npz(file), {{"a", x}});
}

// numpy.load reads both kinds (and an empty archive) without pickle; what numpy.savez and numpy.savez_compressed write
// from it we read back to the same arrays, in the same order.
TEST(NpzNumpy, ReadsOursAndWritesArchivesWeRead) {
  if (!venv_python_has("numpy")) GTEST_SKIP() << "no .venv with numpy (scripts/setup_venv.sh)";
  TempFolder temp;
  const StateDict arrays = every_dtype();
  save_npz(temp.root() / "empty.npz", {});
  const std::string script =
      "import sys, zipfile, numpy as np\n"
      "ours, method, plain, compressed, empty = sys.argv[1:6]\n"
      "assert np.load(empty).files == []\n"
      "with zipfile.ZipFile(ours) as z:\n"
      "    kinds = {i.compress_type for i in z.infolist()}\n"
      "    assert kinds == {int(method)}, kinds\n"
      "d = np.load(ours, allow_pickle=False)\n"
      "arrays = {k: d[k] for k in d.files}\n"
      "assert arrays['string'].dtype.kind == 'U', arrays['string'].dtype\n"
      "assert arrays['uint64'].dtype == np.uint64 and arrays['uint64'][0, 0] >= 2**63\n"
      "assert arrays['scalar'].shape == () and arrays['empty'].shape == (0, 4)\n"
      "np.savez(plain, **arrays)\n"
      "np.savez_compressed(compressed, **arrays)\n"
      "print('ok')\n";
  for (bool compressed : {false, true}) {
    SCOPED_TRACE(compressed ? "compressed" : "stored");
    const fs::path ours = temp.root() / "ours.npz", plain = temp.root() / "plain.npz", deflated = temp.root() / "deflated.npz";
    save_npz(ours, arrays, compressed);
    const e2e::ProcessResult r = run_python(temp.root(), script,
                                            {ours.string(), std::to_string(compressed ? ZIP_CM_DEFLATE : ZIP_CM_STORE),
                                             plain.string(), deflated.string(), (temp.root() / "empty.npz").string()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    expect_same(load_npz(plain), arrays);
    expect_same(load_npz(deflated), arrays);
    EXPECT_EQ(methods_of(deflated), std::vector<int>(arrays.size(), ZIP_CM_DEFLATE));
  }
}

class NpzHostile : public ::testing::Test {
 protected:
  // The message of load_npz(`bytes`), which must start with the file's name.
  std::string load_error(const std::string& bytes) {
    write_bytes(file_, bytes);
    const std::string message = error_of([&] { load_npz(file_); });
    EXPECT_EQ(message.rfind(file_.string() + ": ", 0), 0u) << message;
    return message;
  }
  std::string archive(const StateDict& arrays, bool compressed) {
    const fs::path good = temp_.root() / "good.npz";
    save_npz(good, arrays, compressed);
    return read_bytes(good);
  }

  TempFolder temp_;
  fs::path file_ = temp_.root() / "bad.npz";
};

TEST_F(NpzHostile, EveryTruncationFails) {
  for (bool compressed : {false, true}) {
    const std::string bytes = archive({{"w", sample(DataType::kFloat32, {3})}, {"b", sample(DataType::kInt8, {2})}}, compressed);
    for (size_t size = 0; size < bytes.size(); ++size) load_error(bytes.substr(0, size));
  }
}

TEST_F(NpzHostile, NotAZipArchive) {
  std::string noise(4096, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  EXPECT_TRUE(contains(load_error(noise), "not a .npz file (not a zip archive, or truncated)"));
  EXPECT_TRUE(contains(load_error(""), "not a .npz file"));
  EXPECT_TRUE(contains(error_of([&] { load_npz(temp_.root() / "missing.npz"); }), "missing.npz: no such file"));
}

TEST_F(NpzHostile, MembersThatAreNotNpyArrays) {
  const fs::path npy = temp_.root() / "a.npy";
  save_npy(npy, sample(DataType::kInt32, {2}));
  write_zip(file_, {{"a.npy", read_bytes(npy)}, {"notes.txt", "hello"}});
  EXPECT_TRUE(contains(load_error(read_bytes(file_)), "member 'notes.txt' is not a .npy array"));
  write_zip(file_, {{"a.npy", read_bytes(npy)}, {".npy", read_bytes(npy)}});
  EXPECT_TRUE(contains(load_error(read_bytes(file_)), "member '.npy' is not a .npy array"));
  write_zip(file_, {{"x.npy", "not numpy at all"}});
  EXPECT_TRUE(contains(load_error(read_bytes(file_)), "tensor 'x': not a .npy file"));
  write_zip(file_, {{"x.npy", read_bytes(npy).substr(0, 130)}});
  EXPECT_TRUE(contains(load_error(read_bytes(file_)), "tensor 'x': .npy data has"));
}

TEST_F(NpzHostile, DuplicateMember) {
  std::string bytes = archive({{"a1", sample(DataType::kInt8, {1})}, {"a2", sample(DataType::kInt8, {2})}}, false);
  replace_all(bytes, "a2.npy", "a1.npy");  // names are outside the CRC, so only the duplicate is wrong
  const std::string message = load_error(bytes);
  EXPECT_TRUE(contains(message, "member 'a1.npy' appears twice")) << message;
}

TEST_F(NpzHostile, DamagedData) {
  const Tensor zeros(DataType::kFloat32, {4096});
  // A deflate stream with garbage in its middle.
  std::string bytes = archive({{"w", zeros}}, true);
  const size_t data = first_data_offset(bytes);
  for (size_t i = data + 4; i < data + 12; ++i) bytes[i] = static_cast<char>(0xFF);
  EXPECT_TRUE(contains(load_error(bytes), "tensor 'w': damaged member"));
  // A flipped bit in stored data: the CRC catches it.
  bytes = archive({{"w", zeros}}, false);
  bytes[first_data_offset(bytes) + 200] ^= 0x01;
  EXPECT_TRUE(contains(load_error(bytes), "tensor 'w': damaged member"));
}

TEST_F(NpzHostile, RandomDamageNeverCrashes) {
  for (bool compressed : {false, true}) {
    const std::string bytes = archive({{"w", sample(DataType::kFloat32, {5})}, {"s", sample(DataType::kString, {2})},
                                       {"b", sample(DataType::kBool, {3})}},
                                      compressed);
    load_damaged_copies(bytes, file_, [&] { load_npz(file_); });
  }
}

// A member declaring 4 GB in a few dozen compressed bytes is refused before anything is allocated.
TEST_F(NpzHostile, HugeDeclaredSize) {
  for (bool compressed : {false, true}) {
    std::string bytes = archive({{"w", Tensor(DataType::kFloat32, {4096})}}, compressed);
    set_u32(bytes, 22, 0xFFFFFFF0u);  // the local header's uncompressed size
    const size_t central = bytes.find("PK\x01\x02");
    ASSERT_NE(central, std::string::npos);
    set_u32(bytes, central + 24, 0xFFFFFFF0u);  // and the central directory's
    EXPECT_EQ(u32_at(bytes, central + 24), 0xFFFFFFF0u);
    const std::string message = load_error(bytes);
    EXPECT_TRUE(contains(message, "tensor 'w': damaged member: it declares 4294967280 bytes")) << message;
  }
}

}  // namespace
}  // namespace tunnx::formats
