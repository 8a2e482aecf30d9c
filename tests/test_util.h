// Helpers shared by the tests: scratch directories, running the treg binary and python3-torch.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace treg::test {

// An empty directory under the build tree's test-tmp/, unique to `name` (wiped first).
std::string fresh_dir(const std::string& name);
std::vector<std::string> list_dir(const std::string& dir);
// Runs a shell command; returns its exit code and puts stdout+stderr into *output.
int run_command(const std::string& cmd, std::string* output = nullptr);
// Path of the built treg executable.
std::string treg_binary();
// Path of a file in the source tree, e.g. source_path("scripts/ref_model.py").
std::string source_path(const std::string& rel);
// Debian's python3 with torch (not the python3 first on PATH).
std::string python_with_torch();
// A tiny checkpoint made once per build tree with `treg make-tiny --arch <arch> --seed 0`, shared
// by all test processes. Tests must not modify it: copy it first.
std::string tiny_model(const std::string& arch);

// A scratch model directory of the running test alone (ctest runs tests in parallel processes) with
// the real tokenizer files of tests/data/tokenizers/<name>: tokenizer.json (committed gzipped) and
// tokenizer_config.json.
std::string unpack_tokenizer_fixture(const std::string& name);

// The message of the treg::Error that `f` throws; "" when it throws none.
std::string error_of(const std::function<void()>& f);

}  // namespace treg::test
