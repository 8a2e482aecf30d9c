// treg config-keys: every config key with its type, default and one-line meaning, printed from the
// key table the parser itself uses (src/config/keys.cpp).
#include <cstdio>

#include "cli/commands.h"
#include "treg/config.h"

namespace treg::cli {

void add_config_keys_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "config-keys",
      "List every config key: type, default and meaning (also the Hugging Face keys accepted)");
  set_action(sub, [] {
    std::fputs(config_keys_table().c_str(), stdout);
    return 0;
  });
}

}  // namespace treg::cli
