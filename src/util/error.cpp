#include "treg/error.h"

namespace treg {

void fail(const std::string& where, const std::string& what, const std::string& hint) {
  std::string msg = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) msg += "\n  HINT: " + hint;
  throw Error(msg);
}

}  // namespace treg
