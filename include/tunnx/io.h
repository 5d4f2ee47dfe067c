// Tensors and values in files: NumPy .npy and .npz, safetensors, and ONNX's TensorProto /
// SequenceProto / OptionalProto .pb files as ONNX's test data uses them. Plus the comparison ONNX's
// backend tests use (allclose).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tunnx/model.h"
#include "tunnx/session.h"
#include "tunnx/tensor.h"
#include "tunnx/value.h"

namespace tunnx {

// Reads a C-order .npy file (bool, int8..int64, uint8..uint64, float16, float32, float64, and
// little-endian unicode `<U` as strings). Throws Error naming the file on anything else (Fortran
// order, object arrays, truncation).
Tensor load_npy(const std::filesystem::path& path);
// Writes `tensor` as .npy (version 1.0), atomically. Strings become a NumPy unicode array (`<U`,
// UTF-32, width of the longest), which numpy.load reads without allow_pickle.
void save_npy(const std::filesystem::path& path, const Tensor& tensor);

// Writes `tensor` as an ONNX TensorProto .pb file (raw_data; `name` as its name), atomically: the
// format for every dtype, including those NumPy lacks (bfloat16, float8, int4, ...).
void save_tensor_pb(const std::filesystem::path& path, const Tensor& tensor, const std::string& name = {});
// Whether save_npy can write `dtype` (NumPy has it: bool, integers, float16/32/64, strings).
bool npy_can_hold(DataType dtype);

// Reads a .npz archive (numpy.savez or numpy.savez_compressed: members stored or deflated), every
// member a .npy as load_npy reads it. Keys are the member names without ".npy", in archive order.
// Throws Error naming the file and the member on a damaged archive or member.
StateDict load_npz(const std::filesystem::path& path);
// Writes arrays as a .npz archive numpy.load reads, atomically; `compressed` deflates the members.
void save_npz(const std::filesystem::path& path, const StateDict& arrays, bool compressed = false);

// A safetensors file (https://github.com/huggingface/safetensors): tensors by name plus the
// optional string-to-string "__metadata__" of its JSON header.
struct SafetensorsFile {
  StateDict tensors;  // in the order of their data offsets
  std::vector<std::pair<std::string, std::string>> metadata;
};
// Reads a safetensors file (F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL). Throws Error
// naming the file and the tensor on a header that is not valid JSON, an unknown dtype, offsets that
// overlap, leave gaps or fall outside the file, a size that does not match the shape, or a
// duplicate name.
SafetensorsFile load_safetensors(const std::filesystem::path& path);
// Writes tensors (and metadata) as safetensors that Python's `safetensors` package reads: header
// padded to 8 bytes, data in the given order. Atomic: temp file, fsync, rename.
void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata = {});

// What a .pb file holds. The three protos share field numbers, so the bytes alone cannot always
// tell them apart: pass the kind the model declares for the value when it is known.
enum class ValueKind { kAny, kTensor, kSequence, kOptional };

// Reads a value from a .npy file or an ONNX .pb file (TensorProto, SequenceProto or OptionalProto).
// With kAny, a .pb is a TensorProto if it parses as one with a data type, else an OptionalProto or
// SequenceProto.
Value load_value(const std::filesystem::path& path, ValueKind kind = ValueKind::kAny);

// The tolerances of ONNX's backend tests (onnx/backend/test/runner: rtol 1e-3, atol 1e-7), for every
// case and dtype: the conformance runner and `tunnx run --test-data` both compare with them.
inline constexpr double kTestDataRtol = 1e-3;
inline constexpr double kTestDataAtol = 1e-7;

// One ONNX test_data_set_N folder read for `model`, as ONNX's backend test runner reads it:
// input_K.pb feeds the K-th graph input that is not an initializer; output_K.pb is the expected value
// of the K-th graph output (a missing file leaves that output unchecked). Each file is read as the
// model declares the value: its kind (tensor, sequence, optional), and bfloat16 that ONNX 1.12's data
// stores as uint16 (the same bits) as bfloat16. Throws Error naming the file or folder.
struct TestDataSet {
  NamedValues inputs;
  std::vector<std::pair<std::string, Value>> expected;  // output name -> value, in graph order
};
TestDataSet load_test_data_set(const Model& model, const std::filesystem::path& dir);

struct Comparison {
  bool ok = true;
  double max_abs_error = 0;  // over all compared floating-point elements
  double max_rel_error = 0;
  std::string detail;        // the first mismatch, when !ok
};

// |actual - expected| <= atol + rtol * |expected| elementwise for floating point (NaN matches NaN,
// infinities must be equal); exact for integers, bool and strings; kinds, dtypes and shapes must match.
Comparison compare(const Value& expected, const Value& actual, double rtol = kTestDataRtol,
                   double atol = kTestDataAtol);

}  // namespace tunnx
