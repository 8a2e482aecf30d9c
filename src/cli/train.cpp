// treg train: preference optimisation with the T-REG token regulariser (DPO-REG, SimPO-REG, ...).

#include "cli/commands.h"
#include "treg/config.h"
#include "treg/dir_lock.h"
#include "treg/distributed.h"
#include "treg/trainer.h"

namespace treg::cli {

namespace {
struct TrainOptions {
  std::string config = "configs/tiny.yaml";
  std::vector<std::string> overrides;
};

// A word as the shell reads it back: overrides hold YAML ({a: 0.5}, "x y") that must survive a
// copy-paste of the printed command.
std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && s.find_first_not_of(
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789_-+=.,/:@%") == std::string::npos;
  if (plain) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "CONFIG key=value ...": what `treg score-tokens --config` needs to score the dumps of this very
// run, overrides included (a stale-dump hint without them would rebuild the dump of another run).
std::string config_with_overrides(const TrainOptions& o) {
  std::string s = shell_word(o.config);
  for (const std::string& kv : o.overrides) s += " " + shell_word(kv);
  return s;
}
}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* sub = app.add_subcommand("train",
                                     "Train the policy on the preference pairs with T-REG (scores "
                                     "the token rewards first if needed)");
  sub->add_option("--config", o->config,
                  "YAML config (configs/llama3.yaml, configs/gemma2.yaml, ...)")
      ->capture_default_str();
  sub->add_option("overrides", o->overrides,
                  "key=value overrides of config keys, e.g. treg_alpha=0.25");
  set_action(sub, [o] {
    Config config = load_config(o->config, o->overrides);
    // Held until training ends, the final checkpoint included; by rank 0 alone, which writes.
    std::unique_ptr<DirLock> lock;
    if (launch_env_from_environment().rank == 0) lock = std::make_unique<DirLock>(config.output_dir);
    return training_exit_code("train", run_training(config, config_with_overrides(*o)));
  });
}

}  // namespace treg::cli
