// bench_score_tokens: throughput of `treg score-tokens` (3 contexts per response: plain, better,
// worse) on CPU, on the tiny llama model and on a ~100M-parameter random Llama-style model, over
// the bundled preference data, with `packing` off and on. "model tok/s" counts the tokens the
// forwards run (a shared prefix once).
//
// Usage: bench_score_tokens [WORK_DIR] [PAIRS_TINY=64] [PAIRS_100M=8] [DATA.jsonl]
// DATA defaults to the bundled configs/data/tiny_prefs.train.jsonl; bench/make_uf_shaped_prefs.py
// writes UltraFeedback-shaped rows.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "treg/build_info.h"
#include "treg/config.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/rewards.h"
#include "treg/runtime.h"
#include "treg/tiny_tokenizer.h"
#include "treg/tokenizer.h"

namespace {

using namespace treg;

// A random checkpoint + the tiny llama tokenizer. hidden/layers/ffn/vocab give the size.
std::string make_model(const std::string& dir, int64_t hidden, int64_t layers, int64_t ffn,
                       int64_t heads, int64_t vocab) {
  make_dirs(dir);
  const int64_t tok_vocab = write_tiny_tokenizer("llama", dir);
  auto tok = load_tokenizer(dir);
  TinySpec spec;
  spec.arch = "llama";
  spec.vocab_size = std::max(vocab, tok_vocab);
  spec.seed = 0;
  spec.bos_token_id = tok->special().bos_id;
  spec.eos_token_ids = tok->special().eos_ids;
  nlohmann::json cfg = tiny_config(spec);
  if (hidden > 0) {
    cfg["hidden_size"] = hidden;
    cfg["num_hidden_layers"] = layers;
    cfg["intermediate_size"] = ffn;
    cfg["num_attention_heads"] = heads;
    cfg["num_key_value_heads"] = heads;
    cfg["head_dim"] = hidden / heads;
    cfg["max_position_embeddings"] = 2048;
  }
  CausalLM model(model_args_from_json(cfg, dir + "/config.json"));
  init_model_weights(model, 0, 0.02);
  save_model(model, dir, torch::kFloat32);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  std::printf("  model %s: %.1fM parameters (hidden %lld, layers %lld, vocab %lld)\n", dir.c_str(),
              params / 1e6, static_cast<long long>(cfg["hidden_size"].get<int64_t>()),
              static_cast<long long>(cfg["num_hidden_layers"].get<int64_t>()),
              static_cast<long long>(cfg["vocab_size"].get<int64_t>()));
  return dir;
}

void bench(const std::string& name, const std::string& model, const std::string& work,
           const std::string& source, int pairs, int64_t batch, bool packing) {
  // The first `pairs` pairs of `source`.
  std::ifstream in(source);
  std::string line, rows;
  for (int i = 0; i < pairs && std::getline(in, line); ++i) rows += line + "\n";
  const std::string data = path_join(work, name + ".jsonl");
  write_file_atomic(data, rows);
  Config c = parse_config("model_name_or_path: " + model + "\ntrain_file: " + data +
                              "\noutput_dir: " + work + "/" + name +
                              "\ndevice: cpu\nscore_batch_size: " + std::to_string(batch) +
                              "\npacking: " + (packing ? "true" : "false") + "\n",
                          "bench");
  std::remove(c.reward_dump_path().c_str());
  std::remove((c.reward_dump_path() + ".partial").c_str());
  ScoreSummary s = score_tokens(c, "train", /*progress=*/false);
  std::printf(
      "  %-6s %-13s %3lld pairs  %6.2f s  %7.2f pairs/s  %9.0f response tok/s  %9.0f model tok/s "
      "(the 6 contexts' tokens run)\n",
      name.c_str(), packing ? "packing: true" : "packing: false", static_cast<long long>(s.scored), s.seconds, s.scored / s.seconds,
      s.response_tokens / s.seconds, s.context_tokens / s.seconds);
  // Where every token costs the same, sharing prefixes makes scoring at most (tokens in the
  // contexts) / (tokens run) times faster than running each context alone.
  const double per_pair = static_cast<double>(std::max<int64_t>(1, s.scored));
  std::printf(
      "         tokens per pair: %.0f run, %.0f in the contexts each alone (%.2fx); %.0f scored\n",
      s.context_tokens / per_pair, s.unshared_tokens / per_pair,
      static_cast<double>(s.unshared_tokens) / static_cast<double>(std::max<int64_t>(1, s.context_tokens)),
      s.response_tokens / per_pair);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && argv[1][0] == '-') {  // positional arguments only: a flag is a request for usage
    std::printf("usage: bench_score_tokens [WORK_DIR] [PAIRS_TINY=64] [PAIRS_100M=8] [DATA.jsonl]\n"
                "  DATA: default the bundled tiny_prefs.train.jsonl; bench/make_uf_shaped_prefs.py "
                "writes UltraFeedback-shaped rows\n");
    return std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ? 0 : 2;
  }
  treg::select_blas_kernels(argv);
  init_runtime();
  spdlog::set_level(spdlog::level::warn);
  const std::string work = argc > 1 ? argv[1] : "bench-score-tokens";
  const int tiny_pairs = argc > 2 ? std::atoi(argv[2]) : 64;
  const int big_pairs = argc > 3 ? std::atoi(argv[3]) : 8;
  const std::string source = argc > 4 ? argv[4]
                                      : path_join(treg::source_dir(), "configs/data/tiny_prefs.train.jsonl");
  make_dirs(work);
  std::printf("bench_score_tokens: CPU, %d threads, fp32, score_batch_size 4, data %s\n",
              configured_threads(), source.c_str());
  std::string tiny = make_model(work + "/tiny", 0, 0, 0, 0, 0);
  // ~100M: D 768, 12 layers, F 2048, 12 heads, V 16384 -> 12 * (4 * 768^2 + 3 * 768 * 2048) + 2 *
  // 16384 * 768.
  std::string big = make_model(work + "/m100", 768, 12, 2048, 12, 16384);
  // The revision contexts are prefix trees either way; `packing` lays the plain ones out as pairs.
  for (bool packing : {false, true}) {
    bench("tiny", tiny, work, source, tiny_pairs, 4, packing);
    bench("100M", big, work, source, big_pairs, 4, packing);
  }
  return 0;
}
