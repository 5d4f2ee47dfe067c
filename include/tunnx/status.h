// Errors: tunnx reports every failure as a tunnx::Error exception that carries its context (file,
// node, op type, tensor, shapes), so a caller can print one line that says where things went wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace tunnx {

enum class ErrorCode {
  kInvalidModel,     // the file is not a valid ONNX model
  kInvalidArgument,  // the caller passed something wrong (shape, dtype, name)
  kNotFound,         // a named thing does not exist
  kUnsupported,      // valid, but tunnx does not do it (yet)
  kLimitExceeded,    // a size cap was hit before allocating
  kIo,               // the file system said no
  kInternal,
};

const char* to_string(ErrorCode code);

// Where an error happened. Empty fields are left out of the message.
struct ErrorContext {
  std::string file{};     // model or data file
  std::string node{};     // node name
  std::string op_type{};  // op type of that node
  std::string tensor{};   // tensor / value name
  std::string field{};    // protobuf field or attribute
  std::string shapes{};   // shapes involved, already formatted
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, ErrorContext context = {});

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const ErrorContext& context() const { return context_; }

  // The same error with the empty fields of `outer` filled in: used while unwinding to add the file.
  Error with_context(const ErrorContext& outer) const;

 private:
  ErrorCode code_;
  std::string message_;
  ErrorContext context_;
};

}  // namespace tunnx
