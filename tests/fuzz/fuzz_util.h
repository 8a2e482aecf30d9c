// What every fuzz target shares: a scratch directory per process for inputs that must be files,
// the real tokenizer fixtures of tests/data, and the one rule all targets check: malformed input
// ends in a treg::Error (caught here); any other exception, crash, leak or undefined behaviour is a
// finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "treg/build_info.h"
#include "treg/error.h"
#include "treg/tokenizer.h"

namespace treg::fuzz {

inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/treg-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    std::string d = tmpl;
    static std::string cleanup = "rm -rf '" + d + "'";
    std::atexit([] { (void)std::system(cleanup.c_str()); });
    return d;
  }();
  return dir;
}

inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
  return path;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Targets that take two parts: what comes before the first NUL byte, and the lines after it.
struct TwoParts {
  std::string head;
  std::vector<std::string> lines;
  bool has_lines = false;  // a NUL was present
};
inline TwoParts split_at_nul(const uint8_t* data, size_t size) {
  const std::string input(as_text(data, size));
  const size_t nul = input.find('\0');
  TwoParts parts{input.substr(0, nul), {}, nul != std::string::npos};
  if (parts.has_lines) {
    std::istringstream rest(input.substr(nul + 1));
    for (std::string line; std::getline(rest, line);) parts.lines.push_back(line);
  }
  return parts;
}

// One of the real tokenizers of tests/data/tokenizers (gunzipped into the scratch directory once).
inline std::unique_ptr<Tokenizer> fixture_tokenizer(const std::string& name) {
  const std::string dir = scratch_dir() + "/" + name;
  const std::string src = source_dir() + "/tests/data/tokenizers/" + name;
  const std::string cmd = "mkdir -p '" + dir + "' && gunzip -c '" + src +
                          "/tokenizer.json.gz' > '" + dir + "/tokenizer.json' && cp '" + src +
                          "/tokenizer_config.json' '" + dir + "/'";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "cannot unpack the %s tokenizer fixture from %s\n", name.c_str(),
                 src.c_str());
    std::abort();
  }
  return load_tokenizer(dir);
}

// Aborts (a finding) with a message when an invariant of a successful parse does not hold.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace treg::fuzz
