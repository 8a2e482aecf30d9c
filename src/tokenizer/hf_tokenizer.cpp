#include "tokenizer/hf_tokenizer.h"

#include <nlohmann/json.hpp>
#include <unordered_set>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoders.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/utf8.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

using nlohmann::json;

// What the post-processor puts around a single sequence when special tokens are added.
struct Template {
  std::vector<int64_t> prefix, suffix;
};

void parse_post_processor(const json& config, const std::string& file, Template* out) {
  if (config.is_null()) return;
  const std::string type = config.value("type", "");
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "Sequence") {
    for (const auto& p : config.at("processors")) parse_post_processor(p, file, out);
    return;
  }
  if (type != "TemplateProcessing")
    fail(file, "unsupported post_processor type '" + type + "'",
         "supported: TemplateProcessing, ByteLevel, Sequence");
  out->prefix.clear();
  out->suffix.clear();
  bool seen_sequence = false;
  for (const auto& item : config.at("single")) {
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    const std::string name = item.at("SpecialToken").at("id").get<std::string>();
    const json& special = config.at("special_tokens");
    if (!special.contains(name))
      fail(file, "post_processor special token '" + name + "' has no entry in special_tokens");
    for (int64_t id : special[name].at("ids").get<std::vector<int64_t>>())
      (seen_sequence ? out->suffix : out->prefix).push_back(id);
  }
}

class HfTokenizer : public Tokenizer {
 public:
  explicit HfTokenizer(const std::string& path) : path_(path) {
    json root;
    try {
      root = json::parse(read_file(path));
    } catch (const json::exception& e) {
      fail(path, std::string("invalid JSON: ") + e.what());
    }
    const json& model = root.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE")
      fail(path, "unsupported model type '" + type + "'",
           "treg supports BPE tokenizer.json files (Llama, Qwen, Gemma)");
    bpe_ = std::make_unique<Bpe>(model, path);
    normalizer_ = make_normalizer(root.value("normalizer", json()), path);
    pre_tokenizer_ = make_pre_tokenizer(root.value("pre_tokenizer", json()), path);
    decoder_ = make_decoder(root.value("decoder", json()), path);
    Template tmpl;
    parse_post_processor(root.value("post_processor", json()), path, &tmpl);

    for (const auto& [piece, id] : bpe_->vocab()) set_piece(id, piece);
    std::vector<AddedToken> added;
    for (const auto& t : root.value("added_tokens", json::array())) {
      AddedToken a;
      if (!t.at("id").is_number_integer())
        fail(path, "added token " + t.dump() + ": id is not an integer");
      a.id = t.at("id").get<int64_t>();
      a.content = t.at("content").get<std::string>();
      a.special = t.value("special", false);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      a.normalized = t.value("normalized", !a.special);
      set_piece(a.id, a.content);
      added_ids_[a.content] = a.id;
      if (a.special) special_ids_.insert(a.id);
      added.push_back(std::move(a));
    }
    added_ = AddedTokens(std::move(added));

    const std::string dir =
        path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
    TokenizerConfig config = read_tokenizer_config(
        dir.empty() ? "." : dir, [this](const std::string& p) { return piece_to_id(p); });
    special_ = config.special;
    for (const AddedToken& a : added_.tokens())
      if (a.special) special_.special_texts.push_back(a.content);
    chat_template_source_ = config.chat_template;
    chat_template_origin_ = config.chat_template_origin;
    // Special tokens come from tokenizer.json's post-processor alone, as the `tokenizers` library
    // applies it (transformers 5 agrees; transformers 4's LlamaTokenizerFast rebuilt it from
    // tokenizer_config.json's add_bos_token, which e.g. DeepSeek-V3 sets while its post-processor
    // adds nothing). Chat templates write BOS themselves, so training data does not depend on this.
    prefix_ = tmpl.prefix;
    suffix_ = tmpl.suffix;
    special_.add_bos = !prefix_.empty();
    special_.add_eos = !suffix_.empty();
    fingerprint_ = tokenizer_fingerprint(dir.empty() ? "." : dir, path);
  }

  std::vector<int64_t> encode(const std::string& raw, bool add_special) const override {
    const std::string text = utf8::make_valid(raw);
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3 + 4);
    if (add_special) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
    for (const Segment& seg : added_.split(text)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      std::string normalized(seg.text);
      if (normalizer_) normalizer_->normalize(normalized);
      if (!added_.has_normalized()) {
        encode_text(normalized, seg.offset == 0, ids);
        continue;
      }
      for (const Segment& sub : added_.split(normalized, /*normalized_pass=*/true)) {
        if (sub.id >= 0)
          ids.push_back(sub.id);
        else
          encode_text(std::string(sub.text), seg.offset == 0 && sub.offset == 0, ids);
      }
    }
    if (add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
      if (skip_special && special_ids_.count(id)) continue;
      if (id < 0 || id >= static_cast<int64_t>(pieces_.size())) continue;
      tokens.push_back(pieces_[id]);
    }
    if (!decoder_) {  // the tokenizers library joins with spaces when there is no decoder
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    decoder_->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  std::string id_to_piece(int64_t id) const override {
    if (id < 0 || id >= static_cast<int64_t>(pieces_.size())) return "";
    return pieces_[id];
  }
  int64_t piece_to_id(const std::string& piece) const override {
    auto a = added_ids_.find(piece);
    if (a != added_ids_.end()) return a->second;
    auto it = bpe_->vocab().find(piece);
    return it == bpe_->vocab().end() ? -1 : it->second;
  }
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }

 private:
  void set_piece(int64_t id, const std::string& piece) {
    // Ids index a table here and are stored as int32 in reward dumps; real vocabularies stay far
    // below 2^24 (Gemma-3: 262,144), so a larger id is a corrupt file, not a 64 GB table.
    if (id < 0 || id >= kMaxVocab)
      fail(path_, "token '" + piece + "' has id " + std::to_string(id) + ", outside [0, " +
                      std::to_string(kMaxVocab) + ")");
    if (id >= static_cast<int64_t>(pieces_.size())) pieces_.resize(id + 1);
    pieces_[id] = piece;
  }

  void encode_text(const std::string& normalized, bool at_start, std::vector<int64_t>& ids) const {
    if (normalized.empty()) return;
    if (!pre_tokenizer_) {
      bpe_->encode_word(normalized, ids);
      return;
    }
    std::vector<Piece> pieces{{normalized, at_start}};
    pre_tokenizer_->pre_tokenize(pieces);
    for (const auto& p : pieces) bpe_->encode_word(p.text, ids);
  }

  std::unique_ptr<Bpe> bpe_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  AddedTokens added_;
  std::unordered_map<std::string, int64_t> added_ids_;
  static constexpr int64_t kMaxVocab = int64_t{1} << 24;
  std::string path_;
  std::unordered_set<int64_t> special_ids_;
  std::vector<std::string> pieces_;  // id -> token string
  std::vector<int64_t> prefix_, suffix_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path) {
  try {
    return std::make_unique<HfTokenizer>(json_path);
  } catch (const json::exception& e) {
    // A field of the wrong type or missing ("key 'id' not found", "type must be string").
    fail(json_path, std::string("malformed tokenizer.json: ") + e.what(),
         "the file is damaged or not a Hugging Face tokenizer.json");
  }
}

}  // namespace treg
