// The `tunnx` command line. Exit codes: 0 success, 1 the model or the library failed (one line on
// stderr), 2 the command line itself was wrong.
#include <exception>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tunnx/tunnx.h"

namespace {

constexpr int kFailure = 1;
constexpr int kUsageError = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Inspect ONNX models with the tunnx runtime", "tunnx");
  app.set_version_flag("--version",
                       std::string("tunnx ") + tunnx::version() + " (" + tunnx::build_features() + ")");
  app.require_subcommand(1);
  tunnx::cli::add_params_command(app);
  tunnx::cli::add_check_command(app);

  try {
    app.parse(argc, argv);  // runs the chosen command
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0.
    return app.exit(e) == 0 ? 0 : kUsageError;
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
