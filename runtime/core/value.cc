#include "tunnx/value.h"

namespace tunnx {
namespace {

Error wrong_kind(const Value& v, const char* wanted) {
  return Error(ErrorCode::kInvalidArgument, std::string("expected a ") + wanted + ", got " + v.describe());
}

}  // namespace

Value Value::sequence(DataType elem_type, std::vector<Tensor> items) {
  Value v;
  v.kind_ = Kind::kSequence;
  v.sequence_type_ = elem_type;
  v.items_ = std::move(items);
  return v;
}

const Tensor& Value::tensor() const {
  if (kind_ != Kind::kTensor) throw wrong_kind(*this, "tensor");
  return tensor_;
}

Tensor& Value::tensor() {
  if (kind_ != Kind::kTensor) throw wrong_kind(*this, "tensor");
  return tensor_;
}

const std::vector<Tensor>& Value::items() const {
  if (kind_ != Kind::kSequence) throw wrong_kind(*this, "sequence");
  return items_;
}

std::vector<Tensor>& Value::items() {
  if (kind_ != Kind::kSequence) throw wrong_kind(*this, "sequence");
  return items_;
}

std::string Value::describe() const {
  switch (kind_) {
    case Kind::kNone: return "none";
    case Kind::kTensor: return std::string("tensor(") + to_string(tensor_.dtype()) + ")" + dims_to_string(tensor_.dims());
    case Kind::kSequence:
      return std::string("seq(") + to_string(sequence_type_) + ") of " + std::to_string(items_.size());
  }
  return "?";
}

}  // namespace tunnx
