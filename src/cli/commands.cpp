#include "cli/commands.h"

#include <spdlog/spdlog.h>

#include <map>

#include "treg/error.h"
#include "treg/runtime.h"
#include "treg/trainer.h"

namespace treg::cli {

// Subcommands, in data-flow order. Each is defined in src/cli/<name>.cpp.
void add_make_tiny_command(CLI::App& app);
void add_logprobs_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_score_tokens_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_export_rewards_command(CLI::App& app);
void add_view_rewards_command(CLI::App& app);
void add_config_keys_command(CLI::App& app);

namespace {
std::map<CLI::App*, Action>& actions() {
  static std::map<CLI::App*, Action> a;
  return a;
}
}  // namespace

void set_action(CLI::App* sub, Action action) { actions()[sub] = std::move(action); }

int training_exit_code(const char* command, const TrainResult& r) {
  if (r.interrupted) {
    spdlog::warn("{}: interrupted at step {}; resume with resume_from_checkpoint=auto ({})",
                 command, r.steps_done, r.last_checkpoint);
    return 130;
  }
  spdlog::info("{}: done, {} steps; final checkpoint {}", command, r.steps_done,
               r.last_checkpoint);
  return 0;
}

void add_train_command(CLI::App& app);
void add_sft_command(CLI::App& app);
void add_make_sft_data_command(CLI::App& app);
void add_credit_bench_command(CLI::App& app);
void add_plan_command(CLI::App& app);

void add_all_commands(CLI::App& app) {
  add_make_tiny_command(app);
  add_logprobs_command(app);
  add_tokenize_command(app);
  add_score_tokens_command(app);
  add_export_rewards_command(app);
  add_view_rewards_command(app);
  add_make_sft_data_command(app);
  add_sft_command(app);
  add_plan_command(app);
  add_train_command(app);
  add_generate_command(app);
  add_credit_bench_command(app);
  add_config_keys_command(app);
}

int run_selected(CLI::App& app) {
  for (auto& [sub, action] : actions()) {
    if (!sub->parsed()) continue;
    try {
      init_runtime();
      return action();
    } catch (const treg::Error& e) {
      spdlog::error("{}", e.what());
      return 1;
    } catch (const c10::Error& e) {
      spdlog::error("libtorch: {}", e.what_without_backtrace());
      return 1;
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
  }
  return 0;
}

}  // namespace treg::cli
