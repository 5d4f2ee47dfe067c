// Control flow and containers: If, Loop, Scan (opset 8 batched and 9+ axis/direction forms),
// SequenceMap, the sequence ops and the optional ops.
//
// Shape rules:
//   If / Loop / Scan / SequenceMap: whatever the body yields. Loop and Scan stack their per-iteration
//     scan outputs along a new axis (Loop: axis 0; Scan: scan_output_axes, default 0); with no
//     iteration the stacked length is 0 and the other dims come from the body's declared output shape.
//   ConcatFromSequence: numpy.concatenate (new_axis=0) or numpy.stack (new_axis=1) of the items.
//   SplitToSequence: parts of the input along `axis`; size-1 parts lose the axis when keepdims=0 and
//     no `split` is given.
//   SequenceLength: int64 scalar. OptionalHasElement: bool scalar.
#include <algorithm>

#include "runtime/core/executor.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// Copies `count` elements; strings are copied as strings, everything else as bytes.
void copy_elements(const Tensor& src, int64_t src_at, Tensor& dst, int64_t dst_at, int64_t count) {
  if (count <= 0) return;
  if (src.dtype() == DataType::kString) {
    const std::string* s = data<std::string>(src) + src_at;
    std::string* d = mutable_data<std::string>(dst) + dst_at;
    std::copy(s, s + count, d);
    return;
  }
  size_t elem = element_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.mutable_data()) + static_cast<size_t>(dst_at) * elem,
              static_cast<const char*>(src.data()) + static_cast<size_t>(src_at) * elem,
              static_cast<size_t>(count) * elem);
}

// Both tensors seen as [outer, n, inner] around one axis (src n = src_n, dst n = dst_n): copies the
// `len` rows starting at src_start into dst rows starting at dst_start, for every outer index.
// Slicing, concatenation and stacking are all this one move.
void copy_rows(const Tensor& src, int64_t src_n, int64_t src_start, Tensor& dst, int64_t dst_n, int64_t dst_start,
               int64_t len, int64_t outer, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    copy_elements(src, (o * src_n + src_start) * inner, dst, (o * dst_n + dst_start) * inner, len * inner);
}

// t[index] along `axis`, without that axis.
Tensor take(const Tensor& t, size_t axis, int64_t index) {
  std::vector<int64_t> dims = t.dims();
  int64_t n = dims[axis];
  dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(axis));
  Tensor out(t.dtype(), dims);
  copy_rows(t, n, index, out, 1, 0, 1, product(t.dims(), 0, axis), product(t.dims(), axis + 1, t.rank()));
  return out;
}

// Items of equal dims and dtype stacked along a new `axis` (0 <= axis <= item rank), item i landing at
// position order[i].
Tensor stack(const std::vector<Tensor>& items, size_t axis, const std::vector<int64_t>& order,
             const KernelContext& ctx) {
  const Tensor& first = items.front();
  for (const Tensor& t : items)
    if (t.dims() != first.dims() || t.dtype() != first.dtype())
      throw ctx.error("values to stack differ: " + dims_to_string(first.dims()) + " " + to_string(first.dtype()) +
                      " and " + dims_to_string(t.dims()) + " " + to_string(t.dtype()));
  if (axis > first.rank()) throw ctx.error("stacking axis " + std::to_string(axis) + " is out of range");
  std::vector<int64_t> dims = first.dims();
  int64_t n = static_cast<int64_t>(items.size());
  dims.insert(dims.begin() + static_cast<std::ptrdiff_t>(axis), n);
  Tensor out(first.dtype(), dims);
  int64_t outer = product(first.dims(), 0, axis), inner = product(first.dims(), axis, first.rank());
  for (size_t i = 0; i < items.size(); ++i) copy_rows(items[i], 1, 0, out, n, order[i], 1, outer, inner);
  return out;
}

std::vector<int64_t> iota(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int64_t>(i);
  return v;
}

// A stacked output of zero iterations: dims from the body's declared output (when fully known) with
// a 0 inserted at `axis`; [0] when unknown.
Tensor empty_stack(const ir::ValueInfo& declared, int64_t axis) {
  DataType dtype = declared.type.elem_type == DataType::kUndefined ? DataType::kFloat32 : declared.type.elem_type;
  std::vector<int64_t> dims;
  if (declared.type.shape && declared.type.shape->is_fixed()) {
    for (const Dim& d : declared.type.shape->dims) dims.push_back(d.value);
    if (axis < 0) axis += static_cast<int64_t>(dims.size()) + 1;
    axis = std::clamp<int64_t>(axis, 0, static_cast<int64_t>(dims.size()));
  } else {
    axis = 0;
  }
  dims.insert(dims.begin() + axis, 0);
  return Tensor(dtype, dims);
}

bool read_bool(const Value& v, const KernelContext& ctx, const char* what) {
  if (!v.is_tensor()) throw ctx.error(std::string(what) + " must be a bool tensor, got " + v.describe());
  return read_scalar(v.tensor(), ctx) != 0;
}

Tensor int64_scalar(int64_t v) {
  Tensor t(DataType::kInt64, {});
  *mutable_data<int64_t>(t) = v;
  return t;
}

Tensor bool_scalar(bool v) {
  Tensor t(DataType::kBool, {});
  *mutable_data<bool>(t) = v;
  return t;
}

void check_body_arity(const KernelInit& init, const GraphPlan& body, size_t inputs, size_t min_outputs,
                      const char* what) {
  if (body.graph().inputs.size() != inputs)
    throw init.error(std::string(what) + " body takes " + std::to_string(body.graph().inputs.size()) +
                     " inputs, expected " + std::to_string(inputs));
  if (body.graph().outputs.size() < min_outputs)
    throw init.error(std::string(what) + " body yields " + std::to_string(body.graph().outputs.size()) +
                     " outputs, expected at least " + std::to_string(min_outputs));
}

// ---- If ---------------------------------------------------------------------------------------

std::unique_ptr<Kernel> if_kernel(const KernelInit& init) {
  auto then_branch = init.subgraph("then_branch");
  auto else_branch = init.subgraph("else_branch");
  return make_kernel([then_branch, else_branch](KernelContext& ctx) {
    const GraphPlan& branch = read_bool(ctx.input_value(0), ctx, "cond") ? *then_branch : *else_branch;
    std::vector<Value> out = ctx.run_subgraph(branch, {});
    if (out.size() != ctx.num_outputs())
      throw ctx.error("branch yields " + std::to_string(out.size()) + " values but the node has " +
                      std::to_string(ctx.num_outputs()) + " outputs");
    for (size_t i = 0; i < out.size(); ++i)
      if (ctx.output_wanted(i)) ctx.set_output(i, std::move(out[i]));
  });
}

// ---- Loop -------------------------------------------------------------------------------------
// Inputs (M, cond, v_initial x N); body (iter_num, cond, v x N) -> (cond, v x N, scan x K);
// outputs (v_final x N, scan_outputs x K).

std::unique_ptr<Kernel> loop_kernel(const KernelInit& init) {
  auto body = init.subgraph("body");
  size_t n = init.num_inputs() < 2 ? 0 : init.num_inputs() - 2;
  check_body_arity(init, *body, n + 2, n + 1, "Loop");
  size_t k = body->graph().outputs.size() - 1 - n;
  return make_kernel([body, n, k](KernelContext& ctx) {
    const bool has_m = ctx.has_input(0), has_cond = ctx.has_input(1);
    int64_t max_trips = 0;
    if (has_m) {
      std::vector<int64_t> m = read_int_values(ctx.input(0), ctx);
      if (m.size() != 1) throw ctx.error("M must hold a single value");
      max_trips = m[0];
    }
    Value cond = has_cond ? ctx.input_value(1) : Value(bool_scalar(true));
    bool keep_going = read_bool(cond, ctx, "cond");
    std::vector<Value> carried(n);
    for (size_t j = 0; j < n; ++j)
      if (ctx.has_input(2 + j)) carried[j] = ctx.input_value(2 + j);
    std::vector<std::vector<Tensor>> scans(k);

    // Following ONNX Runtime and the ONNX reference, the body's cond is honoured even when the
    // node's cond input is omitted; with neither M nor cond the loop runs until the body says stop.
    for (int64_t it = 0; keep_going && (!has_m || it < max_trips); ++it) {
      std::vector<Value> in;
      in.reserve(n + 2);
      in.emplace_back(int64_scalar(it));
      in.push_back(std::move(cond));
      for (Value& v : carried) in.push_back(std::move(v));
      std::vector<Value> out = ctx.run_subgraph(*body, std::move(in));
      cond = std::move(out[0]);
      keep_going = read_bool(cond, ctx, "the body's cond output");
      for (size_t j = 0; j < n; ++j) carried[j] = std::move(out[1 + j]);
      for (size_t s = 0; s < k; ++s) {
        if (!out[1 + n + s].is_tensor())
          throw ctx.error("scan output " + std::to_string(s) + " must be a tensor, got " + out[1 + n + s].describe());
        scans[s].push_back(std::move(out[1 + n + s].tensor()));
      }
    }

    for (size_t j = 0; j < n && j < ctx.num_outputs(); ++j)
      if (ctx.output_wanted(j)) ctx.set_output(j, std::move(carried[j]));
    for (size_t s = 0; s < k && n + s < ctx.num_outputs(); ++s) {
      if (!ctx.output_wanted(n + s)) continue;
      if (scans[s].empty()) ctx.set_output(n + s, empty_stack(body->graph().outputs[1 + n + s], 0));
      else ctx.set_output(n + s, stack(scans[s], 0, iota(scans[s].size()), ctx));
    }
  });
}

// ---- Scan -------------------------------------------------------------------------------------

std::vector<int64_t> per_item(const KernelInit& init, const std::string& attr, size_t count) {
  std::vector<int64_t> v = init.attr_ints(attr);
  if (v.empty()) v.assign(count, 0);
  if (v.size() != count)
    throw init.error("attribute '" + attr + "' has " + std::to_string(v.size()) + " entries, expected " +
                     std::to_string(count));
  return v;
}

// Opset 9+: inputs (state x N, scan x M); body (state x N, scan element x M) -> (state x N,
// scan output element x K); outputs (final state x N, scan output x K).
std::unique_ptr<Kernel> scan9_kernel(const KernelInit& init) {
  auto body = init.subgraph("body");
  size_t m = static_cast<size_t>(init.required_attr("num_scan_inputs").i);
  if (m < 1 || m > init.num_inputs()) throw init.error("num_scan_inputs is out of range");
  size_t n = init.num_inputs() - m;
  check_body_arity(init, *body, n + m, n, "Scan");
  size_t k = body->graph().outputs.size() - n;
  std::vector<int64_t> in_axes = per_item(init, "scan_input_axes", m);
  std::vector<int64_t> in_dirs = per_item(init, "scan_input_directions", m);
  std::vector<int64_t> out_axes = per_item(init, "scan_output_axes", k);
  std::vector<int64_t> out_dirs = per_item(init, "scan_output_directions", k);
  return make_kernel([=](KernelContext& ctx) {
    std::vector<size_t> axes(m);
    int64_t trips = -1;
    for (size_t i = 0; i < m; ++i) {
      const Tensor& x = ctx.input(n + i);
      axes[i] = static_cast<size_t>(normalize_axis(in_axes[i], static_cast<int64_t>(x.rank()), ctx));
      if (x.rank() == 0) throw ctx.error("scan input " + std::to_string(i) + " is a scalar");
      int64_t len = x.dims()[axes[i]];
      if (trips >= 0 && len != trips)
        throw ctx.error("scan inputs differ in length: " + std::to_string(trips) + " and " + std::to_string(len));
      trips = len;
    }
    std::vector<Value> states(n);
    for (size_t j = 0; j < n; ++j) states[j] = ctx.input_value(j);
    std::vector<std::vector<Tensor>> scans(k);
    for (int64_t t = 0; t < trips; ++t) {
      std::vector<Value> in = std::move(states);
      for (size_t i = 0; i < m; ++i)
        in.emplace_back(take(ctx.input(n + i), axes[i], in_dirs[i] ? trips - 1 - t : t));
      std::vector<Value> out = ctx.run_subgraph(*body, std::move(in));
      states.assign(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
      for (size_t s = 0; s < k; ++s) scans[s].push_back(out[n + s].tensor());
    }
    for (size_t j = 0; j < n; ++j)
      if (ctx.output_wanted(j)) ctx.set_output(j, std::move(states[j]));
    for (size_t s = 0; s < k; ++s) {
      if (!ctx.output_wanted(n + s)) continue;
      if (scans[s].empty()) {
        ctx.set_output(n + s, empty_stack(body->graph().outputs[n + s], out_axes[s]));
        continue;
      }
      int64_t rank = static_cast<int64_t>(scans[s].front().rank()) + 1;
      size_t axis = static_cast<size_t>(normalize_axis(out_axes[s], rank, ctx));
      std::vector<int64_t> order = iota(scans[s].size());
      if (out_dirs[s]) std::reverse(order.begin(), order.end());
      ctx.set_output(n + s, stack(scans[s], axis, order, ctx));
    }
  });
}

// Opset 8: inputs (sequence_lens?, state x N, scan x M), every input batched on axis 0 and scan
// inputs sequenced on axis 1; each batch entry runs its own loop of sequence_lens[b] steps. Scan
// outputs are [batch, max_len, ...], zero past an entry's length.
std::unique_ptr<Kernel> scan8_kernel(const KernelInit& init) {
  auto body = init.subgraph("body");
  size_t m = static_cast<size_t>(init.required_attr("num_scan_inputs").i);
  if (m < 1 || m + 1 > init.num_inputs()) throw init.error("num_scan_inputs is out of range");
  size_t n = init.num_inputs() - 1 - m;
  check_body_arity(init, *body, n + m, n, "Scan");
  size_t k = body->graph().outputs.size() - n;
  std::vector<int64_t> dirs = per_item(init, "directions", m);
  return make_kernel([=](KernelContext& ctx) {
    int64_t batch = -1, max_len = -1;
    for (size_t i = 0; i < m; ++i) {
      const Tensor& x = ctx.input(1 + n + i);
      if (x.rank() < 2) throw ctx.error("scan inputs need a batch and a sequence axis");
      if (batch >= 0 && (x.dims()[0] != batch || x.dims()[1] != max_len))
        throw ctx.error("scan inputs differ in batch size or sequence length");
      batch = x.dims()[0];
      max_len = x.dims()[1];
    }
    std::vector<int64_t> lens(static_cast<size_t>(batch), max_len);
    if (ctx.has_input(0)) {
      lens = read_int_values(ctx.input(0), ctx);
      if (static_cast<int64_t>(lens.size()) != batch) throw ctx.error("sequence_lens must hold one length per batch entry");
      for (int64_t l : lens)
        if (l < 0 || l > max_len) throw ctx.error("sequence length " + std::to_string(l) + " is out of range");
    }
    for (size_t j = 0; j < n; ++j)
      if (ctx.input(1 + j).rank() < 1 || ctx.input(1 + j).dims()[0] != batch)
        throw ctx.error("initial state " + std::to_string(j) + " must have the batch size on axis 0");

    std::vector<std::vector<Tensor>> finals(n);           // [state][batch]
    std::vector<std::vector<Tensor>> scans(k);            // [output][batch * max_len], undefined = padding
    for (auto& s : scans) s.resize(static_cast<size_t>(batch * max_len));
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<Value> states(n);
      for (size_t j = 0; j < n; ++j) states[j] = take(ctx.input(1 + j), 0, b);
      std::vector<Tensor> rows(m);
      for (size_t i = 0; i < m; ++i) rows[i] = take(ctx.input(1 + n + i), 0, b);
      const int64_t len = lens[static_cast<size_t>(b)];
      for (int64_t t = 0; t < len; ++t) {
        std::vector<Value> in = std::move(states);
        for (size_t i = 0; i < m; ++i) in.emplace_back(take(rows[i], 0, dirs[i] ? len - 1 - t : t));
        std::vector<Value> out = ctx.run_subgraph(*body, std::move(in));
        states.assign(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
        for (size_t s = 0; s < k; ++s) scans[s][static_cast<size_t>(b * max_len + t)] = out[n + s].tensor();
      }
      for (size_t j = 0; j < n; ++j) finals[j].push_back(states[j].tensor());
    }
    for (size_t j = 0; j < n; ++j)
      if (ctx.output_wanted(j)) ctx.set_output(j, stack(finals[j], 0, iota(finals[j].size()), ctx));
    for (size_t s = 0; s < k; ++s) {
      if (!ctx.output_wanted(n + s)) continue;
      const Tensor* proto = nullptr;
      for (const Tensor& t : scans[s])
        if (t.defined()) proto = &t;
      if (!proto) {
        Tensor empty = empty_stack(body->graph().outputs[n + s], 0);
        std::vector<int64_t> dims = empty.dims();
        dims[0] = max_len;
        dims.insert(dims.begin(), batch);
        ctx.set_output(n + s, Tensor(empty.dtype(), dims));
        continue;
      }
      Tensor padding(proto->dtype(), proto->dims());
      for (Tensor& t : scans[s])
        if (!t.defined()) t = padding;
      Tensor flat = stack(scans[s], 0, iota(scans[s].size()), ctx);
      std::vector<int64_t> dims = proto->dims();
      dims.insert(dims.begin(), {batch, max_len});
      Tensor& y = ctx.allocate_output(n + s, flat.dtype(), dims);
      copy_elements(flat, 0, y, 0, flat.numel());
    }
  });
}

// ---- SequenceMap ------------------------------------------------------------------------------

std::unique_ptr<Kernel> sequence_map_kernel(const KernelInit& init) {
  auto body = init.subgraph("body");
  check_body_arity(init, *body, init.num_inputs(), init.node().outputs.size(), "SequenceMap");
  return make_kernel([body](KernelContext& ctx) {
    const Value& first = ctx.input_value(0);
    if (!first.is_sequence()) throw ctx.error("input 0 must be a sequence, got " + first.describe());
    const size_t count = first.items().size();
    for (size_t i = 1; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i) && ctx.input_value(i).is_sequence() && ctx.input_value(i).items().size() != count)
        throw ctx.error("input sequences differ in length");
    std::vector<std::vector<Tensor>> results(ctx.num_outputs());
    for (size_t s = 0; s < count; ++s) {
      std::vector<Value> in;
      for (size_t i = 0; i < ctx.num_inputs(); ++i) {
        if (!ctx.has_input(i)) in.emplace_back();
        else if (ctx.input_value(i).is_sequence()) in.emplace_back(ctx.input_value(i).items()[s]);
        else in.push_back(ctx.input_value(i));
      }
      std::vector<Value> out = ctx.run_subgraph(*body, std::move(in));
      for (size_t o = 0; o < results.size(); ++o) results[o].push_back(out[o].tensor());
    }
    for (size_t o = 0; o < results.size(); ++o) {
      DataType elem = results[o].empty() ? body->graph().outputs[o].type.elem_type : results[o].front().dtype();
      if (ctx.output_wanted(o)) ctx.set_output(o, Value::sequence(elem, std::move(results[o])));
    }
  });
}

// ---- Sequences --------------------------------------------------------------------------------

const Value& sequence_input(const KernelContext& ctx, size_t i) {
  const Value& v = ctx.input_value(i);
  if (!v.is_sequence()) throw ctx.error("input " + std::to_string(i) + " must be a sequence, got " + v.describe());
  return v;
}

// A position input checked against [-n, n] (inclusive_end) or [-n, n-1], made non-negative.
int64_t read_position(const KernelContext& ctx, size_t input, int64_t n, bool inclusive_end) {
  std::vector<int64_t> p = read_int_values(ctx.input(input), ctx);
  if (p.size() != 1) throw ctx.error("position must be a scalar");
  int64_t pos = p[0];
  int64_t hi = inclusive_end ? n : n - 1;
  if (pos < -n || pos > hi)
    throw ctx.error("position " + std::to_string(pos) + " is out of range for a sequence of " + std::to_string(n));
  return pos < 0 ? pos + n : pos;
}

void register_sequence_kernels(KernelRegistry& r) {
  add_kernel(r, "SequenceConstruct", 11, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      std::vector<Tensor> items;
      for (size_t i = 0; i < ctx.num_inputs(); ++i) {
        items.push_back(ctx.input(i));
        if (items.back().dtype() != items.front().dtype())
          throw ctx.error("sequence items must share one dtype");
      }
      DataType elem = items.empty() ? DataType::kUndefined : items.front().dtype();
      ctx.set_output(0, Value::sequence(elem, std::move(items)));
    });
  });

  add_kernel(r, "SequenceEmpty", 11, INT_MAX, {}, [](const KernelInit& init) {
    auto dtype = static_cast<DataType>(init.attr_int("dtype", static_cast<int64_t>(DataType::kFloat32)));
    if (!is_known_data_type(static_cast<int32_t>(dtype))) throw init.error("unknown dtype");
    return make_kernel([dtype](KernelContext& ctx) { ctx.set_output(0, Value::sequence(dtype, {})); });
  });

  add_kernel(r, "SequenceAt", 11, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      const Value& seq = sequence_input(ctx, 0);
      int64_t n = static_cast<int64_t>(seq.items().size());
      ctx.set_output(0, seq.items()[static_cast<size_t>(read_position(ctx, 1, n, false))]);
    });
  });

  add_kernel(r, "SequenceInsert", 11, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      const Value& seq = sequence_input(ctx, 0);
      const Tensor& t = ctx.input(1);
      DataType elem = seq.sequence_type();
      if (elem == DataType::kUndefined && !seq.items().empty()) elem = seq.items().front().dtype();
      if (elem != DataType::kUndefined && elem != t.dtype())
        throw ctx.error(std::string("cannot insert a ") + to_string(t.dtype()) + " tensor into a sequence of " +
                        to_string(elem));
      std::vector<Tensor> items = seq.items();
      int64_t n = static_cast<int64_t>(items.size());
      int64_t pos = ctx.has_input(2) ? read_position(ctx, 2, n, true) : n;
      items.insert(items.begin() + pos, t);
      ctx.set_output(0, Value::sequence(t.dtype(), std::move(items)));
    });
  });

  add_kernel(r, "SequenceErase", 11, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      const Value& seq = sequence_input(ctx, 0);
      std::vector<Tensor> items = seq.items();
      int64_t n = static_cast<int64_t>(items.size());
      if (n == 0) throw ctx.error("cannot erase from an empty sequence");
      int64_t pos = ctx.has_input(1) ? read_position(ctx, 1, n, false) : n - 1;
      items.erase(items.begin() + pos);
      ctx.set_output(0, Value::sequence(seq.sequence_type(), std::move(items)));
    });
  });

  add_kernel(r, "SequenceLength", 11, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      ctx.set_output(0, int64_scalar(static_cast<int64_t>(sequence_input(ctx, 0).items().size())));
    });
  });

  add_kernel(r, "ConcatFromSequence", 11, INT_MAX, {}, [](const KernelInit& init) {
    int64_t axis_attr = init.required_attr("axis").i;
    bool new_axis = init.attr_int("new_axis", 0) != 0;
    return make_kernel([axis_attr, new_axis](KernelContext& ctx) {
      const std::vector<Tensor>& items = sequence_input(ctx, 0).items();
      if (items.empty()) throw ctx.error("cannot concatenate an empty sequence");
      const Tensor& first = items.front();
      int64_t rank = static_cast<int64_t>(first.rank());
      size_t axis = static_cast<size_t>(normalize_axis(axis_attr, rank + (new_axis ? 1 : 0), ctx));
      if (new_axis) {
        ctx.set_output(0, stack(items, axis, iota(items.size()), ctx));
        return;
      }
      std::vector<int64_t> dims = first.dims();
      dims[axis] = 0;
      for (const Tensor& t : items) {
        bool same = t.rank() == first.rank() && t.dtype() == first.dtype();
        for (size_t d = 0; same && d < t.rank(); ++d) same = d == axis || t.dims()[d] == first.dims()[d];
        if (!same)
          throw ctx.error("cannot concatenate " + dims_to_string(first.dims()) + " and " + dims_to_string(t.dims()) +
                          " on axis " + std::to_string(axis));
        dims[axis] += t.dims()[axis];
      }
      Tensor& y = ctx.allocate_output(0, first.dtype(), dims);
      int64_t outer = product(dims, 0, axis), inner = product(dims, axis + 1, dims.size()), at = 0;
      for (const Tensor& t : items) {
        copy_rows(t, t.dims()[axis], 0, y, dims[axis], at, t.dims()[axis], outer, inner);
        at += t.dims()[axis];
      }
    });
  });

  add_kernel(r, "SplitToSequence", 11, INT_MAX, {}, [](const KernelInit& init) {
    int64_t axis_attr = init.attr_int("axis", 0);
    bool keepdims = init.attr_int("keepdims", 1) != 0;
    return make_kernel([axis_attr, keepdims](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      size_t axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx));
      if (x.rank() == 0) throw ctx.error("cannot split a scalar");
      const int64_t len = x.dims()[axis];
      std::vector<int64_t> sizes;
      bool squeeze = false;
      if (!ctx.has_input(1)) {
        sizes.assign(static_cast<size_t>(len), 1);
        squeeze = !keepdims;
      } else {
        const Tensor& split = ctx.input(1);
        std::vector<int64_t> s = read_int_values(split, ctx);
        if (split.rank() == 0) {
          if (s[0] <= 0) throw ctx.error("split must be positive");
          for (int64_t at = 0; at < len; at += s[0]) sizes.push_back(std::min(s[0], len - at));
        } else {
          int64_t total = 0;
          for (int64_t v : s) {
            if (v < 0) throw ctx.error("split sizes must not be negative");
            total += v;
          }
          if (total != len)
            throw ctx.error("split sizes sum to " + std::to_string(total) + " but the axis has " + std::to_string(len));
          sizes = s;
        }
      }
      int64_t outer = product(x.dims(), 0, axis), inner = product(x.dims(), axis + 1, x.rank()), at = 0;
      std::vector<Tensor> parts;
      for (int64_t size : sizes) {
        std::vector<int64_t> dims = x.dims();
        dims[axis] = size;
        if (squeeze) dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(axis));
        Tensor part(x.dtype(), dims);
        copy_rows(x, len, at, part, size, 0, size, outer, inner);
        parts.push_back(std::move(part));
        at += size;
      }
      ctx.set_output(0, Value::sequence(x.dtype(), std::move(parts)));
    });
  });
}

// ---- Optionals --------------------------------------------------------------------------------
// An empty optional is a none Value; an optional holding a value is that value.

void register_optional_kernels(KernelRegistry& r) {
  add_kernel(r, "Optional", 15, INT_MAX, {}, [](const KernelInit& init) {
    // `type` is an empty optional's element type, which a none Value does not carry.
    init.accept_attrs({"type"});
    return make_kernel([](KernelContext& ctx) {
      if (ctx.has_input(0)) ctx.set_output(0, ctx.input_value(0));
    });
  });
  add_kernel(r, "OptionalHasElement", 15, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { ctx.set_output(0, bool_scalar(ctx.has_input(0))); });
  });
  add_kernel(r, "OptionalGetElement", 15, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      if (!ctx.has_input(0)) throw ctx.error("the optional input is empty");
      ctx.set_output(0, ctx.input_value(0));
    });
  });
}

}  // namespace

void register_control_kernels(KernelRegistry& r) {
  add_kernel(r, "If", 1, INT_MAX, {}, if_kernel);
  add_kernel(r, "Loop", 1, INT_MAX, {}, loop_kernel);
  add_kernel(r, "Scan", 8, 8, {}, scan8_kernel);
  add_kernel(r, "Scan", 9, INT_MAX, {}, scan9_kernel);
  add_kernel(r, "SequenceMap", 17, INT_MAX, {}, sequence_map_kernel);
  register_sequence_kernels(r);
  register_optional_kernels(r);
}

}  // namespace tunnx::cpu
