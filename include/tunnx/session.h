// Running a model: a Session plans the graph once (every kernel chosen when it is created) and then
// runs it as often as asked, from several threads at once if need be.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tunnx/device.h"
#include "tunnx/model.h"
#include "tunnx/value.h"

namespace tunnx {

struct SessionOptions {
  Device device = Device::cpu();
  // Threads each run may use: 0 means OpenMP's default (all cores, or OMP_NUM_THREADS). The reference
  // kernels run on the calling thread; oneDNN kernels use the run's threads. A lone run gets exactly
  // this many. Concurrent runs in one process share the cores: a run that starts while others hold
  // threads gets what is left of the cores (at least 1, at most this many), so K concurrent runs use
  // at most cores + K - 1 threads, not K x threads.
  int threads = 0;
  // On a busy machine (other processes taking cores from this one's threads, seen as involuntary
  // context switches), runs time `threads` against one thread and keep the faster, as ONNX Runtime's
  // caller takes over work its pool's threads do not get to; a quiet machine gets `threads` on every
  // run. false: every run asks for `threads`. SessionStats::last_run_threads says what a run got.
  bool adaptive_threads = true;
  // 0: run the graph as written (model-local functions still expanded); 1: basic rewrites (none yet);
  // 2, the default as ONNX Runtime's ORT_ENABLE_ALL is its: fusions too (MatMul/Gemm + bias +
  // activation into one node, runtime/core/passes/fuse_linear.cc).
  int optimization_level = 2;
  // Time every node of the main graph (SessionStats::kernels' calls and total_ms); costs two clock
  // reads per node.
  bool profile = false;
  // Inference only: let go of a constant weight once every kernel that reads it keeps a copy of its own
  // in the layout it computes with (oneDNN's products and convolutions pack their weights on the first
  // run that needs them; with a folded BatchNormalization, its inputs go too), as ONNX Runtime frees
  // an initializer its kernels pre-pack. The memory is freed once the caller's Model is gone as well,
  // or at once for a session that took its model (Session(Model&&), as `tunnx run` and `tunnx bench`
  // make theirs unless --keep-weights): the caller's Model is never changed, so it still reads, saves
  // and reloads its weights as they are, and no copy is ever unpacked. From the run (or the session's
  // preparation) that lets go of a weight, the session computes with its copies: later
  // writes to the model's parameters are not seen (write them before). Kept: weights a kernel reads as
  // they lie (reference kernels, a plain-layout primitive, a body of If/Loop/Scan, a constant-folded
  // node) and weights held only in Winograd's transformed layout, which no reorder reads back. Outputs
  // are those of a session without it, bit for bit: a layout a new input shape asks for is reordered
  // from a copy, and a run a reference kernel takes gets the weight reordered back (only a folded
  // convolution's shape that oneDNN has no fast kernel for runs on oneDNN's reference, within
  // rounding). Refused for a graph that computes gradients (ONNX Gradient nodes).
  // SessionStats::released_* say what was let go.
  bool release_packed_originals = false;
  // The sizes runs are expected to give named symbolic dims ("batch" -> 1), as ONNX Runtime's free
  // dimension overrides name them, except that runs of other sizes still work (their first run builds
  // what they need). The session is made ready for them: wherever shape inference then fixes a node's
  // input dims, its primitives are built and its weights packed now, on the session's threads, so the
  // first run is as fast as the next. Dims the model itself fixes need no entry.
  std::map<std::string, int64_t> expected_dims = {};
  // The dims runs are expected to feed each named input, as TensorRT's optimization profiles and
  // ONNX Runtime's perf_test name them: for inputs whose free dims have no names ("?", tf2onnx's
  // unk__N) or lose them to shape inference further in (a Resize of a symbolic batch). The session
  // infers what they fix everywhere in the graph and prepares kernels for those dims as well, with
  // what expected_dims gives. The inference costs session time: ~1 ms for PaddleOCR's classifier,
  // ~18 ms for its recognizer. Runs of other dims still work.
  std::map<std::string, std::vector<int64_t>> expected_input_dims = {};
};

using NamedValues = std::map<std::string, Value>;

// What cannot be seen in outputs, for tests and `tunnx run --profile`.
struct SessionStats {
  struct NodeKernel {
    std::string node, op_type, kernel;  // kernel: "cpu/reference/Conv", ...
    int64_t calls = 0;                  // with SessionOptions::profile: runs of this node so far
    double total_ms = 0;                //   and the time spent in its kernel
    int depth = 0;         // 0: the main graph; a body's nodes follow the node that runs them, one deeper
    std::string subgraph;  // for depth > 0: the body's path, "If_0/then_branch"
  };
  std::vector<NodeKernel> kernels;  // main graph in execution order, each If/Loop/Scan body after its node
  int64_t plans_built = 0;          // graphs planned (main graph and subgraphs)
  // Nodes computed from initializers and Constant nodes alone, whose outputs later runs reuse until
  // one of those initializers is written (constant folding that keeps Parameters; main graph and bodies).
  int64_t folded_nodes = 0;
  // Nodes whose kernels were made ready when the session was (primitives built, weights packed: see
  // SessionOptions::expected_dims).
  int64_t prepared_nodes = 0;
  int64_t runs = 0;
  int64_t last_run_bytes_allocated = 0;  // output tensors allocated by kernels during the last run
  double last_run_ms = 0;
  int last_run_threads = 0;  // threads the last run was granted (see SessionOptions::threads)
  double total_run_ms = 0;   // all runs so far; minus the nodes' total_ms, the executor's overhead
  // SessionOptions::release_packed_originals: initializers the session no longer holds (their
  // kernels compute from copies of their own), and their bytes.
  int64_t released_initializers = 0;
  int64_t released_bytes = 0;
};

// The sizes `inputs` give the model's named symbolic input dims ("batch" -> 8; the first input that
// names a symbol decides), for SessionOptions::expected_dims: a session made with them is ready for
// runs of such inputs. Inputs the model does not declare, and values that are not tensors, are passed over.
std::map<std::string, int64_t> dims_named_by(const Model& model, const NamedValues& inputs);
// The dims of each tensor of `inputs`, by name, for SessionOptions::expected_input_dims.
std::map<std::string, std::vector<int64_t>> input_dims_of(const NamedValues& inputs);

// The op types of `model` that no kernel on `device` runs at the model's opsets, as "Op (opset N)" or
// "domain:Op (opset N)", sorted; empty when a session could plan every node (dtypes aside). Functions
// are inlined and ONNX Runtime's contrib ops lowered first, as a session does. What `tunnx check`
// reports for a valid model tunnx cannot run.
std::vector<std::string> unsupported_ops(const Model& model, DeviceType device = DeviceType::kCpu);

class Session {
 public:
  // Plans `model` for `options.device`. Throws Error naming the node, op type, opset and dtype of the
  // first node no kernel supports. The session keeps the model's parameters alive and reads them in
  // place: later writes to the model's parameters are seen by later runs (not with
  // SessionOptions::release_packed_originals, which lets go of weights once packed).
  Session(const Model& model, SessionOptions options = {});
  // The same, for a model the session takes for itself (the caller's is left empty). Nothing else can
  // hold its weights then, so with SessionOptions::release_packed_originals each weight is freed as
  // soon as the kernels reading it hold copies, while the session is made (kernels expected_dims
  // prepares) or during the first run: the process holds about one copy of the weights at any time
  // instead of two. `tunnx run` and `tunnx bench` make their sessions so.
  Session(Model&& model, SessionOptions options = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // Inputs are checked by name, dtype and shape (symbolic dims must bind consistently). Returns the
  // requested outputs (all graph outputs when `output_names` is empty). Safe to call concurrently.
  NamedValues run(const NamedValues& inputs, const std::vector<std::string>& output_names = {}) const;

  std::vector<std::string> input_names() const;   // graph inputs a caller must or may feed
  std::vector<std::string> output_names() const;
  SessionStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tunnx
