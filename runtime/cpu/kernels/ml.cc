// ai.onnx.ml ops: LabelEncoder (2, 4), TreeEnsemble (5), ArrayFeatureExtractor (1), Binarizer (1).
//
// LabelEncoder: Y has X's shape; each element of X found among the keys becomes the value at the
// key's position, any other element the default.
// TreeEnsemble: X [N, F] (or [F], one row) float/double/float16; Y [N, n_targets] of X's dtype holds
// the leaves each tree reaches, aggregated per target, then post-transformed.
// ArrayFeatureExtractor: X [..., C], Y int64 with K elements; Z [..., K] = X[..., Y] (X of rank 1: [1, K]).
// Binarizer: Y = X > threshold ? 1 : 0, X's dtype and shape.
#include <algorithm>
#include <numbers>
#include <unordered_map>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

constexpr const char* kMlDomain = "ai.onnx.ml";

// A numeric attribute tensor's values as double (tree thresholds, weights, modes), or `fallback`
// when the attribute is absent.
std::vector<double> tensor_attr_values(const KernelInit& init, const std::string& name,
                                       std::vector<double> fallback = {}) {
  const Tensor* t = init.attr_tensor(name);
  if (!t) return fallback;
  std::vector<double> out(static_cast<size_t>(t->numel()));
  auto fill = [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (size_t i = 0; i < out.size(); ++i) out[i] = to_double(data<T>(*t)[i]);
  };
  switch (t->dtype()) {
    case DataType::kFloat32: fill(TypeTag<float>{}); break;
    case DataType::kFloat64: fill(TypeTag<double>{}); break;
    case DataType::kFloat16: fill(TypeTag<Float16>{}); break;
    case DataType::kUInt8: fill(TypeTag<uint8_t>{}); break;
    case DataType::kInt32: fill(TypeTag<int32_t>{}); break;
    case DataType::kInt64: fill(TypeTag<int64_t>{}); break;
    default: throw init.error("attribute " + name + " must be a numeric tensor, got " + to_string(t->dtype()));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// LabelEncoder (opsets 2 and 4; 4 adds keys_tensor, values_tensor, default_tensor and more dtypes).

struct LabelEncoderAttrs {
  Tensor values;    // 1-D, the output dtype
  Tensor fallback;  // one element of the output dtype
  DataType key_type = DataType::kUndefined;
  // Position of each key (the last one of repeated keys), by how the key type compares.
  std::unordered_map<std::string, int64_t> string_keys;
  std::unordered_map<int64_t, int64_t> int_keys;
  std::unordered_map<double, int64_t> float_keys;
  int64_t nan_key = -1;  // float keys: a NaN key matches every NaN
};

// The one attribute of `names` that is set (a list or, last, a tensor) as a 1-D tensor.
Tensor one_of(const KernelInit& init, const char* what, const std::string& floats, const std::string& ints,
              const std::string& strings, const std::string& tensor) {
  int set = init.has_attr(floats) + init.has_attr(ints) + init.has_attr(strings) + init.has_attr(tensor);
  if (set != 1)
    throw init.error(std::string("exactly one of ") + floats + ", " + ints + ", " + strings + " and " + tensor +
                     " must be set for the " + what + ", got " + std::to_string(set));
  auto list = [](auto values) {
    return Tensor::from_vector({static_cast<int64_t>(values.size())}, values);
  };
  if (init.has_attr(floats)) return list(init.attr_floats(floats));
  if (init.has_attr(ints)) return list(init.attr_ints(ints));
  if (init.has_attr(strings)) return list(init.attr_strings(strings));
  const Tensor* t = init.attr_tensor(tensor);
  if (!t) throw init.error("attribute " + tensor + " must be a tensor");
  return t->clone();
}

std::unique_ptr<Kernel> make_label_encoder(const KernelInit& init) {
  auto a = std::make_shared<LabelEncoderAttrs>();
  const Tensor keys = one_of(init, "keys", "keys_floats", "keys_int64s", "keys_strings", "keys_tensor");
  a->values = one_of(init, "values", "values_floats", "values_int64s", "values_strings", "values_tensor");
  if (keys.numel() != a->values.numel())
    throw init.error("keys and values must have the same length, got " + std::to_string(keys.numel()) + " and " +
                     std::to_string(a->values.numel()));
  static const std::vector<DataType> kTypes = {DataType::kString, DataType::kInt64,   DataType::kFloat32,
                                               DataType::kInt32,  DataType::kInt16,   DataType::kFloat64};
  for (const Tensor* t : {&keys, static_cast<const Tensor*>(&a->values)})
    if (std::find(kTypes.begin(), kTypes.end(), t->dtype()) == kTypes.end())
      throw init.error(std::string("keys and values must be string, int16/32/64, float or double, got ") +
                       to_string(t->dtype()));
  a->key_type = keys.dtype();

  // The default: default_tensor with values_tensor, else the default_* of the values' kind.
  const DataType vt = a->values.dtype();
  if (init.has_attr("values_tensor") && init.attr_tensor("default_tensor")) {
    a->fallback = init.attr_tensor("default_tensor")->clone();
    if (a->fallback.dtype() != vt || a->fallback.numel() != 1)
      throw init.error(std::string("default_tensor must hold one ") + to_string(vt) + ", got " +
                       to_string(a->fallback.dtype()) + " " + dims_to_string(a->fallback.dims()));
  } else if (vt == DataType::kString) {
    a->fallback = Tensor::from_vector<std::string>({1}, {init.attr_string("default_string", "_Unused")});
  } else {
    a->fallback = Tensor(vt, {1});
    if (vt == DataType::kFloat32) {
      mutable_data<float>(a->fallback)[0] = init.attr_float("default_float", -0.0f);
    } else if (vt == DataType::kFloat64) {
      mutable_data<double>(a->fallback)[0] = init.attr_float("default_float", -0.0f);
    } else {
      const int64_t v = init.attr_int("default_int64", -1);
      switch (vt) {
        case DataType::kInt16: mutable_data<int16_t>(a->fallback)[0] = static_cast<int16_t>(v); break;
        case DataType::kInt32: mutable_data<int32_t>(a->fallback)[0] = static_cast<int32_t>(v); break;
        default: mutable_data<int64_t>(a->fallback)[0] = v; break;
      }
    }
  }

  for (int64_t i = 0; i < keys.numel(); ++i) {
    switch (a->key_type) {
      case DataType::kString: a->string_keys[data<std::string>(keys)[i]] = i; break;
      case DataType::kInt16: a->int_keys[data<int16_t>(keys)[i]] = i; break;
      case DataType::kInt32: a->int_keys[data<int32_t>(keys)[i]] = i; break;
      case DataType::kInt64: a->int_keys[data<int64_t>(keys)[i]] = i; break;
      default: {
        const double k = a->key_type == DataType::kFloat32 ? data<float>(keys)[i] : data<double>(keys)[i];
        if (std::isnan(k)) a->nan_key = i;
        else a->float_keys[k] = i;
      }
    }
  }

  return make_kernel([a](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    if (x.dtype() != a->key_type)
      throw ctx.error(std::string("X is ") + to_string(x.dtype()) + " but the keys are " + to_string(a->key_type));
    const int64_t n = x.numel();
    std::vector<int64_t> found(static_cast<size_t>(n), -1);
    auto find = [](const auto& map, const auto& key) {
      auto it = map.find(key);
      return it == map.end() ? int64_t{-1} : it->second;
    };
    for (int64_t i = 0; i < n; ++i) {
      int64_t& f = found[static_cast<size_t>(i)];
      switch (x.dtype()) {
        case DataType::kString: f = find(a->string_keys, data<std::string>(x)[i]); break;
        case DataType::kInt16: f = find(a->int_keys, int64_t{data<int16_t>(x)[i]}); break;
        case DataType::kInt32: f = find(a->int_keys, int64_t{data<int32_t>(x)[i]}); break;
        case DataType::kInt64: f = find(a->int_keys, data<int64_t>(x)[i]); break;
        default: {
          const double v = x.dtype() == DataType::kFloat32 ? data<float>(x)[i] : data<double>(x)[i];
          f = std::isnan(v) ? a->nan_key : find(a->float_keys, v);
        }
      }
    }
    Tensor& y = ctx.allocate_output(0, a->values.dtype(), x.dims());
    dispatch_by_size(y.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* values = data<T>(a->values);
      const T& fallback = data<T>(a->fallback)[0];
      T* out = mutable_data<T>(y);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t f = found[static_cast<size_t>(i)];
        out[i] = f >= 0 ? values[f] : fallback;
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// TreeEnsemble (opset 5).
//
// Interior nodes are the nodes_* entries; a branch names another node, or a leaf (leaf_*) when its
// *_leafs flag is set. Branches are stored as node index >= 0 or leaf index l as -1 - l.

enum class BranchMode { kLeq, kLt, kGte, kGt, kEq, kNeq, kMember };
enum class Aggregate { kAverage, kSum, kMin, kMax };
enum class PostTransform { kNone, kSoftmax, kLogistic, kSoftmaxZero, kProbit };

struct TreeNode {
  BranchMode mode = BranchMode::kLeq;
  bool missing_true = false;  // a NaN feature takes the true branch
  int64_t feature = 0;
  double split = 0;
  std::vector<double> members;  // BRANCH_MEMBER: sorted
  int64_t on_true = 0, on_false = 0;
};

struct TreeEnsembleAttrs {
  std::vector<TreeNode> nodes;
  std::vector<int64_t> roots;
  std::vector<double> leaf_weights;
  std::vector<int64_t> leaf_targets;
  int64_t n_targets = 0, max_feature = -1;
  Aggregate aggregate = Aggregate::kSum;
  PostTransform post = PostTransform::kNone;
};

bool take_true(const TreeNode& n, double x) {
  if (std::isnan(x) && n.missing_true) return true;
  switch (n.mode) {
    case BranchMode::kLeq: return x <= n.split;
    case BranchMode::kLt: return x < n.split;
    case BranchMode::kGte: return x >= n.split;
    case BranchMode::kGt: return x > n.split;
    case BranchMode::kEq: return x == n.split;
    case BranchMode::kNeq: return x != n.split;
    case BranchMode::kMember: return std::binary_search(n.members.begin(), n.members.end(), x);
  }
  return false;
}

// erf^-1(y) for y in (-1, 1): Winitzki's closed form, refined by Newton steps on std::erf.
double erf_inv(double y) {
  if (std::isnan(y) || y <= -1 || y >= 1)
    return std::isnan(y) || std::fabs(y) > 1 ? std::nan("") : std::copysign(INFINITY, y);
  constexpr double a = 0.147;
  const double ln = std::log((1 - y) * (1 + y));
  const double t = 2 / (std::numbers::pi * a) + ln / 2;
  double x = std::copysign(std::sqrt(std::sqrt(t * t - ln / a) - t), y);
  for (int i = 0; i < 3; ++i) x -= (std::erf(x) - y) / (2 / std::sqrt(std::numbers::pi) * std::exp(-x * x));
  return x;
}

// The post_transform of one row's scores, as ONNX Runtime's tree ensembles apply it.
void post_transform(PostTransform post, double* s, int64_t n) {
  switch (post) {
    case PostTransform::kNone: return;
    case PostTransform::kLogistic:
      for (int64_t i = 0; i < n; ++i) s[i] = sigmoid(s[i]);
      return;
    case PostTransform::kProbit:
      for (int64_t i = 0; i < n; ++i) s[i] = std::numbers::sqrt2 * erf_inv(2 * s[i] - 1);
      return;
    case PostTransform::kSoftmax:
    case PostTransform::kSoftmaxZero: {
      // SOFTMAX_ZERO leaves zero scores at zero: a target no leaf reached takes no share.
      const bool zero = post == PostTransform::kSoftmaxZero;
      const double top = *std::max_element(s, s + n);
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        s[i] = zero && std::fabs(s[i]) <= 1e-7 ? 0.0 : std::exp(s[i] - top);
        sum += s[i];
      }
      for (int64_t i = 0; i < n; ++i) s[i] = sum > 0 ? s[i] / sum : 0.0;
      return;
    }
  }
}

// The largest finite value of a float dtype: where MIN aggregation starts, as the reference does.
double float_max(DataType t) {
  if (t == DataType::kFloat64) return std::numeric_limits<double>::max();
  if (t == DataType::kFloat16) return 65504.0;
  return std::numeric_limits<float>::max();
}

void run_tree_ensemble(KernelContext& ctx, const TreeEnsembleAttrs& a) {
  const Tensor& x = ctx.input(0);
  const auto& dims = x.dims();
  if (dims.size() != 1 && dims.size() != 2) throw ctx.error("X must have shape [N, F], got " + dims_to_string(dims));
  const int64_t rows = dims.size() == 2 ? dims[0] : 1, features = dims.back();
  if (a.max_feature >= features)
    throw ctx.error("a node tests feature " + std::to_string(a.max_feature) + " but X " + dims_to_string(dims) +
                    " has " + std::to_string(features) + " features");
  const std::vector<double> in = read_double_values(x, ctx);
  const int64_t T = a.n_targets;
  const double start = a.aggregate == Aggregate::kMin   ? float_max(x.dtype())
                       : a.aggregate == Aggregate::kMax ? -float_max(x.dtype())
                                                        : 0.0;
  std::vector<double> out(static_cast<size_t>(rows * T), start);
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = in.data() + r * features;
    double* score = out.data() + r * T;
    for (int64_t root : a.roots) {
      int64_t at = root;
      while (at >= 0) {
        const TreeNode& n = a.nodes[static_cast<size_t>(at)];
        at = take_true(n, row[n.feature]) ? n.on_true : n.on_false;
      }
      const auto leaf = static_cast<size_t>(-1 - at);
      double& s = score[a.leaf_targets[leaf]];
      const double w = a.leaf_weights[leaf];
      switch (a.aggregate) {
        case Aggregate::kAverage:
        case Aggregate::kSum: s += w; break;
        case Aggregate::kMin: s = std::min(s, w); break;
        case Aggregate::kMax: s = std::max(s, w); break;
      }
    }
    if (a.aggregate == Aggregate::kAverage)
      for (int64_t t = 0; t < T; ++t) score[t] /= static_cast<double>(a.roots.size());
    post_transform(a.post, score, T);
  }
  write_output(ctx, 0, x.dtype(), {rows, T}, out);
}

std::unique_ptr<Kernel> make_tree_ensemble(const KernelInit& init) {
  auto a = std::make_shared<TreeEnsembleAttrs>();
  const std::vector<int64_t> features = init.attr_ints("nodes_featureids");
  const std::vector<int64_t> true_ids = init.attr_ints("nodes_truenodeids");
  const std::vector<int64_t> false_ids = init.attr_ints("nodes_falsenodeids");
  const std::vector<int64_t> true_leafs = init.attr_ints("nodes_trueleafs");
  const std::vector<int64_t> false_leafs = init.attr_ints("nodes_falseleafs");
  const std::vector<int64_t> missing = init.attr_ints("nodes_missing_value_tracks_true");
  const std::vector<double> splits = tensor_attr_values(init, "nodes_splits");
  std::vector<double> modes = tensor_attr_values(init, "nodes_modes");
  if (!init.attr_tensor("nodes_modes"))
    for (int64_t m : init.attr_ints("nodes_modes")) modes.push_back(static_cast<double>(m));
  const size_t count = features.size();
  if (count == 0) throw init.error("nodes_featureids must not be empty");
  for (auto [name, size] : {std::pair{"nodes_truenodeids", true_ids.size()}, {"nodes_falsenodeids", false_ids.size()},
                            {"nodes_trueleafs", true_leafs.size()}, {"nodes_falseleafs", false_leafs.size()},
                            {"nodes_splits", splits.size()}, {"nodes_modes", modes.size()}})
    if (size != count)
      throw init.error(std::string(name) + " has " + std::to_string(size) + " entries, nodes_featureids " +
                       std::to_string(count));
  if (!missing.empty() && missing.size() != count)
    throw init.error("nodes_missing_value_tracks_true has " + std::to_string(missing.size()) +
                     " entries, nodes_featureids " + std::to_string(count));

  a->leaf_weights = tensor_attr_values(init, "leaf_weights");
  a->leaf_targets = init.attr_ints("leaf_targetids");
  if (a->leaf_weights.empty() || a->leaf_weights.size() != a->leaf_targets.size())
    throw init.error("leaf_weights and leaf_targetids must be non-empty and of one length, got " +
                     std::to_string(a->leaf_weights.size()) + " and " + std::to_string(a->leaf_targets.size()));
  a->n_targets = init.attr_int("n_targets", 0);
  if (a->n_targets <= 0) throw init.error("n_targets must be positive, got " + std::to_string(a->n_targets));
  for (int64_t t : a->leaf_targets)
    if (t < 0 || t >= a->n_targets)
      throw init.error("leaf_targetids holds " + std::to_string(t) + ", outside [0, n_targets = " +
                       std::to_string(a->n_targets) + ")");

  const int64_t aggregate = init.attr_int("aggregate_function", 1), post = init.attr_int("post_transform", 0);
  if (aggregate < 0 || aggregate > 3)
    throw init.error("aggregate_function must be 0 (AVERAGE), 1 (SUM), 2 (MIN) or 3 (MAX), got " +
                     std::to_string(aggregate));
  if (post < 0 || post > 4)
    throw init.error("post_transform must be in [0, 4] (NONE, SOFTMAX, LOGISTIC, SOFTMAX_ZERO, PROBIT), got " +
                     std::to_string(post));
  a->aggregate = static_cast<Aggregate>(aggregate);
  a->post = static_cast<PostTransform>(post);

  // membership_values: one NaN-terminated set per BRANCH_MEMBER node, in node order.
  const std::vector<double> members = tensor_attr_values(init, "membership_values");
  size_t member_at = 0;
  const auto n_nodes = static_cast<int64_t>(count);
  const auto n_leaves = static_cast<int64_t>(a->leaf_weights.size());
  auto branch = [&](int64_t id, int64_t is_leaf, size_t node) {
    const int64_t limit = is_leaf ? n_leaves : n_nodes;
    if (id < 0 || id >= limit)
      throw init.error("node " + std::to_string(node) + " branches to " + (is_leaf ? "leaf " : "node ") +
                       std::to_string(id) + ", outside [0, " + std::to_string(limit) + ")");
    return is_leaf ? -1 - id : id;
  };
  a->nodes.resize(count);
  for (size_t i = 0; i < count; ++i) {
    TreeNode& n = a->nodes[i];
    const double mode = modes[i];
    if (!(mode >= 0 && mode <= 6))
      throw init.error("nodes_modes[" + std::to_string(i) + "] must be in [0, 6], got " + std::to_string(mode));
    n.mode = static_cast<BranchMode>(static_cast<int>(mode));
    n.feature = features[i];
    if (n.feature < 0) throw init.error("nodes_featureids holds a negative id, " + std::to_string(n.feature));
    a->max_feature = std::max(a->max_feature, n.feature);
    n.split = splits[i];
    n.missing_true = !missing.empty() && missing[i] != 0;
    n.on_true = branch(true_ids[i], true_leafs[i], i);
    n.on_false = branch(false_ids[i], false_leafs[i], i);
    if (n.mode == BranchMode::kMember) {
      while (member_at < members.size() && !std::isnan(members[member_at])) n.members.push_back(members[member_at++]);
      if (member_at == members.size())
        throw init.error("membership_values holds fewer NaN-terminated sets than there are BRANCH_MEMBER nodes");
      ++member_at;  // the NaN
      std::sort(n.members.begin(), n.members.end());
    }
  }

  a->roots = init.attr_ints("tree_roots");
  if (a->roots.empty()) throw init.error("tree_roots must not be empty");
  // Every node reachable from a root must lead to leaves: a cycle would never end a walk.
  std::vector<uint8_t> state(count, 0);  // 0 unseen, 1 on the current path, 2 done
  for (int64_t root : a->roots) {
    if (root < 0 || root >= n_nodes)
      throw init.error("tree_roots holds " + std::to_string(root) + ", outside [0, " + std::to_string(n_nodes) + ")");
    std::vector<std::pair<int64_t, int>> path{{root, 0}};  // node, children visited
    if (state[static_cast<size_t>(root)] == 0) state[static_cast<size_t>(root)] = 1;
    else path.clear();
    while (!path.empty()) {
      auto& [node, visited] = path.back();
      const TreeNode& n = a->nodes[static_cast<size_t>(node)];
      if (visited == 2) {
        state[static_cast<size_t>(node)] = 2;
        path.pop_back();
        continue;
      }
      const int64_t next = visited++ == 0 ? n.on_true : n.on_false;
      if (next < 0 || state[static_cast<size_t>(next)] == 2) continue;
      if (state[static_cast<size_t>(next)] == 1)
        throw init.error("the tree at root " + std::to_string(root) + " has a cycle through node " +
                         std::to_string(next));
      state[static_cast<size_t>(next)] = 1;
      path.emplace_back(next, 0);
    }
  }
  return make_kernel([a](KernelContext& ctx) { run_tree_ensemble(ctx, *a); });
}

// ---------------------------------------------------------------------------------------------
// ArrayFeatureExtractor, Binarizer (opset 1).

void run_array_feature_extractor(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& y = ctx.input(1);
  if (y.dtype() != DataType::kInt64) throw ctx.error(std::string("Y must be int64, got ") + to_string(y.dtype()));
  if (x.dims().empty()) throw ctx.error("X must have rank 1 or more, got a scalar");
  const int64_t c = x.dims().back(), k = y.numel(), outer = x.numel() / std::max<int64_t>(c, 1);
  const int64_t* index = data<int64_t>(y);
  for (int64_t i = 0; i < k; ++i)
    if (index[i] < 0 || index[i] >= c)
      throw ctx.error("Y holds index " + std::to_string(index[i]) + ", outside [0, " + std::to_string(c) +
                      ") for X " + dims_to_string(x.dims()));
  // A 1-D X gives one row, as ONNX Runtime and the reference do.
  std::vector<int64_t> dims = x.dims().size() == 1 ? std::vector<int64_t>{1, c} : x.dims();
  dims.back() = k;
  Tensor& z = ctx.allocate_output(0, x.dtype(), dims);
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(z);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < k; ++i) out[o * k + i] = in[o * c + index[i]];
  });
}

std::unique_ptr<Kernel> make_binarizer(const KernelInit& init) {
  const double threshold = init.attr_float("threshold", 0.0f);
  return make_kernel([threshold](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
    dispatch<float, double, int64_t, int32_t>(x.dtype(), ctx, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* in = data<T>(x);
      T* out = mutable_data<T>(y);
      for (int64_t i = 0; i < x.numel(); ++i) out[i] = to_double(in[i]) > threshold ? T(1) : T(0);
    });
  });
}

}  // namespace

void register_ml_kernels(KernelRegistry& registry) {
  const DataType s = DataType::kString, i16 = DataType::kInt16, i32 = DataType::kInt32, i64 = DataType::kInt64,
                 f32 = DataType::kFloat32, f64 = DataType::kFloat64;
  add_domain_kernel(registry, kMlDomain, "LabelEncoder", 2, 3, {s, i64, f32}, make_label_encoder);
  add_domain_kernel(registry, kMlDomain, "LabelEncoder", 4, INT_MAX, {s, i64, f32, i32, i16, f64}, make_label_encoder);
  add_domain_kernel(registry, kMlDomain, "TreeEnsemble", 5, INT_MAX, {f32, f64, DataType::kFloat16}, make_tree_ensemble);
  add_domain_kernel(registry, kMlDomain, "ArrayFeatureExtractor", 1, INT_MAX, {f32, f64, i64, i32, s},
                [](const KernelInit&) { return make_kernel(run_array_feature_extractor); });
  add_domain_kernel(registry, kMlDomain, "Binarizer", 1, INT_MAX, {f32, f64, i64, i32}, make_binarizer);
}

}  // namespace tunnx::cpu
