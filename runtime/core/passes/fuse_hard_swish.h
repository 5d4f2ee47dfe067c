// Recognizes HardSwish and HardSigmoid spelled out as elementary ops (Paddle2ONNX writes every
// hardswish so, and torch's exports before opset 14 write x * HardSigmoid(x)) and rewrites each into
// one node, in a session's copy of the graph at optimization level 2. fuse_conv and fuse_linear then
// fold it into the convolution or product before it as a post-op, and channels_last keeps it in the
// channels-last region instead of cutting the region there with a pair of transposes.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, for a float32 x, with R = Clip(Add(x, 3), 0, 6) (either operand order; Clip's
// bounds as inputs or, before opset 11, attributes):
//   Div(Mul(x, R), 6), Mul(Mul(x, R), 1/6), Mul(x, Div(R, 6)), Mul(x, Mul(R, 1/6)),
//   Mul(x, HardSigmoid(x)) with alpha 1/6 and beta 0.5
// become com.tunnx:HardSwish(x) (ONNX HardSwish-14's meaning, for models of any opset), named after
// the Clip (or HardSigmoid) node + "+hardswish"; Div(R, 6) and Mul(R, 1/6) not followed by such a Mul
// become HardSigmoid(x) with alpha 1/6 and beta 0.5. Constants are scalar float32 initializers or
// Constant nodes (within 1e-6 relative); every intermediate is read once and is not a graph output.
// The rewritten forms differ from the spelled-out ones by float rounding only (x/6 + 0.5 against
// (x + 3)/6). Returns the number of nodes made.
int fuse_hard_swish(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
