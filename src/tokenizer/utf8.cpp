#include "tokenizer/utf8.h"

namespace treg::utf8 {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is malformed.
size_t valid_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n = c >= 0xC2 && c <= 0xDF   ? 2
             : c >= 0xE0 && c <= 0xEF ? 3
             : c >= 0xF0 && c <= 0xF4 ? 4
                                      : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(k) & 0xC0) != 0x80) return 0;
  // Overlong forms, surrogates and code points above U+10FFFF.
  if (c == 0xE0 && b(1) < 0xA0) return 0;
  if (c == 0xED && b(1) >= 0xA0) return 0;
  if (c == 0xF0 && b(1) < 0x90) return 0;
  if (c == 0xF4 && b(1) >= 0x90) return 0;
  return n;
}

}  // namespace

uint32_t decode_at(std::string_view s, size_t i) {
  size_t n = valid_len(s, i);
  if (n == 0) return 0xFFFD;
  auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k])); };
  if (n == 1) return b(0);
  if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

std::string make_valid(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t n = valid_len(bytes, i);
    if (n) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    // Skip the longest prefix of a would-be sequence (one U+FFFD per maximal subpart, as Rust
    // does).
    size_t skip = 1;
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    size_t want = char_len(c);
    while (want > 1 && skip < want && i + skip < bytes.size() &&
           (static_cast<unsigned char>(bytes[i + skip]) & 0xC0) == 0x80) {
      // Stop where the prefix itself becomes invalid (e.g. E0 80).
      if (skip == 1 && ((c == 0xE0 && static_cast<unsigned char>(bytes[i + 1]) < 0xA0) ||
                        (c == 0xED && static_cast<unsigned char>(bytes[i + 1]) >= 0xA0) ||
                        (c == 0xF0 && static_cast<unsigned char>(bytes[i + 1]) < 0x90) ||
                        (c == 0xF4 && static_cast<unsigned char>(bytes[i + 1]) >= 0x90)))
        break;
      ++skip;
    }
    if (c < 0xC2 || c > 0xF4) skip = 1;
    out += "\xEF\xBF\xBD";
    i += skip;
  }
  return out;
}

}  // namespace treg::utf8
