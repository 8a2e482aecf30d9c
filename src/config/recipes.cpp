// Recipes of SimPO, WPO and the alignment-handbook: which trainer a recipe was written for, and
// what treg must be told to train as that trainer would. See recipes.h for the rules.
#include "config/recipes.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <vector>

#include "config/keys.h"
#include "treg/error.h"

namespace treg {
namespace {

using namespace config_keys_detail;

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// "llama-8b-instruct-wpo" names WPO; "swpo-x" does not.
bool names_wpo(const std::string& name) {
  std::string word;
  for (size_t i = 0; i <= name.size(); ++i) {
    const char ch = i < name.size()
                        ? static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])))
                        : ' ';
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      word += ch;
    } else {
      if (word == "wpo") return true;
      word.clear();
    }
  }
  return false;
}

// Settings whose treg default differs from the Hugging Face trainers' (TrainingArguments, TRL's
// DPOConfig): a recipe that leaves one out would train differently here than there.
struct ForeignDefault {
  const char* key;
  const char* also;  // a key that makes this one irrelevant when set ("" = none)
  const char* value;
  const char* source;
};
constexpr ForeignDefault kForeignDefaults[] = {
    {"learning_rate", "", "5.0e-5", "TrainingArguments' default"},
    {"lr_scheduler_type", "", "linear", "TrainingArguments' default"},
    {"warmup_ratio", "warmup_steps", "0.0", "TrainingArguments' default"},
    {"num_train_epochs", "max_steps", "3", "TrainingArguments' default"},
    {"per_device_train_batch_size", "", "8", "TrainingArguments' default"},
    {"max_length", "", "1024", "TRL DPOConfig's default; SimPO's is no limit"},
    {"max_prompt_length", "", "512", "TRL DPOConfig's default; SimPO's is no limit"},
};

}  // namespace

void apply_recipe_rules(Config& c, const SetKeys& set, const std::string& file) {
  std::vector<std::string> foreign, ignored;
  for (const auto& [key, where] : set.where) {
    const KeySpec* spec = find_key(key);
    if (spec->role != KeyRole::kSetting) foreign.push_back(key);
    if (spec->role == KeyRole::kIgnored) ignored.push_back(key);
  }
  if (!ignored.empty())
    spdlog::warn(
        "{}: {} Hugging Face key(s) accepted without effect: {} (`treg config-keys` says why)",
        file, ignored.size(), join(ignored, ", "));

  if (!set.has("loss_type") && (set.has("gamma_beta_ratio") || set.has("sft_weight"))) {
    c.loss_type = "simpo";
    if (!set.has("beta")) c.beta = 2.0;                           // SimPOConfig.beta
    if (!set.has("gamma_beta_ratio")) c.gamma_beta_ratio = 0.25;  // SimPOConfig.gamma_beta_ratio
    if (!set.has("pair_tokenization")) c.pair_tokenization = "simpo";  // run_simpo.py's layout
    spdlog::info(
        "{}: a SimPO recipe ({} set, no loss_type): training SimPO as SimPO's trainer does, "
        "beta {} gamma_beta_ratio {}, pairs tokenised as run_simpo.py does; set loss_type to "
        "train another loss",
        file, set.has("gamma_beta_ratio") ? "gamma_beta_ratio" : "sft_weight", c.beta,
        c.gamma_beta_ratio);
  }

  const bool recipe = !foreign.empty();
  if (!recipe) return;
  std::vector<std::string> to_add;
  if (!set.has("use_weighting")) {
    for (const char* key : {"hub_model_id", "run_name", "output_dir"}) {
      if (!set.text.count(key) || !names_wpo(set.text.at(key))) continue;
      to_add.push_back("`use_weighting: true` (" + std::string(key) + " '" + set.text.at(key) +
                       "' names a WPO recipe and WPO's trainer weights every pair; "
                       "`use_weighting: false` trains plain DPO)");
      break;
    }
  }
  for (const ForeignDefault& d : kForeignDefaults) {
    if (set.has(d.key) || (*d.also && set.has(d.also))) continue;
    to_add.push_back("`" + std::string(d.key) + ": " + d.value + "` (" + d.source +
                     "; treg's default is " + find_key(d.key)->write(Config()) + ")");
  }
  if (to_add.empty()) return;
  const bool more = foreign.size() > 3;
  foreign.resize(std::min<size_t>(foreign.size(), 3));
  fail(file,
       "a recipe of another trainer (it sets " + join(foreign, ", ") + (more ? ", ..." : "") +
           ") that would not train here as it does there; add: " + join(to_add, "; "),
       "put the key(s) in the recipe, or after --config as key=value "
       "(`treg config-keys` lists every key)");
}

}  // namespace treg
