// treg train: preference optimisation with the T-REG token regulariser (DPO-REG, SimPO-REG, ...).
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "treg/config.h"
#include "treg/trainer.h"

namespace treg::cli {

namespace {
struct TrainOptions {
  std::string config = "configs/tiny.yaml";
  std::vector<std::string> overrides;
};
}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* sub = app.add_subcommand(
      "train", "Train the policy on the preference pairs with T-REG (scores the token rewards first if needed)");
  sub->add_option("--config", o->config, "YAML config (configs/llama3.yaml, configs/gemma2.yaml, ...)")
      ->capture_default_str();
  sub->add_option("overrides", o->overrides, "key=value overrides of config keys, e.g. treg_alpha=0.25");
  set_action(sub, [o] {
    Config config = load_config(o->config, o->overrides);
    TrainResult r = run_training(config, o->config);
    if (r.interrupted) {
      spdlog::warn("train: interrupted at step {}; resume with resume_from_checkpoint=auto ({})", r.steps_done,
                   r.last_checkpoint);
      return 130;
    }
    spdlog::info("train: done, {} steps; final checkpoint {}", r.steps_done, r.last_checkpoint);
    return 0;
  });
}

}  // namespace treg::cli
