// The tokenizer.json BPE model: merges the characters of one pre-tokenized word by merge rank
// (internal).
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace treg {

class Bpe {
 public:
  // `config` is tokenizer.json's "model" object; `file` names it in errors.
  Bpe(const nlohmann::json& config, const std::string& file);
  // Appends the ids of `word` to `out`. Results are cached per word.
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;
  const std::unordered_map<std::string, int64_t>& vocab() const { return vocab_; }

 private:
  std::vector<int64_t> merge_word(std::string_view word) const;

  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
  }

  std::unordered_map<std::string, int64_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  int64_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  std::vector<int64_t> byte_ids_;  // id of "<0xXX>" per byte, -1 if absent
  std::string continuing_prefix_, end_of_word_suffix_;

  // The word cache is sharded by hash so that data-loader threads encoding in parallel rarely wait
  // on the same lock.
  struct CacheShard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int64_t>> words;
  };
  static constexpr size_t kCacheShards = 64;
  mutable std::array<CacheShard, kCacheShards> cache_;
};

}  // namespace treg
