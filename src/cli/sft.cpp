// treg sft: supervised fine-tuning (completion-only loss) in the same loop as treg train.

#include "cli/commands.h"
#include "treg/config.h"
#include "treg/dir_lock.h"
#include "treg/sft.h"

namespace treg::cli {

void add_sft_command(CLI::App& app) {
  struct Options {
    std::string config;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand(
      "sft", "Supervised fine-tuning on prompt/completion or messages JSONL (loss on completions)");
  sub->add_option("--config", o->config, "YAML config (the keys of treg train; train_file holds "
                                         "SFT rows)")
      ->required();
  sub->add_option("overrides", o->overrides, "key=value overrides of config keys, e.g. packing=true");
  set_action(sub, [o] {
    Config config = load_config(o->config, o->overrides);
    DirLock lock(config.output_dir);
    return training_exit_code("sft", run_sft(config));
  });
}

}  // namespace treg::cli
