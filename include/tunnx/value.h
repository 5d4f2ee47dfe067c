// What flows along a graph edge: a tensor, a sequence of tensors, or nothing (an optional without a
// value). ONNX's optional(T) holding a value is just that value.
#pragma once

#include <vector>

#include "tunnx/tensor.h"

namespace tunnx {

class Value {
 public:
  enum class Kind { kNone, kTensor, kSequence };

  Value() = default;  // none
  Value(Tensor tensor) : kind_(Kind::kTensor), tensor_(std::move(tensor)) {}  // NOLINT: implicit on purpose
  static Value sequence(DataType elem_type, std::vector<Tensor> items);

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_tensor() const { return kind_ == Kind::kTensor; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }

  // Throw Error(kInvalidArgument) when the value is of another kind.
  const Tensor& tensor() const;
  Tensor& tensor();
  const std::vector<Tensor>& items() const;
  std::vector<Tensor>& items();
  DataType sequence_type() const { return sequence_type_; }  // element dtype, kept for empty sequences

  std::string describe() const;  // "tensor(float32)[2,3]", "seq(int64)x4", "none"

 private:
  Kind kind_ = Kind::kNone;
  Tensor tensor_;
  std::vector<Tensor> items_;
  DataType sequence_type_ = DataType::kUndefined;
};

}  // namespace tunnx
