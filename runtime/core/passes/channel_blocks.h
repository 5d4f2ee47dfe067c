// Hands the tensor between two channels-last convolutions in the channel-blocked layout both of their
// kernels' fastest paths read and write, in an inference session's copy of the graph (optimization
// level 2, after channels_last), so that neither reorders it.
//
// Why: oneDNN's Winograd convolutions (AVX-512) read and write nChw16c ([N, C / 16, H, W, 16]) and
// every other fast path channels-last, so each Winograd convolution reordered its input into blocks
// and its output back (YOLOv8n's bottlenecks and head, ResNet's 3x3 pairs: two of them a pair, 0.03-0.15
// ms each at 1 thread). Where one such convolution feeds the next and nothing else, the tensor now
// stays in blocks; reorders remain at the edges, where another kernel reads the value.
#pragma once

#include <cstdint>
#include <functional>

#include "runtime/core/graph.h"
#include "runtime/core/ops/conv_pool.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// For each value Y that a channels-last com.tunnx:FusedConv A writes and only another one, B, reads,
// and only as its X (not a graph output, not B's residual), where `block_for` gives the same block
// b > 0 for A writing (with everything A fuses after its product) and B reading, each node with its
// geometry (X's dims with an unknown batch taken as 1), and both channel counts are multiples of b
// (KernelDef::channel_block_for): A gets attribute y_channel_block = b and B x_channel_block = b
// (ops/conv_pool.h), and Y lies [N, C / b, spatial..., b] in memory while its dims still read
// [N, spatial..., C] (nothing else sees it). Convolutions whose X is channels-first
// (channels_first_source) or whose shapes are unknown are left alone. Returns the number of values
// handed over in blocks.
int channel_blocks(Graph& graph, const ParameterStore& store,
                   const std::function<int64_t(const Node&, const ops::ConvGeometry&, bool writes)>& block_for);

}  // namespace tunnx::ir
