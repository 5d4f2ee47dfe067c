// One registry of kernels keyed by domain, op type, opset range, device and dtype. Backends add
// their kernels at start-up (runtime/cpu/register.cc); the planner asks for one per node.
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/core/kernel.h"
#include "tunnx/device.h"

namespace tunnx {

namespace ir {
struct Node;
}
namespace ops {
struct ConvGeometry;
}

struct KernelDef {
  std::string domain;  // "" is ai.onnx
  std::string op_type;
  int64_t since_version = 1;
  int64_t until_version = INT_MAX;  // inclusive
  DeviceType device = DeviceType::kCpu;
  // The input whose dtype selects the kernel (-1: none does) and the dtypes accepted there (empty: any).
  int type_input = 0;
  std::vector<DataType> types;
  std::string name;  // shown in session statistics, e.g. "cpu/reference/Conv"
  // Among kernels that fit a node, the highest priority wins: fast paths (oneDNN) above the
  // reference kernels (0), which stay the fallback and the yardstick. A kernel with priority > 0 is
  // chosen only when the planner knows the selecting input's dtype, unless it falls back at run time.
  int priority = 0;
  // A fast path that checks dtypes itself and hands what it does not serve to the reference kernel it
  // wraps may also take nodes whose dtype the planner cannot tell (backward values, mostly).
  bool falls_back_at_run_time = false;
  // A convolution kernel that is fastest on channels-last activations: the planner's channels_last
  // pass (runtime/core/passes/channels_last.h) runs only where the device's FusedConv says so.
  bool prefers_channels_last = false;
  // For such a kernel: the channel block (8 or 16) in which its fastest path for this node, of this
  // geometry, reads X (`writes` false) or writes Y as it is to be read (`writes` true: whatever follows
  // the product is applied too) (Winograd's nChw16c on AVX-512), or 0 (channels-last). The
  // channel_blocks pass (runtime/core/passes/channel_blocks.h) hands a tensor between two
  // convolutions in a block both take; unset: none.
  std::function<int64_t(const ir::Node&, const ops::ConvGeometry&, bool writes)> channel_block_for;
  KernelFactory factory;
};

class KernelRegistry {
 public:
  // The registry with every backend's kernels, built on first use.
  static const KernelRegistry& global();

  void add(KernelDef def);

  // The kernel for this node, or null with `why_not` saying what is missing (the op, the opset, the
  // dtype) in words fit for an error message.
  const KernelDef* find(const std::string& domain, const std::string& op_type, int64_t opset,
                        DeviceType device, const std::vector<DataType>& input_types,
                        std::string* why_not) const;

  // The reference kernel (priority 0) of this op at `opset`, or null: what fast paths wrap and are
  // checked against.
  const KernelDef* find_reference(const std::string& domain, const std::string& op_type, int64_t opset,
                                  DeviceType device) const;

  // Every (domain, op_type) that has a kernel on `device`.
  std::vector<std::string> supported_ops(DeviceType device) const;

 private:
  std::vector<KernelDef> defs_;
};

// Defined by each backend's register.cc.
void register_cpu_kernels(KernelRegistry& registry);

}  // namespace tunnx
