// Model::load and Model::save: file handling around the reader, checks, parameter policy and writer.
#include <algorithm>
#include <atomic>
#include <climits>
#include <future>
#include <optional>

#include <google/protobuf/io/zero_copy_stream.h>

#include "importer/atomic_file.h"
#include "importer/constant_weights.h"
#include "importer/external_data.h"
#include "importer/mapped_file.h"
#include "importer/onnx_reader.h"
#include "importer/onnx_validate.h"
#include "importer/onnx_writer.h"
#include "importer/parameter_policy.h"
#include "runtime/core/graph_order.h"
#include "runtime/core/model_impl.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

// Protobuf cannot parse or write a message over 2 GiB; bigger models keep weights in external data.
constexpr uint64_t kProtobufLimit = INT_MAX;

// Puts `proto`'s nodes (and its subgraphs' nodes) in the order sort_and_check gave the IR graph
// made from it. Attribute i of IR node k mirrors attribute i of the proto node it came from.
void apply_node_orders(const ir::Graph& graph, const ir::NodeOrders& orders, onnx::GraphProto& proto) {
  auto it = orders.find(&graph);
  if (it == orders.end()) return;
  const std::vector<size_t>& order = it->second;
  bool sorted_already = true;
  for (size_t i = 0; i < order.size(); ++i) sorted_already &= order[i] == i;
  if (!sorted_already) {
    google::protobuf::RepeatedPtrField<onnx::NodeProto> reordered;
    for (size_t index : order) reordered.Add()->Swap(proto.mutable_node(static_cast<int>(index)));
    proto.mutable_node()->Swap(&reordered);
  }
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    for (size_t a = 0; a < graph.nodes[i].attributes.size(); ++a) {
      const ir::Attribute& attr = graph.nodes[i].attributes[a];
      onnx::AttributeProto& attr_proto = *proto.mutable_node(static_cast<int>(i))->mutable_attribute(static_cast<int>(a));
      if (attr.g) apply_node_orders(*attr.g, orders, *attr_proto.mutable_g());
      for (size_t g = 0; g < attr.graphs.size(); ++g)
        apply_node_orders(*attr.graphs[g], orders, *attr_proto.mutable_graphs(static_cast<int>(g)));
    }
}

// Initializers an earlier tunnx export recorded as registered keep that origin.
void mark_registered(const ir::ModelIR& ir, ParameterStore& store) {
  for (const auto& [key, value] : ir.metadata_props) {
    if (key != kRegisteredInitializersKey) continue;
    size_t start = 0;
    while (start <= value.size()) {
      const size_t comma = std::min(value.find(',', start), value.size());
      if (StoredTensor* e = store.find(value.substr(start, comma - start))) e->origin = TensorOrigin::kRegistered;
      start = comma + 1;
    }
  }
}

void check_model_size(size_t size) {
  if (size == 0) throw Error(ErrorCode::kInvalidModel, "file is empty");
  if (size > kProtobufLimit)
    throw Error(ErrorCode::kInvalidModel, "file is larger than protobuf's 2 GiB limit (keep weights in external data)");
}

[[noreturn]] void throw_unparsable() {
  throw Error(ErrorCode::kInvalidModel, "not an ONNX model: protobuf parsing failed (truncated or corrupt file)");
}

onnx::ModelProto parse_model(const void* bytes, size_t size) {
  check_model_size(size);
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(bytes, static_cast<int>(size))) throw_unparsable();
  return proto;
}

// A mapped file handed to protobuf's parser in chunks, the pages before the next chunk let go when
// the parser asks for it: by then it has copied what it keeps (ZeroCopyInputStream's contract ends a
// chunk's life at the next call; a page read again would only fault in again from the file). Parsing
// the whole mapping at once kept the file resident beside the parsed copy of its weights to the end:
// BERT-2L's 57 MiB twice, a peak of 133 MiB for a load that leaves 76.
class ChunkedFileStream final : public google::protobuf::io::ZeroCopyInputStream {
 public:
  static constexpr size_t kChunk = size_t{4} << 20;

  explicit ChunkedFileStream(const MappedFile& file) : file_(file) {}

  bool Next(const void** data, int* size) override {
    file_.drop_pages(0, position_);  // pages dropped before cost a page-table walk, no fault
    if (position_ >= file_.size()) return false;
    const size_t n = std::min(kChunk, file_.size() - position_);
    *data = file_.data() + position_;
    *size = static_cast<int>(n);
    position_ += n;
    return true;
  }
  void BackUp(int count) override { position_ -= static_cast<size_t>(count); }
  bool Skip(int count) override {
    const size_t left = file_.size() - position_;
    position_ += std::min(left, static_cast<size_t>(count));
    return static_cast<size_t>(count) <= left;
  }
  int64_t ByteCount() const override { return static_cast<int64_t>(position_); }

 private:
  const MappedFile& file_;
  size_t position_ = 0;  // the next byte Next() hands out
};

// `proto` is consumed: its weight data is dropped once read (infer_value_types). `schemas`, when
// valid, is libonnx's schema registry being built on another thread: waited for only where the checker
// first reads it, so reading the graph and its weights overlaps with it.
std::unique_ptr<ModelImpl> load_impl(onnx::ModelProto& proto, const fs::path& model_dir, const LoadOptions& options,
                                     std::shared_future<void> schemas = {}) {
  if (proto.ir_version() <= 0)
    throw Error(ErrorCode::kInvalidModel, "not an ONNX model: ir_version is not set", {.field = "ir_version"});
  if (!proto.has_graph())
    throw Error(ErrorCode::kInvalidModel, "not an ONNX model: it has no graph", {.field = "graph"});

  auto impl = std::make_unique<ModelImpl>();
  ExternalDataResolver external(model_dir);
  RawDataStrings raw_data;
  TensorReadOptions tensor_options{options.max_tensor_bytes, &external, &raw_data};
  impl->ir = read_model(proto, impl->store, tensor_options);
  ir::NodeOrders orders;
  ir::sort_and_check(impl->ir.graph, {}, &orders);
  // ONNX's checker insists on topological order in the file; show it the order tunnx sorted.
  apply_node_orders(impl->ir.graph, orders, *proto.mutable_graph());
  if (schemas.valid()) schemas.get();
  impl->onnx_checker = options.run_onnx_checker ? run_onnx_checker(proto, model_dir) : "disabled";
  raw_data.adopt(*proto.mutable_graph());  // the initializers' views now own their bytes
  if (options.run_onnx_checker && infer_value_types(proto, impl->ir.graph)) {  // drops the weights' bytes first
    // The graph without its weights, kept for sessions that ask; what inference found at load is
    // not kept: infer_fixed_dims infers afresh.
    proto.mutable_graph()->clear_value_info();
    auto inferred = std::make_shared<const onnx::ModelProto>(std::move(proto));
    impl->fixed_dims_for = [inferred](const std::map<std::string, std::vector<int64_t>>& input_dims) {
      return infer_fixed_dims(*inferred, input_dims);
    };
  }
  lift_constant_weights(impl->ir.graph, impl->store);  // after the file's node order is no longer needed
  assign_parameter_roles(impl->ir, impl->store);
  mark_registered(impl->ir, impl->store);
  return impl;
}

}  // namespace

Model Model::load(const fs::path& path, const LoadOptions& options) {
  try {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(ErrorCode::kNotFound, "no such file");
    if (fs::is_directory(path, ec)) throw Error(ErrorCode::kInvalidArgument, "is a directory, not a model file");
    // A FIFO or device would block or never end; only regular files are models.
    if (!fs::is_regular_file(path, ec)) throw Error(ErrorCode::kInvalidArgument, "is not a regular file");
    // libonnx builds its schema registry (~7.7 ms) on the first use in a process, which the checker
    // and the parameter roles need. The first load builds it on one thread while the other reads and
    // parses the file and converts the graph and its weights, which waits for it before the checker.
    // The longer part stays on this thread: on a VM the second thread often starts only once this
    // one waits (1.8-3.1 ms late in 5 of 8 loads measured). Parsing takes ~1 ms a MiB, so a file
    // under kParseOnHelper is parsed on the second thread: the decoder block's (3 MiB) first load
    // took 10.4 ms against 11.0, magika's 10.4 against 11.5 (medians of 8); BERT-2L's (57 MiB) took
    // 1.5 ms longer so, and parses here.
    constexpr uintmax_t kParseOnHelper = uintmax_t{8} << 20;
    static std::atomic<bool> schemas_ready{false};
    auto parse_and_read = [&path, &options](std::shared_future<void> schemas) {
      onnx::ModelProto proto;
      {
        // Unmapped once parsed, its pages let go as the parse passes them (ChunkedFileStream).
        std::shared_ptr<MappedFile> file = MappedFile::open(path);
        check_model_size(file->size());
        ChunkedFileStream stream(*file);
        if (!proto.ParseFromZeroCopyStream(&stream)) throw_unparsable();
      }
      return load_impl(proto, path.parent_path(), options, std::move(schemas));
    };
    std::unique_ptr<ModelImpl> impl;
    if (schemas_ready.load(std::memory_order_acquire)) {
      impl = parse_and_read({});
    } else {
      std::promise<void> built;
      std::shared_future<void> schemas = built.get_future().share();
      auto build_schemas = [&built] {
        try {
          prepare_onnx_schemas();
          schemas_ready.store(true, std::memory_order_release);
          built.set_value();
        } catch (...) {
          built.set_exception(std::current_exception());
        }
      };
      // Either future's destructor waits for its thread (std::async's), so none outlives the call.
      if (fs::file_size(path, ec) < kParseOnHelper) {
        std::future<std::unique_ptr<ModelImpl>> loading = std::async(std::launch::async, parse_and_read, schemas);
        build_schemas();
        impl = loading.get();
      } else {
        std::future<void> building = std::async(std::launch::async, build_schemas);
        impl = parse_and_read(schemas);
      }
    }
    impl->path = path;
    return Model(std::move(impl));
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
}

Model Model::load_from_bytes(std::string_view bytes, const fs::path& base_dir, const LoadOptions& options) {
  onnx::ModelProto proto = parse_model(bytes.data(), bytes.size());
  return Model(load_impl(proto, base_dir, options));
}

void Model::save(const fs::path& path, const SaveOptions& options) const {
  try {
    std::unique_ptr<ModelImpl> merged;
    if (options.merge_lora && impl_->merged_for_export) merged = impl_->merged_for_export(*impl_);
    const ModelImpl& m = merged ? *merged : *impl_;
    size_t total = initializer_bytes(m.store);
    ExternalDataPlan plan;
    plan.enabled = options.external_data == ExternalDataMode::kAlways ||
                   (options.external_data == ExternalDataMode::kAuto && total > kProtobufLimit - (64u << 20));
    plan.threshold_bytes = options.external_threshold_bytes;
    plan.location = options.external_data_file.empty() ? path.filename().string() + ".data"
                                                        : options.external_data_file;
    std::string data;
    plan.data = &data;
    if (plan.enabled) {
      // The reader's rules apply to what we write too: the data file stays in the model's folder.
      fs::path rel(plan.location);
      fs::path normal = rel.lexically_normal();
      if (rel.is_absolute() || normal.empty() || *normal.begin() == ".." || normal.has_parent_path())
        throw Error(ErrorCode::kInvalidArgument, "external data file '" + plan.location +
                                                     "' must be a plain file name in the model's folder");
    }
    onnx::ModelProto proto = write_model(m.ir, m.store, plan);
    if (proto.ByteSizeLong() > kProtobufLimit)
      throw Error(ErrorCode::kLimitExceeded,
                  "model is over protobuf's 2 GiB limit; save with external data");
    // Stage both files before renaming either: a failed write replaces nothing.
    std::optional<StagedFile> data_file;
    if (plan.enabled)
      data_file.emplace(path.parent_path() / plan.location, [&data](std::ostream& out) {
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
      });
    StagedFile model_file(path, [&proto](std::ostream& out) {
      if (!proto.SerializeToOstream(&out)) throw Error(ErrorCode::kIo, "serializing the model failed");
    });
    if (data_file) data_file->commit();
    model_file.commit();
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
}

}  // namespace tunnx
