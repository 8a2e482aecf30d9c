// treg: one executable, one subcommand per stage of the data flow. main only dispatches; each
// subcommand lives in src/cli/<name>.cpp and registers itself through commands.h.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "treg/build_info.h"
#include "treg/error.h"
#include "treg/nearest.h"
#include "treg/runtime.h"

namespace {

// CLI11 reads an unknown first word as a stray positional and then says "A subcommand is
// required", which hides the typo; name it and the nearest command instead.
bool unknown_subcommand(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return false;
  const std::string word = argv[1];
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (std::find(names.begin(), names.end(), word) != names.end()) return false;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  spdlog::error(
      "unknown subcommand '{}': did you mean '{}'?\n  HINT: the subcommands are {} (treg "
      "--help)",
      word, treg::nearest_name(word, names), list);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  treg::select_blas_kernels(argv);
  // Logs and errors on stderr: stdout is data (`treg tokenize` and `treg logprobs` write JSONL).
  spdlog::set_default_logger(spdlog::stderr_color_mt("treg"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  CLI::App app{"treg: token-level reward regularised preference optimisation (T-REG) on LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("treg ") + treg::build_version());
  treg::cli::add_all_commands(app);
  if (unknown_subcommand(app, argc, argv)) return 2;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return treg::cli::run_selected(app);
}
