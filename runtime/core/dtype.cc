#include <complex>
#include <cstring>

#include "tunnx/tensor.h"

namespace tunnx {
namespace {

struct DataTypeEntry {
  DataType dtype;
  const char* name;
  size_t size;
};

constexpr DataTypeEntry kDataTypes[] = {
    {DataType::kFloat32, "float32", 4},  {DataType::kUInt8, "uint8", 1},
    {DataType::kInt8, "int8", 1},        {DataType::kUInt16, "uint16", 2},
    {DataType::kInt16, "int16", 2},      {DataType::kInt32, "int32", 4},
    {DataType::kInt64, "int64", 8},      {DataType::kString, "string", sizeof(std::string)},
    {DataType::kBool, "bool", 1},        {DataType::kFloat16, "float16", 2},
    {DataType::kFloat64, "float64", 8},  {DataType::kUInt32, "uint32", 4},
    {DataType::kUInt64, "uint64", 8},    {DataType::kComplex64, "complex64", 8},
    {DataType::kComplex128, "complex128", 16}, {DataType::kBFloat16, "bfloat16", 2},
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
  return e->size;
}

bool is_floating_point(DataType dtype) {
  return dtype == DataType::kFloat32 || dtype == DataType::kFloat64 ||
         dtype == DataType::kFloat16 || dtype == DataType::kBFloat16;
}

bool is_known_data_type(int32_t value) { return find_entry(static_cast<DataType>(value)) != nullptr; }

}  // namespace tunnx
