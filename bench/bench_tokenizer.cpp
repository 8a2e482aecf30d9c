// Encode throughput of the Llama-3 tokenizer.json on a multi-MB text, line by line as the data
// loader encodes documents. Compare with scripts/bench_tokenizer_ref.mjs (the npm reference
// encoder) on the same text.
//   build/bench_tokenizer [TOKENIZER_DIR_OR_JSON] [TEXT_FILE]
// Defaults: the committed Llama-3 tokenizer and configs/data/tiny_corpus.txt repeated 15 times.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "treg/build_info.h"
#include "treg/io.h"
#include "treg/tokenizer.h"

namespace {

constexpr int kRepeats = 15;  // ~3 MB from the 200 KB corpus

std::string default_tokenizer() {
  const std::string dir = "/tmp/treg-bench-llama3";
  treg::make_dirs(dir);
  const std::string gz =
      treg::source_dir() + "/tests/data/tokenizers/llama3/tokenizer.json.gz";
  if (std::system(("gunzip -c '" + gz + "' > " + dir + "/tokenizer.json").c_str()) != 0) {
    std::fprintf(stderr, "cannot unpack %s\n", gz.c_str());
    std::exit(1);
  }
  return dir + "/tokenizer.json";
}

std::vector<std::string> read_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line + "\n");
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tokenizer_path = argc > 1 ? argv[1] : default_tokenizer();
  std::string text;
  if (argc > 2) {
    text = treg::read_file(argv[2]);
  } else {
    const std::string corpus =
        treg::read_file(treg::source_dir() + "/configs/data/tiny_corpus.txt");
    for (int i = 0; i < kRepeats; ++i) text += corpus;
  }
  const auto lines = read_lines(text);

  auto t0 = std::chrono::steady_clock::now();
  auto tok = treg::load_tokenizer(tokenizer_path);
  auto t1 = std::chrono::steady_clock::now();
  size_t tokens = 0;
  for (const auto& line : lines) tokens += tok->encode(line).size();
  auto t2 = std::chrono::steady_clock::now();

  double load_s = std::chrono::duration<double>(t1 - t0).count();
  double enc_s = std::chrono::duration<double>(t2 - t1).count();
  double mb = text.size() / 1e6;
  std::printf(
      "treg   load %.2f s | encode %.2f MB, %zu lines, %zu tokens in %.3f s: %.2f MB/s, %.0f "
      "tokens/s\n",
      load_s, mb, lines.size(), tokens, enc_s, mb / enc_s, tokens / enc_s);
  return 0;
}
