#include "tunnx/status.h"

namespace tunnx {
namespace {

// "file: node 'n' (Op): tensor 't': field 'f': message [shapes]" with empty parts left out.
std::string format(const std::string& message, const ErrorContext& c) {
  std::string out;
  auto part = [&out](const std::string& text) {
    if (!out.empty()) out += ": ";
    out += text;
  };
  if (!c.file.empty()) part(c.file);
  if (!c.node.empty() && !c.op_type.empty()) part("node '" + c.node + "' (" + c.op_type + ")");
  else if (!c.node.empty()) part("node '" + c.node + "'");
  else if (!c.op_type.empty()) part("node of type " + c.op_type);
  if (!c.tensor.empty()) part("tensor '" + c.tensor + "'");
  if (!c.field.empty()) part("field '" + c.field + "'");
  part(message);
  if (!c.shapes.empty()) out += " (shapes " + c.shapes + ")";
  return out;
}

}  // namespace

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidModel: return "invalid model";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kLimitExceeded: return "limit exceeded";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kInternal: return "internal error";
  }
  return "error";
}

Error::Error(ErrorCode code, std::string message, ErrorContext context)
    : std::runtime_error(format(message, context)),
      code_(code),
      message_(std::move(message)),
      context_(std::move(context)) {}

Error Error::with_context(const ErrorContext& outer) const {
  ErrorContext merged = context_;
  auto fill = [](std::string& mine, const std::string& theirs) {
    if (mine.empty()) mine = theirs;
  };
  fill(merged.file, outer.file);
  fill(merged.node, outer.node);
  fill(merged.op_type, outer.op_type);
  fill(merged.tensor, outer.tensor);
  fill(merged.field, outer.field);
  fill(merged.shapes, outer.shapes);
  return Error(code_, message_, merged);
}

}  // namespace tunnx
