// Tensors and values in files: NumPy .npy, and ONNX's TensorProto / SequenceProto / OptionalProto .pb
// files as ONNX's test data uses them. Plus the comparison ONNX's backend tests use (allclose).
#pragma once

#include <filesystem>
#include <string>

#include "tunnx/tensor.h"
#include "tunnx/value.h"

namespace tunnx {

// Reads a C-order .npy file (bool, int8..int64, uint8..uint64, float16, float32, float64).
// Throws Error naming the file on anything else (Fortran order, object or unicode arrays, truncation).
Tensor load_npy(const std::filesystem::path& path);
// Writes `tensor` as .npy (version 1.0), atomically.
void save_npy(const std::filesystem::path& path, const Tensor& tensor);

// What a .pb file holds. The three protos share field numbers, so the bytes alone cannot always
// tell them apart: pass the kind the model declares for the value when it is known.
enum class ValueKind { kAny, kTensor, kSequence, kOptional };

// Reads a value from a .npy file or an ONNX .pb file (TensorProto, SequenceProto or OptionalProto).
// With kAny, a .pb is a TensorProto if it parses as one with a data type, else an OptionalProto or
// SequenceProto.
Value load_value(const std::filesystem::path& path, ValueKind kind = ValueKind::kAny);

struct Comparison {
  bool ok = true;
  double max_abs_error = 0;  // over all compared floating-point elements
  double max_rel_error = 0;
  std::string detail;        // the first mismatch, when !ok
};

// |actual - expected| <= atol + rtol * |expected| elementwise for floating point (NaN matches NaN,
// infinities must be equal); exact for integers, bool and strings; kinds, dtypes and shapes must match.
Comparison compare(const Value& expected, const Value& actual, double rtol = 1e-3, double atol = 1e-7);

}  // namespace tunnx
