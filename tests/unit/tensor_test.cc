// DataType, Dim/Shape, checked_element_count and Tensor: ownership, views and copy-on-write.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tunnx/tensor.h"

namespace tunnx {
namespace {

template <typename Fn>
Error catch_error(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected tunnx::Error";
  return Error(ErrorCode::kInternal, "");
}

// ---- DataType -------------------------------------------------------------------------------

struct DataTypeCase {
  DataType dtype;
  const char* name;
  size_t size;
  bool floating;
};

const DataTypeCase kDataTypes[] = {
    {DataType::kFloat32, "float32", 4, true},    {DataType::kUInt8, "uint8", 1, false},
    {DataType::kInt8, "int8", 1, false},         {DataType::kUInt16, "uint16", 2, false},
    {DataType::kInt16, "int16", 2, false},       {DataType::kInt32, "int32", 4, false},
    {DataType::kInt64, "int64", 8, false},       {DataType::kString, "string", sizeof(std::string), false},
    {DataType::kBool, "bool", 1, false},         {DataType::kFloat16, "float16", 2, true},
    {DataType::kFloat64, "float64", 8, true},    {DataType::kUInt32, "uint32", 4, false},
    {DataType::kUInt64, "uint64", 8, false},     {DataType::kComplex64, "complex64", 8, false},
    {DataType::kComplex128, "complex128", 16, false}, {DataType::kBFloat16, "bfloat16", 2, true},
};

TEST(DataType, NamesSizesAndFloatingPointMatchTheTable) {
  for (const auto& c : kDataTypes) {
    SCOPED_TRACE(c.name);
    EXPECT_STREQ(to_string(c.dtype), c.name);
    EXPECT_EQ(data_type_from_string(c.name), c.dtype);
    EXPECT_EQ(element_size(c.dtype), c.size);
    EXPECT_EQ(is_floating_point(c.dtype), c.floating);
    EXPECT_TRUE(is_known_data_type(static_cast<int32_t>(c.dtype)));
  }
}

TEST(DataType, ValuesMatchOnnxTensorProtoNumbers) {
  EXPECT_EQ(static_cast<int>(DataType::kFloat32), 1);
  EXPECT_EQ(static_cast<int>(DataType::kString), 8);
  EXPECT_EQ(static_cast<int>(DataType::kFloat16), 10);
  EXPECT_EQ(static_cast<int>(DataType::kBFloat16), 16);
}

TEST(DataType, AcceptsFloatAndDoubleAsAliases) {
  EXPECT_EQ(data_type_from_string("float"), DataType::kFloat32);
  EXPECT_EQ(data_type_from_string("double"), DataType::kFloat64);
}

TEST(DataType, UnknownNameThrowsNamingIt) {
  Error e = catch_error([] { data_type_from_string("float8"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "unknown data type 'float8'");
}

TEST(DataType, UndefinedHasNoNameOrSize) {
  EXPECT_STREQ(to_string(DataType::kUndefined), "undefined");
  EXPECT_FALSE(is_known_data_type(0));
  EXPECT_TRUE(is_known_data_type(26));   // int2, the last type ONNX defined before float6
  EXPECT_FALSE(is_known_data_type(27));  // float6e2m3 (ONNX 1.23, no node tests) is not supported
  EXPECT_FALSE(is_floating_point(DataType::kUndefined));
  Error e = catch_error([] { element_size(DataType::kUndefined); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "data type 0 has no element size");
}

// ---- Dim and Shape --------------------------------------------------------------------------

TEST(Shape, DimToStringShowsValueSymbolOrQuestionMark) {
  EXPECT_EQ(Dim::fixed(3).to_string(), "3");
  EXPECT_EQ(Dim::fixed(0).to_string(), "0");
  EXPECT_EQ(Dim::symbolic("batch").to_string(), "batch");
  EXPECT_EQ(Dim::unknown().to_string(), "?");
}

TEST(Shape, DimKindsAreExclusive) {
  EXPECT_TRUE(Dim::fixed(0).is_fixed());
  EXPECT_FALSE(Dim::fixed(0).is_symbolic());
  EXPECT_TRUE(Dim::symbolic("n").is_symbolic());
  EXPECT_FALSE(Dim::symbolic("n").is_fixed());
  EXPECT_FALSE(Dim::unknown().is_fixed());
  EXPECT_FALSE(Dim::unknown().is_symbolic());
}

TEST(Shape, ToStringMixesFixedSymbolicAndUnknownDims) {
  Shape s({Dim::symbolic("batch"), Dim::fixed(3), Dim::unknown(), Dim::symbolic("seq")});
  EXPECT_EQ(s.to_string(), "[batch,3,?,seq]");
  EXPECT_EQ(s.rank(), 4u);
  EXPECT_FALSE(s.is_fixed());
}

TEST(Shape, OfFixedDimsIsFixed) {
  Shape s = Shape::of({2, 3});
  EXPECT_TRUE(s.is_fixed());
  EXPECT_EQ(s.to_string(), "[2,3]");
  EXPECT_EQ(s, Shape({Dim::fixed(2), Dim::fixed(3)}));
  EXPECT_EQ(Shape().to_string(), "[]");
  EXPECT_TRUE(Shape().is_fixed());  // a scalar
  EXPECT_EQ(dims_to_string({4, 1}), "[4,1]");
  EXPECT_EQ(dims_to_string({}), "[]");
}

TEST(Shape, DimsToStringPrintsNegativeDimsAsTheyAre) {
  // Error messages format invalid dims with it; "-1" must not turn into "?".
  EXPECT_EQ(dims_to_string({2, -1}), "[2,-1]");
}

// ---- checked_element_count ------------------------------------------------------------------

TEST(CheckedElementCount, MultipliesDims) {
  EXPECT_EQ(checked_element_count({}), 1);  // a scalar holds one element
  EXPECT_EQ(checked_element_count({2, 3, 4}), 24);
  EXPECT_EQ(checked_element_count({std::numeric_limits<int64_t>::max()}),
            std::numeric_limits<int64_t>::max());
}

TEST(CheckedElementCount, AZeroDimMeansZeroEvenWhenTheRestWouldOverflow) {
  EXPECT_EQ(checked_element_count({int64_t{1} << 40, 0, int64_t{1} << 40}), 0);
}

TEST(CheckedElementCount, OverflowThrowsLimitExceededWithTheShape) {
  Error e = catch_error([] { checked_element_count({int64_t{1} << 32, int64_t{1} << 31}); });
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_STREQ(e.what(), "element count overflows int64 (shapes [4294967296,2147483648])");
}

TEST(CheckedElementCount, JustBelowOverflowIsAccepted) {
  EXPECT_EQ(checked_element_count({int64_t{1} << 31, (int64_t{1} << 31) - 1}),
            (int64_t{1} << 62) - (int64_t{1} << 31));
  EXPECT_THROW(checked_element_count({int64_t{1} << 31, int64_t{1} << 32}), Error);
}

TEST(CheckedElementCount, NegativeDimThrowsInvalidArgument) {
  Error e = catch_error([] { checked_element_count({2, -3}); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(), "negative dimension -3");
  EXPECT_STREQ(e.what(), "negative dimension -3 (shapes [2,-3])");
}

TEST(CheckedElementCount, NegativeDimIsReportedEvenAfterAZero) {
  EXPECT_THROW(checked_element_count({0, -1}), Error);
}

// ---- Tensor: owning ---------------------------------------------------------------------------

TEST(Tensor, DefaultIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.dtype(), DataType::kUndefined);
  EXPECT_EQ(t.data(), nullptr);
  EXPECT_EQ(t.nbytes(), 0u);
  EXPECT_FALSE(t.is_view());
  EXPECT_TRUE(t.equals(Tensor()));
}

TEST(Tensor, OwningTensorIsZeroFilled) {
  Tensor t(DataType::kFloat32, {2, 3});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.rank(), 2u);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_FALSE(t.is_view());
  const float* p = t.data_as<float>();
  EXPECT_EQ(std::vector<float>(p, p + 6), std::vector<float>(6, 0.0f));
}

TEST(Tensor, OwnedDataIs64ByteAligned) {
  Tensor t(DataType::kUInt8, {3});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
}

TEST(Tensor, ZeroElementTensorHasNoBytes) {
  Tensor t(DataType::kInt64, {0, 4});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.nbytes(), 0u);
  EXPECT_TRUE(t.equals(Tensor(DataType::kInt64, {0, 4})));
  EXPECT_FALSE(t.equals(Tensor(DataType::kInt64, {4, 0})));
}

TEST(Tensor, ConstructorRejectsNegativeDims) {
  Error e = catch_error([] { Tensor(DataType::kFloat32, {-1}); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
}

TEST(Tensor, ByteSizeOverflowIsRejected) {
  Error e = catch_error([] { Tensor(DataType::kInt64, {int64_t{1} << 61}); });
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  e = catch_error([] { Tensor::view(DataType::kInt64, {int64_t{1} << 61}, nullptr, nullptr); });
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
}

TEST(Tensor, FromVectorCopiesValues) {
  Tensor t = Tensor::from_vector<int64_t>({2, 2}, {1, -2, 3, std::numeric_limits<int64_t>::min()});
  EXPECT_EQ(t.dtype(), DataType::kInt64);
  EXPECT_EQ(t.dims(), (std::vector<int64_t>{2, 2}));
  const int64_t* p = t.data_as<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(p, p + 4), (std::vector<int64_t>{1, -2, 3, std::numeric_limits<int64_t>::min()}));
}

TEST(Tensor, FromVectorOfBoolStoresOneBytePerValue) {
  Tensor t = Tensor::from_vector<bool>({3}, {true, false, true});
  EXPECT_EQ(t.nbytes(), 3u);
  const auto* bytes = static_cast<const uint8_t*>(t.data());
  EXPECT_EQ(std::vector<uint8_t>(bytes, bytes + 3), (std::vector<uint8_t>{1, 0, 1}));
}

TEST(Tensor, FromVectorWithWrongCountThrows) {
  Error e = catch_error([] { Tensor::from_vector<float>({2, 2}, {1, 2, 3}); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "3 values given for 4 elements (shapes [2,2])");
}

TEST(Tensor, CopiesOfAHandleShareStorage) {
  Tensor a = Tensor::from_vector<float>({2}, {1, 2});
  Tensor b = a;
  EXPECT_TRUE(a.shares_storage_with(b));
  b.mutable_data_as<float>()[0] = 7;
  EXPECT_EQ(a.data_as<float>()[0], 7);
  EXPECT_FALSE(Tensor().shares_storage_with(Tensor()));
}

TEST(Tensor, CloneIsADeepCopy) {
  Tensor a = Tensor::from_vector<float>({3}, {1, 2, 3});
  Tensor b = a.clone();
  EXPECT_FALSE(a.shares_storage_with(b));
  EXPECT_TRUE(a.equals(b));
  b.mutable_data_as<float>()[1] = 20;
  EXPECT_EQ(a.data_as<float>()[1], 2);
  EXPECT_FALSE(a.equals(b));
}

TEST(Tensor, CloneOfUndefinedIsUndefined) { EXPECT_FALSE(Tensor().clone().defined()); }

TEST(Tensor, EqualsComparesDtypeDimsAndBytes) {
  Tensor a = Tensor::from_vector<int32_t>({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(a.equals(Tensor::from_vector<int32_t>({2, 2}, {1, 2, 3, 4})));
  EXPECT_FALSE(a.equals(Tensor::from_vector<int32_t>({4}, {1, 2, 3, 4})));
  EXPECT_FALSE(a.equals(Tensor::from_vector<uint32_t>({2, 2}, {1, 2, 3, 4})));
  EXPECT_FALSE(a.equals(Tensor::from_vector<int32_t>({2, 2}, {1, 2, 3, 5})));
  EXPECT_FALSE(a.equals(Tensor()));
}

TEST(Tensor, EqualsIsBytewiseForFloats) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(Tensor::from_vector<float>({1}, {nan}).equals(Tensor::from_vector<float>({1}, {nan})));
  EXPECT_FALSE(Tensor::from_vector<float>({1}, {0.0f}).equals(Tensor::from_vector<float>({1}, {-0.0f})));
}

// ---- Tensor: strings ----------------------------------------------------------------------------

TEST(Tensor, StringTensorStartsWithEmptyStrings) {
  Tensor t(DataType::kString, {2});
  EXPECT_EQ(t.nbytes(), 2 * sizeof(std::string));
  EXPECT_EQ(t.data_as<std::string>()[0], "");
  EXPECT_EQ(t.data_as<std::string>()[1], "");
}

TEST(Tensor, StringTensorsCompareAndCloneByValue) {
  Tensor a = Tensor::from_vector<std::string>({2}, {"hello", std::string("a\0b", 3)});
  Tensor b = Tensor::from_vector<std::string>({2}, {"hello", std::string("a\0b", 3)});
  EXPECT_TRUE(a.equals(b));
  Tensor c = a.clone();
  c.mutable_data_as<std::string>()[0] = "changed";
  EXPECT_EQ(a.data_as<std::string>()[0], "hello");
  EXPECT_FALSE(a.equals(c));
}

TEST(Tensor, StringTensorCannotBeAView) {
  std::string s = "x";
  Error e = catch_error([&] { Tensor::view(DataType::kString, {1}, &s, nullptr); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "string tensors cannot be views on raw memory");
}

// What a session keeps of a weight it freed (SessionOptions::release_packed_originals): dtype, dims and
// an identity of its own, and no data to read by mistake.
TEST(Tensor, PlaceholderHasDimsButNoData) {
  Tensor p = Tensor::placeholder(DataType::kFloat32, {3, 4});
  EXPECT_TRUE(p.defined());
  EXPECT_EQ(p.dtype(), DataType::kFloat32);
  EXPECT_EQ(p.dims(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(p.nbytes(), 48u);
  EXPECT_TRUE(Tensor(p).shares_storage_with(p));
  EXPECT_FALSE(Tensor::placeholder(DataType::kFloat32, {3, 4}).shares_storage_with(p));
  EXPECT_EQ(p.version(), 0u);
  for (const auto& access : std::vector<std::function<void()>>{[&] { p.data(); }, [&] { p.mutable_data(); },
                                                               [&] { p.clone(); }}) {
    Error e = catch_error(access);
    EXPECT_EQ(e.code(), ErrorCode::kInternal);
    EXPECT_NE(std::string(e.what()).find("after the session freed it"), std::string::npos) << e.what();
  }
  EXPECT_EQ(catch_error([] { Tensor::placeholder(DataType::kString, {1}); }).code(), ErrorCode::kInvalidArgument);
}

// ---- Tensor: views and copy-on-write --------------------------------------------------------------

struct ViewFixture : ::testing::Test {
  std::shared_ptr<std::vector<float>> memory = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
  Tensor make_view() { return Tensor::view(DataType::kFloat32, {2, 2}, memory->data(), memory); }
};

TEST_F(ViewFixture, ViewReadsTheGivenMemoryInPlace) {
  Tensor v = make_view();
  EXPECT_TRUE(v.is_view());
  EXPECT_EQ(v.data(), memory->data());
  EXPECT_EQ(v.numel(), 4);
  EXPECT_TRUE(v.equals(Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4})));
}

TEST_F(ViewFixture, ViewKeepsItsOwnerAlive) {
  std::weak_ptr<std::vector<float>> weak = memory;
  Tensor v = make_view();
  memory.reset();
  ASSERT_FALSE(weak.expired());
  EXPECT_EQ(v.data_as<float>()[3], 4);
}

TEST_F(ViewFixture, FirstMutableAccessCopiesAndLeavesTheOriginalMemoryUntouched) {
  Tensor v = make_view();
  float* p = v.mutable_data_as<float>();
  EXPECT_NE(static_cast<const void*>(p), static_cast<const void*>(memory->data()));
  EXPECT_FALSE(v.is_view());
  p[0] = 100;
  EXPECT_EQ((*memory)[0], 1);
  EXPECT_EQ(v.data_as<float>()[0], 100);
  EXPECT_EQ(v.data_as<float>()[1], 2);  // the rest was copied
}

TEST_F(ViewFixture, CopyOnWriteReleasesTheOwner) {
  std::weak_ptr<std::vector<float>> weak = memory;
  Tensor v = make_view();
  memory.reset();
  v.mutable_data();
  EXPECT_TRUE(weak.expired());
}

TEST_F(ViewFixture, SecondHandleSharingStorageSeesTheWrite) {
  Tensor a = make_view();
  Tensor b = a;
  a.mutable_data_as<float>()[2] = 30;
  EXPECT_FALSE(b.is_view());
  EXPECT_TRUE(a.shares_storage_with(b));
  EXPECT_EQ(b.data_as<float>()[2], 30);
  EXPECT_EQ((*memory)[2], 3);
}

TEST_F(ViewFixture, CloneOfAViewOwnsItsData) {
  Tensor v = make_view();
  Tensor c = v.clone();
  EXPECT_FALSE(c.is_view());
  EXPECT_TRUE(v.is_view());
  EXPECT_TRUE(c.equals(v));
}

TEST_F(ViewFixture, ReadingDoesNotCopy) {
  Tensor v = make_view();
  (void)v.data_as<float>();
  EXPECT_TRUE(v.is_view());
}

// ---- Tensor: typed access -----------------------------------------------------------------------

TEST(Tensor, DataAsWithWrongTypeThrows) {
  Tensor t(DataType::kFloat32, {2});
  Error e = catch_error([&] { t.data_as<int64_t>(); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "tensor holds float32, accessed as int64");
}

TEST(Tensor, MutableDataAsWithWrongTypeThrowsWithoutCopyingAView) {
  std::vector<float> memory{1, 2};
  Tensor v = Tensor::view(DataType::kFloat32, {2}, memory.data(), nullptr);
  EXPECT_THROW(v.mutable_data_as<double>(), Error);
  EXPECT_TRUE(v.is_view());
}

TEST(Tensor, Float16HasNoCppTypeButRawAccessWorks) {
  Tensor t(DataType::kFloat16, {2});
  EXPECT_EQ(t.nbytes(), 4u);
  EXPECT_THROW(t.data_as<float>(), Error);
  static_cast<uint16_t*>(t.mutable_data())[1] = 0x3C00;
  EXPECT_EQ(static_cast<const uint16_t*>(t.data())[1], 0x3C00);
}

}  // namespace
}  // namespace tunnx
