// Hugging Face tokenizer.json: added tokens, normalizer, pre-tokenizer, BPE, post-processor and
// decoder, applied in that order as the `tokenizers` library does (internal).
#pragma once
#include <memory>
#include <string>

#include "treg/tokenizer.h"

namespace treg {

// `json_path` is the tokenizer.json; the other files are looked up next to it.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path);

}  // namespace treg
