// Synthetic preference data for trainer tests: a learnable signal (chosen responses draw their tokens
// from one id range, rejected ones from another) with reference log-probs computed by the initial
// tiny model, as score-tokens would.
#pragma once
#include <torch/torch.h>

#include <random>

#include "test_util.h"
#include "treg/config.h"
#include "treg/model.h"
#include "treg/train_parts.h"

namespace treg::test {

inline CausalLM load_tiny(const std::string& arch = "llama") {
  return load_model(tiny_model(arch), torch::kCPU, torch::kFloat32);
}

// n pairs; prompt 3-6 tokens from [3, 60), chosen from [60, 120) (+0.3 reward), rejected from [150, 210)
// (-0.3 reward), responses 2-7 tokens. ref_logps are the model's log-probs of the tokens.
inline std::vector<PairRecord> synthetic_pairs(CausalLM& ref, int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  auto uni = [&](int lo, int hi) { return static_cast<int64_t>(lo + g() % static_cast<uint32_t>(hi - lo)); };
  std::vector<PairRecord> out;
  for (int64_t i = 0; i < n; ++i) {
    PairRecord p;
    p.index = i;
    p.source_line = i + 1;
    for (int64_t k = uni(3, 7); k > 0; --k) p.prompt_ids.push_back(uni(3, 60));
    for (int64_t k = uni(2, 8); k > 0; --k) p.chosen.ids.push_back(uni(60, 120));
    for (int64_t k = uni(2, 8); k > 0; --k) p.rejected.ids.push_back(uni(150, 210));
    for (ResponseScores* r : {&p.chosen, &p.rejected}) {
      std::vector<int64_t> seq = p.prompt_ids;
      seq.insert(seq.end(), r->ids.begin(), r->ids.end());
      auto ids = torch::tensor(seq, torch::kInt64).unsqueeze(0);
      torch::NoGradGuard ng;
      auto lp = next_token_logprobs(ref, ids, torch::ones_like(ids)).logps[0];  // [T-1]
      const int64_t P = static_cast<int64_t>(p.prompt_ids.size());
      for (size_t t = 0; t < r->ids.size(); ++t) {
        r->ref_logps.push_back(lp[P + static_cast<int64_t>(t) - 1].item<float>());
        const float rw = (r == &p.chosen ? 0.3f : -0.3f) + 0.1f * static_cast<float>((g() % 3)) - 0.1f;
        r->rewards.push_back(rw);
        r->logp_better.push_back(0.f);
        r->logp_worse.push_back(0.f);
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

inline Config tiny_train_config(const std::string& out_dir) {
  Config c;
  c.model_name_or_path = tiny_model("llama");
  c.output_dir = out_dir;
  c.device = "cpu";
  c.loss_type = "sigmoid";
  c.beta = 0.1;
  c.treg_alpha = 0.25;
  c.learning_rate = 1e-3;
  c.lr_scheduler_type = "cosine";
  c.warmup_ratio = 0.1;
  c.per_device_train_batch_size = 2;
  c.per_device_eval_batch_size = 4;
  c.gradient_accumulation_steps = 2;
  c.logging_steps = 1;
  c.eval_steps = 0;
  c.save_steps = 0;
  c.save_total_limit = 0;
  c.report_pairs = 2;
  c.seed = 7;
  return c;
}

}  // namespace treg::test
