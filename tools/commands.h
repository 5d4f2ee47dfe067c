// The subcommands of the `tunnx` CLI. Each lives in its own cmd_<name>.cc and registers itself on the
// app, so main.cc stays a list of commands and adding one touches no other command.
#pragma once

namespace CLI {
class App;
}

namespace tunnx::cli {

// Exit codes: 0 success; 1 failure (an invalid model, a bad input: one line on stderr); 2 usage error;
// 3 a valid model holding ops tunnx has no kernel for (`tunnx check`).
inline constexpr int kFailure = 1;
inline constexpr int kUsageError = 2;
inline constexpr int kNotRunnable = 3;

// `tunnx params MODEL [--json]`: every initializer as a Parameter or buffer, with totals.
void add_params_command(CLI::App& app);
// `tunnx check MODEL [--json]`: what the model file declares, after loading and validating it.
void add_check_command(CLI::App& app);
// `tunnx export MODEL -o OUT [--external-data]`: the model written back through tunnx.
void add_export_command(CLI::App& app);
// `tunnx run MODEL --input NAME=FILE ... [--output-dir DIR] | --test-data DIR`: runs the model.
void add_run_command(CLI::App& app);
// `tunnx bench MODEL [--threads N] [--warmup N] [--iters N] [--batch N] [--json]`: latency percentiles.
void add_bench_command(CLI::App& app);
// `tunnx train MODEL --data DATA.npz --loss L ...`: fine-tunes the model's Parameters.
void add_train_command(CLI::App& app);
// `tunnx plot METRICS.jsonl -o curve.svg`: train/eval loss and accuracy against step, as SVG.
void add_plot_command(CLI::App& app);

}  // namespace tunnx::cli
