// NumPy's .npy format on bytes in memory, so .npy files and the members of .npz archives share one
// parser and one writer. Reads versions 1.0 to 3.0 (C order, little-endian, `<U` unicode as UTF-8
// strings); writes version 1.0, as numpy.save does.
#pragma once

#include <string>
#include <string_view>

#include "tunnx/status.h"
#include "tunnx/tensor.h"

namespace tunnx {

// Parses a whole .npy file. Every Error carries `where` (the file, the archive member).
// The declared shape is checked against the bytes present before anything is allocated.
Tensor parse_npy(std::string_view bytes, const ErrorContext& where);

// A .npy file in two pieces, so a tensor's data is written without a copy: `head` (magic, version,
// header dict, padding; for strings also their UTF-32 data) then `tail`, a view of the tensor's
// own bytes (empty for strings). `tail` lives as long as the tensor's storage.
struct NpyBytes {
  std::string head;
  std::string_view tail;
};
// Throws Error(kUnsupported) for dtypes .npy cannot hold and Error(kInvalidArgument) for a string
// that is not valid UTF-8 or ends in NUL (NumPy drops trailing NULs).
NpyBytes encode_npy(const Tensor& tensor);

// Whether encode_npy can write `dtype`.
bool npy_writes(DataType dtype);

}  // namespace tunnx
