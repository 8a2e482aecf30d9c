// sentencepiece tokenizer.model, encoded by the sentencepiece library itself, with added and
// special tokens split out first as transformers does (internal).
#pragma once
#include <memory>
#include <string>

#include "treg/tokenizer.h"

namespace treg {

// `model_path` is the tokenizer.model; tokenizer_config.json etc. are looked up next to it.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path);

}  // namespace treg
