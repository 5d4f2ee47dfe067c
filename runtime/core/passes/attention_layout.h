// Keeps Attention's operands in the layout their projections make. Exporters (torch.onnx with
// scaled_dot_product_attention) write each of Q, K, V as Reshape [B, S, N, H] -> Transpose to
// [B, N, S, H] (-> RotaryEmbedding) -> Attention, and the output back through Transpose and Reshape
// to [B, S, N * H]. Attention and RotaryEmbedding take the 3-D form [B, S, N * H] directly (with the
// head counts as attributes), so the four transposes are copies the model does not need.
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, an ai.onnx Attention with only its output Y and no head-count attributes whose Q,
// K and V are each Transpose(perm [0, 2, 1, 3]) of a Reshape to a constant 4-D shape with a positive
// head count (optionally through a RotaryEmbedding without num_heads), and whose Y is read only by a
// Transpose(perm [0, 2, 1, 3]) read only by a Reshape to a constant shape (no 0 after its first two
// dims, unless allowzero), becomes: each Reshape's output viewed as [B, S, N * H] (Reshape to
// [0, 0, -1]), RotaryEmbedding with num_heads, Attention with q_num_heads and kv_num_heads, and the
// final Reshape reading its Y. Every value swallowed must be read only there. Returns the number of
// Attention nodes rewritten.
int attention_heads_last(Graph& graph, const ParameterStore& store);

}  // namespace tunnx::ir
