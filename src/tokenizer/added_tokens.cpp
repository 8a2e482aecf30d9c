#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cctype>

namespace treg {
namespace {

bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
// Word characters for single_word; non-ASCII bytes count as letters.
bool is_word(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

}  // namespace

AddedTokens::AddedTokens(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  trie_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    if (tokens_[t].content.empty()) continue;
    has_normalized_ |= tokens_[t].normalized;
    int node = 0;
    for (unsigned char c : tokens_[t].content) {
      int n = child(node, c);
      if (n < 0) {
        n = static_cast<int>(trie_.size());
        trie_.emplace_back();
        auto& next = trie_[node].next;
        next.insert(std::lower_bound(next.begin(), next.end(), std::make_pair(c, 0)), {c, n});
      }
      node = n;
    }
    if (trie_[node].token < 0) trie_[node].token = static_cast<int>(t);
  }
}

int AddedTokens::child(int node, unsigned char c) const {
  const auto& next = trie_[node].next;
  auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, 0));
  return it != next.end() && it->first == c ? it->second : -1;
}

std::vector<Segment> AddedTokens::split(std::string_view text, bool normalized_pass) const {
  std::vector<Segment> out;
  size_t plain_begin = 0;  // start of the pending ordinary text
  size_t i = 0;
  while (i < text.size()) {
    // Longest token starting at i (of the kind this pass matches).
    int best = -1;
    size_t best_len = 0;
    int node = 0;
    for (size_t k = i; k < text.size(); ++k) {
      node = child(node, static_cast<unsigned char>(text[k]));
      if (node < 0) break;
      int t = trie_[node].token;
      if (t >= 0 && tokens_[t].normalized == normalized_pass) {
        best = t;
        best_len = k + 1 - i;
      }
    }
    if (best >= 0 && tokens_[best].single_word) {
      bool left_ok = i == 0 || !is_word(static_cast<unsigned char>(text[i - 1]));
      bool right_ok =
          i + best_len >= text.size() || !is_word(static_cast<unsigned char>(text[i + best_len]));
      if (!left_ok || !right_ok) best = -1;
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[best];
    size_t b = i, e = i + best_len;
    if (tok.lstrip)
      while (b > plain_begin && is_space(static_cast<unsigned char>(text[b - 1]))) --b;
    if (tok.rstrip)
      while (e < text.size() && is_space(static_cast<unsigned char>(text[e]))) ++e;
    if (b > plain_begin)
      out.push_back({text.substr(plain_begin, b - plain_begin), -1, plain_begin});
    out.push_back({text.substr(b, e - b), tok.id, b});
    plain_begin = i = e;
  }
  if (plain_begin < text.size()) out.push_back({text.substr(plain_begin), -1, plain_begin});
  return out;
}

}  // namespace treg
