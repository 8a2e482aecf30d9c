// Published recipes of other trainers (SimPO's training_configs, WPO's, the alignment-handbook's)
// read as those trainers read them, or refused with one error that names the keys to add.
#pragma once
#include <map>
#include <string>

#include "treg/config.h"

namespace treg {

// The keys a config file and its command-line overrides set.
struct SetKeys {
  std::map<std::string, std::string> where;  // key -> "file:line" | "command line override '...'"
  std::map<std::string, std::string> text;   // key -> its value as written, for scalars
  bool has(const std::string& key) const { return where.count(key) > 0; }
};

// Runs after every key is read and before validation.
//  * A config that sets a key treg accepts only for compatibility (another trainer's name, a
//    guarded or an ignored Hugging Face key) is a recipe; the ignored keys are listed in one
//    warning.
//  * SimPO: SimPO's trainer has one loss, so its recipes set no loss_type. Without loss_type, a key
//    only SimPO's trainer reads (gamma_beta_ratio, sft_weight) selects simpo, with SimPOConfig's
//    defaults for an unset beta (2.0) and gamma_beta_ratio (0.25) and run_simpo.py's pair layout
//    (pair_tokenization: simpo), and says so in one info line.
//  * WPO: WPO's run_wpo.py weights every pair, but its recipes are plain DPOConfig files; a recipe
//    whose hub_model_id, run_name or output_dir names WPO must say use_weighting: true or false.
//  * Defaults: where treg's default differs from Hugging Face's (learning_rate, lr_scheduler_type,
//    warmup, epochs, batch size, max_length, max_prompt_length), a recipe must set the key.
// The last two stop with ONE error that lists every key to add.
void apply_recipe_rules(Config& c, const SetKeys& set, const std::string& file);

}  // namespace treg
