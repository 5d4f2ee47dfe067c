// A loaded ONNX model: its graph, kept faithful to the file so it can be written back, and its
// initializers as Parameters (trainable, like torch.nn.Parameter) and buffers (never trained).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tunnx/tensor.h"

namespace tunnx {

struct LoadOptions {
  // A tensor that declares more bytes than this is rejected before anything is allocated.
  uint64_t max_tensor_bytes = uint64_t{16} << 30;
  // Run ONNX's checker and shape inference (skipped for opsets newer than the ONNX library knows).
  bool run_onnx_checker = true;
};

enum class ExternalDataMode {
  kAuto,    // inline unless the model would pass protobuf's 2 GiB limit
  kAlways,  // tensors of at least `external_threshold_bytes` go to the data file
  kNever,
};

struct SaveOptions {
  ExternalDataMode external_data = ExternalDataMode::kAuto;
  std::string external_data_file;  // relative to the model's folder; default "<model file>.data"
  size_t external_threshold_bytes = 1024;
  // LoRA adapters (tunnx/extend.h): folded into their weights, giving the original graph and names
  // (the default), or kept as separate initializers with the graph that applies them.
  bool merge_lora = true;
};

enum class TensorRole { kParameter, kBuffer };
const char* to_string(TensorRole role);
// Where a tensor came from: the file's initializers, a Constant node of the file (a weight kept as a
// node's value, as Paddle2ONNX writes them; saved back as that node), or Model::register_parameter /
// register_buffer.
enum class TensorOrigin { kImported, kConstantNode, kRegistered };
const char* to_string(TensorOrigin origin);  // "imported", "constant node", "registered""

// What `tunnx params` shows of one initializer.
struct TensorInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
  int64_t numel = 0;
  TensorRole role = TensorRole::kBuffer;
  bool requires_grad = false;
  size_t nbytes = 0;
  bool external = false;  // data still mapped from an external-data file
  std::string reason;     // why it is a Parameter or a buffer, in a few words
  TensorOrigin origin = TensorOrigin::kImported;
  bool persistent = true;  // in state_dict() (only registered buffers can opt out)
  bool in_graph = true;    // a node or graph output reads it (registered tensors may not be wired yet)
};

struct ValueSummary {
  std::string name;
  std::string type;  // "tensor(float32)", "seq(tensor(int64))", "optional(...)", "map(...)"
  Shape shape;       // for tensors; empty otherwise
  bool has_shape = false;
};

// What `tunnx check` shows of a model.
struct ModelInfo {
  int64_t ir_version = 0;
  std::vector<std::pair<std::string, int64_t>> opset_imports;  // domain ("" = ai.onnx), version
  std::string producer_name, producer_version, domain, doc_string;
  int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<ValueSummary> inputs, outputs;  // graph inputs exclude initializers (IR < 4)
  std::map<std::string, int64_t> op_histogram;  // "Conv", "com.microsoft:Attention"; subgraphs included
  int64_t node_count = 0;                        // subgraphs included
  int64_t subgraph_count = 0;
  std::vector<std::string> functions;            // model-local functions, "domain:name"
  std::string onnx_checker;  // "passed", or why it was skipped
};

using StateDict = std::vector<std::pair<std::string, Tensor>>;

struct LoadStateDictResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Model {
 public:
  // Throws Error naming the file and the offending node, tensor or field.
  static Model load(const std::filesystem::path& path, const LoadOptions& options = {});
  // Parses a serialized model; external data resolves inside `base_dir`.
  static Model load_from_bytes(std::string_view bytes, const std::filesystem::path& base_dir,
                               const LoadOptions& options = {});

  // Writes the model with the parameters' current values: temp file + rename, never partial.
  void save(const std::filesystem::path& path, const SaveOptions& options = {}) const;

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  ModelInfo info() const;
  const std::filesystem::path& path() const;  // empty when loaded from bytes

  // Parameters and buffers in the file's initializer order. Returned tensors share storage with the
  // model: writing through one changes the model (a mapped view is copied on that first write).
  StateDict named_parameters() const;
  StateDict named_buffers() const;
  std::vector<TensorInfo> tensors() const;  // every Parameter and buffer, imported and registered
  Tensor parameter(const std::string& name) const;  // a Parameter or buffer by name; throws kNotFound
  bool requires_grad(const std::string& name) const;
  // Sets requires_grad on every Parameter whose name matches the shell-style glob (`*` also matches
  // dots). Returns how many matched; throws kNotFound when none did, kInvalidArgument when the glob
  // matches only buffers and `value` is true.
  size_t requires_grad(std::string_view glob, bool value);

  // Parameters and persistent buffers, like torch's state_dict(); tensors are shared, not copied.
  StateDict state_dict() const;
  // Copies values in by name. Shape or dtype mismatches throw naming the tensor; with `strict`,
  // missing or unexpected keys throw too (after nothing has been changed).
  LoadStateDictResult load_state_dict(const StateDict& state, bool strict = true);

  // Adds a Parameter of the caller's own after load, as torch's Module.register_parameter: it is
  // trained (unless `requires_grad` is false), listed, checkpointed and, once a node reads it,
  // exported as an initializer. Throws Error(kInvalidArgument) when `name` is empty or already names a
  // parameter, buffer or graph value, or when a trainable tensor is not floating-point.
  void register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  // Adds a buffer (never trained), as Module.register_buffer; a non-persistent one is left out of
  // state_dict() and checkpoints. Same name rules.
  void register_buffer(const std::string& name, Tensor value, bool persistent = true);

 private:
  friend struct ModelInternals;  // the runtime's way in (runtime/core/model_impl.h)
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tunnx
