// `treg credit-bench`: the token credit-assignment benchmark run end to end (credit_task.h has the
// task, data, labels, statistics and report it is built from).
//
// Per seed, in <out>/seed-<s>/:
//   data/      the task's SFT rows, train pairs and held-out pairs (write_credit_data)
//   sft/       the base model fine-tuned on task + revision demonstrations: the reference model
//   rewards/   score-tokens dumps of the train and held-out pairs under that reference (r̂, Eq. 3)
//   <method>/  one preference run per method of the paper's Table 2, from the reference
// Each finished run leaves <run>/credit_eval.json (its measurements), so an interrupted bench
// continues where it stopped. <out>/report.html and <out>/results.json hold every seed and method.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "treg/credit_task.h"
#include "treg/model.h"

namespace treg {

struct CreditBenchOptions {
  std::string model;  // base model directory (a tiny llama from `treg make-tiny --arch llama`)
  std::string out;    // results directory
  std::vector<uint64_t> seeds = {1, 2, 3};
  std::vector<std::string> methods;  // credit_bench_methods() names; empty = all
  // The default size: 4-6 digits (a 2-layer, 64-wide llama learns the task in ~1,250 SFT steps),
  // few enough preference pairs that DPO's token credit is far from perfect.
  CreditDataOptions data = [] {
    CreditDataOptions d;
    d.task.min_items = 4;
    d.task.max_items = 6;
    d.sft_examples = 2000;
    d.revision_examples = 1000;
    d.train_pairs = 300;
    d.heldout_pairs = 300;
    return d;
  }();
  std::string device = "cpu";
  // Supervised fine-tuning of the reference (task + revision demonstrations).
  double sft_learning_rate = 3e-3;
  double sft_epochs = 10;
  int64_t sft_batch_size = 32;
  // Preference training, shared by every method (the paper's setting: same hyper-parameters,
  // only the objective differs).
  double learning_rate = 2e-4;
  double epochs = 1;
  int64_t batch_size = 16;
  double beta = 0.1;
  double alpha = 0.25;  // α of DPO-REG and of DPO-SFT
  int64_t eval_batch_size = 64;
};

// The methods of Table 2: the shared preference config plus what each one changes.
struct CreditMethod {
  std::string id;     // dpo | dpo-reg | dpo-reg-static | dpo-sft | dpo-reg-dpo-rewards
  std::string label;  // as the report shows it
  std::string treg_weighting;  // "" = no T-REG term; else treg_alpha = α with this weighting
  bool sft = false;            // sft_alpha = α (DPO-SFT)
  bool dpo_rewards = false;    // r̂ from the same seed's "dpo" run (reward_source dpo)
};
const std::vector<CreditMethod>& credit_bench_methods();

// How one model does on the held-out pairs and questions of a seed.
struct CreditEval {
  double reward_auroc = 0;     // of β·(log π − log π_ref) at planted errors (NaN for the reference)
  double self_reward_auroc = 0;  // of the run's r̂ (NaN when it trains without token rewards)
  double greedy_accuracy = 0;  // exact-match greedy answers to the held-out questions
  int64_t error_tokens = 0, correct_tokens = 0;
};

// Per-token log π(y_t | x, y<t) of every chosen and rejected response of `pairs` (no gradients),
// in pair order: [2 i] chosen, [2 i + 1] rejected.
std::vector<std::vector<float>> response_logprobs(CausalLM& model,
                                                  const std::vector<TokenizedPair>& pairs,
                                                  int64_t batch_size);

// AUROC of the token rewards β·(policy − reference) log-probs at telling the planted-error tokens of
// `pairs` from the correct ones (digit tokens of both responses; labels from credit_token_labels).
double credit_logratio_auroc(const std::vector<std::vector<float>>& policy_logps,
                             const std::vector<std::vector<float>>& ref_logps,
                             const std::vector<CreditTokenLabels>& labels, double beta);

// Greedy answers of `model` to the prompts of `pairs` (prompt_ids as the pairs lay them out, i.e.
// with the generation prompt), graded against the questions: the exact-match fraction.
double credit_greedy_accuracy(CausalLM& model, const Tokenizer& tok, const ChatTemplate& chat,
                              const std::vector<TokenizedPair>& pairs, int64_t max_items,
                              int64_t batch_size);

// Runs (or continues) the whole benchmark; writes <out>/report.html and <out>/results.json.
CreditReport run_credit_bench(const CreditBenchOptions& options);

}  // namespace treg
