// A compiled PCRE2 pattern (UTF + Unicode properties, JIT) for the tokenizer.json `pattern`s
// (internal).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace treg {

class Regex {
 public:
  // `literal` matches `pattern` as plain text ({"String": ...} patterns); `where` names the file
  // for errors.
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Non-overlapping matches, left to right, as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses a tokenizer.json pattern object: {"String": "..."} or {"Regex": "..."}.
std::unique_ptr<Regex> regex_from_json(const nlohmann::json& pattern, const std::string& where);

}  // namespace treg
