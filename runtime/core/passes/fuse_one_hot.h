// Recognizes an embedding written as a one-hot product, as jax2tf and TF exports write `one_hot` then
// a Dense layer (magika: 2048 byte values against 257 classes, then [257, 64]), and rewrites it into one
// com.tunnx:OneHotMatMul node at optimization level 2: the product of a one-hot row with W is W's row,
// so the kernel copies rows instead of materializing a [..., K] one-hot tensor in float and
// multiplying it (three passes over 2048 x 257 values and a product, a sixth of magika's run).
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, MatMul(Cast(Equal(X, C), to=FLOAT), W) with
//   C a constant integer initializer shaped [1, ..., 1, K] holding 0, 1, ..., K-1 (either side of Equal),
//   W a float32 initializer [K, N],
//   X an int32/int64/uint8 value of known rank, at least C's (the kernel checks at run time that its
//   last dim is 1 or K),
//   the Equal and Cast outputs each read once and not graph outputs,
// becomes com.tunnx:OneHotMatMul(X, W) with the MatMul's output and its name + "+onehot" (C is no
// longer read). Returns the number of nodes made.
int fuse_one_hot_matmul(Graph& graph, const ParameterStore& store);

}  // namespace tunnx::ir
