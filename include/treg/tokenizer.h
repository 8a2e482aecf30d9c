// Tokenizers that agree with Hugging Face token for token: tokenizer.json (BPE and its pre/post
// processing) or sentencepiece's tokenizer.model, plus the special tokens a model directory declares.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace treg {

struct SpecialTokens {
  int64_t bos_id = -1;              // -1: the model has none
  std::vector<int64_t> eos_ids;     // e.g. Llama-3: <|eot_id|> and <|end_of_text|>
  int64_t pad_id = -1;
  std::string bos_token, eos_token, pad_token, unk_token;  // "" where the model has none
  bool add_bos = false;             // whether encode(..., add_special=true) prepends BOS
  bool add_eos = false;
  // Text of every special added token ("<|eot_id|>", "<end_of_turn>", ...): what a chat template's
  // end-of-turn marker is chosen among.
  std::vector<std::string> special_texts;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Special tokens written literally in `text` (e.g. "<|eot_id|>") are matched as such, as HF does.
  // add_special adds BOS/EOS as the model's post-processor would; false adds nothing.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_special = false) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const = 0;
  virtual std::string id_to_piece(int64_t id) const = 0;
  virtual int64_t piece_to_id(const std::string& piece) const = 0;  // -1 when absent
  virtual int64_t vocab_size() const = 0;  // including added tokens
  const SpecialTokens& special() const { return special_; }
  // Identity of the files it was loaded from (SHA-256), for reward-dump metadata.
  const std::string& fingerprint() const { return fingerprint_; }
  // The model's Jinja chat template, as transformers finds it: chat_template.jinja next to the
  // tokenizer, else tokenizer_config.json's `chat_template` (a string, or the entry named "default"
  // of a list of {name, template}); empty when there is none.
  const std::string& chat_template_source() const { return chat_template_source_; }
  // Where it came from ("<dir>/chat_template.jinja", "<dir>/tokenizer_config.json: chat_template"),
  // or the directory that was searched when there is none.
  const std::string& chat_template_origin() const { return chat_template_origin_; }

 protected:
  SpecialTokens special_;
  std::string fingerprint_;
  std::string chat_template_source_, chat_template_origin_;
};

// `path` is a model directory (tokenizer.json preferred, else tokenizer.model) or one of those files.
// Special tokens come from tokenizer_config.json, special_tokens_map.json and generation_config.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace treg
