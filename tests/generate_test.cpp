// Generation: the sampling warpers against hand-computed distributions, generate() against a full
// recompute at every step, determinism in the seed, batching, stop tokens.
#include "treg/generate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "test_util.h"
#include "treg/io.h"
#include "treg/model.h"

namespace treg {
namespace {

using nlohmann::json;

// ---- sampling ----

// p = (0.5, 0.3, 0.15, 0.05) as logits.
torch::Tensor four_logits() {
  return torch::log(torch::tensor({0.5, 0.3, 0.15, 0.05}, torch::kFloat32)).view({1, 4});
}

int64_t draw(const GenerateOptions& o, double u) {
  return sample_next_tokens(four_logits(), o, {u})[0].item<int64_t>();
}

TEST(GenerateSampling, InverseCdfOverTheWarpedDistribution) {
  GenerateOptions o;  // temperature 1, no top-k / top-p: CDF 0.5, 0.8, 0.95, 1
  EXPECT_EQ(draw(o, 0.0), 0);
  EXPECT_EQ(draw(o, 0.49), 0);
  EXPECT_EQ(draw(o, 0.51), 1);
  EXPECT_EQ(draw(o, 0.79), 1);
  EXPECT_EQ(draw(o, 0.81), 2);
  EXPECT_EQ(draw(o, 0.96), 3);
  EXPECT_EQ(draw(o, 0.999999), 3);
  // top_p 0.7: ascending cumulative mass 0.05, 0.2, 0.5, 1; tokens while <= 0.3 go (HF's rule),
  // leaving {0.5, 0.3} renormalised to 0.625, 0.375.
  o.top_p = 0.7;
  EXPECT_EQ(draw(o, 0.62), 0);
  EXPECT_EQ(draw(o, 0.63), 1);
  EXPECT_EQ(draw(o, 0.999999), 1);
  // top_k 3 then top_p: {0.5, 0.3, 0.15} / 0.95, ascending mass 0.158, 0.474, 1. top_p 0.9 drops
  // mass <= 0.1: nothing; top_p 0.8 drops mass <= 0.2: token 2.
  o.top_k = 3;
  o.top_p = 0.9;
  EXPECT_EQ(draw(o, 0.999999), 2);
  o.top_p = 0.8;
  EXPECT_EQ(draw(o, 0.999999), 1);
  EXPECT_EQ(draw(o, 0.5 / 0.8 - 1e-6), 0);
  EXPECT_EQ(draw(o, 0.5 / 0.8 + 1e-6), 1);
  o.top_p = 1.0;
  EXPECT_EQ(draw(o, 0.999999), 2);  // top_k 3 alone keeps token 2, never 3
  // temperature 2: p ~ sqrt(p) = (0.7071, 0.5477, 0.3873, 0.2236) / 1.8657: CDF 0.379, 0.673, ...
  o = GenerateOptions{};
  o.temperature = 2.0;
  EXPECT_EQ(draw(o, 0.37), 0);
  EXPECT_EQ(draw(o, 0.39), 1);
  EXPECT_EQ(draw(o, 0.67), 1);
  EXPECT_EQ(draw(o, 0.68), 2);
  // top_k 1 and a tiny top_p leave the argmax whatever u is; temperature 0 is the argmax.
  for (double u : {0.0, 0.5, 0.999}) {
    GenerateOptions k1;
    k1.top_k = 1;
    EXPECT_EQ(draw(k1, u), 0);
    GenerateOptions p0;
    p0.top_p = 1e-9;
    EXPECT_EQ(draw(p0, u), 0);
    GenerateOptions g;
    g.temperature = 0;
    EXPECT_EQ(draw(g, u), 0);
  }
}

// ---- library ----

// Wide-init tiny weights (std 0.3, vocabulary 256, no tokenizer): peaked, varied next-token
// distributions.
std::string wide_model(const std::string& arch) {
  std::string dir = test::fresh_dir("gen-" + arch + "-" + std::to_string(::getpid()));
  std::string out;
  int rc = test::run_command(test::treg_binary() + " make-tiny --arch " + arch +
                                 " --seed 3 --init-std 0.3 --vocab-size 256 --out '" + dir + "'",
                             &out);
  if (rc != 0) throw std::runtime_error("make-tiny failed: " + out);
  return dir;
}

std::vector<std::vector<int64_t>> prompts_of(std::vector<int64_t> lengths) {
  std::mt19937 rng(21);
  std::vector<std::vector<int64_t>> out;
  for (int64_t n : lengths) {
    std::vector<int64_t> p(static_cast<size_t>(n));
    for (auto& id : p) id = static_cast<int64_t>(rng() % 256u);
    out.push_back(p);
  }
  return out;
}

GenerateOptions greedy(int64_t n) {
  GenerateOptions o;
  o.temperature = 0;
  o.max_new_tokens = n;
  return o;
}

// Next-token log-softmax at the last position of `seq`, from a full forward.
torch::Tensor full_next_logps(CausalLM& model, const std::vector<int64_t>& seq) {
  torch::Tensor ids = torch::tensor(seq, torch::kInt64).view({1, -1});
  torch::Tensor hidden = model->forward(ids, torch::ones_like(ids));  // [1, T, D]
  return torch::log_softmax(model->lm_logits(hidden[0][-1]), -1);     // [V]
}

TEST(Generate, GreedyEqualsArgmaxOfAFullRecomputeAtEveryStep) {
  for (const char* arch : {"llama", "gemma2", "phi3"}) {
    CausalLM model = load_model(wide_model(arch), torch::kCPU, torch::kFloat32);
    auto prompts = prompts_of({7, 13});
    GenerateResult res = generate(model, prompts, greedy(12));
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_EQ(res.ids[i].size(), 12u) << arch;
      EXPECT_FALSE(res.stopped[i]);
      std::vector<int64_t> seq = prompts[i];
      for (int64_t id : res.ids[i]) {
        torch::Tensor lsm = full_next_logps(model, seq);
        EXPECT_EQ(lsm.argmax().item<int64_t>(), id)
            << arch << " prompt " << i << " at " << seq.size();
        // next_token_logprobs of the chosen token is the maximum log-prob there (phi3's longrope
        // picks its table by the whole length, so there seq + [id] may score the prefix
        // differently).
        seq.push_back(id);
        if (std::string(arch) == "phi3") continue;
        torch::Tensor ids = torch::tensor(seq, torch::kInt64).view({1, -1});
        const double lp =
            next_token_logprobs(model, ids, torch::ones_like(ids)).logps[0][-1].item<double>();
        EXPECT_NEAR(lp, lsm.max().item<double>(), 1e-5) << arch;
      }
    }
    EXPECT_EQ(res.new_tokens, 24);
    EXPECT_EQ(res.prompt_tokens, 20);
  }
}

TEST(Generate, TopKOneAndTinyTopPAreGreedy) {
  CausalLM model = load_model(wide_model("qwen3"), torch::kCPU, torch::kFloat32);
  auto prompts = prompts_of({5, 11, 8});
  GenerateResult want = generate(model, prompts, greedy(10));
  GenerateOptions k1;
  k1.max_new_tokens = 10;
  k1.top_k = 1;
  k1.seed = 5;
  EXPECT_EQ(generate(model, prompts, k1).ids, want.ids);
  GenerateOptions p0;
  p0.max_new_tokens = 10;
  p0.top_p = 1e-9;
  p0.seed = 6;
  EXPECT_EQ(generate(model, prompts, p0).ids, want.ids);
}

TEST(Generate, SeedDecidesTheSamples) {
  CausalLM model = load_model(wide_model("llama"), torch::kCPU, torch::kFloat32);
  auto prompts = prompts_of({6, 9});
  GenerateOptions o;
  o.max_new_tokens = 16;
  o.temperature = 1.5;
  o.top_k = 50;
  o.top_p = 0.95;
  o.seed = 1;
  GenerateResult a = generate(model, prompts, o), b = generate(model, prompts, o);
  EXPECT_EQ(a.ids, b.ids);
  o.seed = 2;
  GenerateResult c = generate(model, prompts, o);
  EXPECT_NE(a.ids[0], c.ids[0]);
  EXPECT_NE(a.ids[1], c.ids[1]);
  EXPECT_NE(a.ids, generate(model, prompts, greedy(16)).ids);
}

TEST(Generate, StopsOnAStopIdAndLeavesItOut) {
  CausalLM model = load_model(wide_model("mistral"), torch::kCPU, torch::kFloat32);
  auto prompts = prompts_of({9});
  std::vector<int64_t> free_run = generate(model, prompts, greedy(12)).ids[0];
  // The first token whose first occurrence is at index >= 2 becomes the EOS.
  size_t at = 2;
  while (at < free_run.size() &&
         std::find(free_run.begin(), free_run.begin() + static_cast<std::ptrdiff_t>(at),
                   free_run[at]) != free_run.begin() + static_cast<std::ptrdiff_t>(at))
    ++at;
  ASSERT_LT(at, free_run.size());
  GenerateOptions o = greedy(12);
  o.stop_ids = {free_run[at], 255};
  GenerateResult res = generate(model, prompts, o);
  EXPECT_TRUE(res.stopped[0]);
  EXPECT_EQ(res.ids[0], std::vector<int64_t>(free_run.begin(),
                                             free_run.begin() + static_cast<std::ptrdiff_t>(at)));
  EXPECT_EQ(res.new_tokens, static_cast<int64_t>(at) + 1);  // the stop token was generated
}

// Prompts of different lengths batched (left padding, rows leaving as they stop) give what each
// prompt gives alone; sampled too, since every prompt draws from its own stream.
TEST(Generate, BatchEqualsEachPromptAlone) {
  for (const char* arch : {"gemma3", "qwen2"}) {
    CausalLM model = load_model(wide_model(arch), torch::kCPU, torch::kFloat32);
    auto prompts = prompts_of({3, 14, 7, 10, 1});
    for (double temperature : {0.0, 1.0}) {
      GenerateOptions o = greedy(9);
      o.temperature = temperature;
      o.seed = 11;
      o.batch_size = 1;
      std::vector<int64_t> stops;  // stop some rows early: their second greedy token
      GenerateResult alone = generate(model, prompts, o);
      for (const auto& ids : alone.ids) stops.push_back(ids[1]);
      o.stop_ids = {stops[1], stops[3]};
      alone = generate(model, prompts, o);
      o.batch_size = 4;
      int64_t progress_prompts = 0, progress_tokens = 0;
      GenerateResult batched = generate(model, prompts, o, [&](int64_t p, int64_t t) {
        progress_prompts += p;
        progress_tokens += t;
      });
      EXPECT_EQ(batched.ids, alone.ids) << arch << " temperature " << temperature;
      EXPECT_EQ(batched.stopped, alone.stopped);
      EXPECT_EQ(batched.new_tokens, alone.new_tokens);
      EXPECT_EQ(progress_prompts, 5);
      EXPECT_EQ(progress_tokens, batched.new_tokens);
      EXPECT_TRUE(std::find(alone.stopped.begin(), alone.stopped.end(), true) !=
                  alone.stopped.end());
    }
  }
}

TEST(Generate, Bf16AutocastRuns) {
  CausalLM model = load_model(wide_model("gemma2"), torch::kCPU, torch::kFloat32);
  GenerateOptions o = greedy(5);
  o.bf16 = true;
  GenerateResult res = generate(model, prompts_of({4, 6}), o);
  EXPECT_EQ(res.ids[0].size(), 5u);
  EXPECT_EQ(res.ids[1].size(), 5u);
}

TEST(Generate, BadOptionsAndPromptsAreNamed) {
  CausalLM model = load_model(wide_model("llama"), torch::kCPU, torch::kFloat32);
  GenerateOptions o;
  o.top_p = 0;
  EXPECT_NE(test::error_of([&] { generate(model, prompts_of({3}), o); }).find("top_p"),
            std::string::npos);
  std::string m = test::error_of([&] { generate(model, {{1, 2}, {3, 999}}, GenerateOptions{}); });
  EXPECT_NE(m.find("prompt 1"), std::string::npos) << m;
  EXPECT_NE(m.find("999"), std::string::npos) << m;
  EXPECT_NE(test::error_of([&] { generate(model, {{}}, GenerateOptions{}); }).find("empty"),
            std::string::npos);
}

}  // namespace
}  // namespace treg
