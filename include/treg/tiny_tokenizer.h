// Tiny tokenizers for tiny test models: a ~1000-piece sentencepiece BPE trained on the corpus the
// project ships (configs/data/tiny_corpus.txt), with the special tokens and the real chat template
// of each model family, so the whole pipeline (chat rendering, special ids, EOS) runs as on the
// real models, only smaller.
#pragma once
#include <cstdint>
#include <string>

namespace treg {

// Writes tokenizer.model, tokenizer_config.json and special_tokens_map.json into `out_dir` (created
// if missing) for arch "llama" | "gemma2" | "qwen2"; llama and qwen2 also get a tokenizer.json
// equivalent to the .model, so load_tokenizer exercises the tokenizer.json path on tiny models
// (gemma2 keeps the sentencepiece path). Deterministic: the same files on every run.
// Returns the vocabulary size; the model's `vocab_size` must equal it.
int64_t write_tiny_tokenizer(const std::string& arch, const std::string& out_dir);

// The `chat_template` Jinja source of the real instruct model of `arch` (Llama-3-8B-Instruct,
// gemma-2-9b-it, Qwen2-7B-Instruct), as its tokenizer_config.json ships it.
std::string real_chat_template(const std::string& arch);

// Path of the shipped training corpus.
std::string tiny_corpus_path();

}  // namespace treg
