// How a model does on a seed's held-out credit pairs: the AUROC of its token log-ratio rewards at
// the planted errors, and its greedy accuracy on the held-out questions.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "treg/credit_bench.h"
#include "treg/error.h"
#include "treg/generate.h"
#include "treg/rewards.h"

namespace treg {

std::vector<std::vector<float>> response_logprobs(CausalLM& model,
                                                  const std::vector<TokenizedPair>& pairs,
                                                  int64_t batch_size) {
  // Responses laid out after their prompt, one per row, right padded.
  struct Row {
    const std::vector<int64_t>* prompt;
    const std::vector<int64_t>* response;
  };
  std::vector<Row> rows;
  for (const TokenizedPair& p : pairs) {
    rows.push_back({&p.prompt_ids, &p.chosen_ids});
    rows.push_back({&p.prompt_ids, &p.rejected_ids});
  }
  const torch::Device device = model->parameters().front().device();
  torch::NoGradGuard no_grad;
  std::vector<std::vector<float>> out(rows.size());
  const size_t bs = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  for (size_t start = 0; start < rows.size(); start += bs) {
    const size_t end = std::min(rows.size(), start + bs);
    int64_t T = 0;
    for (size_t i = start; i < end; ++i)
      T = std::max<int64_t>(T, static_cast<int64_t>(rows[i].prompt->size() + rows[i].response->size()));
    const int64_t B = static_cast<int64_t>(end - start);
    torch::Tensor ids = torch::zeros({B, T}, torch::kInt64), mask = torch::zeros({B, T}, torch::kInt64);
    auto a = ids.accessor<int64_t, 2>();
    auto m = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t t = 0;
      const Row& r = rows[start + static_cast<size_t>(b)];
      for (int64_t id : *r.prompt) a[b][t] = id, m[b][t++] = 1;
      for (int64_t id : *r.response) a[b][t] = id, m[b][t++] = 1;
    }
    torch::Tensor lp =
        next_token_logprobs(model, ids.to(device), mask.to(device)).logps.to(torch::kCPU, torch::kFloat32);
    auto l = lp.accessor<float, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const Row& r = rows[start + static_cast<size_t>(b)];
      const int64_t P = static_cast<int64_t>(r.prompt->size());
      std::vector<float>& v = out[start + static_cast<size_t>(b)];
      // Token P + t is predicted at position P + t - 1.
      for (size_t t = 0; t < r.response->size(); ++t) v.push_back(l[b][P + static_cast<int64_t>(t) - 1]);
    }
  }
  return out;
}

double credit_logratio_auroc(const std::vector<std::vector<float>>& policy_logps,
                             const std::vector<std::vector<float>>& ref_logps,
                             const std::vector<CreditTokenLabels>& labels, double beta) {
  if (policy_logps.size() != ref_logps.size() || policy_logps.size() != 2 * labels.size())
    fail("credit-bench", "log-probs of " + std::to_string(policy_logps.size()) + " and " +
                             std::to_string(ref_logps.size()) + " responses for " +
                             std::to_string(labels.size()) + " pairs");
  std::vector<double> scores;
  std::vector<int> is_error;
  for (size_t i = 0; i < policy_logps.size(); ++i) {
    const CreditTokenLabels& l = labels[i / 2];
    const bool chosen = i % 2 == 0;
    const std::vector<float>& pol = policy_logps[i];
    const std::vector<float>& ref = ref_logps[i];
    std::vector<float> reward(pol.size());
    for (size_t t = 0; t < pol.size(); ++t)
      reward[t] = static_cast<float>(beta * (static_cast<double>(pol[t]) - ref[t]));
    append_item_scores(reward, chosen ? l.chosen : l.rejected,
                       chosen ? l.chosen_item : l.rejected_item, &scores, &is_error);
  }
  return credit_reward_auroc(scores, is_error);
}

double credit_greedy_accuracy(CausalLM& model, const Tokenizer& tok, const ChatTemplate& chat,
                              const std::vector<TokenizedPair>& pairs, int64_t max_items,
                              int64_t batch_size) {
  if (pairs.empty()) fail("credit-bench", "no held-out pairs to answer");
  GenerateOptions g;
  g.temperature = 0;
  // A digit and a space per item, plus room for whatever else the model says before stopping.
  g.max_new_tokens = 2 * max_items + 4;
  g.batch_size = batch_size;
  g.stop_ids = generation_stop_ids(tok, model->args(), chat);
  std::vector<std::vector<int64_t>> prompts;
  for (const TokenizedPair& p : pairs) prompts.push_back(p.prompt_ids);
  GenerateResult res = generate(model, prompts, g);
  int64_t exact = 0;
  for (size_t i = 0; i < pairs.size(); ++i) {
    std::string answer = tok.decode(res.ids[i], /*skip_special=*/true);
    const size_t b = answer.find_first_not_of(" \n"), e = answer.find_last_not_of(" \n");
    answer = b == std::string::npos ? "" : answer.substr(b, e - b + 1);
    exact += grade_credit_answer(instruction_text(pairs[i].prompt), answer).exact ? 1 : 0;
  }
  return static_cast<double>(exact) / static_cast<double>(pairs.size());
}

}  // namespace treg
