// The gradient checker: one declarative case per op and opset range. A case names the op, its
// attributes and inputs; the checker builds the one-node graph in float64, asks autodiff for the
// gradients of sum(seed * Y_k) with a random seed per output, and compares each wanted input's
// gradient with central finite differences:
//   |fd - analytic| <= tolerance * max(1, |analytic|)   (tolerance 1e-6 by default).
// Inputs are sampled in [lo, hi] and kept `min_gap` away from kinks and ties where the case asks.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/core/executor.h"
#include "runtime/core/graph.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/parameter_store.h"
#include "runtime/train/autodiff.h"

namespace tunnx_test {

using tunnx::DataType;
using tunnx::Tensor;

struct GradInput {
  std::vector<int64_t> dims;
  double lo = -2, hi = 2;
  bool differentiable = true;  // checked against finite differences
  // Values closer than this to any of `kinks` are pushed away (Relu at 0, Abs at 0, Clip bounds).
  std::vector<double> kinks;
  double min_gap = 0.05;
  bool distinct = false;  // all values at least min_gap apart (Max, MaxPool, ReduceMax: no ties)
  Tensor fixed;           // a given tensor instead (indices, axes, shapes): never differentiated
  bool omitted = false;   // an omitted optional input ("")
  bool as_initializer = false;  // a constant the graph holds (an initializer) instead of a fed input

  static GradInput of(std::vector<int64_t> d, double lo = -2, double hi = 2) {
    GradInput g;
    g.dims = std::move(d);
    g.lo = lo;
    g.hi = hi;
    return g;
  }
  static GradInput constant(Tensor t, bool initializer = false) {
    GradInput g;
    g.fixed = std::move(t);
    g.differentiable = false;
    g.as_initializer = initializer;
    return g;
  }
  static GradInput none() {
    GradInput g;
    g.omitted = true;
    g.differentiable = false;
    return g;
  }
  GradInput& away_from(std::vector<double> k, double gap = 0.05) {
    kinks = std::move(k);
    min_gap = gap;
    return *this;
  }
  GradInput& no_ties(double gap = 0.02) {
    distinct = true;
    min_gap = gap;
    return *this;
  }
  GradInput& frozen() {
    differentiable = false;
    return *this;
  }
};

struct GradCase {
  std::string op_type;
  std::string domain;  // "" is ai.onnx
  int64_t opset = 17;
  std::vector<tunnx::ir::Attribute> attributes;
  std::vector<GradInput> inputs;
  size_t num_outputs = 1;
  std::vector<size_t> checked_outputs;  // outputs seeded (default: all)
  double tolerance = 1e-6;
  double step = 1e-6;  // finite-difference step
  uint64_t seed = 1;
};

// A case of an ai.onnx op (designated initializers would leave fields out, which -Wextra rejects).
GradCase make_grad_case(const std::string& op, int64_t opset, std::vector<GradInput> inputs,
                        std::vector<tunnx::ir::Attribute> attributes = {});

// Runs the case; reports failures through gtest with the op, input and element.
void check_gradient(const GradCase& c);

// Runs one node on the CPU kernels (opsets: ai.onnx `opset`, com.tunnx 1); inputs i0.. (an undefined
// tensor omits one), one output o0. Kernel errors propagate as tunnx::Error.
std::vector<tunnx::Value> run_node(const std::string& domain, const std::string& op, const std::vector<Tensor>& inputs,
                                   std::vector<tunnx::ir::Attribute> attributes = {}, int64_t opset = 17);

// The message of the tunnx::Error that `fn` throws ("" when it throws none).
template <typename Fn> std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const tunnx::Error& e) {
    return e.what();
  }
  return "";
}

// A tensor value's elements, read as T.
template <typename T> std::vector<T> values_of(const tunnx::Value& v) {
  const Tensor& t = v.tensor();
  return std::vector<T>(t.data_as<T>(), t.data_as<T>() + t.numel());
}

// Builds a float64 tensor.
Tensor f64(std::vector<int64_t> dims, std::vector<double> values);
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> values);

}  // namespace tunnx_test
