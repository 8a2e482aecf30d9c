// `treg sft`: supervised fine-tuning on prompt/completion rows (data.h, load_sft_data): the
// negative log-likelihood of the completion tokens only (TRL's completion-only loss), averaged over
// every completion token of an optimizer step, whatever the micro-batching. It runs in the same
// loop as preference training (trainer.h, Objective), so checkpoints, resume, logging, NaN stops
// and report.html are the same.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "treg/config.h"
#include "treg/trainer.h"

namespace treg {

// One training sequence: prompt ids then completion ids (loss on the completion).
struct SftSequence {
  std::vector<int64_t> prompt_ids, completion_ids;
};

// A micro-batch of sequences as the model reads it.
//   unpacked: one sequence per row, right padded; segments = 1 on tokens, 0 on padding.
//   packed:   sequences laid one after another into rows of at most `max_length` tokens (first
//             fit, in order), segments = 1, 2, ... per sequence of the row, 0 on padding; each
//             sequence attends only to itself and its positions start at 0 (forward_packed).
struct SftBatch {
  torch::Tensor ids;       // [B, T] int64
  torch::Tensor segments;  // [B, T] int64
  torch::Tensor targets;   // [B, T] int64: 1 where the token is a completion token (a loss target)
  int64_t tokens = 0;      // non-padding tokens
  int64_t completion_tokens = 0;
  bool packed = false;  // some row holds more than one sequence
};
SftBatch collate_sft(const std::vector<const SftSequence*>& seqs, bool packing, int64_t max_length);

// Per-token NLL of the completion tokens of `batch` under `policy`: {Σ -log p, Σ argmax hits}, the
// first differentiable. The forward takes the batch's layout (packed or not).
struct SftLoss {
  torch::Tensor nll_sum;  // scalar
  torch::Tensor hits;     // scalar fp64, no gradient: completion tokens the policy's argmax predicts
};
SftLoss sft_loss(CausalLM& policy, const SftBatch& batch, bool bf16);

class SftObjective : public Objective {
 public:
  SftObjective(const Config& config, std::vector<SftSequence> train, std::vector<SftSequence> eval,
               std::string name);
  std::string name() const override { return name_; }
  int64_t size() const override { return static_cast<int64_t>(train_.size()); }
  bool has_eval() const override { return !eval_.empty(); }
  // Completion tokens: the step's loss is the mean NLL over all of them.
  double units(const std::vector<int64_t>& examples) const override;
  MicroBatchLoss micro_batch(CausalLM& policy, const std::vector<int64_t>& examples, int64_t step,
                             double step_units, int64_t accumulation) override;
  std::map<std::string, double> metrics() const override;
  void clear_metrics() override { sums_ = {}; }
  std::map<std::string, double> evaluate(CausalLM& policy) override;
  std::string summary(const std::map<std::string, double>& values,
                      const std::string& prefix) const override;
  std::string headline_metric() const override { return "mean_token_accuracy"; }
  std::vector<std::string> curves() const override { return {"loss", "mean_token_accuracy"}; }
  std::vector<TokenRewardView> report_views(CausalLM&) override { return {}; }

 private:
  // Kept on the model's device until a log line reads them (no host sync per micro-batch).
  struct Sums {
    torch::Tensor nll, hits;  // fp64 scalars, undefined before the first add
    double tokens = 0;
    void add(const SftLoss& l, double completion_tokens);
  };
  Config config_;
  std::vector<SftSequence> train_, eval_;
  std::string name_;
  Sums sums_;
  static std::map<std::string, double> means(const Sums& s);
};

// What `treg sft --config` does: checks output_dir, reads train_file (and eval_file) as SFT rows,
// loads model_name_or_path and trains; output_dir gets config.yaml, metrics.jsonl,
// checkpoint-*/ (HF layout with the tokenizer files) and report.html.
TrainResult run_sft(const Config& config);

}  // namespace treg
