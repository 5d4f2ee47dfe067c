// Pieces the graph edits of tunnx/extend.h share (extension.cc, lora.cc): seeded uniform draws that
// are the same on every platform, and new ONNX nodes (attributes: ops::attr of gradient.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/train/splitmix64.h"

namespace tunnx::edit {

// Seeded draws that are the same on every platform: initial values of heads and adapters.
class Uniform {
 public:
  explicit Uniform(uint64_t seed) : rng_{seed} {}
  double next(double lo, double hi) { return rng_.uniform(lo, hi); }

 private:
  SplitMix64 rng_;
};

using ops::make_node;


}  // namespace tunnx::edit
