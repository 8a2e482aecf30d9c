// The pieces `treg train` is assembled from, each a small pure-ish function tested on its own:
// learning-rate schedule, data order, collation of preference pairs into the rows of one forward, and the
// metric accumulator. trainer.h puts them together.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "treg/losses.h"
#include "treg/model.h"
#include "treg/reward_dump.h"

namespace treg {

// ---- learning-rate schedule (HF transformers' get_*_schedule_with_warmup) ----

// ceil(warmup_ratio · total_steps), as TrainingArguments.get_warmup_steps.
int64_t warmup_steps(double warmup_ratio, int64_t total_steps);
// With HF's warmup_steps (`steps`) too: >= 1 is a step count and wins over warmup_ratio
// (transformers 4), a fraction in (0, 1) is ceil(fraction · total_steps) (transformers 5), 0 falls
// back to warmup_ratio.
int64_t resolved_warmup_steps(double steps, double warmup_ratio, int64_t total_steps);
// The multiplier of the base learning rate for optimizer step `step` (0-based; the lr HF's LambdaLR
// applies to the step that follows `step` completed steps). With w warmup and n total steps:
//   step < w:                 step / max(1, w)                                     (all but constant)
//   constant:                 1
//   constant_with_warmup:     1
//   linear:                   max(0, (n - step) / max(1, n - w))
//   cosine:                   max(0, 0.5·(1 + cos(π · (step - w) / max(1, n - w))))  (num_cycles 0.5)
double lr_multiplier(const std::string& scheduler, int64_t step, int64_t warmup, int64_t total);

// ---- data order ----

// A deterministic permutation of [0, n) for `epoch`, from a generator owned here (mt19937_64 seeded
// with (seed, epoch); Fisher-Yates with rejection sampling), independent of global RNG state and of
// the standard library's distribution implementations.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

// Where optimizer steps take their pairs from. Every step sees exactly
// per_device_train_batch_size · gradient_accumulation_steps pairs; pairs at the end of an epoch that
// do not fill a whole step are skipped for that epoch (they are in other positions next epoch), so a
// run with micro-batch b × accumulation a is the same computation as one with b·a × 1.
struct DataPlan {
  int64_t num_pairs = 0;
  int64_t micro_batch = 1;
  int64_t accumulation = 1;
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
  uint64_t seed = 0;
  // Pair indices of micro-batch `micro` (0..accumulation-1) of optimizer step `step`.
  std::vector<int64_t> micro_batch_pairs(int64_t step, int64_t micro) const;
  double epoch_at(int64_t steps_done) const {
    return static_cast<double>(steps_done) / static_cast<double>(steps_per_epoch);
  }
};
// Errors name the keys when the data cannot fill one step.
DataPlan make_data_plan(int64_t num_pairs, int64_t micro_batch, int64_t accumulation,
                        double num_train_epochs, int64_t max_steps, uint64_t seed);

// ---- pairs in, the rows of one forward out ----

// Random access to preference pairs (a reward dump, or pairs held in memory by tests).
class PairSource {
 public:
  virtual ~PairSource() = default;
  virtual int64_t size() const = 0;
  virtual PairRecord get(int64_t i) const = 0;
  virtual std::string name() const = 0;  // for messages: the dump path
};
std::shared_ptr<PairSource> open_dump_source(const std::string& path);
std::shared_ptr<PairSource> memory_source(std::vector<PairRecord> pairs, std::string name);

// How a batch of B pairs is laid out for the forward.
//   kPadded: 2B right-padded rows, [x | y_w] then [x | y_l] (what TRL's DPOTrainer runs).
//   kPrefixShared: each pair as ONE tree [x | y_w | y_l] (pack_sequences, treg/packing.h) in which
//     y_l sees x but not y_w and its positions continue from x, so the prompt is computed once;
//     several pairs share a row (rows no longer than the longest pair), no padding but at the rows'
//     ends. Log-probs equal kPadded's (tests).
enum class PairLayout { kPadded, kPrefixShared };

// B pairs in ONE forward. Response token t of pair i's chosen side is "sequence" i, rejected is
// B + i; the dump's per-token arrays sit at [sequence, t].
struct PairBatch {
  int64_t pairs = 0;  // B
  PairLayout layout = PairLayout::kPadded;
  torch::Tensor ids;       // [rows, T] int64 (kPadded: rows = 2B)
  torch::Tensor mask;      // [rows, T] int64, 1 = token
  torch::Tensor segments;  // kPrefixShared: [rows, T] int64 (forward_packed)
  torch::Tensor parents;   // kPrefixShared: [rows, S1] int64 (y_w and y_l continue x)
  torch::Tensor response_from;  // [2B, L] int64: flat index row * T + column of the hidden state
                                // that predicts response token t (0 at padding)
  torch::Tensor response_ids;   // [2B, L] int64: the response tokens (0 at padding)
  torch::Tensor response_mask;  // [2B, L] float, 1 = response token
  torch::Tensor ref_logps;      // [2B, L] float
  torch::Tensor rewards;        // [2B, L] float
  int64_t num_tokens = 0;       // tokens of the 2B sequences (x + y each): the same in every layout
  int64_t forward_tokens = 0;   // non-padding tokens the forward runs (kPrefixShared: x once)
  std::vector<PairRecord> records;  // the pairs, for the report
};
// `where` names the source in errors (an empty prompt or response is an error naming the pair).
PairBatch collate_pairs(std::vector<PairRecord> pairs, const std::string& where,
                        PairLayout layout = PairLayout::kPadded);

// The policy's outputs on the response tokens of a collated batch: [2B, L] each, 0 at padding;
// differentiable logps (and log_sq_mass when asked: WPO), logit_sums fp64 without gradient when
// asked (TRL's logits/* metrics). One forward; only response positions reach the LM head.
struct ResponseOutputs {
  torch::Tensor logps, log_sq_mass, logit_sums;
};
ResponseOutputs response_outputs(CausalLM& policy, const PairBatch& batch, bool with_sq_mass,
                                 bool with_logit_sums);

// Splits them into the chosen and rejected sides of the loss, with the dump's ref_logps/rewards.
void gather_responses(const PairBatch& batch, const ResponseOutputs& out, ResponseTokens& chosen,
                      ResponseTokens& rejected);

// ---- metrics (TRL's names) ----

// TRL's logits/chosen and logits/rejected of one micro-batch: the mean of the policy's logits over
// the response tokens and the whole vocabulary, kept as sum and count.
struct LogitStats {
  torch::Tensor chosen_sum, rejected_sum;       // fp64 scalars on the model's device: Σ over
                                                // response tokens and vocabulary
  double chosen_count = 0, rejected_count = 0;  // response tokens × V
};
// From the response positions' logit sums [2B, L] (response_outputs).
LogitStats response_logit_stats(const PairBatch& batch, const torch::Tensor& logit_sums,
                                int64_t vocab_size);

// Sums per-pair values over micro-batches and steps; `means()` gives what one log line reports.
// logits/* are, as TRL logs them, the mean over micro-batches of each micro-batch's token mean.
// The sums stay on the model's device: only means() waits for it.
class MetricAccumulator {
 public:
  void add_pairs(const LossOutput& out);  // loss, rewards/*, logps/*, treg/*
  void add_logits(const LogitStats& s);   // logits/chosen, logits/rejected
  void add_tokens(int64_t n) { tokens_ += n; }
  std::map<std::string, double> means() const;
  int64_t pairs() const { return pairs_; }
  int64_t tokens() const { return tokens_; }
  void clear() { *this = MetricAccumulator(); }

 private:
  std::map<std::string, torch::Tensor> sums_;  // fp64 scalars
  int64_t pairs_ = 0;
  int64_t tokens_ = 0;
  std::map<std::string, torch::Tensor> batch_mean_sums_;  // Σ over micro-batches of their logits/* means
  int64_t logit_batches_ = 0;
};

}  // namespace treg
