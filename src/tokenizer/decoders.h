// tokenizer.json `decoder`s: turn token strings back into text (internal).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace treg {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Each decoder maps the list of token strings to a new list; the results are concatenated.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for a JSON null; an unsupported type is an error naming it and `file`.
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config, const std::string& file);

}  // namespace treg
