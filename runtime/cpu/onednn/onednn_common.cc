#include "runtime/cpu/onednn/onednn_common.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <utility>

#include "runtime/core/host_memory.h"
#include "runtime/core/run_threads.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/onednn/blocked_reorder.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tunnx::cpu::onednn {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::desc plain_f32(const std::vector<int64_t>& dims) {
  dnnl::memory::dims d(dims.begin(), dims.end());
  dnnl::memory::dims strides(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) strides[i - 1] = strides[i] * std::max<int64_t>(d[i], 1);
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, strides);
}

dnnl::memory::desc activation_f32(const std::vector<int64_t>& dims, bool channels_last) {
  if (!channels_last || dims.size() < 3 || dims.size() > 5) return plain_f32(dims);
  using tag = dnnl::memory::format_tag;
  const tag last = dims.size() == 3 ? tag::nwc : dims.size() == 4 ? tag::nhwc : tag::ndhwc;
  return dnnl::memory::desc(dnnl::memory::dims(dims.begin(), dims.end()), dnnl::memory::data_type::f32, last);
}

dnnl::memory::desc channel_blocked_f32(const std::vector<int64_t>& dims, int64_t block) {
  using tag = dnnl::memory::format_tag;
  const size_t rank = dims.size();
  const tag blocked = block == 16 ? (rank == 3 ? tag::nCw16c : rank == 4 ? tag::nChw16c : tag::nCdhw16c)
                                  : (rank == 3 ? tag::nCw8c : rank == 4 ? tag::nChw8c : tag::nCdhw8c);
  return dnnl::memory::desc(dnnl::memory::dims(dims.begin(), dims.end()), dnnl::memory::data_type::f32, blocked);
}

dnnl::memory wrap(const dnnl::memory::desc& desc, const float* data) {
  return dnnl::memory(desc, cpu_engine(), const_cast<float*>(data));  // read only: see the header
}

dnnl::memory wrap(const dnnl::memory::desc& desc, float* data) { return dnnl::memory(desc, cpu_engine(), data); }

std::vector<std::pair<const void*, uint64_t>> source_versions(const std::vector<const Tensor*>& tensors) {
  std::vector<std::pair<const void*, uint64_t>> s;
  for (const Tensor* t : tensors) s.emplace_back(t ? t->data() : nullptr, t ? t->version() : 0);
  return s;
}

SerialIfSmall::SerialIfSmall(double work) {
#ifdef _OPENMP
  if (work >= kSerialWork) return;
  const int threads = omp_get_max_threads();
  if (threads <= 1) return;
  previous_ = threads;
  omp_set_num_threads(1);
#else
  (void)work;
#endif
}

SerialIfSmall::~SerialIfSmall() {
#ifdef _OPENMP
  if (previous_ > 0) omp_set_num_threads(previous_);
#endif
}

int team_for(double work) { return work < SerialIfSmall::kSerialWork ? 1 : RunThreads::current(); }

struct BoundPrimitive::Bound {
  std::vector<dnnl::memory> memories;  // one per pointer argument
  dnnl::memory scratch;
  std::unordered_map<int, dnnl::memory> args;
};

struct BoundPrimitive::State {
  dnnl::primitive primitive;
  std::vector<std::pair<int, dnnl::memory::desc>> pointer_args;
  dnnl::memory::desc scratchpad;
  double elements = -1;  // of DST or DIFF_SRC, for SerialIfSmall
  std::mutex mutex;
  std::vector<std::unique_ptr<Bound>> spare;
};

BoundPrimitive::BoundPrimitive(dnnl::primitive primitive, std::vector<std::pair<int, dnnl::memory::desc>> pointer_args,
                               dnnl::memory::desc scratchpad)
    : state_(std::make_shared<State>()) {
  state_->primitive = std::move(primitive);
  state_->pointer_args = std::move(pointer_args);
  state_->scratchpad = std::move(scratchpad);
  for (const auto& [id, desc] : state_->pointer_args)
    if (id == DNNL_ARG_DST || (id == DNNL_ARG_DIFF_SRC && state_->elements < 0))
      state_->elements = static_cast<double>(desc.get_size()) / sizeof(float);
}

void BoundPrimitive::run(std::initializer_list<const void*> pointers,
                         std::initializer_list<std::pair<int, dnnl::memory>> objects, double work) const {
  State& s = *state_;
  std::unique_ptr<Bound> b;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!s.spare.empty()) {
      b = std::move(s.spare.back());
      s.spare.pop_back();
    }
  }
  const dnnl::engine& engine = cpu_engine();
  if (!b) {
    b = std::make_unique<Bound>();
    for (const auto& [id, desc] : s.pointer_args) b->memories.emplace_back(desc, engine, nullptr);
    if (s.scratchpad.get_size() > 0) b->scratch = dnnl::memory(s.scratchpad, engine, nullptr);
  }
  // Objects first, then pointers; an argument given neither way is left out. The map keeps its
  // entries from run to run (assigning an existing key allocates nothing).
  for (const auto& [id, memory] : objects) b->args[id] = memory;
  size_t i = 0;
  for (const void* p : pointers) {
    if (i >= s.pointer_args.size()) break;
    const int id = s.pointer_args[i].first;
    if (p) {
      b->memories[i].set_data_handle(const_cast<void*>(p));  // oneDNN only reads its sources
      b->args[id] = b->memories[i];
    } else if (std::none_of(objects.begin(), objects.end(), [id](const auto& o) { return o.first == id; })) {
      b->args.erase(id);
    }
    ++i;
  }
  const SerialIfSmall serial(work >= 0 ? work : s.elements >= 0 ? s.elements : SerialIfSmall::kSerialWork);
  dnnl::stream stream(engine);
  // From the host memory cache: a fresh allocation per run paid its page faults on every run (brgemm's
  // scratchpad holds copies of whole operand panels).
  std::optional<HostScratch> scratch;
  if (s.scratchpad.get_size() > 0) {
    scratch.emplace(s.scratchpad.get_size());
    b->scratch.set_data_handle(scratch->data());
    b->args[DNNL_ARG_SCRATCHPAD] = b->scratch;
  }
  s.primitive.execute(stream, b->args);
  stream.wait();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.spare.push_back(std::move(b));
}

namespace {

// Each dim's stride in elements, for a blocked layout whose inner blocks each hold a whole dim
// (unpadded); nothing for any other.
std::optional<std::vector<int64_t>> dim_strides(const dnnl::memory::desc& desc) {
  const dnnl_memory_desc_t& d = desc.data;
  if (d.format_kind != dnnl_blocked || d.offset0 != 0) return std::nullopt;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  std::vector<int64_t> strides(b.strides, b.strides + d.ndims);
  int64_t inner = 1;
  for (int i = b.inner_nblks - 1; i >= 0; --i) {
    const int dim = b.inner_idxs[i];
    if (b.inner_blks[i] != d.dims[dim] || d.padded_dims[dim] != d.dims[dim]) return std::nullopt;
    strides[dim] = inner;
    inner *= b.inner_blks[i];
  }
  return strides;
}

}  // namespace

bool lies_as(const dnnl::memory::desc& a, const dnnl::memory::desc& b) {
  if (a == b) return true;
  if (a.data.ndims != b.data.ndims || a.data.data_type != b.data.data_type) return false;
  for (int i = 0; i < a.data.ndims; ++i)
    if (a.data.dims[i] != b.data.dims[i]) return false;
  const std::optional<std::vector<int64_t>> sa = dim_strides(a), sb = dim_strides(b);
  if (!sa || !sb) return false;
  for (int i = 0; i < a.data.ndims; ++i)
    if (a.data.dims[i] > 1 && (*sa)[i] != (*sb)[i]) return false;  // a dim of one is never stepped
  return true;
}

std::optional<Reorder> reorder_between(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  if (lies_as(from, to)) return std::nullopt;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu_engine(), from, cpu_engine(), to, attr);
  return Reorder{dnnl::reorder(pd), pd.scratchpad_desc(), from, to};
}

void Reorder::run(const float* x, float* y) const {
  // On one thread oneDNN's generated reorder is the faster (56x56x64 either way: 20-25 us against
  // 27); on two it slows down (29-39 us) where the copy halves (18-27).
  if (max_threads() > 1 && channel_block_reorder(from, x, to, y)) return;
  run_on(primitive, scratchpad, {{DNNL_ARG_FROM, wrap(from, x)}, {DNNL_ARG_TO, wrap(to, y)}});
}

struct LazyReorder::State {
  dnnl::memory::desc from, to;
  mutable std::once_flag made;
  mutable std::optional<Reorder> reorder;
};

LazyReorder::LazyReorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  if (lies_as(from, to)) return;
  state_ = std::make_shared<State>();
  state_->from = from;
  state_->to = to;
}

void LazyReorder::run(const float* from, float* to) const {
  const dnnl::memory source = wrap(state_->from, from), target = wrap(state_->to, to);
  if (blocked_reorder_into(source, target)) return;
  std::call_once(state_->made, [&] { state_->reorder = reorder_between(state_->from, state_->to); });
  run_on(state_->reorder->primitive, state_->reorder->scratchpad, {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, target}});
}

void run_on(const dnnl::primitive& p, const dnnl::memory::desc& scratchpad, std::unordered_map<int, dnnl::memory> args) {
  std::optional<HostScratch> scratch;  // from the host memory cache, as BoundPrimitive::run does
  if (scratchpad.get_size() > 0) {
    scratch.emplace(scratchpad.get_size());
    args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(scratchpad, cpu_engine(), scratch->data());
  }
  dnnl::stream stream(cpu_engine());
  p.execute(stream, args);
  stream.wait();  // before the scratchpad goes back
}

void PickedLayouts::bind(const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd,
                         std::vector<std::pair<int, dnnl::memory::desc>> more_args) {
  src = pd.src_desc();
  weights = pd.weights_desc();
  dst = pd.dst_desc();
  scratchpad = pd.scratchpad_desc();
  src_in = reorder_between(src_plain, src);
  weights_in = LazyReorder(weights_plain, weights);
  dst_out = reorder_between(dst, dst_plain);
  // BIAS always has its place (an empty descriptor, and no pointer, when there is none), so the
  // arguments after it keep theirs.
  std::vector<std::pair<int, dnnl::memory::desc>> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}, {DNNL_ARG_BIAS, bias}};
  args.insert(args.end(), more_args.begin(), more_args.end());
  bound = BoundPrimitive(primitive, std::move(args), scratchpad);
}

void* PickedLayouts::source(const float* x, std::optional<HostScratch>& block) const {
  if (!src_in) return const_cast<float*>(x);  // oneDNN only reads a source
  block.emplace(src.get_size());
  src_in->run(x, static_cast<float*>(block->data()));
  return block->data();
}

void* PickedLayouts::weights_for_run(const float* w, std::optional<HostScratch>& block) const {
  if (!weights_in) return const_cast<float*>(w);  // oneDNN only reads weights
  block.emplace(weights.get_size());
  weights_in.run(w, block->data());
  return block->data();
}

void* PickedLayouts::destination(float* y, std::optional<HostScratch>& block) const {
  if (!dst_out) return y;
  block.emplace(dst.get_size());
  return block->data();
}

void PickedLayouts::finish(void* dst_data, float* y) const {
  if (dst_out) dst_out->run(static_cast<float*>(dst_data), y);
}

bool reference_only(const dnnl::primitive_desc_base& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; }

void apply_activation(const ops::Activation& act, float* values, int64_t n) {
  using Kind = ops::Activation::Kind;
  switch (act.kind) {
    case Kind::kGelu: return float_unary(FloatUnaryOp::kGelu, values, values, n);
    case Kind::kSilu: return float_unary(FloatUnaryOp::kSilu, values, values, n);
    case Kind::kSigmoid: return float_unary(FloatUnaryOp::kSigmoid, values, values, n);
    default: return act.apply(values, n);
  }
}

bool append_activation(dnnl::post_ops& ops, const ops::Activation& act) {
  using Kind = ops::Activation::Kind;
  using dnnl::algorithm;
  switch (act.kind) {
    case Kind::kNone: return true;
    case Kind::kRelu: ops.append_eltwise(1.0f, algorithm::eltwise_relu, 0, 0); return true;
    case Kind::kLeakyRelu: ops.append_eltwise(1.0f, algorithm::eltwise_relu, act.alpha, 0); return true;  // alpha: slope below 0
    case Kind::kClip:
      if (!(act.alpha <= act.beta)) return false;  // lo > hi gives hi everywhere; the reference does that
      ops.append_eltwise(1.0f, algorithm::eltwise_clip_v2, std::fmax(act.alpha, std::numeric_limits<float>::lowest()),
                         std::fmin(act.beta, std::numeric_limits<float>::max()));
      return true;
    case Kind::kSigmoid: ops.append_eltwise(1.0f, algorithm::eltwise_logistic, 0, 0); return true;
    case Kind::kTanh: ops.append_eltwise(1.0f, algorithm::eltwise_tanh, 0, 0); return true;
    case Kind::kGelu: ops.append_eltwise(1.0f, algorithm::eltwise_gelu_erf, 0, 0); return true;
    case Kind::kGeluTanh: ops.append_eltwise(1.0f, algorithm::eltwise_gelu_tanh, 0, 0); return true;
    case Kind::kHardSigmoid:
      ops.append_eltwise(1.0f, algorithm::eltwise_linear, act.alpha, act.beta);
      ops.append_eltwise(1.0f, algorithm::eltwise_clip_v2, 0.0f, 1.0f);
      return true;
    case Kind::kHardSwish: ops.append_eltwise(1.0f, algorithm::eltwise_hardswish, 0, 0); return true;
    case Kind::kSilu: ops.append_eltwise(1.0f, algorithm::eltwise_swish, 1.0f, 0); return true;
  }
  return false;
}

// Not populated up front (host_memory::allocate's `written`): a primitive's scratchpad is sized for
// its largest case, and a run may touch part of it.
HostScratch::HostScratch(size_t bytes)
    : bytes_(std::max<size_t>(bytes, 1)), data_(static_cast<float*>(host_memory::allocate(bytes_, false))) {}

HostScratch::~HostScratch() { host_memory::deallocate(data_, bytes_); }

}  // namespace tunnx::cpu::onednn
