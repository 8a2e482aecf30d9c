// Throughput and peak memory of one DPO-REG training step on CPU (forward of chosen+rejected in one
// batch, loss, backward, clip, AdamW step), for the tiny llama and a ≈110M llama-shaped model.
// With --ref it also runs bench/bench_train_step_ref.py (the same step in /usr/bin/python3 torch) and
// prints the ratio. Both use the same number of threads (TREG_NUM_THREADS); run it on an idle machine:
// with other processes busy, more threads than free cores makes LibTorch's OpenMP workers spin.
//   bench_train_step [--steps N] [--pairs B] [--prompt P] [--response R] [--ref]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "treg/build_info.h"
#include "treg/model.h"
#include "treg/runtime.h"
#include "treg/trainer.h"

using namespace treg;

namespace {

nlohmann::json llama_config(int64_t vocab, int64_t hidden, int64_t inter, int64_t layers, int64_t heads,
                            int64_t kv_heads) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", vocab},
          {"hidden_size", hidden},
          {"intermediate_size", inter},
          {"num_hidden_layers", layers},
          {"num_attention_heads", heads},
          {"num_key_value_heads", kv_heads},
          {"max_position_embeddings", 2048},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", true},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
}

std::vector<PairRecord> random_pairs(int64_t n, int64_t vocab, int64_t P, int64_t R) {
  std::mt19937 g(0);
  std::vector<PairRecord> out;
  for (int64_t i = 0; i < n; ++i) {
    PairRecord p;
    for (int64_t t = 0; t < P; ++t) p.prompt_ids.push_back(3 + g() % (vocab - 3));
    for (ResponseScores* r : {&p.chosen, &p.rejected})
      for (int64_t t = 0; t < R; ++t) {
        r->ids.push_back(3 + g() % (vocab - 3));
        r->ref_logps.push_back(-std::log(static_cast<float>(vocab)));
        r->rewards.push_back(0.1f * static_cast<float>(static_cast<int>(g() % 11) - 5));
      }
    out.push_back(std::move(p));
  }
  return out;
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double bench(const std::string& name, const nlohmann::json& cfg, int64_t pairs, int64_t P, int64_t R, int steps) {
  ModelArgs args = model_args_from_json(cfg, name);
  CausalLM model(args, torch::kFloat32);
  init_model_weights(model, 0);
  int64_t nparams = 0;
  for (auto& p : model->parameters()) nparams += p.numel();
  Config c;
  c.model_name_or_path = "(in memory)";
  c.output_dir = "/tmp/treg-bench";
  c.learning_rate = 1e-5;
  c.beta = 0.1;
  c.treg_alpha = 0.25;
  c.per_device_train_batch_size = pairs;
  c.gradient_accumulation_steps = 1;
  auto data = random_pairs(pairs, args.vocab_size, P, R);
  Trainer t(c, model, memory_source(data, "random"), nullptr);
  PairBatch batch = collate_pairs(data, "random");
  std::vector<torch::Tensor> params = model->parameters();
  auto one_step = [&] {
    t.optimizer().zero_grad();
    dynamic_cast<PreferenceObjective&>(t.objective()).compute_loss(model, batch).loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    t.optimizer().step();
  };
  one_step();  // warm-up (allocates optimizer state)
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) one_step();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  const double tok_s = static_cast<double>(batch.num_tokens) / secs;
  std::printf("%-6s params %7.1fM  batch %lld pairs × (%lld prompt + %lld response) tokens = %lld tokens  "
              "step %.3f s  %.0f tokens/s  peak RSS %.0f MiB\n",
              name.c_str(), static_cast<double>(nparams) / 1e6, static_cast<long long>(pairs),
              static_cast<long long>(P), static_cast<long long>(R), static_cast<long long>(batch.num_tokens), secs,
              tok_s, peak_rss_mib());
  return tok_s;
}

double run_ref(const std::string& name, int64_t pairs, int64_t P, int64_t R, int steps) {
  const std::string cmd = std::string("/usr/bin/python3 ") + treg::source_dir() + "/bench/bench_train_step_ref.py --model " +
                          name + " --pairs " + std::to_string(pairs) + " --prompt " + std::to_string(P) +
                          " --response " + std::to_string(R) + " --steps " + std::to_string(steps) +
                          " --threads " + std::to_string(configured_threads());  // same thread count
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 0;
  char buf[4096];
  double tok_s = 0;
  while (fgets(buf, sizeof buf, p)) {
    std::fputs(buf, stdout);
    const char* k = std::strstr(buf, "tokens/s=");
    if (k) tok_s = std::atof(k + 9);
  }
  pclose(p);
  return tok_s;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 3;
  int64_t pairs = 2, P = 64, R = 64;
  bool ref = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--pairs" && i + 1 < argc) pairs = std::atoll(argv[++i]);
    else if (a == "--prompt" && i + 1 < argc) P = std::atoll(argv[++i]);
    else if (a == "--response" && i + 1 < argc) R = std::atoll(argv[++i]);
    else if (a == "--ref") ref = true;
  }
  init_runtime();
  std::printf("threads %d\n", configured_threads());
  struct M {
    const char* name;
    nlohmann::json cfg;
  };
  // tiny: make-tiny's llama shapes; 110m: D 768, 12 layers, 12 heads (4 kv), F 2048, V 32000, tied.
  std::vector<M> models = {{"tiny", llama_config(256, 64, 128, 2, 4, 2)},
                           {"110m", llama_config(32000, 768, 2048, 12, 12, 4)}};
  for (auto& m : models) {
    double ours = bench(m.name, m.cfg, pairs, P, R, steps);
    if (ref) {
      double theirs = run_ref(m.name, pairs, P, R, steps);
      if (theirs > 0) std::printf("%-6s treg / python-torch tokens/s ratio: %.2f\n", m.name, ours / theirs);
    }
  }
  return 0;
}
