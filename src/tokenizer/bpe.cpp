#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"
#include "treg/error.h"

namespace treg {
namespace {

constexpr size_t kMaxCachedWords =
    1 << 20;  // bounded so a long-running process cannot grow without limit
constexpr size_t kMaxCachedWordBytes =
    256;  // longer words are rare; caching them only costs memory

}  // namespace

Bpe::Bpe(const nlohmann::json& config, const std::string& file) {
  for (const auto& [piece, id] : config.at("vocab").items()) {
    // get<int64_t>() of a float (1e85) would be undefined behaviour, not an error.
    if (!id.is_number_integer())
      fail(file, "vocab entry '" + piece + "' has id " + id.dump() + ", not an integer");
    vocab_.emplace(piece, id.get<int64_t>());
  }
  auto find = [&](const std::string& piece, const std::string& what) {
    auto it = vocab_.find(piece);
    if (it == vocab_.end()) fail(file, what + " '" + piece + "' is not in the BPE vocab");
    return it->second;
  };
  auto str_or_empty = [&](const char* key) {
    return config.contains(key) && config[key].is_string() ? config[key].get<std::string>()
                                                           : std::string();
  };
  continuing_prefix_ = str_or_empty("continuing_subword_prefix");
  end_of_word_suffix_ = str_or_empty("end_of_word_suffix");
  if (!continuing_prefix_.empty() || !end_of_word_suffix_.empty())
    fail(file,
         "BPE continuing_subword_prefix / end_of_word_suffix are not supported (found '" +
             continuing_prefix_ + "' / '" + end_of_word_suffix_ + "')",
         "treg supports the byte-level and sentencepiece-style BPE of decoder LLMs");
  if (!str_or_empty("unk_token").empty()) unk_id_ = find(str_or_empty("unk_token"), "unk_token");
  byte_fallback_ = config.value("byte_fallback", false);
  fuse_unk_ = config.value("fuse_unk", false);
  ignore_merges_ = config.value("ignore_merges", false);
  if (byte_fallback_) {
    byte_ids_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = vocab_.find(name);
      if (it != vocab_.end()) byte_ids_[b] = it->second;
    }
  }

  const auto& merges = config.at("merges");
  merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const auto& m : merges) {
    std::string a, b;
    if (m.is_string()) {  // "a b": tokens never contain a space (byte-level maps it to Ġ)
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos)
        fail(file, "merge #" + std::to_string(rank) + " '" + s + "' has no space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      a = m.at(0).get<std::string>();
      b = m.at(1).get<std::string>();
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
      fail(file, "merge #" + std::to_string(rank) + " ('" + a + "', '" + b +
                     "') uses a token that is not in the vocab");
    int64_t ida = ia->second, idb = ib->second, merged = im->second;
    merges_.emplace(pair_key(ida, idb),
                    Merge{rank, static_cast<int32_t>(merged)});  // first (lowest) rank wins
    ++rank;
  }
}

void Bpe::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {  // Llama-3: a word that is itself a token is not split and re-merged
    auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() > kMaxCachedWordBytes) {
    std::vector<int64_t> ids = merge_word(word);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  std::string key(word);
  CacheShard& shard = cache_[std::hash<std::string>{}(key) % kCacheShards];
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    auto it = shard.words.find(key);
    if (it != shard.words.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.words.size() >= kMaxCachedWords / kCacheShards) shard.words.clear();
  shard.words.emplace(std::move(key), std::move(ids));
}

// Merges a word the way Hugging Face's BPE does: repeatedly apply the lowest-rank merge among
// adjacent symbols (leftmost on ties), using a min-heap of candidate pairs and a linked list of
// symbols, so a word of n characters costs O(n log n).
std::vector<int64_t> Bpe::merge_word(std::string_view word) const {
  struct Symbol {
    int64_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> syms;
  syms.reserve(word.size());
  auto push = [&](int64_t id) {
    int n = static_cast<int>(syms.size());
    syms.push_back({id, n - 1, n + 1, true});
  };
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t len = utf8::char_len_at(word, i);
    auto it = vocab_.find(std::string(word.substr(i, len)));
    if (it != vocab_.end()) {
      push(it->second);
      last_unk = false;
    } else {
      bool all_bytes = byte_fallback_;
      for (size_t k = 0; all_bytes && k < len; ++k)
        all_bytes = byte_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
      if (all_bytes) {
        for (size_t k = 0; k < len; ++k) push(byte_ids_[static_cast<unsigned char>(word[i + k])]);
        last_unk = false;
      } else if (unk_id_ >= 0) {
        if (!(fuse_unk_ && last_unk)) push(unk_id_);
        last_unk = true;
      }
      // Without an unk token the character is dropped, as Hugging Face does.
    }
    i += len;
  }
  if (syms.empty()) return {};
  syms.back().next = -1;

  struct Candidate {
    int32_t rank;
    int pos;
    int64_t left, right;  // the ids when queued, to detect stale entries
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int pos) {
    if (pos < 0 || syms[pos].next < 0) return;
    const Symbol& l = syms[pos];
    const Symbol& r = syms[l.next];
    auto it = merges_.find(pair_key(l.id, r.id));
    if (it != merges_.end()) heap.push({it->second.rank, pos, l.id, r.id});
  };
  for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) consider(i);

  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    Symbol& l = syms[c.pos];
    if (!l.alive || l.next < 0 || l.id != c.left || syms[l.next].id != c.right) continue;
    Symbol& r = syms[l.next];
    l.id = merges_.at(pair_key(c.left, c.right)).merged_id;
    r.alive = false;
    l.next = r.next;
    if (l.next >= 0) syms[l.next].prev = c.pos;
    consider(l.prev);
    consider(c.pos);
  }
  std::vector<int64_t> ids;
  for (int i = 0; i >= 0; i = syms[i].next) ids.push_back(syms[i].id);
  return ids;
}

}  // namespace treg
