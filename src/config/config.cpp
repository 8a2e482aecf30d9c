// YAML -> Config: the file's keys in order, then the command-line overrides, then the recipe rules,
// then validation. What each key means is the table of src/config/keys.cpp.
#include "treg/config.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <map>
#include <sstream>

#include "config/keys.h"
#include "config/recipes.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using namespace config_keys_detail;

// Sets one key from its YAML value and records it in `set`; `where` is "file:line" for messages.
void apply_key(Config& c, const std::string& key, const YAML::Node& value, const std::string& where,
               SetKeys& set) {
  const KeySpec* spec = find_key(key);
  if (!spec)
    fail(where, "unknown config key '" + key + "'",
         "did you mean '" + nearest_key(key) + "'? (`treg config-keys` lists every key)");
  switch (spec->role) {
    case KeyRole::kSetting:
    case KeyRole::kAlias:
      spec->read(c, value, key, where);
      break;
    case KeyRole::kGuard:
      if (!guard_accepts(*spec, value)) {
        std::string accepted = spec->accepted;
        for (size_t i = accepted.find('|'); i != std::string::npos; i = accepted.find('|', i))
          accepted.replace(i, 1, " or ");
        fail(where,
             "key '" + key + "' is set to " +
                 (value.IsScalar() ? "'" + value.as<std::string>() + "'" : "a value") +
                 ", which treg cannot follow: " + spec->meaning,
             "remove the key, or set it to " + accepted);
      }
      break;
    case KeyRole::kIgnored:
      break;
  }
  set.where[key] = where;
  if (value.IsScalar()) set.text[key] = value.as<std::string>();
}

std::string where_of(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1);
}

void check_one_of(const std::string& key, const std::string& v,
                  std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += list.empty() ? a : std::string(", ") + a;
  }
  fail("config key '" + key + "'", "'" + v + "' is not one of: " + list);
}

void check(bool ok, const std::string& key, const std::string& what) {
  if (!ok) fail("config key '" + key + "'", what);
}

// train_file / eval_file versus the handbook's mixtures; the files themselves are read later
// (src/data/dataset_mixture.cpp), so this checks only what the config says.
void validate_data_sources(const Config& c) {
  const std::string hint =
      "give the data either as train_file (+ eval_file) or as one of dataset_mixer / "
      "dataset_mixture; override the other with an empty value (e.g. `dataset_mixture=`)";
  check(c.dataset_mixer.empty() || c.dataset_mixture.datasets.empty(), "dataset_mixer",
        "and dataset_mixture are both set; " + hint);
  check(!c.uses_mixture() || c.train_file.empty(), "train_file",
        "is set together with " +
            std::string(c.dataset_mixer.empty() ? "dataset_mixture" : "dataset_mixer") + "; " +
            hint);
  for (const auto& [path, fraction] : c.dataset_mixer) {
    check(!path.empty(), "dataset_mixer", "has an empty path");
    check(fraction >= 0 && fraction <= 1, "dataset_mixer",
          "'" + path + "': the fraction must be in [0, 1], got " + std::to_string(fraction));
  }
  check(!c.dataset_splits.empty(), "dataset_splits",
        "must name at least one split (default [train, test])");
  for (const std::string& split : c.dataset_splits)
    check(split.find("train") != std::string::npos || split.find("test") != std::string::npos,
          "dataset_splits",
          "'" + split +
              "' is neither a train nor a test split (as the handbook, a name must contain 'train' "
              "or 'test')");
  const DatasetMixture& m = c.dataset_mixture;
  for (size_t i = 0; i < m.datasets.size(); ++i) {
    const std::string key = "dataset_mixture.datasets[" + std::to_string(i) + "]";
    check(!m.datasets[i].id.empty(), key + ".id",
          "must name a JSONL file or a directory of <split>.jsonl");
    check(m.datasets[i].weight >= 0 && m.datasets[i].weight <= 1, key + ".weight",
          "must be in [0, 1]");
  }
  check(m.test_split_size >= 0 &&
            (m.test_split_size < 1 || m.test_split_size == std::floor(m.test_split_size)),
        "dataset_mixture.test_split_size",
        "must be a fraction in (0, 1) or a whole number of rows");
  check(m.test_split_size == 0 || c.eval_file.empty(), "eval_file",
        "is set while dataset_mixture.test_split_size also makes an eval split; keep one of them");
}

}  // namespace

std::string Config::reward_dump_path() const {
  return reward_dump.empty() ? path_join(output_dir, "token_rewards.bin") : reward_dump;
}

std::string Config::eval_reward_dump_path() const {
  std::string p = reward_dump_path();
  auto dot = p.rfind('.');
  auto slash = p.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return p + ".eval";
  return p.substr(0, dot) + ".eval" + p.substr(dot);
}

namespace {

// apply_key, with any conversion yaml-cpp refuses inside a value (a mapping used as a key deep in
// dataset_mixture, found by fuzzing) named like every other bad value.
void apply_checked(Config& c, const std::string& key, const YAML::Node& value,
                   const std::string& at, SetKeys& set) {
  try {
    apply_key(c, key, value, at, set);
  } catch (const YAML::Exception& e) {
    fail(at, "key '" + key + "': " + e.msg, "see `treg config-keys` for what it takes");
  }
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& where,
                    const std::vector<std::string>& overrides) {
  Config c;
  SetKeys set;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail(where + ":" + std::to_string(e.mark.line + 1), "invalid YAML: " + e.msg);
  }
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) fail(where, "a config must be a mapping of key: value");
    std::map<std::string, std::string> set_by;  // setting -> the file's key that set it
    for (const auto& kv : root) {
      const std::string at = where_of(where, kv.first);
      if (!kv.first.IsScalar()) fail(at, "a key must be a plain name, not a list or mapping");
      const std::string key = kv.first.as<std::string>();
      if (set.where.count(key)) fail(at, "key '" + key + "' is set twice");
      const KeySpec* spec = find_key(key);
      if (spec && (spec->role == KeyRole::kSetting || spec->role == KeyRole::kAlias)) {
        const std::string target = spec->target ? spec->target : key;
        auto [it, fresh] = set_by.emplace(target, key);
        if (!fresh)
          fail(at, "keys '" + it->second + "' and '" + key + "' both set " + target,
               "keep one of them");
      }
      apply_checked(c, key, kv.second, at, set);
    }
  }
  for (const std::string& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("command line", "override '" + o + "' is not of the form key=value");
    std::string key = o.substr(0, eq);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::ParserException& e) {
      fail("command line", "override '" + o + "': invalid value: " + e.msg);
    }
    if (!value.IsDefined()) value = YAML::Node(YAML::NodeType::Null);
    apply_checked(c, key, value, "command line override '" + o + "'", set);
  }
  apply_recipe_rules(c, set, where);
  validate_config(c);
  return c;
}

Config load_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  if (!file_exists(yaml_path)) fail(yaml_path, "config file not found");
  return parse_config(read_file(yaml_path), yaml_path, overrides);
}

void validate_config(const Config& c) {
  check(!c.model_name_or_path.empty(), "model_name_or_path", "is required");
  check(c.max_length > 1, "max_length", "must be > 1");
  check(c.max_prompt_length > 0 && c.max_prompt_length < c.max_length, "max_prompt_length",
        "must be in [1, max_length) = [1, " + std::to_string(c.max_length) + ")");
  check(c.max_completion_length >= 0, "max_completion_length", "must be >= 0 (0 = no limit)");
  validate_data_sources(c);
  check_one_of("device", c.device, {"auto", "cpu", "cuda"});
  check_one_of("save_dtype", c.save_dtype, {"", "float32", "bfloat16"});
  check_one_of("ddp_backend", c.ddp_backend, {"", "nccl", "gloo"});
  check(c.zero_stage >= 0 && c.zero_stage <= 2, "zero_stage",
        "must be 0, 1 or 2 (ZeRO-3 is not built; `treg plan --zero 3` sizes it)");
  check(c.ddp_bucket_cap_mb >= 1, "ddp_bucket_cap_mb", "must be >= 1 (MiB)");
  check_one_of("reward_source", c.reward_source, {"prompt", "dpo"});
  check_one_of("pair_tokenization", c.pair_tokenization, {"trl", "simpo"});
  check(c.reward_source != "dpo" || !c.dpo_model.empty(), "dpo_model",
        "is required when reward_source is dpo (the DPO-trained model whose log-ratio gives the "
        "rewards)");
  check(c.score_batch_size > 0, "score_batch_size", "must be > 0");
  check_one_of("loss_type", c.loss_type, {"sigmoid", "ipo", "hinge", "robust", "simpo"});
  check(c.beta > 0, "beta", "must be > 0");
  check(c.label_smoothing >= 0 && c.label_smoothing < 0.5, "label_smoothing",
        "must be in [0, 0.5)");
  check(c.treg_alpha >= 0, "treg_alpha", "must be >= 0 (0 turns the regulariser off)");
  check_one_of("treg_weighting", c.treg_weighting, {"sequence", "static"});
  check(c.sft_alpha >= 0, "sft_alpha", "must be >= 0");
  check(c.learning_rate >= 0, "learning_rate", "must be >= 0");
  check_one_of("lr_scheduler_type", c.lr_scheduler_type,
               {"cosine", "linear", "constant", "constant_with_warmup"});
  check(c.warmup_ratio >= 0 && c.warmup_ratio <= 1, "warmup_ratio", "must be in [0, 1]");
  check(c.warmup_steps >= 0 && (c.warmup_steps < 1 || c.warmup_steps == std::floor(c.warmup_steps)),
        "warmup_steps",
        "must be 0 (use warmup_ratio), a fraction in (0, 1), or a whole number of steps");
  check(c.weight_decay >= 0, "weight_decay", "must be >= 0");
  check(c.adam_beta1 >= 0 && c.adam_beta1 < 1, "adam_beta1", "must be in [0, 1)");
  check(c.adam_beta2 >= 0 && c.adam_beta2 < 1, "adam_beta2", "must be in [0, 1)");
  check(c.adam_epsilon > 0, "adam_epsilon", "must be > 0");
  check(c.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 (0 disables clipping)");
  check(c.lora_r > 0, "lora_r", "must be > 0");
  check(c.lora_alpha > 0, "lora_alpha", "must be > 0");
  check(c.lora_dropout >= 0 && c.lora_dropout < 1, "lora_dropout", "must be in [0, 1)");
  check(c.max_steps > 0 || c.num_train_epochs > 0, "num_train_epochs",
        "must be > 0 when max_steps is not set");
  check(c.per_device_train_batch_size > 0, "per_device_train_batch_size", "must be > 0");
  check(c.per_device_eval_batch_size > 0, "per_device_eval_batch_size", "must be > 0");
  check(c.gradient_accumulation_steps > 0, "gradient_accumulation_steps", "must be > 0");
  check(c.logging_steps > 0, "logging_steps", "must be > 0");
  check_one_of("eval_strategy", c.eval_strategy, {"steps", "epoch", "no"});
  check(c.eval_steps >= 0, "eval_steps", "must be >= 0");
  check_one_of("save_strategy", c.save_strategy, {"steps", "epoch", "no"});
  check(c.save_steps >= 0, "save_steps", "must be >= 0");
  check(c.save_total_limit >= 0, "save_total_limit", "must be >= 0");
  check(c.report_pairs >= 0, "report_pairs", "must be >= 0");
  check(c.ddp_timeout > 0, "ddp_timeout", "must be > 0 (seconds)");
  check(!c.output_dir.empty(), "output_dir", "must not be empty");
}

std::string config_to_yaml(const Config& c) {
  std::ostringstream out;
  out << "# Resolved treg config (every setting, defaults included).\n";
  if (c.world_size > 1) out << "# world_size: " << c.world_size << "\n";
  for (const auto& s : key_specs())
    if (s.role == KeyRole::kSetting) out << s.name << ": " << s.write(c) << "\n";
  return out.str();
}

}  // namespace treg
