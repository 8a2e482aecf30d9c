// Each subcommand file defines one `add_<name>_command`; commands.cpp lists them in one place.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace treg {
struct TrainResult;
}

namespace treg::cli {

// A subcommand's action, run after parsing; returns the process exit code.
using Action = std::function<int()>;

void add_all_commands(CLI::App& app);
// Runs the parsed subcommand, turning treg::Error into "error: ..." and exit code 1.
int run_selected(CLI::App& app);
// Registers `action` to run when `sub` is the chosen subcommand.
void set_action(CLI::App* sub, Action action);
// How a training command (`train`, `sft`) ended, logged: 0 when done, 130 when interrupted (with
// the resume hint).
int training_exit_code(const char* command, const TrainResult& r);

}  // namespace treg::cli
