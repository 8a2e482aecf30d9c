// Trains the tiny sentencepiece BPE tokenizers of the tiny test models and writes them the way a
// Hugging Face model directory ships a tokenizer.
#include "treg/tiny_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <unordered_map>

#include "treg/build_info.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr int kTinyVocabSize = 1000;       // includes the 256 byte pieces and the special tokens
const char* const kMeta = "\xE2\x96\x81";  // "▁", sentencepiece's whitespace marker

// How each family's special tokens map onto sentencepiece's reserved ids; -1 disables one.
struct TinySpec {
  std::string unk, bos, eos, pad;
  int unk_id, bos_id, eos_id, pad_id;
  std::vector<std::string> user_symbols;  // chat-format tokens, matched atomically in text
  bool add_dummy_prefix;                  // Llama-2-style leading "▁"; Gemma and Qwen have none
  bool split_digits;                      // Gemma splits numbers into digits
  bool write_json;                        // also write tokenizer.json
  // tokenizer_config.json values of the real instruct model.
  std::string config_bos, config_eos, config_pad;
  bool has_add_bos_key, add_bos;
};

TinySpec tiny_spec(const std::string& arch) {
  if (arch == "llama")
    return {"<unk>",
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "",
            0,
            1,
            2,
            -1,
            {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
            true,
            false,
            true,
            "<|begin_of_text|>",
            "<|eot_id|>",
            "",
            false,
            false};
  if (arch == "gemma2")
    return {"<unk>", "<bos>", "<eos>",
            "<pad>", 3,       2,
            1,       0,       {"<start_of_turn>", "<end_of_turn>"},
            false,   true,    false,
            "<bos>", "<eos>", "<pad>",
            true,    true};
  if (arch == "qwen2")
    return {"<unk>",
            "",
            "<|endoftext|>",
            "",
            0,
            -1,
            1,
            -1,
            {"<|im_start|>", "<|im_end|>"},
            false,
            false,
            true,
            "",
            "<|im_end|>",
            "<|endoftext|>",
            false,
            false};
  fail("write_tiny_tokenizer", "unknown arch '" + arch + "'", "use one of: llama, gemma2, qwen2");
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// Bytes of the UTF-8 character starting at s[i].
size_t utf8_len(const std::string& s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  return std::min(n, s.size() - i);
}

// The BPE merges that reproduce sentencepiece's BPE: sentencepiece merges the adjacent pair whose
// concatenation has the highest score, so every split of a piece into two vocabulary pieces is a
// merge, ranked by the merged piece's score (ties by id), as Hugging Face's converter does.
ordered_json bpe_merges(const sentencepiece::SentencePieceProcessor& sp,
                        const std::set<int>& atomic_ids) {
  std::unordered_map<std::string, int> normal;
  for (int id = 0; id < sp.GetPieceSize(); ++id)
    if (!atomic_ids.count(id) && !sp.IsByte(id) && !sp.IsUnused(id)) normal[sp.IdToPiece(id)] = id;
  std::vector<std::tuple<float, int, int, int>> ranked;  // (-score, merged id, left id, right id)
  for (const auto& [piece, id] : normal) {
    for (size_t cut = utf8_len(piece, 0); cut < piece.size(); cut += utf8_len(piece, cut)) {
      auto l = normal.find(piece.substr(0, cut)), r = normal.find(piece.substr(cut));
      if (l != normal.end() && r != normal.end())
        ranked.emplace_back(-sp.GetScore(id), id, l->second, r->second);
    }
  }
  std::sort(ranked.begin(), ranked.end());
  ordered_json merges = ordered_json::array();
  for (const auto& m : ranked)
    merges.push_back(
        ordered_json::array({sp.IdToPiece(std::get<2>(m)), sp.IdToPiece(std::get<3>(m))}));
  return merges;
}

ordered_json added_token(int id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// A tokenizer.json that encodes exactly as the sentencepiece model: the normalizer stands in for
// sentencepiece's whitespace handling, the BPE model for its merges, byte fallback for unknown
// text.
ordered_json tokenizer_json(const sentencepiece::SentencePieceProcessor& sp, const TinySpec& spec) {
  std::set<int> atomic_ids;
  ordered_json added = ordered_json::array();
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    const std::string& piece = sp.IdToPiece(id);
    bool user = std::find(spec.user_symbols.begin(), spec.user_symbols.end(), piece) !=
                spec.user_symbols.end();
    if (sp.IsControl(id) || sp.IsUnknown(id) || user) {
      atomic_ids.insert(id);
      added.push_back(added_token(id, piece));
    }
  }
  ordered_json vocab = ordered_json::object();
  for (int id = 0; id < sp.GetPieceSize(); ++id) vocab[sp.IdToPiece(id)] = id;

  ordered_json replace_space = {
      {"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kMeta}};
  ordered_json normalizer;
  if (spec.add_dummy_prefix)
    normalizer = {{"type", "Sequence"},
                  {"normalizers", ordered_json::array(
                                      {{{"type", "Prepend"}, {"prepend", kMeta}}, replace_space})}};
  else
    normalizer = replace_space;

  ordered_json decoders = ordered_json::array(
      {{{"type", "Replace"}, {"pattern", {{"String", kMeta}}}, {"content", " "}},
       {{"type", "ByteFallback"}},
       {{"type", "Fuse"}}});
  if (spec.add_dummy_prefix)
    decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});

  ordered_json post = nullptr;
  if (!spec.bos.empty()) {
    auto special = [](const std::string& t) {
      return ordered_json{{"SpecialToken", {{"id", t}, {"type_id", 0}}}};
    };
    auto seq = [](const char* s, int type) {
      return ordered_json{{"Sequence", {{"id", s}, {"type_id", type}}}};
    };
    post = {{"type", "TemplateProcessing"},
            {"single", ordered_json::array({special(spec.bos), seq("A", 0)})},
            {"pair",
             ordered_json::array({special(spec.bos), seq("A", 0), special(spec.bos), seq("B", 1)})},
            {"special_tokens",
             {{spec.bos, {{"id", spec.bos}, {"ids", {spec.bos_id}}, {"tokens", {spec.bos}}}}}}};
  }

  ordered_json model = {{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", spec.unk},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", true},
                        {"byte_fallback", true},
                        {"ignore_merges", false},
                        {"vocab", vocab},
                        {"merges", bpe_merges(sp, atomic_ids)}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", normalizer},
          {"pre_tokenizer", nullptr},
          {"post_processor", post},
          {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
          {"model", model}};
}

ordered_json token_or_null(const std::string& t) {
  return t.empty() ? ordered_json(nullptr) : ordered_json(t);
}

}  // namespace

std::string tiny_corpus_path() {
  return path_join(source_dir(), "configs/data/tiny_corpus.txt");
}

std::string real_chat_template(const std::string& arch) {
  // Verbatim from the tokenizer_config.json of each family's instruct model.
  if (arch == "llama")  // meta-llama/Meta-Llama-3-8B-Instruct
    return "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
           "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] "
           "| trim + "
           "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
           "endif %}{{ "
           "content }}{% endfor %}{% if add_generation_prompt %}{{ "
           "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
  if (arch == "gemma2")  // google/gemma-2-9b-it
    return "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role "
           "not "
           "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == "
           "'user') != "
           "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
           "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
           "'assistant') %}{% set "
           "role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
           "'<start_of_turn>' + role "
           "+ '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if "
           "add_generation_prompt "
           "%}{{'<start_of_turn>model\n'}}{% endif %}";
  if (arch == "qwen2")  // Qwen/Qwen2-7B-Instruct
    return "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
           "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif "
           "%}{{'<|im_start|>' + "
           "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
           "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  fail("real_chat_template", "unknown arch '" + arch + "'", "use one of: llama, gemma2, qwen2");
}

int64_t write_tiny_tokenizer(const std::string& arch, const std::string& out_dir) {
  const TinySpec spec = tiny_spec(arch);
  const std::string corpus = tiny_corpus_path();
  if (!file_exists(corpus))
    fail(corpus, "tiny tokenizer corpus not found", "run: python3 scripts/make_tiny_corpus.py");

  // Fixed options only (no sampling, one thread), so training is deterministic.
  std::unordered_map<std::string, std::string> args = {
      {"input", corpus},
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(kTinyVocabSize)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", spec.add_dummy_prefix ? "true" : "false"},
      {"split_digits", spec.split_digits ? "true" : "false"},
      {"num_threads", "1"},
      {"unk_id", std::to_string(spec.unk_id)},
      {"bos_id", std::to_string(spec.bos_id)},
      {"eos_id", std::to_string(spec.eos_id)},
      {"pad_id", std::to_string(spec.pad_id)},
      {"unk_piece", spec.unk},
      {"bos_piece", spec.bos.empty() ? "<s>" : spec.bos},
      {"eos_piece", spec.eos},
      {"pad_piece", spec.pad.empty() ? "<pad>" : spec.pad},
      {"user_defined_symbols", join(spec.user_symbols, ",")},
      {"minloglevel", "100"},  // the trainer logs every step otherwise
  };
  sentencepiece::SetRandomGeneratorSeed(0);
  std::string model_bytes;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &model_bytes);
  if (!status.ok()) fail(corpus, "sentencepiece training failed: " + status.ToString());

  sentencepiece::SentencePieceProcessor sp;
  status = sp.LoadFromSerializedProto(model_bytes);
  if (!status.ok())
    fail("write_tiny_tokenizer", "cannot load the trained model: " + status.ToString());

  make_dirs(out_dir);
  write_file_atomic(path_join(out_dir, "tokenizer.model"), model_bytes);
  if (spec.write_json)
    write_file_atomic(path_join(out_dir, "tokenizer.json"), tokenizer_json(sp, spec).dump(2));

  ordered_json config = {
      {"tokenizer_class", spec.write_json ? "PreTrainedTokenizerFast" : "GemmaTokenizer"}};
  if (spec.has_add_bos_key) {
    config["add_bos_token"] = spec.add_bos;
    config["add_eos_token"] = false;
  }
  config["bos_token"] = token_or_null(spec.config_bos);
  config["eos_token"] = token_or_null(spec.config_eos);
  if (!spec.config_pad.empty()) config["pad_token"] = spec.config_pad;
  if (arch == "gemma2") config["unk_token"] = spec.unk;
  if (arch == "qwen2") config["additional_special_tokens"] = spec.user_symbols;
  config["clean_up_tokenization_spaces"] = false;
  config["model_max_length"] = 8192;
  config["chat_template"] = real_chat_template(arch);
  write_file_atomic(path_join(out_dir, "tokenizer_config.json"), config.dump(2));

  ordered_json map = ordered_json::object();
  auto entry = [](const std::string& t) {
    return ordered_json{{"content", t},
                        {"lstrip", false},
                        {"normalized", false},
                        {"rstrip", false},
                        {"single_word", false}};
  };
  if (!spec.config_bos.empty()) map["bos_token"] = entry(spec.config_bos);
  map["eos_token"] = entry(spec.config_eos);
  if (!spec.config_pad.empty()) map["pad_token"] = entry(spec.config_pad);
  if (arch == "gemma2") map["unk_token"] = entry(spec.unk);
  if (arch == "qwen2") map["additional_special_tokens"] = spec.user_symbols;
  write_file_atomic(path_join(out_dir, "special_tokens_map.json"), map.dump(2));
  return sp.GetPieceSize();
}

}  // namespace treg
