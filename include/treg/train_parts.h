// The pieces `treg train` is assembled from, each a small pure-ish function tested on its own:
// learning-rate schedule, data order, collation of preference pairs into one padded batch, and the
// metric accumulator. trainer.h puts them together.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "treg/losses.h"
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

// ---- pairs in, one padded batch out ----

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

// B pairs as 2B sequences in ONE tensor: rows [0, B) are prompt+chosen, rows [B, 2B) prompt+rejected,
// right padded with token 0 (mask 0). Token arrays of the dump are gathered to response positions.
struct PairBatch {
  int64_t pairs = 0;              // B
  torch::Tensor ids;              // [2B, T] int64
  torch::Tensor mask;             // [2B, T] int64, 1 = token
  torch::Tensor response_index;   // [2B, L] int64: position in the [2B, T-1] next-token log-probs of
                                  // response token t, i.e. len(prompt) + t - 1 (0 at padding)
  torch::Tensor response_mask;    // [2B, L] float, 1 = response token
  torch::Tensor ref_logps;        // [2B, L] float
  torch::Tensor rewards;          // [2B, L] float
  int64_t num_tokens = 0;         // non-padding tokens of the 2B sequences
  std::vector<PairRecord> records;  // the pairs, for the report
};
// `where` names the source in errors (an empty prompt or response is an error naming the pair).
PairBatch collate_pairs(std::vector<PairRecord> pairs, const std::string& where);

// Splits per-token log-probs [2B, T-1] of a collated batch into the chosen and rejected sides of the
// loss (response positions gathered, padding zeroed).
void gather_responses(const PairBatch& batch, const torch::Tensor& logps,
                      const torch::Tensor& log_sq_mass, ResponseTokens& chosen,
                      ResponseTokens& rejected);

// ---- metrics (TRL's names) ----

// TRL's logits/chosen and logits/rejected of one micro-batch: the mean of the policy's logits over
// the response tokens and the whole vocabulary, kept as sum and count.
struct LogitStats {
  double chosen_sum = 0, rejected_sum = 0;      // Σ over response tokens and vocabulary
  double chosen_count = 0, rejected_count = 0;  // response tokens × V
};
// From the per-position logit sums [2B, T-1] of a collated batch (policy_logprobs.h).
LogitStats response_logit_stats(const PairBatch& batch, const torch::Tensor& logit_sums,
                                int64_t vocab_size);

// Sums per-pair values over micro-batches and steps; `means()` gives what one log line reports.
// logits/* are, as TRL logs them, the mean over micro-batches of each micro-batch's token mean.
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
  std::map<std::string, double> sums_;
  int64_t pairs_ = 0;
  int64_t tokens_ = 0;
  std::map<std::string, double> batch_mean_sums_;  // Σ over micro-batches of their logits/* means
  int64_t logit_batches_ = 0;
};

}  // namespace treg
