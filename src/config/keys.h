// The one table of config keys (src/config/keys.cpp). The parser, the unknown-key hint, the
// resolved config file, the recipe rules and `treg config-keys` all read it, so a key exists in one
// place.
#pragma once
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "treg/config.h"

namespace treg::config_keys_detail {

enum class KeyRole {
  kSetting,  // a Config field, written to the resolved config
  kAlias,    // another trainer's name for a setting (SimPO's sft_weight for sft_alpha)
  kGuard,    // a Hugging Face key accepted only with a value treg follows anyway (use_peft: false)
  kIgnored,  // a Hugging Face key that does not change what is trained (hub_model_id)
};

struct KeySpec {
  const char* name;
  KeyRole role;
  const char* type;     // as `treg config-keys` shows it
  const char* meaning;  // one line
  // kSetting and kAlias: stores the YAML value into the config; errors name `key` and `where`.
  void (*read)(Config& c, const YAML::Node& value, const std::string& key,
               const std::string& where) = nullptr;
  // kSetting: the value as YAML that `read` reads back to the same value.
  std::string (*write)(const Config& c) = nullptr;
  const char* target = nullptr;    // kAlias: the setting it sets
  const char* accepted = nullptr;  // kGuard: the values accepted, "a|b"; "null" takes {} and [] too
};

// In the order of the resolved config file and of `treg config-keys`.
const std::vector<KeySpec>& key_specs();
const KeySpec* find_key(const std::string& name);
// The known key nearest to `name` by edit distance (for "did you mean").
std::string nearest_key(const std::string& name);
// Whether a guarded key's value is one of its accepted values.
bool guard_accepts(const KeySpec& spec, const YAML::Node& value);

}  // namespace treg::config_keys_detail
