// `tunnx train`: fine-tunes a model's Parameters on a .npz dataset with the C++ Trainer, with
// progress, metrics, crash-safe checkpoints and resume, and writes the result as ONNX. The model may
// first be extended (new heads, LoRA, bound inputs: tools/train_edits.h); --freeze/--unfreeze come
// after those edits.
//
// Every refusal (bad option values, data that does not fit the model or the loss, a checkpoint that
// does not fit the command line) happens before the first step, as one line and exit 1, with
// nothing written.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tools/train_edits.h"
#include "tools/train_progress.h"
#include "tunnx/tunnx.h"

namespace tunnx::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

struct TrainArgs {
  fs::path model, data, eval_data, checkpoint_dir, metrics, save;
  std::string output, target, loss, optimizer = "sgd", schedule = "constant";
  double lr = 1e-3, momentum = 0, dampening = 0, gamma = 0.1, clip_grad_norm = 0, label_smoothing = 0;
  std::optional<double> weight_decay;
  bool nesterov = false, shuffle = true, resume = false, profile = false;
  int64_t epochs = 1, batch_size = 32, step_size = 1, warmup_steps = 0, checkpoint_every = 0, ignore_index = -100;
  uint64_t seed = 0;
  int accumulate = 1, threads = 0;
  std::vector<std::pair<std::string, bool>> requires_grad;  // (glob, value) in command-line order
  EditArgs edits;
};

Error refuse(const std::string& message, ErrorContext context = {}) {
  return Error(ErrorCode::kInvalidArgument, message, std::move(context));
}

std::string absolute_text(const fs::path& p) { return p.empty() ? "" : fs::absolute(p).lexically_normal().string(); }

// Everything a resumed run must share with the one that wrote the checkpoint: all options but
// --epochs, --threads, --metrics and --resume, under their option names.
ordered_json run_identity(const TrainArgs& a) {
  ordered_json identity = {{"MODEL", absolute_text(a.model)},
                           {"--data", absolute_text(a.data)},
                           {"--output", a.output},
                           {"--target", a.target},
                           {"--loss", a.loss},
                           {"--optimizer", a.optimizer},
                           {"--lr", a.lr},
                           {"--momentum", a.momentum},
                           {"--dampening", a.dampening},
                           {"--nesterov", a.nesterov},
                           {"--weight-decay", a.weight_decay ? json(*a.weight_decay) : json("default")},
                           {"--batch-size", a.batch_size},
                           {"--shuffle", a.shuffle},
                           {"--seed", a.seed},
                           {"--freeze/--unfreeze", [&] {
                              json list = json::array();
                              for (const auto& [glob, value] : a.requires_grad) list.push_back((value ? "+" : "-") + glob);
                              return list;
                            }()},
                           {"--schedule", a.schedule},
                           {"--step-size", a.step_size},
                           {"--gamma", a.gamma},
                           {"--warmup-steps", a.warmup_steps},
                           {"--clip-grad-norm", a.clip_grad_norm},
                           {"--accumulate", a.accumulate},
                           {"--label-smoothing", a.label_smoothing},
                           {"--ignore-index", a.ignore_index},
                           {"--eval-data", absolute_text(a.eval_data)},
                           {"--checkpoint-dir", absolute_text(a.checkpoint_dir)},
                           {"--checkpoint-every", a.checkpoint_every},
                           {"--save", absolute_text(a.save)}};
  add_edit_identity(identity, a.edits);
  return identity;
}

void check_option_values(const TrainArgs& a) {
  auto positive = [](int64_t v, const char* name) {
    if (v < 1) throw refuse(std::string(name) + " must be 1 or more, got " + std::to_string(v));
  };
  positive(a.epochs, "--epochs");
  positive(a.batch_size, "--batch-size");
  positive(a.step_size, "--step-size");
  positive(a.accumulate, "--accumulate");
  if (!(a.lr >= 0)) throw refuse("--lr must be 0 or more");
  if (a.momentum < 0) throw refuse("--momentum must be 0 or more");
  if (a.weight_decay && *a.weight_decay < 0) throw refuse("--weight-decay must be 0 or more");
  if (a.nesterov && (a.momentum <= 0 || a.dampening != 0))
    throw refuse("--nesterov needs --momentum above 0 and --dampening 0 (as torch.optim.SGD)");
  if (a.optimizer != "sgd" && (a.momentum != 0 || a.dampening != 0 || a.nesterov))
    throw refuse("--momentum, --dampening and --nesterov are options of --optimizer sgd");
  if (a.warmup_steps < 0) throw refuse("--warmup-steps must be 0 or more");
  if (a.clip_grad_norm < 0) throw refuse("--clip-grad-norm must be 0 (off) or more");
  if (a.label_smoothing < 0 || a.label_smoothing > 1) throw refuse("--label-smoothing must be in [0, 1]");
  if ((a.label_smoothing != 0 || a.ignore_index != -100) && a.loss != "cross_entropy")
    throw refuse("--label-smoothing and --ignore-index are options of --loss cross_entropy");
  if (a.checkpoint_every < 0) throw refuse("--checkpoint-every must be 0 (only at epoch ends) or more");
  if (a.threads < 0) throw refuse("--threads must be 0 (all cores) or more");
  if (a.resume && a.checkpoint_dir.empty()) throw refuse("--resume needs --checkpoint-dir");
  if (a.checkpoint_every > 0 && a.checkpoint_dir.empty()) throw refuse("--checkpoint-every needs --checkpoint-dir");
  std::error_code ec;
  for (const fs::path* file : {&a.save, &a.metrics}) {
    if (file->empty()) continue;
    const fs::path folder = fs::absolute(*file).parent_path();
    if (!fs::is_directory(folder, ec)) throw refuse("its folder does not exist", {.file = file->string()});
    if (fs::is_directory(*file, ec)) throw refuse("is a folder, not a file", {.file = file->string()});
  }
  if (!a.checkpoint_dir.empty() && fs::exists(a.checkpoint_dir, ec) && !fs::is_directory(a.checkpoint_dir, ec))
    throw refuse("is not a folder", {.file = a.checkpoint_dir.string()});
  check_edit_options(a.edits);
}

DataType declared_dtype(const ValueSummary& v) {
  const std::string& type = v.type;  // "tensor(float32)"
  const size_t open = type.find('(');
  if (type.rfind("tensor(", 0) != 0 || type.back() != ')') return DataType::kUndefined;
  try {
    return data_type_from_string(type.substr(open + 1, type.size() - open - 2));
  } catch (const Error&) {
    return DataType::kUndefined;
  }
}

// Fixed dims beyond axis 0 of `declared` must equal those of `actual` (rank too, when declared).
bool fits(const ValueSummary& declared, const std::vector<int64_t>& actual, size_t skip_axis = SIZE_MAX) {
  if (!declared.has_shape) return true;
  std::vector<Dim> dims = declared.shape.dims;
  if (skip_axis < dims.size()) dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(skip_axis));
  if (dims.size() != actual.size()) return false;
  for (size_t i = 1; i < dims.size(); ++i)
    if (dims[i].is_fixed() && dims[i].value != actual[i]) return false;
  return true;
}

std::string shape_of(const ValueSummary& v) { return v.has_shape ? v.shape.to_string() : "?"; }

// The arrays of `data` against the model's inputs and the loss: names, dtypes, shapes.
// Inputs bound by --bind-input are Parameters now, so the data must not hold them.
void check_dataset(const Dataset& data, const ModelInfo& info, const TrainArgs& a, const ValueSummary& output,
                   const std::set<std::string>& bound) {
  const ErrorContext where{.file = data.source()};
  for (const std::string& name : bound)
    if (data.contains(name))
      throw refuse("holds an array '" + name + "', but --bind-input makes that input a trained Parameter: leave it out",
                   where);
  std::set<std::string> inputs;
  for (const ValueSummary& in : info.inputs) {
    inputs.insert(in.name);
    if (!data.contains(in.name))
      throw refuse("has no array '" + in.name + "' for the model input of that name", where);
    const Tensor& x = data.array(in.name);
    const DataType want = declared_dtype(in);
    if (want != DataType::kUndefined && x.dtype() != want)
      throw refuse(std::string("is ") + to_string(x.dtype()) + " but the model input is " + to_string(want),
                   {.file = data.source(), .tensor = in.name});
    if (!fits(in, x.dims()))
      throw refuse("has shape " + dims_to_string(x.dims()) + " but the model input is " + shape_of(in),
                   {.file = data.source(), .tensor = in.name});
  }
  std::string extra;
  for (const auto& [name, array] : data.arrays())
    if (!inputs.count(name) && name != a.target) extra += (extra.empty() ? "'" : ", '") + name + "'";
  if (!extra.empty())
    throw refuse("holds arrays that are neither model inputs nor the target (--target " + a.target + "): " + extra, where);
  if (!data.contains(a.target)) throw refuse("has no target array '" + a.target + "' (--target)", where);
  const Tensor& y = data.array(a.target);
  const ErrorContext at{.file = data.source(), .tensor = a.target};
  if (a.loss == "cross_entropy") {
    if (y.dtype() != DataType::kInt64)
      throw refuse(std::string("is ") + to_string(y.dtype()) + ": cross_entropy needs int64 class indices", at);
    if (!fits(output, y.dims(), 1))
      throw refuse("has shape " + dims_to_string(y.dims()) + ": cross_entropy needs the output's shape " +
                       shape_of(output) + " without its class axis 1", at);
    // A new head with fewer outputs than the data has classes fails here, not at the first step.
    if (output.has_shape && output.shape.rank() >= 2 && output.shape.dims[1].is_fixed()) {
      const int64_t classes = output.shape.dims[1].value;
      for (int64_t i = 0; i < y.numel(); ++i) {
        const int64_t c = y.data_as<int64_t>()[i];
        if (c != a.ignore_index && (c < 0 || c >= classes))
          throw refuse("holds class index " + std::to_string(c) + " but the output '" + output.name + "' has " +
                           std::to_string(classes) + " classes",
                       at);
      }
    }
  } else {
    const DataType want = declared_dtype(output);
    if (!is_floating_point(y.dtype()) || (want != DataType::kUndefined && y.dtype() != want))
      throw refuse(std::string("is ") + to_string(y.dtype()) + ": " + a.loss + " needs a target of the output's dtype (" +
                       to_string(want) + ")", at);
    if (!fits(output, y.dims()))
      throw refuse("has shape " + dims_to_string(y.dims()) + ": " + a.loss + " needs the output's shape " + shape_of(output), at);
  }
}

TrainerOptions trainer_options(const TrainArgs& a, int64_t batches_per_epoch) {
  TrainerOptions o;
  o.loss.kind = loss_kind_from_string(a.loss);
  o.loss.output = a.output;
  o.loss.target = a.target;
  o.loss.ignore_index = a.ignore_index;
  o.loss.label_smoothing = static_cast<float>(a.label_smoothing);
  o.optimizer.kind = optimizer_kind_from_string(a.optimizer);
  o.optimizer.lr = a.lr;
  o.optimizer.momentum = a.momentum;
  o.optimizer.dampening = a.dampening;
  o.optimizer.nesterov = a.nesterov;
  o.optimizer.weight_decay = a.weight_decay;
  using Schedule = ScheduleOptions::Kind;
  o.schedule.kind = a.schedule == "step" ? Schedule::kStep : a.schedule == "cosine" ? Schedule::kCosine : Schedule::kConstant;
  // Cosine anneals to 0 over the whole run after the warm-up (an epoch's cut-short accumulation
  // still steps).
  const int64_t steps_per_epoch = (batches_per_epoch + a.accumulate - 1) / a.accumulate;
  o.schedule.t_max = std::max<int64_t>(1, a.epochs * steps_per_epoch - a.warmup_steps);
  o.schedule.step_size = a.step_size;
  o.schedule.gamma = a.gamma;
  o.schedule.warmup_steps = a.warmup_steps;
  o.clip_grad_norm = a.clip_grad_norm;
  o.accumulate = a.accumulate;
  o.threads = a.threads;
  o.seed = a.seed;
  o.profile = a.profile;
  return o;
}

// Loss and accuracy over a whole dataset in eval mode, weighted by batch size.
EpochStats evaluate_all(const Trainer& trainer, const Dataset& data, int64_t batch_size) {
  BatchSampler batches(data.size(), {.batch_size = batch_size, .shuffle = false});
  const std::vector<int64_t> order = batches.order(0);
  EpochStats s;
  for (int64_t b = 0; b < batches.batches_per_epoch(); ++b) {
    const auto indices = batches.batch(order, b);
    const EvalResult r = trainer.evaluate(data.batch(indices));
    s.add(r.loss, static_cast<int64_t>(indices.size()), r.correct, r.counted);
  }
  return s;
}

std::string percent(double v) { return fixed(100 * v, 1) + "%"; }

class TrainRun {
 public:
  explicit TrainRun(TrainArgs args) : a_(std::move(args)) {}
  void run();

 private:
  void prepare();
  void resume();
  void train_epoch(int64_t epoch, int64_t first_batch);
  void checkpoint(int64_t epoch, int64_t batch);
  void log_step(int64_t epoch, double lr);
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

  TrainArgs a_;
  std::optional<Model> model_;
  std::optional<Dataset> data_, eval_data_;
  std::optional<Trainer> trainer_;
  std::optional<BatchSampler> sampler_;
  MetricsLog metrics_;
  bool cross_entropy_ = false;
  TrainingProgress progress_;
  EpochStats epoch_stats_;
  EpochStats pending_;  // micro-batches since the last optimizer step, for the step's metrics line
  int64_t samples_seen_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void TrainRun::prepare() {
  check_option_values(a_);
  model_ = Model::load(a_.model);
  const std::set<std::string> bound = apply_edits(*model_, a_.edits, a_.seed);
  for (const auto& [glob, value] : a_.requires_grad) model_->requires_grad(glob, value);
  const ModelInfo info = model_->info();
  const ValueSummary* output = nullptr;
  std::string outputs;
  for (const ValueSummary& o : info.outputs) {
    outputs += (outputs.empty() ? "" : ", ") + o.name;
    if (o.name == a_.output || (a_.output.empty() && info.outputs.size() == 1)) output = &o;
  }
  if (!output) {
    if (a_.output.empty())
      throw refuse("the model has " + std::to_string(info.outputs.size()) + " outputs (" + outputs +
                       "): name the one the loss reads with --output", {.file = a_.model.string()});
    throw refuse("--output '" + a_.output + "' is not an output of the model (outputs: " + outputs + ")",
                 {.file = a_.model.string()});
  }
  data_ = Dataset::load_npz(a_.data);
  check_dataset(*data_, info, a_, *output, bound);
  if (!a_.eval_data.empty()) {
    eval_data_ = Dataset::load_npz(a_.eval_data);
    check_dataset(*eval_data_, info, a_, *output, bound);
  }
  cross_entropy_ = a_.loss == "cross_entropy";
  sampler_.emplace(data_->size(), BatchOptions{.batch_size = a_.batch_size, .shuffle = a_.shuffle, .seed = a_.seed});
  trainer_.emplace(*model_, trainer_options(a_, sampler_->batches_per_epoch()));
  if (trainer_->trainable().empty())
    throw refuse("no Parameter requires a gradient (all frozen): nothing to train", {.file = a_.model.string()});
}

void TrainRun::resume() {
  const auto newest = latest_checkpoint(a_.checkpoint_dir);
  if (!newest) throw refuse("--resume: no complete checkpoint in this folder", {.file = a_.checkpoint_dir.string()});
  const CheckpointInfo info = read_checkpoint_info(*newest);
  const json saved = json::parse(info.run_json);
  const ordered_json now = run_identity(a_);
  // An option newer than the checkpoint is taken as its default there.
  const ordered_json defaults = run_identity(TrainArgs{});
  for (const auto& [key, value] : now.items()) {
    const json before = saved.at("identity").value(key, json(defaults.value(key, ordered_json())));
    if (before != json(value))
      throw refuse("--resume: " + key + " is " + json(value).dump() + " but the checkpoint's run had " + before.dump() +
                       " (only --epochs, --threads and --metrics may change)",
                   {.file = newest->string()});
  }
  if (info.model_crc32 != file_crc32(a_.model))
    throw refuse("--resume: the model file changed since the checkpoint was written", {.file = a_.model.string()});
  load_checkpoint(*newest, *model_, *trainer_);
  progress_ = info.progress;
  epoch_stats_ = EpochStats::from_json(saved.value("epoch_stats", json::object()));
  if (!a_.metrics.empty()) MetricsLog::truncate_after(a_.metrics, progress_.step);
  std::cout << "resumed from " << newest->string() << " (epoch " << progress_.epoch + 1 << ", batch " << progress_.batch
            << ", step " << progress_.step << ")" << std::endl;
}

void TrainRun::checkpoint(int64_t epoch, int64_t batch) {
  if (a_.checkpoint_dir.empty()) return;
  progress_ = {epoch, batch, trainer_->steps()};
  const json run = {{"identity", run_identity(a_)}, {"epoch_stats", epoch_stats_.to_json()}};
  save_checkpoint(a_.checkpoint_dir, *model_, *trainer_, progress_, run.dump());
}

void TrainRun::log_step(int64_t epoch, double lr) {
  if (pending_.samples == 0) return;
  json line = {{"kind", "step"}, {"epoch", epoch + 1}, {"step", trainer_->steps()}, {"loss", pending_.mean_loss()},
               {"lr", lr}, {"samples_per_s", static_cast<double>(samples_seen_) / std::max(elapsed(), 1e-9)},
               {"time_s", elapsed()}};
  if (cross_entropy_ && pending_.counted) line["accuracy"] = pending_.accuracy();
  metrics_.write(line);
  pending_ = EpochStats();
}

void TrainRun::train_epoch(int64_t epoch, int64_t first_batch) {
  const std::vector<int64_t> order = sampler_->order(epoch);
  const int64_t batches = sampler_->batches_per_epoch();
  ProgressBar bar(::isatty(STDERR_FILENO) != 0);
  bar.start_epoch(epoch + 1, a_.epochs, batches, first_batch);
  const auto epoch_start = std::chrono::steady_clock::now();
  int64_t epoch_samples_now = 0;
  for (int64_t b = first_batch; b < batches; ++b) {
    const auto indices = sampler_->batch(order, b);
    const double lr = trainer_->lr();
    const StepResult r = trainer_->step(data_->batch(indices));
    const auto n = static_cast<int64_t>(indices.size());
    epoch_stats_.add(r.loss, n, r.correct, r.counted);
    pending_.add(r.loss, n, r.correct, r.counted);
    samples_seen_ += n;
    epoch_samples_now += n;
    bar.update(b + 1, r.loss, epoch_samples_now);
    if (r.updated) {
      log_step(epoch, lr);
      // The epoch's last batch is checkpointed by the epoch end, after the eval.
      if (a_.checkpoint_every > 0 && trainer_->steps() % a_.checkpoint_every == 0 && b + 1 < batches)
        checkpoint(epoch, b + 1);
    }
  }
  if (pending_.samples > 0) {  // an accumulation the epoch's end cut short still updates
    const double lr = trainer_->lr();
    trainer_->optimizer_step();
    log_step(epoch, lr);
  }

  json line = {{"kind", "epoch"}, {"epoch", epoch + 1}, {"step", trainer_->steps()}, {"loss", epoch_stats_.mean_loss()}};
  std::string summary = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(a_.epochs) + ": loss " +
                        fixed(epoch_stats_.mean_loss(), 4);
  if (cross_entropy_) {
    line["accuracy"] = epoch_stats_.accuracy();
    summary += ", accuracy " + percent(epoch_stats_.accuracy());
  }
  if (eval_data_) {
    const EpochStats eval = evaluate_all(*trainer_, *eval_data_, a_.batch_size);
    line["eval_loss"] = eval.mean_loss();
    summary += ", eval loss " + fixed(eval.mean_loss(), 4);
    if (cross_entropy_) {
      line["eval_accuracy"] = eval.accuracy();
      summary += ", eval accuracy " + percent(eval.accuracy());
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
  line["time_s"] = elapsed();
  summary += " (" + fixed(seconds, 1) + " s, " + fixed(static_cast<double>(epoch_samples_now) / std::max(seconds, 1e-9), 0) +
             " samples/s)";
  metrics_.write(line);
  bar.finish_epoch(summary);
  epoch_stats_ = EpochStats();
  checkpoint(epoch + 1, 0);
}

void TrainRun::run() {
  prepare();
  if (a_.resume) resume();
  // From here on files may be written: every refusal has happened.
  if (!a_.metrics.empty()) metrics_ = MetricsLog(a_.metrics);
  std::cout << "training " << trainer_->trainable().size() << " Parameters of " << a_.model.string() << " on "
            << data_->size() << " samples (" << sampler_->batches_per_epoch() << " batches of up to " << a_.batch_size
            << "), " << a_.optimizer << " lr " << a_.lr << ", loss " << a_.loss << std::endl;
  if (eval_data_ && !a_.resume) {
    const EpochStats before = evaluate_all(*trainer_, *eval_data_, a_.batch_size);
    json line = {{"kind", "eval"}, {"epoch", 0}, {"step", 0}, {"eval_loss", before.mean_loss()}};
    std::string text = "before training: eval loss " + fixed(before.mean_loss(), 4);
    if (cross_entropy_) {
      line["eval_accuracy"] = before.accuracy();
      text += ", eval accuracy " + percent(before.accuracy());
    }
    metrics_.write(line);
    std::cout << text << std::endl;
  }
  const bool already_done = a_.resume && progress_.epoch >= a_.epochs;
  for (int64_t epoch = progress_.epoch; epoch < a_.epochs; ++epoch)
    train_epoch(epoch, epoch == progress_.epoch ? progress_.batch : 0);
  if (already_done)
    std::cout << "the checkpoint already holds " << progress_.epoch << " epochs" << std::endl;
  if (a_.profile) {
    SessionStats stats;
    stats.kernels = trainer_->profile();
    std::cout << "training graph (forward, loss, backward), " << profile_text(stats);
  }
  if (!a_.save.empty()) {
    SaveOptions save;
    save.merge_lora = !a_.edits.keep_lora;
    model_->save(a_.save, save);
    std::cout << "wrote " << a_.save.string() << std::endl;
  }
  if (!a_.edits.save_adapters.empty()) {
    save_adapters(*model_, a_.edits.save_adapters);
    std::cout << "wrote " << a_.edits.save_adapters.string() << std::endl;
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune the model's Parameters on a .npz dataset");
  cmd->add_option("MODEL", a->model, "ONNX model file")->required()->type_name("FILE");
  cmd->add_option("--data", a->data, "Training data: one array per model input, plus the target")->required()->type_name("FILE.npz");
  cmd->add_option("--output", a->output, "The graph output the loss reads (optional with one output)");
  cmd->add_option("--target", a->target, "Key of the target array in the .npz")->required();
  cmd->add_option("--loss", a->loss, "mse, cross_entropy, bce_with_logits or l1")->required();
  cmd->add_option("--optimizer", a->optimizer, "sgd, adam or adamw")->default_str("sgd");
  cmd->add_option("--lr", a->lr, "Learning rate")->default_str("0.001");
  cmd->add_option("--momentum", a->momentum, "SGD momentum")->default_str("0");
  cmd->add_option("--dampening", a->dampening, "SGD dampening")->default_str("0");
  cmd->add_flag("--nesterov", a->nesterov, "SGD with Nesterov momentum");
  cmd->add_option("--weight-decay", a->weight_decay, "Default: 0 for sgd and adam, 0.01 for adamw");
  cmd->add_option("--epochs", a->epochs, "Epochs in total (also after --resume)")->default_str("1");
  cmd->add_option("--batch-size", a->batch_size, "Samples per batch; the last batch may be smaller")->default_str("32");
  cmd->add_flag("--shuffle,!--no-shuffle", a->shuffle, "Shuffle each epoch (default) or take file order");
  cmd->add_option("--seed", a->seed, "Seeds shuffling and dropout")->default_str("0");
  cmd->add_option("--freeze", "Stop training Parameters matching GLOB (repeatable)")
      ->type_name("GLOB")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--unfreeze", "Train Parameters matching GLOB again (repeatable)")
      ->type_name("GLOB")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--schedule", a->schedule, "constant, step or cosine")->default_str("constant");
  cmd->add_option("--step-size", a->step_size, "step schedule: optimizer steps between decays")->default_str("1");
  cmd->add_option("--gamma", a->gamma, "step schedule: decay factor")->default_str("0.1");
  cmd->add_option("--warmup-steps", a->warmup_steps, "Linear warm-up steps before the schedule")->default_str("0");
  cmd->add_option("--clip-grad-norm", a->clip_grad_norm, "Clip gradients to this global L2 norm (0: off)")->default_str("0");
  cmd->add_option("--accumulate", a->accumulate, "Micro-batches per optimizer step")->default_str("1");
  cmd->add_option("--label-smoothing", a->label_smoothing, "cross_entropy label smoothing")->default_str("0");
  cmd->add_option("--ignore-index", a->ignore_index, "cross_entropy: targets to ignore")->default_str("-100");
  cmd->add_option("--eval-data", a->eval_data, "Held-out data, evaluated before training and after each epoch")->type_name("FILE.npz");
  cmd->add_option("--checkpoint-dir", a->checkpoint_dir, "Write checkpoints here (two newest kept)")->type_name("DIR");
  cmd->add_option("--checkpoint-every", a->checkpoint_every, "Also every N optimizer steps")->type_name("N");
  cmd->add_flag("--resume", a->resume, "Continue from the newest checkpoint in --checkpoint-dir");
  cmd->add_option("--metrics", a->metrics, "Append one JSON line per step and per epoch")->type_name("FILE.jsonl");
  cmd->add_option("--save", a->save, "Write the fine-tuned model (eval graph, original names)")->type_name("OUT.onnx");
  cmd->add_option("--threads", a->threads, "Threads (0: all cores)")->default_str("0");
  cmd->add_flag("--profile", a->profile, "After training, the kernel, calls and time of every node of the training graph");
  cmd->add_option("--add-head", a->edits.heads,
                  "A new Linear head of N outputs on graph value VALUE, an output called NAME (default head); repeatable")
      ->type_name("VALUE:N[:NAME]")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_flag("--replace-output", a->edits.replace_output, "The heads become the model's only outputs");
  cmd->add_option("--lora", a->edits.lora, "LoRA adapters on the matched weights (ALPHA default 8); freezes the model")
      ->type_name("GLOB:RANK[:ALPHA]")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_flag("--merge-lora", a->edits.merge_lora, "--save folds the adapters into their weights (the default)");
  cmd->add_flag("--keep-lora", a->edits.keep_lora, "--save keeps the adapters as separate initializers");
  cmd->add_option("--save-adapters", a->edits.save_adapters, "Write the LoRA adapters alone after training")
      ->type_name("FILE.safetensors");
  cmd->add_option("--adapters", a->edits.adapters, "Start from these adapters (made with the same --lora)")
      ->type_name("FILE.safetensors");
  cmd->add_option("--bind-input", a->edits.bind_inputs,
                  "Make graph input INPUT a trained Parameter starting from the .npy; the data then omits it")
      ->type_name("INPUT=FILE.npy")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->footer(
      "Example:\n  tunnx train model.onnx --data train.npz --target label --loss cross_entropy --optimizer adamw \\\n"
      "      --lr 3e-3 --epochs 10 --eval-data test.npz --metrics metrics.jsonl --save tuned.onnx\n"
      "A new head on a frozen backbone:\n  tunnx train base.onnx --data train.npz --target label --loss cross_entropy \\\n"
      "      --add-head /relu_1/Relu_output_0:10:digits --replace-output --freeze '*' --unfreeze 'digits.*' --save new.onnx\n"
      "Edits apply in this order: heads, --replace-output, --lora, --bind-input, --adapters, then --freeze/--unfreeze.");
  cmd->callback([a, cmd] {
    // --freeze and --unfreeze apply in the order they were given, interleaved.
    a->requires_grad.clear();
    std::map<const CLI::Option*, size_t> next;
    for (const CLI::Option* opt : cmd->parse_order()) {
      const bool freeze = opt->check_name("--freeze");
      if (!freeze && !opt->check_name("--unfreeze")) continue;
      a->requires_grad.emplace_back(opt->results().at(next[opt]++), !freeze);
    }
    static const std::set<std::string> kLosses{"mse", "cross_entropy", "bce_with_logits", "l1"};
    static const std::set<std::string> kOptimizers{"sgd", "adam", "adamw"};
    static const std::set<std::string> kSchedules{"constant", "step", "cosine"};
    if (!kLosses.count(a->loss)) throw refuse("--loss must be mse, cross_entropy, bce_with_logits or l1, got '" + a->loss + "'");
    if (!kOptimizers.count(a->optimizer)) throw refuse("--optimizer must be sgd, adam or adamw, got '" + a->optimizer + "'");
    if (!kSchedules.count(a->schedule)) throw refuse("--schedule must be constant, step or cosine, got '" + a->schedule + "'");
    TrainRun(*a).run();
  });
}

}  // namespace tunnx::cli
