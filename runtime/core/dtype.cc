#include <complex>
#include <cstring>

#include "tunnx/tensor.h"

namespace tunnx {
namespace {

struct DataTypeEntry {
  DataType dtype;
  const char* name;
  size_t size;  // bytes per element; 0 for the packed sub-byte types
  size_t bits;
};

constexpr DataTypeEntry kDataTypes[] = {
    {DataType::kFloat32, "float32", 4, 32},  {DataType::kUInt8, "uint8", 1, 8},
    {DataType::kInt8, "int8", 1, 8},        {DataType::kUInt16, "uint16", 2, 16},
    {DataType::kInt16, "int16", 2, 16},      {DataType::kInt32, "int32", 4, 32},
    {DataType::kInt64, "int64", 8, 64},      {DataType::kString, "string", sizeof(std::string), 8 * sizeof(std::string)},
    {DataType::kBool, "bool", 1, 8},        {DataType::kFloat16, "float16", 2, 16},
    {DataType::kFloat64, "float64", 8, 64},  {DataType::kUInt32, "uint32", 4, 32},
    {DataType::kUInt64, "uint64", 8, 64},    {DataType::kComplex64, "complex64", 8, 64},
    {DataType::kComplex128, "complex128", 16, 128}, {DataType::kBFloat16, "bfloat16", 2, 16},
    {DataType::kFloat8E4M3FN, "float8e4m3fn", 1, 8}, {DataType::kFloat8E4M3FNUZ, "float8e4m3fnuz", 1, 8},
    {DataType::kFloat8E5M2, "float8e5m2", 1, 8},     {DataType::kFloat8E5M2FNUZ, "float8e5m2fnuz", 1, 8},
    {DataType::kUInt4, "uint4", 0, 4},               {DataType::kInt4, "int4", 0, 4},
    {DataType::kFloat4E2M1, "float4e2m1", 0, 4},     {DataType::kFloat8E8M0, "float8e8m0", 1, 8},
    {DataType::kUInt2, "uint2", 0, 2},               {DataType::kInt2, "int2", 0, 2},
};

const DataTypeEntry* find_entry(DataType dtype) {
  for (const auto& e : kDataTypes)
    if (e.dtype == dtype) return &e;
  return nullptr;
}

}  // namespace

const char* to_string(DataType dtype) {
  const DataTypeEntry* e = find_entry(dtype);
  return e ? e->name : "undefined";
}

DataType data_type_from_string(const std::string& name) {
  for (const auto& e : kDataTypes)
    if (name == e.name) return e.dtype;
  if (name == "float") return DataType::kFloat32;
  if (name == "double") return DataType::kFloat64;
  throw Error(ErrorCode::kInvalidArgument, "unknown data type '" + name + "'");
}

size_t element_size(DataType dtype) {
  const DataTypeEntry* e = find_entry(dtype);
  if (!e) throw Error(ErrorCode::kInvalidArgument, "data type " + std::to_string(int(dtype)) + " has no element size");
  if (e->size == 0)
    throw Error(ErrorCode::kUnsupported, std::string(e->name) + " packs " + std::to_string(8 / e->bits) +
                                             " elements per byte; this operation needs whole-byte elements");
  return e->size;
}

size_t element_bits(DataType dtype) {
  const DataTypeEntry* e = find_entry(dtype);
  if (!e) throw Error(ErrorCode::kInvalidArgument, "data type " + std::to_string(int(dtype)) + " has no element size");
  return e->bits;
}

size_t storage_bytes(DataType dtype, int64_t numel) {
  const size_t bits = element_bits(dtype);
  const auto n = static_cast<size_t>(numel);
  if (bits >= 8) return n * (bits / 8);
  return n / (8 / bits) + (n % (8 / bits) != 0);
}

bool is_floating_point(DataType dtype) {
  return dtype == DataType::kFloat32 || dtype == DataType::kFloat64 ||
         dtype == DataType::kFloat16 || dtype == DataType::kBFloat16;
}

bool is_known_data_type(int32_t value) { return find_entry(static_cast<DataType>(value)) != nullptr; }

}  // namespace tunnx
