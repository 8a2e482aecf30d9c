// treg: one executable, one subcommand per stage of the data flow. main only dispatches; each
// subcommand lives in src/cli/<name>.cpp and registers itself through commands.h.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "treg/error.h"
#include "treg/runtime.h"

int main(int argc, char** argv) {
  CLI::App app{"treg: token-level reward regularised preference optimisation (T-REG) on LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("treg ") + TREG_VERSION);
  treg::cli::add_all_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return treg::cli::run_selected(app);
}
