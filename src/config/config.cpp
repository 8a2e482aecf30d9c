#include "treg/config.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <variant>

#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using Field = std::variant<std::string Config::*, int64_t Config::*, double Config::*, bool Config::*>;

struct KeySpec {
  const char* name;
  Field field;
};

// Every key a config may set. The order is the order of the resolved config file.
const std::vector<KeySpec>& key_specs() {
  static const std::vector<KeySpec> specs = {
      {"model_name_or_path", &Config::model_name_or_path},
      {"train_file", &Config::train_file},
      {"eval_file", &Config::eval_file},
      {"chat_template", &Config::chat_template},
      {"max_length", &Config::max_length},
      {"max_prompt_length", &Config::max_prompt_length},
      {"skip_bad_rows", &Config::skip_bad_rows},
      {"output_dir", &Config::output_dir},
      {"device", &Config::device},
      {"bf16", &Config::bf16},
      {"reward_dump", &Config::reward_dump},
      {"reward_source", &Config::reward_source},
      {"dpo_model", &Config::dpo_model},
      {"revision_prompt", &Config::revision_prompt},
      {"better_description", &Config::better_description},
      {"worse_description", &Config::worse_description},
      {"assistant_prefix", &Config::assistant_prefix},
      {"score_batch_size", &Config::score_batch_size},
      {"loss_type", &Config::loss_type},
      {"beta", &Config::beta},
      {"label_smoothing", &Config::label_smoothing},
      {"gamma_beta_ratio", &Config::gamma_beta_ratio},
      {"treg_alpha", &Config::treg_alpha},
      {"treg_weighting", &Config::treg_weighting},
      {"sft_alpha", &Config::sft_alpha},
      {"use_weighting", &Config::use_weighting},
      {"learning_rate", &Config::learning_rate},
      {"lr_scheduler_type", &Config::lr_scheduler_type},
      {"warmup_ratio", &Config::warmup_ratio},
      {"weight_decay", &Config::weight_decay},
      {"adam_beta1", &Config::adam_beta1},
      {"adam_beta2", &Config::adam_beta2},
      {"adam_epsilon", &Config::adam_epsilon},
      {"max_grad_norm", &Config::max_grad_norm},
      {"num_train_epochs", &Config::num_train_epochs},
      {"max_steps", &Config::max_steps},
      {"per_device_train_batch_size", &Config::per_device_train_batch_size},
      {"per_device_eval_batch_size", &Config::per_device_eval_batch_size},
      {"gradient_accumulation_steps", &Config::gradient_accumulation_steps},
      {"gradient_checkpointing", &Config::gradient_checkpointing},
      {"seed", &Config::seed},
      {"logging_steps", &Config::logging_steps},
      {"eval_steps", &Config::eval_steps},
      {"save_steps", &Config::save_steps},
      {"save_total_limit", &Config::save_total_limit},
      {"resume_from_checkpoint", &Config::resume_from_checkpoint},
      {"report_pairs", &Config::report_pairs},
  };
  return specs;
}

// HF TrainingArguments / alignment-handbook keys that mean nothing to treg: accepted so that recipe
// files can be reused, with a warning so nobody believes they took effect.
const std::set<std::string>& ignored_keys() {
  static const std::set<std::string> keys = {
      "hub_model_id", "push_to_hub", "report_to", "run_name", "log_level", "logging_first_step",
      "logging_strategy", "save_strategy", "evaluation_strategy", "eval_strategy", "do_eval",
      "do_train", "overwrite_output_dir", "optim", "torch_dtype", "use_flash_attention_2",
      "attn_implementation", "preprocessing_num_workers", "dataset_mixer", "dataset_splits",
      "gradient_checkpointing_kwargs", "hub_strategy", "hub_private_repo", "remove_unused_columns",
      "dataloader_num_workers", "ddp_timeout", "save_only_model", "model_revision", "trust_remote_code",
      "tf32", "fp16"};
  return keys;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest_key(const std::string& key) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& s : key_specs()) {
    size_t d = edit_distance(key, s.name);
    if (d < best_d) best_d = d, best = s.name;
  }
  return best;
}

const KeySpec* find_key(const std::string& key) {
  for (const auto& s : key_specs())
    if (key == s.name) return &s;
  return nullptr;
}

std::string type_name(const Field& f) {
  switch (f.index()) {
    case 0: return "a string";
    case 1: return "an integer";
    case 2: return "a number";
    default: return "true or false";
  }
}

// Sets one key from a YAML scalar; `where` is "file:line" for messages.
void apply_key(Config& c, const std::string& key, const YAML::Node& value, const std::string& where) {
  const KeySpec* spec = find_key(key);
  if (!spec) {
    if (ignored_keys().count(key)) {
      spdlog::warn("{}: key '{}' is a Hugging Face Trainer setting that treg ignores", where, key);
      return;
    }
    fail(where, "unknown config key '" + key + "'",
         "did you mean '" + nearest_key(key) + "'? (`treg config-keys` lists every key)");
  }
  if (!value.IsScalar() && !(value.IsNull() && spec->field.index() == 0))
    fail(where, "key '" + key + "' must be " + type_name(spec->field) + ", got a " +
                    (value.IsSequence() ? "list" : value.IsMap() ? "mapping" : "null"));
  try {
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(c.*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            c.*member = value.IsNull() ? std::string() : value.as<std::string>();
          } else if constexpr (std::is_same_v<T, int64_t>) {
            // Accept 1e3-style integers written as floats, but not 2.5.
            double d = value.as<double>();
            if (d != std::floor(d)) throw YAML::BadConversion(value.Mark());
            c.*member = static_cast<int64_t>(d);
          } else {
            c.*member = value.as<T>();
          }
        },
        spec->field);
  } catch (const YAML::BadConversion&) {
    fail(where, "key '" + key + "' must be " + type_name(spec->field) + ", got '" +
                    value.as<std::string>() + "'");
  }
}

std::string where_of(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1);
}

void check_one_of(const std::string& key, const std::string& v, std::initializer_list<const char*> allowed) {
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

std::string yaml_scalar(const std::string& s) {
  YAML::Emitter e;
  e << YAML::DoubleQuoted << s;
  return e.c_str();
}

std::string format_double(double v) {
  std::ostringstream ss;
  ss.precision(17);
  ss << v;
  std::string s = ss.str();
  // Keep it a float in YAML so it reads back as a number of the same type.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
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

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& s : key_specs()) out.push_back(s.name);
  return out;
}

Config parse_config(const std::string& yaml_text, const std::string& where,
                    const std::vector<std::string>& overrides) {
  Config c;
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    fail(where + ":" + std::to_string(e.mark.line + 1), "invalid YAML: " + e.msg);
  }
  if (root.IsDefined() && !root.IsNull()) {
    if (!root.IsMap()) fail(where, "a config must be a mapping of key: value");
    std::set<std::string> seen;
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      if (!seen.insert(key).second) fail(where_of(where, kv.first), "key '" + key + "' is set twice");
      apply_key(c, key, kv.second, where_of(where, kv.first));
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
    apply_key(c, key, value, "command line override '" + o + "'");
  }
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
  check_one_of("device", c.device, {"auto", "cpu", "cuda"});
  check_one_of("reward_source", c.reward_source, {"prompt", "dpo"});
  check(c.reward_source != "dpo" || !c.dpo_model.empty(), "dpo_model",
        "is required when reward_source is dpo (the DPO-trained model whose log-ratio gives the rewards)");
  check(c.score_batch_size > 0, "score_batch_size", "must be > 0");
  check_one_of("loss_type", c.loss_type, {"sigmoid", "ipo", "hinge", "robust", "simpo"});
  check(c.beta > 0, "beta", "must be > 0");
  check(c.label_smoothing >= 0 && c.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)");
  check(c.treg_alpha >= 0, "treg_alpha", "must be >= 0 (0 turns the regulariser off)");
  check_one_of("treg_weighting", c.treg_weighting, {"sequence", "static"});
  check(c.sft_alpha >= 0, "sft_alpha", "must be >= 0");
  check(c.learning_rate >= 0, "learning_rate", "must be >= 0");
  check_one_of("lr_scheduler_type", c.lr_scheduler_type, {"cosine", "linear", "constant", "constant_with_warmup"});
  check(c.warmup_ratio >= 0 && c.warmup_ratio <= 1, "warmup_ratio", "must be in [0, 1]");
  check(c.weight_decay >= 0, "weight_decay", "must be >= 0");
  check(c.adam_beta1 >= 0 && c.adam_beta1 < 1, "adam_beta1", "must be in [0, 1)");
  check(c.adam_beta2 >= 0 && c.adam_beta2 < 1, "adam_beta2", "must be in [0, 1)");
  check(c.adam_epsilon > 0, "adam_epsilon", "must be > 0");
  check(c.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 (0 disables clipping)");
  check(c.max_steps > 0 || c.num_train_epochs > 0, "num_train_epochs", "must be > 0 when max_steps is not set");
  check(c.per_device_train_batch_size > 0, "per_device_train_batch_size", "must be > 0");
  check(c.per_device_eval_batch_size > 0, "per_device_eval_batch_size", "must be > 0");
  check(c.gradient_accumulation_steps > 0, "gradient_accumulation_steps", "must be > 0");
  check(c.logging_steps > 0, "logging_steps", "must be > 0");
  check(c.eval_steps >= 0, "eval_steps", "must be >= 0");
  check(c.save_steps >= 0, "save_steps", "must be >= 0");
  check(c.save_total_limit >= 0, "save_total_limit", "must be >= 0");
  check(c.report_pairs >= 0, "report_pairs", "must be >= 0");
  check(!c.output_dir.empty(), "output_dir", "must not be empty");
}

std::string config_to_yaml(const Config& c) {
  std::ostringstream out;
  out << "# Resolved treg config (every key, defaults included).\n";
  for (const auto& s : key_specs()) {
    out << s.name << ": ";
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(c.*member)>;
          if constexpr (std::is_same_v<T, std::string>) out << yaml_scalar(c.*member);
          else if constexpr (std::is_same_v<T, double>) out << format_double(c.*member);
          else if constexpr (std::is_same_v<T, bool>) out << (c.*member ? "true" : "false");
          else out << c.*member;
        },
        s.field);
    out << "\n";
  }
  return out.str();
}

}  // namespace treg
