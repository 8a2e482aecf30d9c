// UTF-8 helpers shared by the tokenizer stages (internal).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace treg::utf8 {

// Bytes in the UTF-8 sequence that starts with byte `c` (1 for stray continuation bytes).
inline size_t char_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// Length of the character at s[i], clipped to the end of s.
inline size_t char_len_at(std::string_view s, size_t i) {
  size_t n = char_len(static_cast<unsigned char>(s[i]));
  return n < s.size() - i ? n : s.size() - i;
}

inline void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the character at s[i]; returns U+FFFD for malformed input.
uint32_t decode_at(std::string_view s, size_t i);

// `bytes` with every malformed sequence replaced by U+FFFD, as Rust's String::from_utf8_lossy does.
std::string make_valid(std::string_view bytes);

}  // namespace treg::utf8
