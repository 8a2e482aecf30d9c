// Added tokens (special tokens such as "<|eot_id|>" and user-added ones): found in the raw text
// before any normalization or pre-tokenization, leftmost first, longest on ties (internal).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace treg {

struct AddedToken {
  int64_t id = -1;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

struct Segment {
  std::string_view text;  // a view into the input
  int64_t id = -1;        // the added token's id, or -1 for ordinary text
  size_t offset = 0;      // byte offset in the input
};

class AddedTokens {
 public:
  AddedTokens() = default;
  explicit AddedTokens(std::vector<AddedToken> tokens);
  // Splits `text` into ordinary text and added tokens. With `normalized_pass` only the tokens
  // marked normalized=true are matched (they are found in normalized text), otherwise the others.
  std::vector<Segment> split(std::string_view text, bool normalized_pass = false) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool has_normalized() const { return has_normalized_; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> next;  // sorted by byte
    int token = -1;                                   // index into tokens_
  };
  int child(int node, unsigned char c) const;
  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_;
  bool has_normalized_ = false;
};

}  // namespace treg
