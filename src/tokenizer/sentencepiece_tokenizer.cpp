#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <unordered_map>
#include <unordered_set>

#include "tokenizer/added_tokens.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/utf8.h"
#include "treg/error.h"
#include "treg/io.h"

namespace treg {
namespace {

const char* const kMeta = "\xE2\x96\x81";  // "▁"

// What the processor's API does not expose: each piece's type and whether a dummy "▁" is
// prepended. Read from the ModelProto wire format: ModelProto{1: repeated SentencePiece{1: piece,
// 3: type}, 3: NormalizerSpec{3: add_dummy_prefix}}.
struct ProtoInfo {
  std::vector<int> types;  // 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE
  bool add_dummy_prefix = true;
};

bool read_varint(const std::string& b, size_t& i, size_t end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; i < end && shift < 64; shift += 7) {
    unsigned char c = static_cast<unsigned char>(b[i++]);
    *v |= static_cast<uint64_t>(c & 0x7F) << shift;
    if (!(c & 0x80)) return true;
  }
  return false;
}

// Visits the fields of the message in b[begin, end): f(field, wire_type, varint, sub_begin,
// sub_end).
template <class F>
bool for_each_field(const std::string& b, size_t begin, size_t end, F f) {
  size_t i = begin;
  while (i < end) {
    uint64_t key, v = 0;
    if (!read_varint(b, i, end, &key)) return false;
    int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    size_t sb = 0, se = 0;
    if (wire == 0) {
      if (!read_varint(b, i, end, &v)) return false;
    } else if (wire == 2) {
      if (!read_varint(b, i, end, &v) || i + v > end) return false;
      sb = i;
      se = i + v;
      i = se;
    } else if (wire == 5) {
      i += 4;
    } else if (wire == 1) {
      i += 8;
    } else {
      return false;
    }
    f(field, wire, v, sb, se);
  }
  return i == end;
}

ProtoInfo read_proto_info(const std::string& bytes, const std::string& path) {
  ProtoInfo info;
  bool ok = for_each_field(
      bytes, 0, bytes.size(), [&](int field, int wire, uint64_t, size_t sb, size_t se) {
        if (field == 1 && wire == 2) {
          int type = 1;  // NORMAL is the default and is not serialized
          for_each_field(bytes, sb, se, [&](int f, int w, uint64_t v, size_t, size_t) {
            if (f == 3 && w == 0) type = static_cast<int>(v);
          });
          info.types.push_back(type);
        } else if (field == 3 && wire == 2) {
          for_each_field(bytes, sb, se, [&](int f, int w, uint64_t v, size_t, size_t) {
            if (f == 3 && w == 0) info.add_dummy_prefix = v != 0;
          });
        }
      });
  if (!ok) fail(path, "not a sentencepiece model (malformed protobuf)");
  return info;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    const std::string bytes = read_file(path);
    auto status = sp_.LoadFromSerializedProto(bytes);
    if (!status.ok()) fail(path, "cannot load sentencepiece model: " + status.ToString());
    ProtoInfo info = read_proto_info(bytes, path);
    add_dummy_prefix_ = info.add_dummy_prefix;

    const std::string dir =
        path.find('/') == std::string::npos ? "." : path.substr(0, path.find_last_of('/'));
    TokenizerConfig config =
        read_tokenizer_config(dir, [this](const std::string& p) { return piece_to_id(p); });

    // Control, unknown and user-defined pieces are atomic in text; sentencepiece itself would
    // never produce control pieces from text, but transformers matches them as special tokens.
    std::vector<AddedToken> added;
    std::unordered_set<int64_t> seen;
    for (int id = 0; id < sp_.GetPieceSize(); ++id) {
      int type = id < static_cast<int>(info.types.size()) ? info.types[id] : 1;
      if (type == 2 || type == 3 || type == 4) {
        added.push_back({id, sp_.IdToPiece(id), /*special=*/true});
        seen.insert(id);
        if (type != 4) special_ids_.insert(id);
      }
    }
    for (const AddedToken& a : config.added) {
      if (seen.count(a.id)) continue;
      added.push_back(a);
      if (a.special) special_ids_.insert(a.id);
      extra_pieces_[a.id] = a.content;
    }
    for (const auto& a : added) added_ids_[a.content] = a.id;
    added_ = AddedTokens(std::move(added));

    special_ = config.special;
    // Control, unknown and user-defined pieces (Gemma's <end_of_turn> is one) and the special
    // tokens tokenizer_config.json adds.
    for (const AddedToken& a : added_.tokens())
      if (a.special) special_.special_texts.push_back(a.content);
    chat_template_source_ = config.chat_template;
    chat_template_origin_ = config.chat_template_origin;
    // transformers' Llama/Gemma tokenizers default to add_bos_token=True, add_eos_token=False.
    special_.add_bos = config.add_bos.value_or(true) && special_.bos_id >= 0;
    special_.add_eos = config.add_eos.value_or(false) && !special_.eos_ids.empty();
    fingerprint_ = tokenizer_fingerprint(dir, path);
  }

  std::vector<int64_t> encode(const std::string& raw, bool add_special) const override {
    const std::string text = utf8::make_valid(raw);
    std::vector<int64_t> ids;
    if (add_special && special_.add_bos) ids.push_back(special_.bos_id);
    std::vector<int> piece_ids;
    for (const Segment& seg : added_.split(text)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      piece_ids.clear();
      const auto status = sp_.Encode(seg.text, &piece_ids);
      if (!status.ok()) fail("sentencepiece", "cannot encode text: " + status.ToString());
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
    if (add_special && special_.add_eos) ids.push_back(special_.eos_ids[0]);
    return ids;
  }

  // As transformers decodes sentencepiece models: "▁" becomes a space, byte pieces are fused into
  // UTF-8, and the dummy prefix's space is dropped at the very start.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string out, bytes;
    auto flush = [&]() {
      out += utf8::make_valid(bytes);
      bytes.clear();
    };
    for (int64_t id : ids) {
      if (skip_special && special_ids_.count(id)) continue;
      if (id >= 0 && id < sp_.GetPieceSize() && sp_.IsByte(static_cast<int>(id))) {
        bytes += static_cast<char>(
            std::stoi(sp_.IdToPiece(static_cast<int>(id)).substr(3, 2), nullptr, 16));
        continue;
      }
      flush();
      std::string piece = id_to_piece(id);
      for (size_t k = 0; k < piece.size();) {
        if (piece.compare(k, 3, kMeta) == 0) {
          out += ' ';
          k += 3;
        } else {
          out += piece[k++];
        }
      }
    }
    flush();
    if (add_dummy_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  std::string id_to_piece(int64_t id) const override {
    auto it = extra_pieces_.find(id);
    if (it != extra_pieces_.end()) return it->second;
    if (id < 0 || id >= sp_.GetPieceSize()) return "";
    return sp_.IdToPiece(static_cast<int>(id));
  }
  int64_t piece_to_id(const std::string& piece) const override {
    auto a = added_ids_.find(piece);
    if (a != added_ids_.end()) return a->second;
    int id = sp_.PieceToId(piece);
    if (id == sp_.unk_id() && piece != sp_.IdToPiece(id)) return -1;
    return id;
  }
  int64_t vocab_size() const override {
    int64_t n = sp_.GetPieceSize();
    for (const auto& [id, piece] : extra_pieces_) n = std::max(n, id + 1);
    return n;
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  bool add_dummy_prefix_ = true;
  AddedTokens added_;
  std::unordered_map<std::string, int64_t> added_ids_;
  std::unordered_map<int64_t, std::string> extra_pieces_;  // added tokens beyond the model's pieces
  std::unordered_set<int64_t> special_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}

}  // namespace treg
