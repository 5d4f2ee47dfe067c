#include "runtime/core/kernel_registry.h"

#include <algorithm>
#include <set>

namespace tunnx {

const KernelRegistry& KernelRegistry::global() {
  static const KernelRegistry registry = [] {
    KernelRegistry r;
    register_cpu_kernels(r);
    return r;
  }();
  return registry;
}

void KernelRegistry::add(KernelDef def) {
  if (def.domain == "ai.onnx") def.domain.clear();
  if (def.name.empty()) def.name = "cpu/reference/" + def.op_type;
  defs_.push_back(std::move(def));
}

const KernelDef* KernelRegistry::find(const std::string& domain_in, const std::string& op_type, int64_t opset,
                                      DeviceType device, const std::vector<DataType>& input_types,
                                      std::string* why_not) const {
  const std::string domain = domain_in == "ai.onnx" ? "" : domain_in;
  bool op_known = false, opset_known = false;
  DataType rejected = DataType::kUndefined;
  const KernelDef* best = nullptr;
  for (const auto& def : defs_) {
    if (def.device != device || def.domain != domain || def.op_type != op_type) continue;
    op_known = true;
    if (opset < def.since_version || opset > def.until_version) continue;
    opset_known = true;
    // A fast path is chosen only when the planner knows the dtype it serves, or when it falls back to
    // the reference kernel at run time; otherwise the reference kernel, which checks dtypes as it
    // runs, takes the node.
    DataType known = def.type_input >= 0 && static_cast<size_t>(def.type_input) < input_types.size()
                         ? input_types[def.type_input]
                         : DataType::kUndefined;
    if (def.priority > 0 && known == DataType::kUndefined && !def.falls_back_at_run_time) continue;
    if (def.type_input >= 0 && !def.types.empty() && static_cast<size_t>(def.type_input) < input_types.size()) {
      DataType t = input_types[def.type_input];
      if (t != DataType::kUndefined && std::find(def.types.begin(), def.types.end(), t) == def.types.end()) {
        rejected = t;
        continue;
      }
    }
    if (!best || def.priority > best->priority) best = &def;
  }
  if (best) return best;
  if (why_not) {
    std::string op = (domain.empty() ? "" : domain + ":") + op_type;
    if (!op_known) *why_not = "operator " + op + " is not supported";
    else if (!opset_known) *why_not = "operator " + op + " is not supported at opset " + std::to_string(opset);
    else *why_not = "operator " + op + " (opset " + std::to_string(opset) + ") does not support dtype " + to_string(rejected);
  }
  return nullptr;
}

const KernelDef* KernelRegistry::find_reference(const std::string& domain_in, const std::string& op_type,
                                                int64_t opset, DeviceType device) const {
  const std::string domain = domain_in == "ai.onnx" ? "" : domain_in;
  for (const auto& def : defs_)
    if (def.device == device && def.domain == domain && def.op_type == op_type && def.priority == 0 &&
        opset >= def.since_version && opset <= def.until_version)
      return &def;
  return nullptr;
}

std::vector<std::string> KernelRegistry::supported_ops(DeviceType device) const {
  std::set<std::string> ops;
  for (const auto& def : defs_)
    if (def.device == device) ops.insert((def.domain.empty() ? "" : def.domain + ":") + def.op_type);
  return {ops.begin(), ops.end()};
}

}  // namespace tunnx
