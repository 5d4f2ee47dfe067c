// The `tunnx` command line. Exit codes (tools/commands.h): 0 success, 1 the model or the library
// failed (one line on stderr), 2 the command line itself was wrong, 3 `tunnx check` of a valid model
// with ops tunnx has no kernel for.
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tunnx/tunnx.h"

using tunnx::cli::kFailure;
using tunnx::cli::kUsageError;

int main(int argc, char** argv) {
  // The commands that compute may start the program again, with OpenMP's wait policy set.
  if (argc > 1 && (std::string(argv[1]) == "run" || std::string(argv[1]) == "bench" || std::string(argv[1]) == "train"))
    tunnx::use_recommended_wait_policy(argv);
  CLI::App app("Inspect ONNX models with the tunnx runtime", "tunnx");
  app.set_version_flag("--version",
                       std::string("tunnx ") + tunnx::version() + " (" + tunnx::build_features() + ")");
  app.require_subcommand(1);
  tunnx::cli::add_params_command(app);
  tunnx::cli::add_check_command(app);
  tunnx::cli::add_export_command(app);
  tunnx::cli::add_run_command(app);
  tunnx::cli::add_bench_command(app);
  tunnx::cli::add_plot_command(app);
  tunnx::cli::add_train_command(app);

  // CLI11 reports an unknown first word only as "a subcommand is required"; name it instead.
  auto is_command = [&app](const std::string& word) {
    for (const CLI::App* sub : app.get_subcommands({}))
      if (sub->check_name(word)) return true;
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1])) {
    std::cerr << "tunnx: error: unknown command '" << argv[1] << "' (see tunnx --help)" << std::endl;
    return kUsageError;
  }
  try {
    app.parse(argc, argv);  // runs the chosen command
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command that reported its own failure (run --test-data mismatch)
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0.
    if (e.get_exit_code() == 0) return app.exit(e);
    // `tunnx train` is called by scripts whose contract is one line and exit 1 for any refusal.
    if (argc > 1 && std::string(argv[1]) == "train") {
      std::cerr << "tunnx: error: " << tunnx::cli::single_line(e.what()) << std::endl;
      return kFailure;
    }
    app.exit(e);
    return kUsageError;
  } catch (const std::exception& e) {
    // tunnx::Error's message already names the file, node and tensor; one line keeps it greppable.
    std::cerr << "tunnx: error: " << tunnx::cli::single_line(e.what()) << std::endl;
    return kFailure;
  } catch (...) {
    std::cerr << "tunnx: error: unknown exception" << std::endl;
    return kFailure;
  }
  return 0;
}
