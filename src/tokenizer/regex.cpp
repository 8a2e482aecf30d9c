#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "tokenizer/utf8.h"
#include "treg/error.h"

namespace treg {

struct Regex::Impl {
  pcre2_code* code = nullptr;
};

Regex::Regex(const std::string& pattern, bool literal, const std::string& where) : impl_(new Impl) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);  // LITERAL rejects UCP
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                              &err, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(where, "cannot compile pattern '" + pattern + "' at offset " + std::to_string(offset) +
                    ": " + reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(impl_->code,
                    PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
}

Regex::~Regex() { pcre2_code_free(impl_->code); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  // One match block per thread: allocating it per call costs more than matching a short word.
  thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
  std::vector<std::pair<size_t, size_t>> out;
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    // NO_UTF_CHECK: callers pass valid UTF-8 (input is validated once per encode).
    int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, data.get(),
                         nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
    size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match: never a piece, step over one character
      if (b >= text.size()) break;
      start = b + utf8::char_len_at(text, b);
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
  return out;
}

std::unique_ptr<Regex> regex_from_json(const nlohmann::json& pattern, const std::string& where) {
  if (pattern.contains("String"))
    return std::make_unique<Regex>(pattern["String"].get<std::string>(), true, where);
  if (pattern.contains("Regex"))
    return std::make_unique<Regex>(pattern["Regex"].get<std::string>(), false, where);
  fail(where, "pattern must be {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
}

}  // namespace treg
