// tokenizer.json `pre_tokenizer`s: split normalized text into the words BPE merges within
// (internal).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace treg {

struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the input (Metaspace's prepend_scheme "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// nullptr for a JSON null; an unsupported type is an error naming it and `file`.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config,
                                                 const std::string& file);

// GPT-2's byte-to-character table: byte b is written as the character byte_to_unicode()[b] (UTF-8).
const std::vector<std::string>& byte_to_unicode();

}  // namespace treg
