// treg score-tokens --config CFG.yaml [key=value ...]: self-generated token rewards (paper §3.3)
// and reference log-probs for the train split (and eval, if the run has one), into the reward
// dump.
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "treg/config.h"
#include "treg/data_sources.h"
#include "treg/dir_lock.h"
#include "treg/distributed.h"
#include "treg/rewards.h"
#include "treg/runtime.h"

namespace treg::cli {

void add_score_tokens_command(CLI::App& app) {
  auto* sub = app.add_subcommand("score-tokens",
                                 "Score every response token with contrastive revision prompts "
                                 "(rewards + reference log-probs -> reward dump)");
  static std::string config_path;
  static std::vector<std::string> overrides;
  static bool no_progress = false;
  sub->add_option("--config", config_path, "YAML config (the same file `treg train` reads)")
      ->required();
  sub->add_option("overrides", overrides, "key=value overrides of config keys");
  sub->add_flag("--no-progress", no_progress, "no progress bar on stderr");
  set_action(sub, [] {
    Config c = load_config(config_path, overrides);
    // Several ranks (torchrun) split the pairs; rank 0 locks, merges and speaks for the run.
    const LaunchEnv launch = launch_env_from_environment();
    std::shared_ptr<Ranks> ranks =
        connect_ranks(launch, std::chrono::seconds(c.ddp_timeout), c.ddp_backend,
                      rank_device(parse_device(c.device, "config key 'device'"), launch));
    if (!ranks->is_main()) spdlog::set_level(spdlog::level::warn);
    // Two scorers of different data into one dump would interleave their pairs.
    std::unique_ptr<DirLock> lock;
    if (ranks->is_main()) lock = std::make_unique<DirLock>(c.output_dir);
    std::vector<std::string> splits = {"train"};
    if (has_eval_split(c)) splits.push_back("eval");
    for (const std::string& split : splits) {
      ScoreSummary s = score_tokens(c, split, !no_progress, ranks);
      if (!ranks->is_main()) continue;
      const std::string dump = split == "train" ? c.reward_dump_path() : c.eval_reward_dump_path();
      spdlog::info(
          "score-tokens {}: {} pairs in {} ({} scored now, {} response tokens, {:.1f}s, {:.0f} "
          "tok/s)",
          split, s.pairs, dump, s.scored, s.response_tokens, s.seconds,
          s.seconds > 0 ? static_cast<double>(s.response_tokens) / s.seconds : 0.0);
      spdlog::info("  data: {}", s.data.summary());
      if (s.context_tokens > 0)
        spdlog::info("  model: ran {} tokens for contexts of {} ({:.2f}x fewer by sharing prefixes)",
                     s.context_tokens, s.unshared_tokens,
                     static_cast<double>(s.unshared_tokens) / static_cast<double>(s.context_tokens));
      spdlog::info("  mean token reward: chosen {:+.5f}, rejected {:+.5f} (margin {:+.5f})",
                   s.mean_reward_chosen, s.mean_reward_rejected,
                   s.mean_reward_chosen - s.mean_reward_rejected);
      spdlog::info("  resolved config: {}.config.yaml", dump);
    }
    return 0;
  });
}

}  // namespace treg::cli
