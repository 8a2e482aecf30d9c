// Untrusted YAML configs and key=value overrides (input: YAML, then after a NUL byte one override
// per line). A config that loads is written back by config_to_yaml and reads back the same.
#include "fuzz_util.h"
#include "treg/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [yaml, overrides, has_overrides] = treg::fuzz::split_at_nul(data, size);
  try {
    treg::Config c = treg::parse_config(yaml, "fuzz.yaml", overrides);
    const std::string resolved = treg::config_to_yaml(c);
    treg::Config again = treg::parse_config(resolved, "resolved.yaml");
    treg::fuzz::require(treg::config_to_yaml(again) == resolved,
                        "config_to_yaml reads back to the same config");
  } catch (const treg::Error&) {
  }
  return 0;
}
