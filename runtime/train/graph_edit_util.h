// Pieces the graph edits of tunnx/extend.h share (extension.cc, lora.cc): seeded uniform draws that
// are the same on every platform, and new ONNX nodes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/graph.h"

namespace tunnx::edit {

// Uniform draws from SplitMix64: the same values on every platform and standard library (an
// std::uniform_real_distribution is not), so a seeded head or adapter is reproducible anywhere.
class Uniform {
 public:
  explicit Uniform(uint64_t seed) : state_(seed) {}
  double next(double lo, double hi) {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return lo + (hi - lo) * static_cast<double>(z >> 11) * 0x1.0p-53;
  }

 private:
  uint64_t state_;
};

inline ir::Node make_node(std::string name, std::string op, std::vector<std::string> inputs, std::string output,
                          std::vector<ir::Attribute> attrs = {}) {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  n.attributes = std::move(attrs);
  return n;
}

// Transpose's perm = [1, 0]: a 2-D weight read as W^T.
inline ir::Attribute perm_swap_2d() {
  ir::Attribute a;
  a.name = "perm";
  a.type = ir::AttributeType::kInts;
  a.ints = {1, 0};
  return a;
}

}  // namespace tunnx::edit
