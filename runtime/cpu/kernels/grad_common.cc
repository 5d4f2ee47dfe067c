#include "runtime/cpu/kernels/grad_common.h"

#include <utility>

#include "runtime/cpu/kernels/common.h"

namespace tunnx::cpu {

void add_grad_kernel(KernelRegistry& registry, const std::string& op_type, KernelFactory factory, int type_input) {
  KernelDef def;
  def.domain = "com.tunnx";
  def.op_type = op_type;
  def.since_version = 1;
  def.types = kFloatTypes;
  def.type_input = type_input;
  def.name = "cpu/reference/" + op_type;
  def.factory = std::move(factory);
  registry.add(std::move(def));
}

}  // namespace tunnx::cpu
