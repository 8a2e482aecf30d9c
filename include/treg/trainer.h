// `treg train`: preference optimisation with the T-REG regulariser, as Algorithm 1 of the paper.
//   setup   -> model, optimizer (AdamW), schedule, data plan, resume
//   loop    -> batch -> one forward of chosen+rejected -> loss -> backward (accumulate) -> clip
//              -> step
//              -> log / eval / save
//   cleanup -> final eval, final checkpoint, report.html
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "treg/config.h"
#include "treg/distributed.h"
#include "treg/losses.h"
#include "treg/model.h"
#include "treg/train_parts.h"

namespace treg {

class ZeroShards;  // zero.h

// Token texts of one pair with a value per response token, as report.html colours them.
struct TokenRewardView {
  std::vector<std::string> prompt_pieces;
  std::vector<std::string> chosen_pieces, rejected_pieces;
  std::vector<float> chosen_rewards, rejected_rewards;  // β·(log π_θ - log π_ref) per token
};

// One logged event: a train log line or an eval (keys prefixed "eval_").
struct LogEvent {
  int64_t step = 0;
  std::map<std::string, double> values;
};

// What a run leaves behind.
struct TrainResult {
  int64_t steps_done = 0;
  bool interrupted = false;       // stopped by SIGINT / request_training_stop()
  std::string last_checkpoint;    // "" if none was written
  std::vector<LogEvent> history;  // every train and eval event, in order (also metrics.jsonl)
};

// Test hooks; nothing in a normal run sets them.
struct TrainerHooks {
  // Called after the loss of every micro-batch, before backward (e.g. to poison it).
  std::function<void(int64_t step, LossOutput& out)> after_loss;
  // Called after every completed optimizer step (e.g. to request a stop).
  std::function<void(int64_t steps_done)> after_step;
};

// Asks a running trainer to save a checkpoint and return after the current step (SIGINT does this).
void request_training_stop();

// One micro-batch as the loop sees it.
struct MicroBatchLoss {
  torch::Tensor backward;  // scalar: this micro-batch's share of the step's loss (backpropagated)
  torch::Tensor loss;      // scalar, detached: the micro-batch's own loss, for the NaN check (read
                           // once per step, after the backward, so the step has no host sync)
  int64_t tokens = 0;      // non-padding tokens fed to the model (tokens/s)
};

// What the loop optimises: the examples, the loss of a micro-batch of them, their metrics and the
// report's own section. The loop (schedule, accumulation, clipping, NaN stops, logging, eval,
// checkpoints, report.html) is the same for every stage: preference optimisation (train) and
// supervised fine-tuning (sft) are two objectives, not two loops.
class Objective {
 public:
  virtual ~Objective() = default;
  virtual std::string name() const = 0;  // the training data, for messages
  virtual int64_t size() const = 0;      // training examples (pairs, sequences)
  virtual bool has_eval() const = 0;
  // The loss of a step is a mean over units (pairs, tokens): the units of these train examples.
  virtual double units(const std::vector<int64_t>& examples) const = 0;
  // Forward + loss of one micro-batch of train examples; `step` is 1-based, `step_units` the
  // units of the whole step (all its micro-batches), `accumulation` its micro-batch count. Adds the
  // micro-batch's metrics to the train metrics.
  virtual MicroBatchLoss micro_batch(CausalLM& policy, const std::vector<int64_t>& examples,
                                     int64_t step, double step_units, int64_t accumulation) = 0;
  // Train metrics since the last clear (TRL's names), and clearing them.
  virtual std::map<std::string, double> metrics() const = 0;
  virtual void clear_metrics() = 0;
  // Metrics of the whole eval set (no prefix; the loop adds "eval_"). Gradients off, eval mode.
  virtual std::map<std::string, double> evaluate(CausalLM& policy) = 0;
  // "loss 0.6931 acc 0.500 margin 0.0000" from a log event's values (prefix "" or "eval_").
  virtual std::string summary(const std::map<std::string, double>& values,
                              const std::string& prefix) const = 0;
  // The metric shown next to the loss on the progress bar.
  virtual std::string headline_metric() const = 0;
  // Metric names report.html draws as train/eval curves (learning rate is always drawn).
  virtual std::vector<std::string> curves() const = 0;
  // Token views report.html draws below the curves (empty: none).
  virtual std::vector<TokenRewardView> report_views(CausalLM& policy) = 0;
};

// The preference objective of `treg train` (Algorithm 1): pairs with token rewards r̂ and
// reference log-probs from a reward dump, one forward of chosen+rejected, L_pref + α·w·L_reg.
class PreferenceObjective : public Objective {
 public:
  PreferenceObjective(const Config& config, std::shared_ptr<PairSource> train,
                      std::shared_ptr<PairSource> eval, TrainerHooks hooks = {});
  std::string name() const override { return train_->name(); }
  int64_t size() const override { return train_->size(); }
  bool has_eval() const override { return eval_ && eval_->size() > 0; }
  double units(const std::vector<int64_t>& examples) const override {
    return static_cast<double>(examples.size());
  }
  MicroBatchLoss micro_batch(CausalLM& policy, const std::vector<int64_t>& examples, int64_t step,
                             double step_units, int64_t accumulation) override;
  std::map<std::string, double> metrics() const override { return acc_.means(); }
  void clear_metrics() override { acc_.clear(); }
  std::map<std::string, double> evaluate(CausalLM& policy) override;
  std::string summary(const std::map<std::string, double>& values,
                      const std::string& prefix) const override;
  std::string headline_metric() const override { return "rewards/accuracies"; }
  std::vector<std::string> curves() const override;
  std::vector<TokenRewardView> report_views(CausalLM& policy) override;

  // Forward + loss of one collated micro-batch (grad enabled unless under NoGradGuard); `logits`,
  // if given, receives the batch's logits/* statistics from the same forward.
  LossOutput compute_loss(CausalLM& policy, const PairBatch& batch, LogitStats* logits = nullptr);
  // Pairs in the layout the config asks for: `packing` gives prefix-shared trees, except for a
  // model whose rope depends on the length (dynamic, longrope), which gets padded rows.
  PairBatch collate(std::vector<PairRecord> pairs, const std::string& where,
                    const ModelArgs& args) const;

 private:
  Config config_;
  LossConfig loss_;
  std::shared_ptr<PairSource> train_, eval_;
  TrainerHooks hooks_;
  MetricAccumulator acc_;
};

class Trainer {
 public:
  // `policy` is trained in place (fp32 master weights on config's device).
  // With several `ranks` (distributed.h) each holds the whole model and optimizer, reads its own
  // slice of every micro-batch (per_device_train_batch_size pairs of the world_size times larger
  // global one), and the gradients are summed over the ranks before the update, so every rank
  // makes the same update a single process makes with the whole batch. Rank 0 alone writes
  // (metrics, checkpoints, report) and evaluates.
  Trainer(Config config, CausalLM policy, std::shared_ptr<Objective> objective,
          TrainerHooks hooks = {}, std::shared_ptr<Ranks> ranks = nullptr);
  // Preference optimisation (PreferenceObjective). `eval` may be null; with eval_strategy "no" it
  // is not used.
  Trainer(Config config, CausalLM policy, std::shared_ptr<PairSource> train,
          std::shared_ptr<PairSource> eval, TrainerHooks hooks = {},
          std::shared_ptr<Ranks> ranks = nullptr);
  TrainResult train();

  // Pieces, public for tests.
  // Metrics of the whole eval set under the current policy, keys "eval_<name>".
  std::map<std::string, double> evaluate();
  torch::optim::AdamW& optimizer() { return *optimizer_; }
  const DataPlan& plan() const { return plan_; }
  Objective& objective() { return *objective_; }

 private:
  Config config_;
  CausalLM policy_;
  std::shared_ptr<Objective> objective_;
  TrainerHooks hooks_;
  std::shared_ptr<Ranks> ranks_;
  torch::Device device_;
  DataPlan plan_;
  int64_t warmup_ = 0;
  int64_t eval_interval_ = 0, save_interval_ = 0;  // steps between evals / saves; 0 = none
  bool with_eval_ = false;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> params_;
  std::vector<std::string> param_names_;  // of params_
  // zero_stage 1 or 2 over several ranks (zero.h): who owns which AdamW state (and, with 2, which
  // gradients); null when every rank holds everything.
  std::shared_ptr<ZeroShards> zero_;
  int64_t step_ = 0;  // completed optimizer steps
  std::vector<LogEvent> history_;

  void resume_from(const std::string& checkpoint_dir);
  // Every rank calls it (with ZeRO the owners send rank 0 their AdamW state); rank 0 writes the
  // checkpoint and returns its directory, the others return "".
  std::string save_checkpoint();
  // This rank's share of a global micro-batch.
  std::vector<int64_t> rank_slice(const std::vector<int64_t>& global) const;
  // Sums the gradients over the ranks (one flat buffer; with ZeRO-2 they were reduced to their
  // owners during the backward), and `step_values` with them.
  void sum_over_ranks(torch::Tensor& step_values);
  // Each rank's metrics averaged over the ranks (as TRL logs a multi-process run).
  std::map<std::string, double> mean_over_ranks(std::map<std::string, double> values);
  double set_learning_rate(int64_t step);
  void log_event(const LogEvent& e);
  void write_report();
};

// `treg train --config`: checks output_dir (prepare_output_dir), scores the reward dumps first when
// missing (ensure_reward_dumps), loads the policy, trains, writes output_dir/{config.yaml,
// metrics.jsonl, checkpoint-*/, report.html}. `config_args` is the config path with the run's
// key=value overrides, as a shell would read them back: hints that print a command use it.
TrainResult run_training(const Config& config, const std::string& config_args = "");
// The policy `treg train` and `treg sft` train: model_name_or_path with fp32 weights on `device`;
// with use_peft, LoRA adapters (LoraSpec from the lora_* keys, drawn from `seed`) and the frozen
// projections in bf16 when bf16 autocasts the forwards (the same products, half the memory).
CausalLM load_policy(const Config& config, torch::Device device);

// ---- the output_dir of a run (train/checkpoint.cpp) ----

// What a run in output_dir starts from, decided before anything of the run is written there.
// Removes checkpoint-*.tmp directories that a killed run left. An output_dir holding an earlier
// run (checkpoint-*, config.yaml or metrics.jsonl; reward dumps, bad-row files and the lock file do
// not count) is refused unless
//   overwrite_output_dir: true  -- the earlier run's checkpoints, config.yaml, metrics.jsonl and
//                                  report.html are removed, the run starts from step 0;
//   resume_from_checkpoint      -- auto (the newest checkpoint, if any) or a checkpoint directory;
//                                  refused when the checkpoint's saved config (treg_config.yaml)
//                                  or output_dir's config.yaml differs from `config` in a key that
//                                  changes the result (resume_compatible_key says which may
//                                  change).
// Returns the checkpoint directory to resume from, "" to start from step 0.
std::string prepare_output_dir(const Config& config);
// Keys a resumed run may change: logging, eval, saving, the device, the length of the run.
bool resume_compatible_key(const std::string& key);

// ---- checkpoints (train/checkpoint.cpp) ----

// output_dir/checkpoint-<step>/: the model in the HF layout (save_model, tokenizer files and
// generation_config.json copied from `model_dir`) so HF / vLLM load it unchanged -- a LoRA model's
// adapters in PEFT's layout instead (save_lora_adapter) -- plus
//   master_weights.safetensors  the fp32 weights, only when the HF model is in another dtype
//   optimizer.pt      torch archive of the AdamW state; a ZeRO run writes one file per rank
//                     instead, optimizer_shard-<r>-of-<W>.safetensors (optimizer_shards.h)
//   trainer_state.pt  torch archive: magic, format version, global step, RNG state, data position
//   trainer_state.json  the same for humans plus the log history (as HF's)
//   treg_config.yaml  the run's resolved config (config_to_yaml), checked when a run resumes
// Files are written into "checkpoint-<step>.tmp" and the directory is renamed into place last; a
// failed save removes the .tmp directory and leaves the earlier checkpoints as they were.
// A corrupt or missing optimizer.pt / trainer_state.pt is an error naming the file.
struct TrainerState {
  int64_t global_step = 0;
  double epoch = 0;
  uint64_t data_seed = 0;
  int64_t total_steps = 0;
  std::vector<LogEvent> history;
  // The resolved config of the run; "" in checkpoints that older treg versions wrote.
  std::string config_yaml;
};
// `model_dtype` (save_dtype) is the dtype of the HF model; when it is not fp32, the fp32 master
// weights are written beside it (master_weights.safetensors) and a resume reads them instead.
// `fp32_weights`: master weights held outside the model (save_model), by name.
// `sharded_optimizer`: the ranks have written their optimizer shards (optimizer_shards.h) into
// "<checkpoint_path>.tmp" already; they are kept, and no optimizer.pt is written.
std::string save_checkpoint_dir(const std::string& output_dir, const std::string& model_dir,
                                CausalLM& model, torch::optim::AdamW& optimizer,
                                const TrainerState& state,
                                torch::ScalarType model_dtype = torch::kFloat32,
                                const std::map<std::string, torch::Tensor>& fp32_weights = {},
                                bool sharded_optimizer = false);
// output_dir/checkpoint-<step>
std::string checkpoint_path(const std::string& output_dir, int64_t step);
// A LoRA model's merged export (save_model: W + s·B·A) in HF's layout with the tokenizer files of
// `model_dir`, as <checkpoint_dir>/merged (written as merged.tmp, renamed last). Returns its path.
std::string save_merged_export(const std::string& checkpoint_dir, const std::string& model_dir,
                               CausalLM& model, torch::ScalarType dtype);
// Loads weights (a LoRA model: its adapters) into `model` (in place), the optimizer state and the
// trainer state. A checkpoint with optimizer shards instead of optimizer.pt leaves the optimizer
// to the caller (load_optimizer_shards).
TrainerState load_checkpoint_dir(const std::string& dir, CausalLM& model,
                                 torch::optim::AdamW& optimizer);
// A checkpoint's fp32 weight of a name, read on the host: from master_weights.safetensors when the
// checkpoint has one, else from its HF model files. (For masters kept outside the model.)
std::function<torch::Tensor(const std::string&)> checkpoint_fp32_reader(const std::string& dir);
// checkpoint-<N> directories of output_dir, by N ascending.
std::vector<std::string> list_checkpoints(const std::string& output_dir);
// Deletes the oldest checkpoints beyond `keep` (0 = keep all).
void rotate_checkpoints(const std::string& output_dir, int64_t keep);

// ---- metrics log and report (train/metrics_log.cpp, train/report.cpp) ----

std::string log_event_json(const LogEvent& e);
// Appends one line to metrics.jsonl, checking every write: a full disk is an error naming the file
// at once, not a log cut mid-line found at the end of the run.
void append_metrics_line(const std::string& path, const std::string& line);
// Self-contained HTML: inline SVG curves of the `curves` metrics (train and eval) and the learning
// rate, then the token rewards β·log π_θ/π_ref of a few eval pairs (paper Fig. 3) if given.
std::string render_report(const std::string& title, const std::vector<LogEvent>& history,
                          const std::vector<std::string>& curves,
                          const std::vector<TokenRewardView>& pairs);
// A polyline chart of named series (x = step) as an inline <svg>.
std::string svg_chart(
    const std::string& title,
    const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series);

}  // namespace treg
