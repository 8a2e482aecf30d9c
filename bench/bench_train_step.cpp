// Time and peak memory of one DPO-REG training step on CPU or one CUDA GPU (forward of chosen+rejected, loss,
// backward, clip, AdamW step) in treg's two pair layouts -- padded rows (TRL's layout) and
// prefix-shared trees (`packing: true`) -- against peers running the same step (same model shape,
// same pairs, same thread count). Prints per step: seconds, tokens/s of the 2B sequences, user and
// system CPU seconds (system time is where OpenMP spinning and page faults show), peak RSS, and the
// ratios. Run it on an idle machine, as root for --hf.
//   bench_train_step [--steps N] [--pairs B] [--models tiny,9m,110m,1b] [--workload uf|fixed]
//                    [--prompt P] [--response R] [--ref] [--hf] [--device cuda] [--bf16]
// --device cuda: the step on the GPU (synchronised before each clock read), with the caching
// allocator's peak memory and the MFU of the 2B sequences' model FLOPs against --peak-tflops
// (default 989, the H100/H200 dense bf16 datasheet figure). --bf16: autocast bf16 forward over the
// fp32 master weights (treg's bf16: true; the HF peer does the same with torch.autocast).
// --ref: the same step in /usr/bin/python3 (Debian's torch 1.13, TRL's padded math, same kernels);
// --hf: HF transformers + torch 2.x doing TRL's DPO step: with this process's python3 when it has
// transformers (treg built in the Debian sid root: both on LibTorch 2.x), else in that root
// (bench/hf_peer.sh).
// Workload "uf" (default): UltraFeedback-shaped lengths -- lognormal (σ 0.6) prompt and responses,
// mean prompt/response ratio 0.42, response mean R (default 128) -- a fresh batch every step, the
// same batches for every peer. "fixed": every pair P + R, R tokens.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "treg/build_info.h"
#include "treg/io.h"
#include "treg/model.h"
#include "treg/autocast.h"
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
          {"max_position_embeddings", 4096},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", true},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
}

struct Lengths {
  int64_t prompt, chosen, rejected;
};

// steps + 1 batches (the first is the warm-up) of `pairs` pairs each.
std::vector<std::vector<Lengths>> workload(const std::string& kind, int64_t batches, int64_t pairs, int64_t P,
                                           int64_t R) {
  std::mt19937_64 g(42);
  const double sigma = 0.6;
  // E[lognormal(mu, σ)] = exp(mu + σ²/2)
  std::lognormal_distribution<double> prompt(std::log(0.42 * static_cast<double>(R)) - sigma * sigma / 2, sigma),
      response(std::log(static_cast<double>(R)) - sigma * sigma / 2, sigma);
  auto draw = [&](std::lognormal_distribution<double>& d) {
    return std::clamp<int64_t>(std::llround(d(g)), 4, 8 * R);
  };
  std::vector<std::vector<Lengths>> out(static_cast<size_t>(batches));
  for (auto& b : out)
    for (int64_t i = 0; i < pairs; ++i)
      b.push_back(kind == "fixed" ? Lengths{P, R, R} : Lengths{draw(prompt), draw(response), draw(response)});
  return out;
}

std::vector<PairRecord> random_pairs(const std::vector<Lengths>& lengths, int64_t vocab, uint64_t seed) {
  std::mt19937 g(static_cast<uint32_t>(seed));
  std::vector<PairRecord> out;
  for (const Lengths& l : lengths) {
    PairRecord p;
    for (int64_t t = 0; t < l.prompt; ++t) p.prompt_ids.push_back(3 + g() % (vocab - 3));
    for (auto [r, n] : {std::pair{&p.chosen, l.chosen}, std::pair{&p.rejected, l.rejected}})
      for (int64_t t = 0; t < n; ++t) {
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

std::pair<double, double> cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return {s(u.ru_utime), s(u.ru_stime)};
}

struct Result {
  double step_s = 0, tokens_per_s = 0;
  double peak_gib = -1;  // the CUDA caching allocator's peak over the timed steps; -1 on CPU
};

struct Target {
  torch::Device device = torch::kCPU;
  bool bf16 = false;
  double peak_tflops = 989.0;
};

// Model FLOPs of training on sequences of these lengths (forward + backward = 3 forwards): 6 per
// matmul parameter per token (the layers' projections and the LM head) plus causal attention,
// 6 * L * D * len^2 per sequence (QK^T and AV, half the square each).
double train_flops(const ModelArgs& a, const std::vector<Lengths>& batch) {
  const double D = static_cast<double>(a.hidden_size), L = static_cast<double>(a.num_layers);
  const double kv = static_cast<double>(a.num_kv_heads * a.head_dim);
  const double per_layer = D * static_cast<double>(a.num_heads * a.head_dim) * 2 + D * kv * 2 +
                           3 * D * static_cast<double>(a.intermediate_size);
  const double matmul_params = L * per_layer + D * static_cast<double>(a.vocab_size);
  double flops = 0;
  for (const Lengths& l : batch)
    for (int64_t n : {l.prompt + l.chosen, l.prompt + l.rejected}) {
      const double len = static_cast<double>(n);
      flops += 6 * matmul_params * len + 6 * L * D * len * len;
    }
  return flops;
}

Result bench(const std::string& name, const nlohmann::json& cfg, bool packing,
             const std::vector<std::vector<Lengths>>& batches, const Target& target) {
  ModelArgs args = model_args_from_json(cfg, name);
  CausalLM model(args, torch::kFloat32);
  init_model_weights(model, 0);
  model->to(target.device);
  const bool cuda = target.device.is_cuda();
  auto sync = [&] {
    if (cuda) torch::cuda::synchronize();
  };
  int64_t nparams = 0;
  for (auto& p : model->parameters()) nparams += p.numel();
  Config c;
  c.model_name_or_path = "(in memory)";
  c.output_dir = "/tmp/treg-bench";
  c.learning_rate = 1e-5;
  c.beta = 0.1;
  c.treg_alpha = 0.25;
  c.packing = packing;
  c.bf16 = target.bf16;
  c.per_device_train_batch_size = static_cast<int64_t>(batches[0].size());
  c.gradient_accumulation_steps = 1;
  std::vector<PairBatch> collated;
  std::vector<PairRecord> all;
  for (size_t i = 0; i < batches.size(); ++i) {
    auto pairs = random_pairs(batches[i], args.vocab_size, i);
    all.insert(all.end(), pairs.begin(), pairs.end());
  }
  Trainer t(c, model, memory_source(all, "random"), nullptr);
  auto& objective = dynamic_cast<PreferenceObjective&>(t.objective());
  for (size_t i = 0; i < batches.size(); ++i)
    collated.push_back(objective.collate(random_pairs(batches[i], args.vocab_size, i), "random", args));
  std::vector<torch::Tensor> params = model->parameters();
  auto one_step = [&](const PairBatch& batch) {
    t.optimizer().zero_grad();
    objective.compute_loss(model, batch).loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    t.optimizer().step();
  };
  one_step(collated[0]);  // warm-up (allocates optimizer state)
  sync();
  reset_cuda_peak(target.device);
  int64_t tokens = 0, forward_tokens = 0;
  double flops = 0;
  const auto [u0, s0] = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 1; i < collated.size(); ++i) {
    one_step(collated[i]);
    tokens += collated[i].num_tokens;
    forward_tokens += collated[i].forward_tokens;
    flops += train_flops(args, batches[i]);
  }
  sync();
  const double steps = static_cast<double>(collated.size() - 1);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  const auto [u1, s1] = cpu_seconds();
  Result r{secs, static_cast<double>(tokens) / steps / secs};
  if (cuda) r.peak_gib = static_cast<double>(cuda_peak_allocated_bytes(target.device)) / (1 << 30);
  const char* label = packing ? "treg packed" : "treg padded";
  if (cuda)
    std::printf("%-5s %-13s %7.1fM params  %6.0f tokens/step (%6.0f run)  step %7.3f s  %8.0f tokens/s  "
                "MFU %5.1f%% (of %.0f TFLOP/s)  peak CUDA memory %6.2f GiB%s\n",
                name.c_str(), label, static_cast<double>(nparams) / 1e6, static_cast<double>(tokens) / steps,
                static_cast<double>(forward_tokens) / steps, secs, r.tokens_per_s,
                100.0 * flops / steps / secs / (target.peak_tflops * 1e12), target.peak_tflops,
                r.peak_gib, target.bf16 ? "  (bf16 autocast)" : "");
  else
    std::printf("%-5s %-13s %7.1fM params  %6.0f tokens/step (%6.0f run)  step %7.3f s  %8.0f tokens/s  "
                "cpu user %6.3f s sys %6.3f s per step  peak RSS %5.0f MiB\n",
                name.c_str(), label, static_cast<double>(nparams) / 1e6, static_cast<double>(tokens) / steps,
                static_cast<double>(forward_tokens) / steps, secs, r.tokens_per_s, (u1 - u0) / steps,
                (s1 - s0) / steps, peak_rss_mib());
  return r;
}

// A peer: `command` + " LENGTHS.json" runs the step on the batches of that file and prints
// "step_s=<seconds>" (and on CUDA "peak_cuda_gib=<GiB>"). Returns its seconds per step (0 when it
// printed none) and peak memory (-1 when none).
Result run_peer(const std::string& command, const std::vector<std::vector<Lengths>>& batches) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& b : batches) {
    nlohmann::json row = nlohmann::json::array();
    for (const Lengths& l : b) row.push_back({l.prompt, l.chosen, l.rejected});
    j.push_back(row);
  }
  const std::string file = "/tmp/treg-bench-lengths-" + std::to_string(::getpid()) + ".json";
  write_file_atomic(file, j.dump());
  FILE* p = popen((command + " " + file + " 2>&1").c_str(), "r");
  Result r;
  if (p) {
    char buf[4096];
    while (fgets(buf, sizeof buf, p)) {
      std::fputs(buf, stdout);
      if (const char* k = std::strstr(buf, "step_s=")) r.step_s = std::atof(k + 7);
      if (const char* k = std::strstr(buf, "peak_cuda_gib=")) r.peak_gib = std::atof(k + 14);
    }
    pclose(p);
  }
  std::remove(file.c_str());
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  treg::select_blas_kernels(argv);
  int steps = 4;
  int64_t pairs = 4, P = 54, R = 128;
  std::string kind = "uf", models = "tiny,9m";
  bool ref = false, hf = false;
  Target target;
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--steps") steps = std::stoi(next());
    else if (a == "--pairs") pairs = std::stoll(next());
    else if (a == "--prompt") P = std::stoll(next());
    else if (a == "--response") R = std::stoll(next());
    else if (a == "--workload") kind = next();
    else if (a == "--models") models = next();
    else if (a == "--ref") ref = true;
    else if (a == "--hf") hf = true;
    else if (a == "--device") device = next();
    else if (a == "--bf16") target.bf16 = true;
    else if (a == "--peak-tflops") target.peak_tflops = std::stod(next());
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  init_runtime();
  target.device = parse_device(device);
  const auto batches = workload(kind, steps + 1, pairs, P, R);
  std::printf("bench_train_step: %s, %d threads, workload %s, %lld pairs per step, %d timed steps (after one warm-up)\n",
              target.device.str().c_str(), configured_threads(), kind.c_str(), static_cast<long long>(pairs), steps);
  // Shapes (Llama, tied embeddings) -- the same table is in bench_train_step_ref.py.
  const std::map<std::string, nlohmann::json> shapes = {
      {"tiny", llama_config(256, 64, 128, 2, 4, 2)},
      {"9m", llama_config(16000, 256, 688, 6, 8, 4)},
      {"110m", llama_config(32000, 768, 2048, 12, 12, 4)},
      {"1b", llama_config(128256, 2048, 8192, 16, 32, 8)}};  // Llama-3.2-1B
  std::stringstream list(models);
  for (std::string name; std::getline(list, name, ',');) {
    auto it = shapes.find(name);
    if (it == shapes.end()) {
      std::fprintf(stderr, "unknown model %s (tiny, 9m, 110m, 1b)\n", name.c_str());
      return 2;
    }
    Result padded = bench(name, it->second, false, batches, target);
    Result packed = bench(name, it->second, true, batches, target);
    std::printf("%-5s treg packed vs treg padded: %.2fx faster\n", name.c_str(), padded.step_s / packed.step_s);
    // The peers are other processes: the memory this one's allocator still caches is theirs now.
    release_cuda_cache();
    std::string threads = std::to_string(configured_threads());
    if (target.device.is_cuda()) threads += std::string(" --device cuda") + (target.bf16 ? " --bf16" : "");
    auto compare = [&](const char* peer, const std::string& command) {
      const Result theirs = run_peer(command, batches);
      if (theirs.step_s > 0) {
        std::printf("%-5s vs %s: treg padded %.2fx, treg packed %.2fx faster\n", name.c_str(), peer,
                    theirs.step_s / padded.step_s, theirs.step_s / packed.step_s);
        if (theirs.peak_gib > 0 && packed.peak_gib > 0)
          std::printf("%-5s peak memory vs %s: treg padded %.2fx, treg packed %.2fx of theirs\n", name.c_str(),
                      peer, padded.peak_gib / theirs.peak_gib, packed.peak_gib / theirs.peak_gib);
      } else
        std::printf("%-5s %s: no result\n", name.c_str(), peer);
    };
    if (ref)
      compare("python3-torch (TRL's padded math)",
              "/usr/bin/python3 " + treg::source_dir() + "/bench/bench_train_step_ref.py --model " + name +
                  " --threads " + threads + " --lengths");
    if (hf)  // transformers here (treg built in the sid root), or run it in the sid root
      compare("HF transformers + torch 2.x (TRL's DPO step)",
              std::system("python3 -c 'import transformers' > /dev/null 2>&1") == 0
                  ? "python3 " + treg::source_dir() + "/bench/bench_train_step_hf.py --model " + name +
                        " --threads " + threads + " --lengths"
                  : "bash " + treg::source_dir() + "/bench/hf_peer.sh " + name + " " + threads);
  }
  return 0;
}
