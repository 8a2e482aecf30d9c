// Special tokens and chat template a model directory declares in tokenizer_config.json,
// special_tokens_map.json and generation_config.json (internal).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "treg/tokenizer.h"

namespace treg {

struct TokenizerConfig {
  SpecialTokens special;                 // ids resolved; add_bos/add_eos not yet (see below)
  std::optional<bool> add_bos, add_eos;  // only when tokenizer_config.json says so
  std::string chat_template;             // chat_template.jinja, else tokenizer_config.json's
  std::string chat_template_origin;  // the file (and key) it came from; `dir` when there is none
  std::vector<AddedToken> added;  // tokenizer_config.json "added_tokens_decoder"
};

// Reads the files present in `dir` (none is required). `piece_to_id` resolves token strings; a
// declared special token the vocabulary lacks is an error naming the file and key.
TokenizerConfig read_tokenizer_config(
    const std::string& dir, const std::function<int64_t(const std::string&)>& piece_to_id);

// SHA-256 over the names and contents of the tokenizer files present in `dir` plus `model_file`.
std::string tokenizer_fingerprint(const std::string& dir, const std::string& model_file);

}  // namespace treg
