// Errors treg reports to users. Every message names what is at fault (file, line, key), what was
// expected versus found, and, where one exists, a hint on how to fix it.
#pragma once
#include <stdexcept>
#include <string>

namespace treg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "<where>: <what>" plus an optional "\n  HINT: <hint>".
[[noreturn]] void fail(const std::string& where, const std::string& what, const std::string& hint = "");

}  // namespace treg

#define TREG_CHECK(cond, where, what)               \
  do {                                              \
    if (!(cond)) ::treg::fail((where), (what));     \
  } while (0)
