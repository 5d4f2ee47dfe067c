// External data: tensors mapped from a file next to the model. Paths must stay in the model's folder,
// offsets and lengths are checked against the file, and writes never reach the file.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "tests/importer/model_builder.h"

namespace tunnx_test {
namespace {

using tunnx::ErrorCode;
using tunnx::Model;
using tunnx::Tensor;
using tunnx::ExternalDataMode;
using tunnx::LoadOptions;
using tunnx::SaveOptions;

class ExternalData : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(model_dir());
  }

  fs::path model_dir() const { return path("model"); }
  fs::path model_path() const { return model_dir() / "m.onnx"; }

  // Writes `prefix` zero bytes and then `values` to `file`.
  template <typename T>
  static void write_data(const fs::path& file, size_t prefix, const std::vector<T>& values) {
    write_bytes(file, std::string(prefix, '\0') + raw_bytes(values));
  }

  // Saves model/m.onnx reading each tensor through an Identity node.
  fs::path save_model(const std::vector<TensorProto>& tensors) const {
    ModelBuilder b;
    for (const auto& t : tensors) {
      b.initializer(t);
      b.node("Identity", {t.name()}, {t.name() + "_out"}, "identity_" + t.name());
      b.output(t.name() + "_out", t.data_type(), Dims(t.dims().begin(), t.dims().end()));
    }
    return b.save(model_path());
  }

  // A float [4] tensor "w" stored in `location` at `offset`.
  fs::path save_float_model(const std::string& location, const std::string& offset = "0",
                            std::optional<std::string> length = std::nullopt) const {
    return save_model({external_tensor("w", TensorProto::FLOAT, {4}, location, offset, std::move(length))});
  }

  tunnx::Error load_error() const {
    return expect_error([this] { Model::load(model_path()); });
  }

  // The message a rejected location gives: the model file, the tensor, and the location field.
  std::string location_error(const std::string& location, const std::string& why) const {
    return model_path().string() + ": tensor 'w': field 'external_data.location': external data location '" +
           location + "' " + why;
  }

  const std::vector<float> kValues{1.5f, -2, 3, 4.25f};
};

// ---- Loading -------------------------------------------------------------------------------------

TEST_F(ExternalData, TensorsLoadAsViewsWithTheRightValues) {
  std::vector<int64_t> ints{7, -8};
  write_bytes(model_dir() / "weights.bin", raw_bytes(kValues) + std::string(48, '\0') + raw_bytes(ints));
  save_model({external_tensor("w", TensorProto::FLOAT, {2, 2}, "weights.bin", "0", "16"),
              external_tensor("idx", TensorProto::INT64, {2}, "weights.bin", "64", "16")});
  Model model = Model::load(model_path());

  Tensor w = model.parameter("w");
  EXPECT_TRUE(w.is_view());
  EXPECT_TRUE(w.equals(Tensor::from_vector<float>({2, 2}, kValues)));
  EXPECT_TRUE(model.parameter("idx").is_view());
  EXPECT_TRUE(model.parameter("idx").equals(Tensor::from_vector<int64_t>({2}, ints)));
  EXPECT_TRUE(info_of(model, "w").external);
  EXPECT_TRUE(info_of(model, "idx").external);
  EXPECT_EQ(info_of(model, "w").nbytes, 16u);
}

// Narrow types keep ONNX's packing on disk and in memory: int4 [5] is 3 bytes, float8 one per element.
// They load as buffers (not trainable) and save back byte for byte.
TEST_F(ExternalData, PackedInt4AndFloat8LoadAndSaveByteForByte) {
  const std::string int4_bytes("\x7f\x08\x03", 3), float8_bytes("\x38\x7e\x80", 3);
  write_bytes(model_dir() / "narrow.bin", int4_bytes + float8_bytes);
  save_model({external_tensor("q", static_cast<int32_t>(tunnx::DataType::kInt4), {5}, "narrow.bin", "0", "3"),
              external_tensor("f", static_cast<int32_t>(tunnx::DataType::kFloat8E4M3FN), {3}, "narrow.bin", "3", "3")});
  LoadOptions no_checker;  // Debian's ONNX checker predates these types
  no_checker.run_onnx_checker = false;
  Model model = Model::load(model_path(), no_checker);
  auto buffer_names = [](const Model& m) {
    std::vector<std::string> names;
    for (const auto& [name, tensor] : m.named_buffers()) names.push_back(name);
    return names;
  };
  EXPECT_EQ(buffer_names(model), (std::vector<std::string>{"q", "f"}));
  EXPECT_TRUE(model.named_parameters().empty());
  EXPECT_EQ(info_of(model, "q").nbytes, 3u);
  EXPECT_EQ(std::string(static_cast<const char*>(model.parameter("q").data()), 3), int4_bytes);
  EXPECT_EQ(std::string(static_cast<const char*>(model.parameter("f").data()), 3), float8_bytes);

  SaveOptions external;
  external.external_data = ExternalDataMode::kAlways;
  external.external_threshold_bytes = 1;
  const fs::path saved = model_dir() / "saved.onnx";
  model.save(saved, external);
  Model reloaded = Model::load(saved, no_checker);
  EXPECT_TRUE(info_of(reloaded, "q").external);
  EXPECT_TRUE(reloaded.parameter("q").equals(model.parameter("q")));
  EXPECT_TRUE(reloaded.parameter("f").equals(model.parameter("f")));
}

TEST_F(ExternalData, LengthMayBeLeftOut) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin");
  EXPECT_TRUE(Model::load(model_path()).parameter("w").equals(Tensor::from_vector<float>({4}, kValues)));
}

TEST_F(ExternalData, DataFileInASubfolderIsAllowed) {
  fs::create_directories(model_dir() / "data");
  write_data(model_dir() / "data" / "w.bin", 0, kValues);
  save_float_model("data/w.bin");
  EXPECT_TRUE(Model::load(model_path()).parameter("w").is_view());
}

TEST_F(ExternalData, MisalignedOffsetIsCopiedWithTheRightValues) {
  write_data(model_dir() / "weights.bin", 2, kValues);
  save_float_model("weights.bin", "2", "16");
  Model model = Model::load(model_path());
  Tensor w = model.parameter("w");
  EXPECT_FALSE(w.is_view());
  EXPECT_FALSE(info_of(model, "w").external);
  EXPECT_TRUE(w.equals(Tensor::from_vector<float>({4}, kValues)));
}

TEST_F(ExternalData, LoadFromBytesResolvesInTheGivenFolder) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin");
  Model model = Model::load_from_bytes(read_bytes(model_path()), model_dir());
  EXPECT_TRUE(model.parameter("w").is_view());
  EXPECT_TRUE(model.parameter("w").equals(Tensor::from_vector<float>({4}, kValues)));
}

TEST_F(ExternalData, ModelFolderReachedThroughASymlinkStillLoads) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin");
  fs::create_directory_symlink(model_dir(), path("alias"));
  EXPECT_TRUE(Model::load(path("alias") / "m.onnx").parameter("w").equals(Tensor::from_vector<float>({4}, kValues)));
}

TEST_F(ExternalData, SymlinkThatStaysInsideTheFolderIsAllowed) {
  write_data(model_dir() / "real.bin", 0, kValues);
  fs::create_symlink("real.bin", model_dir() / "link.bin");
  save_float_model("link.bin");
  EXPECT_TRUE(Model::load(model_path()).parameter("w").equals(Tensor::from_vector<float>({4}, kValues)));
}

TEST_F(ExternalData, ViewsOutliveTheModelAndTheFileOnDisk) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin");
  Tensor w;
  {
    Model model = Model::load(model_path());
    w = model.parameter("w");
  }
  fs::remove(model_dir() / "weights.bin");
  EXPECT_TRUE(w.is_view());
  EXPECT_TRUE(w.equals(Tensor::from_vector<float>({4}, kValues)));
}

// ---- Writing copies, the file stays ----------------------------------------------------------------

TEST_F(ExternalData, WritingToAParameterCopiesItAndLeavesTheFileUnchanged) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin");
  const std::string before = read_bytes(model_dir() / "weights.bin");
  Model model = Model::load(model_path());

  Tensor w = model.parameter("w");
  w.mutable_data_as<float>()[0] = 42;

  EXPECT_FALSE(w.is_view());
  EXPECT_FALSE(info_of(model, "w").external);
  EXPECT_EQ(model.parameter("w").data_as<float>()[0], 42);  // the model sees the write
  EXPECT_EQ(model.parameter("w").data_as<float>()[1], -2);
  EXPECT_EQ(read_bytes(model_dir() / "weights.bin"), before);
  // A fresh load still reads the file's values.
  EXPECT_TRUE(Model::load(model_path()).parameter("w").equals(Tensor::from_vector<float>({4}, kValues)));
}

// ---- Locations that leave the folder or name nothing --------------------------------------------------

TEST_F(ExternalData, ParentFolderIsRejected) {
  write_data(path("x"), 0, kValues);  // exists: the path rule, not a missing file, rejects it
  save_float_model("../x");
  tunnx::Error e = load_error();
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), location_error("../x", "leaves the model's folder"));
}

TEST_F(ExternalData, ParentFolderHiddenAfterASubfolderIsRejected) {
  fs::create_directories(model_dir() / "sub");
  write_data(path("x"), 0, kValues);
  save_float_model("sub/../../x");
  EXPECT_EQ(std::string(load_error().what()), location_error("sub/../../x", "leaves the model's folder"));
}

TEST_F(ExternalData, AbsolutePathIsRejected) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  std::string absolute = (model_dir() / "weights.bin").string();  // even one inside the folder
  save_float_model(absolute);
  EXPECT_EQ(std::string(load_error().what()),
            location_error(absolute, "is an absolute path; it must be relative to the model's folder"));
}

TEST_F(ExternalData, SymlinkPointingOutsideIsRejected) {
  write_data(path("outside.bin"), 0, kValues);
  fs::create_symlink(path("outside.bin"), model_dir() / "link.bin");
  save_float_model("link.bin");
  EXPECT_EQ(std::string(load_error().what()), location_error("link.bin", "leaves the model's folder through a symlink"));
}

TEST_F(ExternalData, SymlinkedFolderPointingOutsideIsRejected) {
  fs::create_directories(path("elsewhere"));
  write_data(path("elsewhere") / "w.bin", 0, kValues);
  fs::create_directory_symlink(path("elsewhere"), model_dir() / "sub");
  save_float_model("sub/w.bin");
  EXPECT_EQ(std::string(load_error().what()), location_error("sub/w.bin", "leaves the model's folder through a symlink"));
}

TEST_F(ExternalData, MissingFileIsRejected) {
  save_float_model("nowhere.bin");
  tunnx::Error e = load_error();
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), location_error("nowhere.bin", "names a file that does not exist"));
}

TEST_F(ExternalData, FolderIsNotADataFile) {
  fs::create_directories(model_dir() / "sub");
  save_float_model("sub");
  EXPECT_EQ(std::string(load_error().what()), location_error("sub", "is not a regular file"));
}

TEST_F(ExternalData, MissingLocationIsRejected) {
  TensorProto t = tensor_header("w", TensorProto::FLOAT, {4});
  t.set_data_location(TensorProto::EXTERNAL);
  save_model({t});
  EXPECT_EQ(std::string(load_error().what()),
            model_path().string() + ": tensor 'w': field 'external_data.location': external data has no location");
}

// ---- Offsets and lengths ------------------------------------------------------------------------------

TEST_F(ExternalData, RangePastTheEndOfTheFileIsRejected) {
  write_bytes(model_dir() / "weights.bin", std::string(20, '\0'));
  save_float_model("weights.bin", "8");
  tunnx::Error e = load_error();
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), model_path().string() +
                                       ": tensor 'w': field 'external_data': external data [offset 8, +16 bytes) "
                                       "runs past the end of the 20-byte file 'weights.bin'");
}

TEST_F(ExternalData, OffsetBeyondTheEndIsRejected) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin", "17");
  EXPECT_TRUE(contains(load_error().what(),
                       "external data [offset 17, +16 bytes) runs past the end of the 16-byte file 'weights.bin'"));
}

TEST_F(ExternalData, OffsetNearUint64MaxDoesNotWrapAround) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  std::string offset = std::to_string(std::numeric_limits<uint64_t>::max() - 7);
  save_float_model("weights.bin", offset);
  tunnx::Error e = load_error();
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_TRUE(contains(e.what(), "[offset " + offset + ", +16 bytes) runs past the end"));
}

TEST_F(ExternalData, LengthThatDisagreesWithTheShapeIsRejected) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin", "0", "12");
  tunnx::Error e = load_error();
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), model_path().string() +
                                       ": tensor 'w': field 'external_data': external data length 12 does not "
                                       "match the 16 bytes that [4] of float32 needs in 'weights.bin'");
}

TEST_F(ExternalData, NegativeOffsetIsRejected) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin", "-4");
  EXPECT_EQ(std::string(load_error().what()),
            model_path().string() +
                ": tensor 'w': field 'external_data.offset': external data offset '-4' is not a non-negative integer");
}

TEST_F(ExternalData, NonNumericLengthIsRejected) {
  write_data(model_dir() / "weights.bin", 0, kValues);
  save_float_model("weights.bin", "0", "16 bytes");
  EXPECT_EQ(std::string(load_error().what()),
            model_path().string() +
                ": tensor 'w': field 'external_data.length': external data length '16 bytes' is not a non-negative "
                "integer");
}

TEST_F(ExternalData, StringTensorCannotBeExternal) {
  write_bytes(model_dir() / "weights.bin", "abcd");
  save_model({external_tensor("s", TensorProto::STRING, {1}, "weights.bin", "0")});
  EXPECT_EQ(std::string(load_error().what()),
            model_path().string() + ": tensor 's': field 'external_data': string tensors cannot use external data");
}

TEST_F(ExternalData, DeclaredSizeOverTheCapIsRejectedBeforeTheFileIsOpened) {
  save_model({external_tensor("w", TensorProto::FLOAT, {1000000000000000000}, "nowhere.bin", "0")});
  tunnx::Error e = load_error();
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.context().tensor, "w");
}

TEST_F(ExternalData, ZeroElementTensorNeedsNoBytes) {
  write_bytes(model_dir() / "weights.bin", "");
  save_model({external_tensor("w", TensorProto::FLOAT, {0, 3}, "weights.bin", "0", "0")});
  Tensor w = Model::load(model_path()).parameter("w");
  EXPECT_EQ(w.numel(), 0);
  EXPECT_EQ(w.dims(), (std::vector<int64_t>{0, 3}));
}

}  // namespace
}  // namespace tunnx_test
