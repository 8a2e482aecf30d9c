// Chooses the tokenizer implementation for a model directory.
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "treg/error.h"
#include "treg/io.h"
#include "treg/tokenizer.h"

namespace treg {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".json")) {
    if (!file_exists(path)) fail(path, "tokenizer file not found");
    return load_hf_tokenizer(path);
  }
  if (ends_with(".model")) {
    if (!file_exists(path)) fail(path, "tokenizer file not found");
    return load_sentencepiece_tokenizer(path);
  }
  // A directory: tokenizer.json is what transformers' fast tokenizers use, so it wins.
  const std::string json_path = path_join(path, "tokenizer.json");
  const std::string model_path = path_join(path, "tokenizer.model");
  if (file_exists(json_path)) return load_hf_tokenizer(json_path);
  if (file_exists(model_path)) return load_sentencepiece_tokenizer(model_path);
  fail(path, "no tokenizer.json or tokenizer.model found",
       "pass a model directory that contains one of them (or the file itself)");
}

}  // namespace treg
