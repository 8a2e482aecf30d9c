// tokenizer.json `normalizer`s: rewrite each piece of text between added tokens before
// pre-tokenization (internal).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace treg {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// nullptr for a JSON null; an unsupported type is an error naming it and `file`.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, const std::string& file);

}  // namespace treg
