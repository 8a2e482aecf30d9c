// "Did you mean": the known name nearest to a mistyped one (config keys, subcommands).
#pragma once
#include <string>
#include <vector>

namespace treg {

// Levenshtein distance (insertions, deletions, substitutions of bytes).
size_t edit_distance(const std::string& a, const std::string& b);
// The candidate nearest to `name` by edit distance; the first of equals; "" for no candidates.
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace treg
